//go:build fault

package fault

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/falconet/falconet/fault/check"
	"github.com/falconet/falconet/fault/load"
	"github.com/falconet/falconet/fault/netns"
)

// TestSoak runs random sequences of the faults for FALCONET_FAULT_SOAK (a
// duration, e.g. 10m) and checks the contract after each. Seed with
// FALCONET_FAULT_SEED to replay a run. `make test-fault-soak`; not in CI.
func TestSoak(t *testing.T) {
	spec := os.Getenv("FALCONET_FAULT_SOAK")
	if spec == "" {
		t.Skip("soak mode: set FALCONET_FAULT_SOAK=10m (make test-fault-soak)")
	}
	total, err := time.ParseDuration(spec)
	if err != nil {
		t.Fatalf("FALCONET_FAULT_SOAK=%q: %v", spec, err)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FALCONET_FAULT_SEED"); s != "" {
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("FALCONET_FAULT_SEED: %v", err)
		}
	}
	t.Logf("soak for %v, seed %d (FALCONET_FAULT_SEED=%d replays it)", total, seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	// The agents reach the relays through delaying proxies (no delay until
	// the latency fault sets one).
	var proxies []*netns.DelayProxy
	c := newCluster(t, opts{kafkaSync: true, beforeAgents: func(c *cluster) {
		var addrs []string
		for i, nd := range c.relayN {
			p, err := netns.StartDelayProxy("tcp", nil, fmt.Sprintf("%s:%d", c.net.HostIP(), 18433+i), nil, nd.Addr(relayPort), netns.DelayConfig{})
			if err != nil {
				c.t.Fatal(err)
			}
			c.t.Cleanup(func() { p.Close() })
			proxies = append(proxies, p)
			addrs = append(addrs, p.Addr())
		}
		c.agentRelays = addrs
	}})
	setDelay := func(d, j time.Duration) {
		for _, p := range proxies {
			p.SetDelay(netns.DelayConfig{Delay: d, Jitter: j})
		}
	}
	lossPct := 0
	round := 0
	end := time.Now().Add(total)
	type fault struct {
		name         string
		inject, heal func(c *cluster)
	}
	agent := func() *netns.Node { return c.agentN[rng.IntN(len(c.agentN))] }
	var target *netns.Node
	var victim int
	faults := []fault{
		{"link down", func(c *cluster) { target = agent(); must(t, target.LinkDown()) }, func(c *cluster) { must(t, target.LinkUp()) }},
		{"blackhole", func(c *cluster) { target = agent(); must(t, target.Blackhole()) }, func(c *cluster) { must(t, target.Unblackhole()) }},
		{"relay kill", func(c *cluster) { victim = rng.IntN(2); c.relays[victim].Kill() }, func(c *cluster) {
			must(t, c.relays[victim].Restart())
			c.waitTCP(c.relayN[victim].Addr(relayPort), c.relays[victim])
		}},
		{"kafka stop", func(c *cluster) { _ = c.kafka.Stop(20 * time.Second) }, func(c *cluster) {
			must(t, c.kafka.Restart())
			c.waitTCP(c.core.Addr(kafkaPort), c.kafka)
		}},
		{"es stop", func(c *cluster) { _ = c.es.Stop(20 * time.Second) }, func(c *cluster) {
			must(t, c.es.Restart())
			c.waitTCP(c.core.Addr(esPort), c.es)
		}},
		{"agent kill", func(c *cluster) { victim = rng.IntN(len(c.agents)); c.agents[victim].Kill() }, func(c *cluster) {
			must(t, c.agents[victim].Restart())
			c.waitTCP(c.agentN[victim].Addr(agentHTTP), c.agents[victim])
		}},
		{"packet loss", func(c *cluster) {
			lossPct = []int{5, 15, 30}[rng.IntN(3)]
			forAgents(c, func(nd *netns.Node) error { return nd.SetLoss(lossPct) })
		}, func(c *cluster) { forAgents(c, func(nd *netns.Node) error { return nd.SetLoss(0) }) }},
		{"latency 300±100 ms", func(c *cluster) { setDelay(150*time.Millisecond, 50*time.Millisecond) }, func(c *cluster) { setDelay(0, 0) }},
		{"slow link", func(c *cluster) {
			k := []int{64, 256, 1024}[rng.IntN(3)]
			forAgents(c, func(nd *netns.Node) error { return nd.SetRate(k, k) })
		}, func(c *cluster) { forAgents(c, func(nd *netns.Node) error { return nd.SetRate(0, 0) }) }},
	}
	type tally struct {
		rounds int
		res    check.Result
	}
	tallies := map[string]*tally{}
	defer func() {
		var b strings.Builder
		fmt.Fprintf(&b, "soak %v, seed %d, %d rounds\n| fault | rounds | generated | stored | missing | duplicated |\n|---|---:|---:|---:|---:|---:|\n", total, seed, round)
		for _, f := range faults {
			if tl := tallies[f.name]; tl != nil {
				fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d |\n", f.name, tl.rounds, tl.res.Generated, tl.res.Stored, tl.res.Missing, tl.res.Duplicated)
			}
		}
		t.Logf("soak table:\n%s", b.String())
	}()
	ctx := context.Background()
	var all []*load.Record
	for time.Now().Before(end) && !t.Failed() {
		round++
		c.startLoads()
		c.waitWarm()
		f := faults[rng.IntN(len(faults))]
		hold := time.Duration(5+rng.IntN(26)) * time.Second
		t.Logf("round %d: %s for %v", round, f.name, hold)
		f.inject(c)
		netns.Hold(hold) // the fault's duration
		f.heal(c)
		recs := c.stopLoads()
		c.loads, c.loadLogs = nil, nil
		var ids []string
		for _, r := range recs {
			var seqs []int64
			for s := range r.Accepted {
				seqs = append(seqs, s)
			}
			ids = append(ids, check.IDs(r.Stream, seqs)...)
		}
		err := netns.WaitFor(drainLimit, 500*time.Millisecond, func() error {
			n, err := c.ES.CountIDs(ctx, ids)
			if err != nil {
				return err
			}
			if n < len(ids) {
				return fmt.Errorf("%d of %d stored", n, len(ids))
			}
			return nil
		})
		if err != nil {
			t.Errorf("round %d (%s): %v", round, f.name, err)
		}
		all = append(all, recs...)
		roundRes, err := c.ES.CheckAll(ctx, recs...)
		if err != nil {
			t.Fatal(err)
		}
		if tallies[f.name] == nil {
			tallies[f.name] = &tally{}
		}
		tallies[f.name].rounds++
		tallies[f.name].res.Add(roundRes)
		res, err := c.ES.CheckAll(ctx, all...)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d (%s %v): %s", round, f.name, hold, res)
		if !res.OK() {
			t.Errorf("round %d (%s): contract broken: %s\n%s", round, f.name, res, c.tails())
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
