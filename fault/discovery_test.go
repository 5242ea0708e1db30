//go:build fault

package fault

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/falconet/falconet/fault/netns"
	"github.com/falconet/falconet/internal/promtext"
)

// TestDiscoveryNearestRelay: two relays in their own namespaces, each
// reachable only through a user-space delaying forwarder in the root
// namespace (TCP for the relay protocol and gossip streams, UDP for gossip
// packets): "near" adds 1 ms one way, "far" 25 ms. Agents given only the
// two relays' gossip addresses choose the near relay; when it is SIGKILLed
// they use the far one; when it is back they return to it.
func TestDiscoveryNearestRelay(t *testing.T) {
	logs := logDir(t)
	n := netns.New(t, logs)
	must := func(nd *netns.Node, err error) *netns.Node {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return nd
	}
	core := must(n.AddNode("dcore"))
	relayN := []*netns.Node{must(n.AddNode("dnear")), must(n.AddNode("dfar"))}
	agentsN := must(n.AddNode("dagents"))
	dir := t.TempDir()
	key := base64.StdEncoding.EncodeToString([]byte("falconet-fault-discovery-key-32b"))

	start := func(nd *netns.Node, name string, argv ...string) *netns.Proc {
		t.Helper()
		p, err := nd.Start(name, nil, argv...)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	kafka := start(core, "kafka", bin(t, "falconet"), "dev-kafka", "-listen", core.Addr(kafkaPort), "-data", filepath.Join(dir, "kafka"))
	if err := netns.WaitFor(30*time.Second, 50*time.Millisecond, func() error { return netns.WaitTCP(core.Addr(kafkaPort), 0) }); err != nil {
		t.Fatalf("kafka: %v\n%s", err, kafka.Tail(2000))
	}

	// Forwarders in the root namespace, one set per relay.
	delays := []time.Duration{time.Millisecond, 25 * time.Millisecond}
	type fwd struct{ gossip, proto string }
	fwds := make([]fwd, 2)
	for i, nd := range relayN {
		cfg := netns.DelayConfig{Delay: delays[i]}
		gt, err := netns.StartDelayProxy("tcp", nil, n.HostIP()+":0", nil, nd.Addr(7946), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { gt.Close() })
		// Gossip wants TCP and UDP on the same port.
		gu, err := netns.StartDelayProxy("udp", nil, gt.Addr(), nil, nd.Addr(7946), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { gu.Close() })
		pt, err := netns.StartDelayProxy("tcp", nil, n.HostIP()+":0", nil, nd.Addr(relayPort), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pt.Close() })
		fwds[i] = fwd{gossip: gt.Addr(), proto: pt.Addr()}
	}
	names := []string{"near", "far"}
	relays := make([]*netns.Proc, 2)
	for i, nd := range relayN {
		conf := filepath.Join(dir, names[i]+".toml")
		os.WriteFile(conf, []byte(fmt.Sprintf(`id = %q
[listen]
protocol = %q
legacy = ""
http = %q
[kafka]
brokers = [%q]
[discovery]
bind = %q
advertise = %q
protocol_address = %q
seeds = [%q]
keys = [%q]
`, names[i], nd.Addr(relayPort), nd.Addr(relayHTTP), core.Addr(kafkaPort), nd.Addr(7946), fwds[i].gossip, fwds[i].proto,
			fwds[1-i].gossip, key)), 0o644)
		relays[i] = start(nd, "relay-"+names[i], bin(t, "falconet-relay"), "-config", conf)
	}
	for i, nd := range relayN {
		if err := netns.WaitFor(30*time.Second, 50*time.Millisecond, func() error { return netns.WaitTCP(nd.Addr(relayPort), 0) }); err != nil {
			t.Fatalf("relay %s: %v\n%s", names[i], err, relays[i].Tail(3000))
		}
	}

	const nAgents = 3
	var agentURLs []string
	agents := make([]*netns.Proc, nAgents)
	for i := range nAgents {
		conf := filepath.Join(dir, fmt.Sprintf("agent%d.toml", i))
		httpAddr := agentsN.Addr(agentHTTP + i)
		agentURLs = append(agentURLs, httpAddr)
		os.WriteFile(conf, []byte(fmt.Sprintf(`hostname = "dagent%d"
interval = "2s"
[http]
listen = %q
[buffer]
path = %q
[relay]
addresses = []
[discovery]
seeds = [%q, %q]
bind = %q
keys = [%q]
`, i, httpAddr, filepath.Join(dir, fmt.Sprintf("agent%d.db", i)), fwds[0].gossip, fwds[1].gossip, agentsN.Addr(7946+i), key)), 0o644)
		agents[i] = start(agentsN, fmt.Sprintf("dagent%d", i), bin(t, "falconet-agent"), "-config", conf)
	}
	client := agentsN.HTTPClient(2 * time.Second)
	using := func() []string {
		out := make([]string, nAgents)
		for i, a := range agentURLs {
			out[i] = "-"
			resp, err := client.Get("http://" + a + "/metrics")
			if err != nil {
				continue
			}
			var b strings.Builder
			buf := make([]byte, 32<<10)
			for {
				k, err := resp.Body.Read(buf)
				b.Write(buf[:k])
				if err != nil {
					break
				}
			}
			resp.Body.Close()
			for labels, v := range promtext.Labeled(b.String(), "falconet_agent_sender_relay") {
				if v == 1 {
					out[i] = strings.Trim(strings.TrimPrefix(labels, "addr="), `"`)
				}
			}
		}
		return out
	}
	all := func(addr string) func() error {
		return func() error {
			if u := using(); strings.Count(strings.Join(u, " "), addr) != nAgents {
				return fmt.Errorf("agents use %v, want all on %s", u, addr)
			}
			return nil
		}
	}
	dump := func() {
		for i, p := range agents {
			t.Logf("--- agent %d log tail ---\n%s", i, p.Tail(4000))
		}
		for i, p := range relays {
			t.Logf("--- relay %s log tail ---\n%s", names[i], p.Tail(3000))
		}
	}
	t0 := time.Now()
	if err := netns.WaitFor(90*time.Second, 200*time.Millisecond, all(fwds[0].proto)); err != nil {
		dump()
		t.Fatalf("agents did not choose the near relay: %v", err)
	}
	t.Logf("every agent chose the near relay (1 ms) over the far one (25 ms) %v after start", time.Since(t0).Round(time.Millisecond))

	relays[0].Kill()
	t0 = time.Now()
	if err := netns.WaitFor(60*time.Second, 100*time.Millisecond, all(fwds[1].proto)); err != nil {
		dump()
		t.Fatalf("after the near relay's SIGKILL: %v", err)
	}
	failover := time.Since(t0)
	t.Logf("near relay SIGKILLed: every agent on the far relay after %v", failover.Round(time.Millisecond))

	if err := relays[0].Restart(); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	if err := netns.WaitFor(120*time.Second, 200*time.Millisecond, all(fwds[0].proto)); err != nil {
		dump()
		t.Fatalf("after the near relay's restart: %v", err)
	}
	back := time.Since(t0)
	t.Logf("near relay restarted: every agent back on it after %v", back.Round(time.Millisecond))
	if os.Getenv("FALCONET_TEST_VERBOSE") != "" {
		dump()
	}
}
