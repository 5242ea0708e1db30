package demo

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// State is what the demo writes to state.json and `falconet status` reads.
type State struct {
	Started time.Time `json:"started"`
	Pid     int       `json:"pid"`
	Dir     string    `json:"dir"`
	ES      string    `json:"es"`
	Kafka   string    `json:"kafka"`
	Members []Member  `json:"members"`

	// Seeds are the relays' gossip addresses, GossipKey the pool's key
	// (`falconet status -seed` uses them).
	Seeds     []string `json:"seeds,omitempty"`
	GossipKey string   `json:"gossip_key,omitempty"`
}

// Member is one process of the running demo.
type Member struct {
	Name string `json:"name"`
	Role string `json:"role"` // agent, relay, saver, kafka, es
	Addr string `json:"addr"` // protocol/listen address
	HTTP string `json:"http"` // base URL of /metrics and /healthz ("" for none)
	Log  string `json:"log"`
	Pid  int    `json:"pid"`
}

// DefaultDir is the demo's default working directory, falconet-demo in the
// temporary directory ($TMPDIR, else /tmp).
func DefaultDir() string { return filepath.Join(os.TempDir(), "falconet-demo") }

// StateFile is the path of the state file in a demo directory.
func StateFile(dir string) string { return filepath.Join(dir, "state.json") }

// ReadState reads a state file.
func ReadState(path string) (State, error) {
	var st State
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

func (d *Demo) writeState() error {
	d.state.Members = d.state.Members[:0]
	for _, c := range d.children {
		d.state.Members = append(d.state.Members, c.member)
	}
	b, err := json.MarshalIndent(d.state, "", "  ")
	if err != nil {
		return err
	}
	tmp := StateFile(d.cfg.Dir) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, StateFile(d.cfg.Dir))
}

// newGossipKey returns a random 32-byte gossip key, base64.
func newGossipKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
