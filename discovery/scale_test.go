package discovery_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	_ "net/http/pprof" // -scale-pprof
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/falconet/falconet/discovery"
)

var joinRate = flag.Float64("scale-rate", 50, "TestGossipScale: members started per second (a whole fleet joining in one burst is a different test)")

var timeScale = flag.Float64("scale-time", 1, "TestGossipScale: run every gossip timing this many times slower (discovery.Config.TimeScale) and report per production second; for pools whose members' work at production speed exceeds the machine's cores")

var scalePprof = flag.String("scale-pprof", "", "TestGossipScale: serve net/http/pprof on this address while measuring")

var scale = flag.String("scale", "", "TestGossipScale: pool sizes to measure, e.g. 100,1000 (a measurement, not run in CI; also FALCONET_GOSSIP_SCALE)")

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestGossipScale measures a pool of N in-process members on loopback (3
// relays, N-3 agents, encrypted, production timings): time for every member
// to know every other after joining, gossip bytes sent and CPU per member
// in steady state, time for a relay's metadata change and a relay's crash
// to reach every member. Run with -scale=100,1000 -v -timeout 30m.
func TestGossipScale(t *testing.T) {
	spec := *scale
	if spec == "" {
		spec = os.Getenv("FALCONET_GOSSIP_SCALE")
	}
	if spec == "" {
		t.Skip("measurement: run with -scale=100,1000 (or FALCONET_GOSSIP_SCALE)")
	}
	if *scalePprof != "" {
		srv := &http.Server{Addr: *scalePprof}
		go func() { _ = srv.ListenAndServe() }()
		t.Cleanup(func() { _ = srv.Close() })
	}
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 5 {
			t.Fatalf("-scale: %q", f)
		}
		t.Run(fmt.Sprint(n), func(t *testing.T) { measurePool(t, n) })
	}
}

// waitSlow polls cond every 100ms: with a thousand members in the process,
// a condition over all of them is itself work, and polling it every 20ms
// took CPU from the pool under measurement. The times reported are
// therefore up to 100ms late.
func waitSlow(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-time.After(100 * time.Millisecond)
	}
}

func measurePool(t *testing.T, n int) {
	k := max(*timeScale, 1)
	// prod converts a measured duration to production time (see -scale-time).
	prod := func(d time.Duration) time.Duration { return time.Duration(float64(d) / k).Round(time.Millisecond) }
	// push-pull runs every 15s x (1 + log2(N/32)): include several (90s: one
	// per member on average at N=1000)
	window := time.Duration(k * float64(90*time.Second))
	nodes := make([]*discovery.Node, 0, n)
	var mu sync.Mutex
	start := time.Now()
	pace := time.NewTicker(time.Duration(float64(time.Second) / *joinRate))
	defer pace.Stop()
	for i := range n {
		<-pace.C
		role, name := discovery.RoleAgent, fmt.Sprintf("agent/%04d", i)
		meta := discovery.Meta{}
		if i < 3 {
			role, name = discovery.RoleRelay, fmt.Sprintf("relay/%d", i)
			meta = discovery.Meta{Addr: fmt.Sprintf("10.0.0.%d:8433", i), Ready: true}
		}
		var seeds []string
		mu.Lock()
		for range min(len(nodes), 3) {
			seeds = append(seeds, nodes[rand.IntN(len(nodes))].Addr())
		}
		mu.Unlock()
		nd, err := discovery.New(discovery.Config{Name: name, Role: role, Bind: "127.0.0.1:0", Seeds: seeds,
			Keys: []string{keyA}, Meta: meta, TimeScale: k}, nil, nil)
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		mu.Lock()
		nodes = append(nodes, nd)
		mu.Unlock()
		if (i+1)%100 == 0 {
			t.Logf("N=%d: %d members started after %v", n, i+1, time.Since(start).Round(time.Second))
		}
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, nd := range nodes {
			wg.Add(1)
			go func() { defer wg.Done(); nd.Abort() }()
		}
		wg.Wait()
	})
	started := time.Since(start)
	everyone := func(cond func(*discovery.Node) bool) bool {
		for _, nd := range nodes {
			if !cond(nd) {
				return false
			}
		}
		return true
	}
	lastLog := time.Now()
	waitSlow(t, 15*time.Minute, "every member knows every other", func() bool {
		if time.Since(lastLog) >= 30*time.Second {
			lastLog = time.Now()
			least := n
			for _, nd := range nodes {
				least = min(least, nd.NumMembers())
			}
			t.Logf("N=%d: after %v the least informed member knows %d", n, time.Since(start).Round(time.Second), least)
		}
		return everyone(func(nd *discovery.Node) bool { return nd.NumMembers() == n })
	})
	joined := time.Since(start)
	t.Logf("N=%d (time scale %g): members started in %v; every member knew all %d after %v (%v in production time)",
		n, k, started.Round(time.Millisecond), n, joined.Round(time.Millisecond), prod(joined))

	// Let the joins' broadcasts die down, then measure a quiet window.
	settle := time.Duration(k * float64(10*time.Second))
	waitSlow(t, settle+time.Minute, "settle", func() bool { return time.Since(start) > joined+settle })
	traffic := func(from, to int) (udp, tcp int64) {
		for _, nd := range nodes[from:to] {
			tr := nd.Traffic()
			udp, tcp = udp+tr.UDPBytes, tcp+tr.TCPBytes
		}
		return
	}
	ru0, rt0 := traffic(0, 3)
	au0, at0 := traffic(3, n)
	cpu0, w0 := cpuTime(), time.Now()
	waitSlow(t, window+time.Minute, "measurement window", func() bool { return time.Since(w0) >= window })
	secs := time.Since(w0).Seconds() / k // production seconds
	cpu := cpuTime() - cpu0
	ru1, rt1 := traffic(0, 3)
	au1, at1 := traffic(3, n)
	perRelay := float64(ru1-ru0+rt1-rt0) / 3 / secs
	perAgent := float64(au1-au0+at1-at0) / float64(n-3) / secs
	t.Logf("N=%d steady state over %.0f production seconds: sent per relay %.0f B/s (udp %.0f, tcp %.0f); per agent %.0f B/s (udp %.0f, tcp %.0f); "+
		"process CPU %.2f s per production second = %.2f ms CPU per member per second",
		n, secs, perRelay, float64(ru1-ru0)/3/secs, float64(rt1-rt0)/3/secs, perAgent,
		float64(au1-au0)/float64(n-3)/secs, float64(at1-at0)/float64(n-3)/secs,
		cpu.Seconds()/secs, float64(cpu.Milliseconds())/float64(n)/secs)

	// A relay's load changes: how long until every member sees it.
	relay := nodes[0]
	c0 := time.Now()
	relay.Publish(discovery.Meta{Addr: "10.0.0.0:8433", Ready: true, Agents: 777})
	waitSlow(t, time.Duration(k*float64(5*time.Minute)), "metadata change everywhere", func() bool {
		return everyone(func(nd *discovery.Node) bool {
			m, ok := nd.Member("relay/0")
			return nd == relay || ok && m.Meta.Agents == 777
		})
	})
	t.Logf("N=%d: a relay's metadata change reached every member in %v", n, prod(time.Since(c0)))

	// A relay crashes: how long until no member lists it.
	dead := nodes[2]
	c0 = time.Now()
	dead.Abort()
	waitSlow(t, time.Duration(k*float64(5*time.Minute)), "crash known everywhere", func() bool {
		return everyone(func(nd *discovery.Node) bool {
			_, ok := nd.Member("relay/2")
			return nd == dead || !ok
		})
	})
	t.Logf("N=%d: a crashed relay was dropped by every member after %v", n, prod(time.Since(c0)))
}
