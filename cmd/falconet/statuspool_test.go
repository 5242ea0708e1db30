package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/falconet/falconet/discovery"
)

// TestPoolStatus: `falconet status -seed` joins a real gossip pool briefly
// and prints its relays (address, readiness, load) and agents (relay in
// use, backlog), as a table and as JSON; a wrong key learns nothing.
func TestPoolStatus(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte("status-test-key-0123456789abcdef"))
	relay, err := discovery.New(discovery.Config{Name: "relay/r1", Role: discovery.RoleRelay, Bind: "127.0.0.1:0", Keys: []string{key},
		Version: "v9.9.9", Meta: discovery.Meta{Addr: "127.0.0.1:8433", Ready: true, Agents: 1, MaxAgents: 100, ProduceMs: 2.5}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Abort()
	agent, err := discovery.New(discovery.Config{Name: "agent/a1", Role: discovery.RoleAgent, Bind: "127.0.0.1:0", Keys: []string{key},
		Seeds: []string{relay.Addr()}, Meta: discovery.Meta{Relay: "127.0.0.1:8433", Backlog: 42, BacklogBytes: 4096,
			Update: "committed", Rollback: "2.2.0 hung"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Abort()
	deadline := time.Now().Add(5 * time.Second)
	for len(relay.Members()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("agent did not join the relay")
		}
		<-time.After(20 * time.Millisecond)
	}

	var out bytes.Buffer
	if err := poolStatus(&out, []string{relay.Addr()}, key, false); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"relay/r1", "127.0.0.1:8433", "v9.9.9", "ready", "agents=1/100", "produce=2.5ms",
		"agent/a1", "relay=127.0.0.1:8433", "backlog=42 batches (4.0KiB)", "update=committed", "rolled-back=2.2.0:hung", "1 relays, 1 agents"} {
		if !strings.Contains(text, want) {
			t.Errorf("table: no %q in\n%s", want, text)
		}
	}

	out.Reset()
	if err := poolStatus(&out, []string{relay.Addr()}, key, true); err != nil {
		t.Fatal(err)
	}
	var ms []poolMember
	if err := json.Unmarshal(out.Bytes(), &ms); err != nil {
		t.Fatalf("-json: %v\n%s", err, out.String())
	}
	if len(ms) != 2 || ms[0].Name != "agent/a1" || *ms[0].Backlog != 42 || ms[0].Update != "committed" || ms[0].LastRollback != "2.2.0 hung" || ms[1].Address != "127.0.0.1:8433" || !*ms[1].Ready {
		t.Errorf("-json: got %+v", ms)
	}

	wrong := base64.StdEncoding.EncodeToString([]byte("another-key-0123456789abcdefghij"))
	for _, k := range []string{wrong, ""} {
		out.Reset()
		err := poolStatus(&out, []string{relay.Addr()}, k, false)
		var ee exitError
		if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(ee.msg, "no seed answered") {
			t.Errorf("key %q: got %v, want exit 1 'no seed answered'", k, err)
		}
		if out.Len() != 0 {
			t.Errorf("key %q: printed %q, want nothing", k, out.String())
		}
	}
}
