package discovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// Roles of pool members.
const (
	RoleRelay  = "relay"
	RoleAgent  = "agent"
	RoleStatus = "status" // a short-lived observer (falconet status)
)

// Meta is what a member publishes about itself. It travels as compact JSON
// in memberlist's node metadata (at most 512 bytes), so keys are short.
type Meta struct {
	Role    string `json:"r"`
	Version string `json:"v,omitempty"`

	// Relays.
	Addr          string  `json:"a,omitempty"`  // protocol address agents dial ("host:8433")
	Ready         bool    `json:"ok,omitempty"` // Kafka reachable, memory not exhausted, not draining
	Draining      bool    `json:"dr,omitempty"` // shutting down: finishing in-flight batches
	Agents        int     `json:"n,omitempty"`  // connected agents
	MaxAgents     int     `json:"mx,omitempty"` // connection limit
	InflightBytes int64   `json:"ib,omitempty"` // batch bytes read and not yet acked by Kafka
	InflightMax   int64   `json:"im,omitempty"` // limit of InflightBytes
	ProduceMs     float64 `json:"pl,omitempty"` // recent Kafka produce latency, milliseconds

	// Agents.
	Relay        string `json:"u,omitempty"`  // relay address in use, "" while disconnected
	Backlog      int64  `json:"bl,omitempty"` // batches waiting in the buffer
	BacklogBytes int64  `json:"bb,omitempty"`
	Update       string `json:"up,omitempty"` // self-update state: installed, committed, trial ("" when updates are off)
	Rollback     string `json:"rb,omitempty"` // the last release rolled back here: "2.2.0 hung"
}

// ErrMetaTooLarge is returned when a Meta does not fit memberlist's limit.
var ErrMetaTooLarge = errors.New("discovery: metadata larger than 512 bytes")

const metaMaxSize = 512 // memberlist.MetaMaxSize

func (m Meta) encode() ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(b) > metaMaxSize {
		return nil, fmt.Errorf("%w (%d bytes)", ErrMetaTooLarge, len(b))
	}
	return b, nil
}

// DecodeMeta parses a member's metadata; members that publish none (or
// garbage) decode as role "".
func DecodeMeta(b []byte) Meta {
	var m Meta
	if len(b) > 0 {
		_ = json.Unmarshal(b, &m)
	}
	return m
}

// Urgent reports whether the change from m to n must be published at once:
// anything that decides whether a relay may be used, which relay an agent
// uses, or where an agent stands in a rollout.
func (m Meta) Urgent(n Meta) bool {
	return m.Role != n.Role || m.Version != n.Version || m.Addr != n.Addr || m.Ready != n.Ready ||
		m.Draining != n.Draining || m.MaxAgents != n.MaxAgents || m.InflightMax != n.InflightMax || m.Relay != n.Relay ||
		m.Update != n.Update || m.Rollback != n.Rollback
}

// Material reports whether n differs from the published m enough to be
// gossiped again: urgent changes; connected agents by at least one and 2 %;
// in-flight memory by 10 % of its limit; produce latency by 5 ms and 25 %;
// an agent's backlog appearing, vanishing, doubling or halving.
func (m Meta) Material(n Meta) bool {
	if m.Urgent(n) {
		return true
	}
	if d := absInt(n.Agents - m.Agents); d >= 1 && float64(d) >= 0.02*float64(m.Agents) {
		return true
	}
	if lim := max(m.InflightMax, 1); float64(absInt64(n.InflightBytes-m.InflightBytes)) >= 0.1*float64(lim) {
		return true
	}
	if d := math.Abs(n.ProduceMs - m.ProduceMs); d >= 5 && d >= 0.25*m.ProduceMs {
		return true
	}
	if (m.Backlog == 0) != (n.Backlog == 0) || n.Backlog >= 2*m.Backlog && n.Backlog > m.Backlog+1 || 2*n.Backlog <= m.Backlog && m.Backlog > n.Backlog+1 {
		return true
	}
	return false
}

// ProduceLatency is ProduceMs as a duration.
func (m Meta) ProduceLatency() time.Duration {
	return time.Duration(m.ProduceMs * float64(time.Millisecond))
}

func absInt(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func absInt64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
