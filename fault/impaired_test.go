//go:build fault

package fault

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/falconet/falconet/fault/check"
	"github.com/falconet/falconet/fault/netns"
)

// Impaired links: the network is bad, not down. No netem on these kernels:
// loss is nftables (numgen random) in the hub, bandwidth is tc tbf on both
// ends of a node's veth, latency and jitter a user-space proxy
// (netns.DelayProxy) between the agents and the relays.
//
// Each scenario reports, besides the contract check, how fresh live data
// stayed during the impairment (now minus the accept time of the newest push
// whose every metric is in Elasticsearch, sampled every 2 s, worst agent;
// it includes the saver's 500 ms bulk interval and the index's 1 s refresh),
// how many times the agents reconnected (a sound sender rides out loss and
// delay on one connection), and how many batch frames were written per
// batch acknowledged (resends).

const freshEvery = 2 * time.Second

// senderCounters sums sender counters over the agents.
type senderCounters struct{ connects, sent, acked float64 }

func (c *cluster) senderCounters() senderCounters {
	c.t.Helper()
	var sc senderCounters
	for _, nd := range c.agentN {
		cl := nd.HTTPClient(2 * time.Second)
		resp, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", agentHTTP))
		if err != nil {
			c.t.Fatalf("%s /metrics: %v", nd.Name, err)
		}
		sc2 := scanSender(resp.Body)
		resp.Body.Close()
		sc.connects += sc2.connects
		sc.sent += sc2.sent
		sc.acked += sc2.acked
	}
	return sc
}

func scanSender(r interface{ Read([]byte) (int, error) }) senderCounters {
	var sc senderCounters
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := s.Text()
		var v float64
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if _, err := fmt.Sscan(f[len(f)-1], &v); err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(line, `falconet_agent_sender_connects_total{result="ok"}`):
			sc.connects += v
		case strings.HasPrefix(line, "falconet_agent_sender_batches_sent_total "):
			sc.sent += v
		case strings.HasPrefix(line, "falconet_agent_sender_batches_acked_total "):
			sc.acked += v
		}
	}
	return sc
}

func (a senderCounters) minus(b senderCounters) senderCounters {
	return senderCounters{a.connects - b.connects, a.sent - b.sent, a.acked - b.acked}
}

func (a senderCounters) String() string {
	ratio := 0.0
	if a.acked > 0 {
		ratio = a.sent / a.acked
	}
	return fmt.Sprintf("%.0f reconnects, %.2f frames sent per batch acked", a.connects, ratio)
}

// liveLag is, over the agents, the largest gap between now and the accept
// time of the newest push fully stored in ES.
func (c *cluster) liveLag(ctx context.Context) (time.Duration, error) {
	var worst time.Duration
	now := time.Now()
	for _, rec := range c.records() {
		seqs := make([]int64, 0, len(rec.Accepted))
		for s := range rec.Accepted {
			seqs = append(seqs, s)
		}
		if len(seqs) == 0 {
			continue
		}
		slices.Sort(seqs)
		// Newest first, 200 pushes at a time, until one is wholly stored.
		lag := now.Sub(rec.Accepted[seqs[0]]) // nothing stored at all
	search:
		for end := len(seqs); end > 0; end -= 200 {
			chunk := seqs[max(0, end-200):end]
			present, err := c.ES.Present(ctx, check.IDs(rec.Stream, chunk))
			if err != nil {
				return 0, err
			}
			for i := len(chunk) - 1; i >= 0; i-- {
				all := true
				for _, id := range check.IDs(rec.Stream, chunk[i:i+1]) {
					if !present[id] {
						all = false
						break
					}
				}
				if all {
					lag = now.Sub(rec.Accepted[chunk[i]])
					break search
				}
			}
		}
		worst = max(worst, lag)
	}
	return worst, nil
}

// freshness samples liveLag until the returned stop is called.
func (c *cluster) freshness() (stop func() lagStats) {
	done := make(chan struct{})
	out := make(chan lagStats, 1)
	go func() {
		var st lagStats
		tick := time.NewTicker(freshEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				out <- st
				return
			case <-tick.C:
				if lag, err := c.liveLag(context.Background()); err == nil {
					st.samples = append(st.samples, lag)
				}
			}
		}
	}()
	return func() lagStats { close(done); return <-out }
}

type lagStats struct{ samples []time.Duration }

func (l lagStats) median() time.Duration {
	if len(l.samples) == 0 {
		return 0
	}
	s := slices.Clone(l.samples)
	slices.Sort(s)
	return s[len(s)/2]
}

func (l lagStats) max() time.Duration {
	if len(l.samples) == 0 {
		return 0
	}
	return slices.Max(l.samples)
}

func (l lagStats) String() string {
	if len(l.samples) == 0 {
		return "live freshness not sampled"
	}
	return fmt.Sprintf("live data behind by %.1f s median, %.1f s max", l.median().Seconds(), l.max().Seconds())
}

// impaired runs one impairment on a running cluster as its own round (its
// own streams, its own contract check and report row): generate, impair for
// hold while sampling live freshness, heal, measure the drain, check.
func (c *cluster) impaired(r row, hold time.Duration, impair, heal func()) (lagStats, senderCounters) {
	c.t.Helper()
	c.loads, c.loadLogs = nil, nil
	c.startLoads()
	c.waitWarm()
	before := c.senderCounters()
	stop := c.freshness()
	impair()
	netns.Hold(hold) // the impairment itself
	lag := stop()
	during := c.senderCounters().minus(before)
	heal()
	healed := time.Now()
	r.FirstLive, r.Drain, r.firstLiveM, r.drainM = c.measureHeal(healed, drainLimit)
	if !r.drainM {
		c.t.Errorf("%s: what was accepted during the impairment was not all stored within %v of the heal", r.Scenario, drainLimit)
	}
	r.Note = fmt.Sprintf("%s; %s", lag, during)
	c.finish(r)
	c.t.Logf("%s: %s; %s", r.Scenario, lag, during)
	return lag, during
}

// Random loss both ways on the agents' cables, 5 % then 30 %, 60 s each, on
// one cluster (two rounds, two rows).
func TestLinkLoss(t *testing.T) {
	c := newCluster(t, opts{})
	for _, pct := range []int{5, 30} {
		c.impaired(row{Scenario: fmt.Sprintf("%d %% loss", pct), Fault: fmt.Sprintf("%d %% of packets dropped both ways, 60 s", pct)}, 60*time.Second,
			func() { forAgents(c, func(nd *netns.Node) error { return nd.SetLoss(pct) }) },
			func() { forAgents(c, func(nd *netns.Node) error { return nd.SetLoss(0) }) })
	}
}

// 300 ms round trip ±100 ms jitter between the agents and the relays: each
// relay is reached only through a DelayProxy adding 150 ms ± 50 ms in each
// direction. Then, on the same cluster, the delay is removed and the agents'
// bandwidth changes every 4 s between 64 kbit/s and 8 Mbit/s.
func TestLatencyAndChangingBandwidth(t *testing.T) {
	var proxies []*netns.DelayProxy
	c := newCluster(t, opts{beforeAgents: func(c *cluster) {
		var addrs []string
		for i, nd := range c.relayN {
			p, err := netns.StartDelayProxy("tcp", nil, fmt.Sprintf("%s:%d", c.net.HostIP(), 18433+i), nil, nd.Addr(relayPort),
				netns.DelayConfig{Delay: 150 * time.Millisecond, Jitter: 50 * time.Millisecond})
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
	// The cluster warmed up through the delay already; the round measures 45 s of it.
	c.impaired(row{Scenario: "latency + jitter", Fault: "300 ms RTT ±100 ms (user-space proxy), 45 s"}, 45*time.Second,
		func() {}, func() { setDelay(0, 0) })

	rates := []int{64, 1024, 256, 8192, 128, 512}
	c.impaired(row{Scenario: "changing bandwidth", Fault: "agents' links 64 kbit/s–8 Mbit/s, changing every 4 s, 48 s"}, 0,
		func() {
			for i := range 12 {
				k := rates[i%len(rates)]
				forAgents(c, func(nd *netns.Node) error { return nd.SetRate(k, k) })
				netns.Hold(4 * time.Second) // the rate's period
			}
		},
		func() { forAgents(c, func(nd *netns.Node) error { return nd.SetRate(0, 0) }) })
}

// A slow uplink while a backlog drains. One agent pushes 20 series x 20/s
// (400 metrics/s, about 10 KB/s of batches); its link is down 60 s (a
// 24,000-metric backlog; the 10 minutes would take too long in CI:
// FALCONET_FAULT_SLOW_OUTAGE=10m runs that),
// then comes back at 256 kbit/s up (32 KB/s), unlimited down. Live-first
// must keep the newest data fresh while the backlog drains in what is left.
func TestSlowUplinkDrain(t *testing.T) {
	outage := 60 * time.Second
	if v := os.Getenv("FALCONET_FAULT_SLOW_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("FALCONET_FAULT_SLOW_OUTAGE=%q: want a positive duration", v)
		}
		outage = d
	}
	// The generators run through warm-up, the outage and the drain window.
	c := newCluster(t, opts{agents: 1, series: 20, rate: 20, span: 3*outage + 10*time.Minute})
	c.startLoads()
	c.waitWarm()
	nd := c.agentN[0]
	must(t, nd.LinkDown())
	down := time.Now()
	netns.Hold(outage) // the outage that builds the backlog
	must(t, nd.SetRate(256, 0))
	before := c.senderCounters()
	must(t, nd.LinkUp())
	healed := time.Now()
	var reconnect time.Duration
	err := netns.WaitFor(60*time.Second, pollEvery, func() error {
		v, err := agentConnected(nd)
		if err != nil {
			return err
		}
		if v != 1 {
			return fmt.Errorf("not connected")
		}
		return nil
	})
	if err != nil {
		t.Errorf("the agent did not reconnect after the heal: %v", err)
	}
	reconnect = time.Since(healed)
	stop := c.freshness() // live freshness while the backlog drains, from the reconnect on
	r := row{Scenario: "slow uplink drain", Fault: fmt.Sprintf("link down %s (%dk metrics), back at 256 kbit/s up",
		outage, int(outage.Seconds())*400/1000)}
	r.FirstLive, r.Drain, r.firstLiveM, r.drainM = c.measureHeal(healed, max(5*time.Minute, 2*outage))
	lag := stop()
	during := c.senderCounters().minus(before)
	if !r.firstLiveM || !r.drainM {
		t.Errorf("slow uplink: first live %v (%v), drained %v (%v)", r.FirstLive, r.firstLiveM, r.Drain, r.drainM)
	}
	var backlog int
	for _, rec := range c.records() {
		for _, at := range rec.Accepted {
			if at.After(down) && at.Before(healed) {
				backlog += c.o.series
			}
		}
	}
	rate := float64(backlog) / r.Drain.Seconds()
	r.Note = fmt.Sprintf("reconnected %.1f s after the heal (pushes accepted before that are backlog); backlog %d metrics drained at %.0f metrics/s beside the live 400/s; %s; %s",
		reconnect.Seconds(), backlog, rate, lag, during)
	must(t, nd.SetRate(0, 0))
	c.finish(r)
}
