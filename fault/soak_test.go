//go:build fault

package fault

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
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
	c := newCluster(t, opts{kafkaSync: true})
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
	}
	ctx := context.Background()
	var all []*load.Record
	round := 0
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
