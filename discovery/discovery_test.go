package discovery_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/falconet/falconet/discovery"
)

var (
	keyA = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	keyB = base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
)

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-time.After(20 * time.Millisecond)
	}
}

func startNode(t testing.TB, cfg discovery.Config) *discovery.Node {
	t.Helper()
	if cfg.Bind == "" {
		cfg.Bind = "127.0.0.1:0"
	}
	n, err := discovery.New(cfg, nil, nil)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() { n.Abort() })
	return n
}

func names(ms []discovery.Member) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Name)
	}
	return strings.Join(s, ",")
}

// TestKeyRefusesStrangers: members without the key or with another key
// cannot join and learn nothing; the pool does not list them. A rotated
// key (new key second, then first) keeps everyone talking.
func TestKeyRefusesStrangers(t *testing.T) {
	r := startNode(t, discovery.Config{Name: "relay-1", Role: discovery.RoleRelay, Keys: []string{keyA},
		Meta: discovery.Meta{Addr: "127.0.0.1:8433", Ready: true}})
	a := startNode(t, discovery.Config{Name: "agent-1", Role: discovery.RoleAgent, Keys: []string{keyA}, Seeds: []string{r.Addr()}})
	waitFor(t, 5*time.Second, "agent in pool", func() bool { return len(r.Members()) == 2 })

	for _, tc := range []struct {
		name string
		keys []string
	}{{"no-key", nil}, {"wrong-key", []string{keyB}}} {
		s := startNode(t, discovery.Config{Name: tc.name, Role: discovery.RoleAgent, Keys: tc.keys, Seeds: []string{r.Addr()}, JoinInterval: 100 * time.Millisecond})
		// Give it several join attempts.
		deadline := time.Now().Add(1500 * time.Millisecond)
		for time.Now().Before(deadline) {
			if got := s.Members(); len(got) != 1 {
				t.Fatalf("%s: learned members %s, want only itself", tc.name, names(got))
			}
			if got := r.Members(); len(got) != 2 {
				t.Fatalf("%s: pool lists %s, want relay-1,agent-1", tc.name, names(got))
			}
			<-time.After(50 * time.Millisecond)
		}
		if rs := s.Relays(); len(rs) != 0 {
			t.Fatalf("%s: sees relays %v", tc.name, rs)
		}
	}

	// Rotation: a node holding [new, old] talks to nodes holding [old]
	// (it decrypts their traffic, and they...) -- the documented order is
	// install the new key second everywhere first.
	b := startNode(t, discovery.Config{Name: "agent-rotating", Role: discovery.RoleAgent, Keys: []string{keyA, keyB}, Seeds: []string{a.Addr()}})
	waitFor(t, 5*time.Second, "node with [old, new] keys joins", func() bool { return len(r.Members()) == 3 && len(b.Members()) == 3 })
}

// fakeFleet runs relay members whose advertised agent count is the number
// of simulated agents using them, and agents that "connect" to whatever
// their chooser prefers at once.
type fakeFleet struct {
	t      *testing.T
	mu     sync.Mutex
	inUse  map[string]string // agent name -> relay addr
	relays map[string]*fakeRelay
	agents []*fakeAgent
	keys   []string
}

type fakeRelay struct {
	name, addr string
	node       *discovery.Node
	cancel     context.CancelFunc
	done       chan struct{}
}

type fakeAgent struct {
	name    string
	node    *discovery.Node
	chooser *discovery.Chooser
	cancel  context.CancelFunc
	done    chan struct{}
}

func (f *fakeFleet) startRelay(name string, seeds []string) *fakeRelay {
	addr := "10.0.0." + name[len(name)-1:] + ":8433" // never dialled
	n := startNode(f.t, discovery.Config{Name: name, Role: discovery.RoleRelay, Seeds: seeds, Keys: f.keys,
		MetaInterval: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	r := &fakeRelay{name: name, addr: addr, node: n, cancel: cancel, done: make(chan struct{})}
	f.t.Cleanup(func() { cancel(); <-r.done })
	go func() {
		defer close(r.done)
		n.AdvertiseRelay(ctx, addr, 100*time.Millisecond, func() discovery.RelayStatus {
			return discovery.RelayStatus{Ready: true, Agents: f.count(addr), MaxAgents: 1000}
		}, nil)
	}()
	f.mu.Lock()
	f.relays[name] = r
	f.mu.Unlock()
	return r
}

func (r *fakeRelay) kill() {
	r.cancel()
	<-r.done
	r.node.Abort()
}

func (f *fakeFleet) count(addr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, a := range f.inUse {
		if a == addr {
			n++
		}
	}
	return n
}

func (f *fakeFleet) startAgent(name string, seeds []string, cc discovery.ChooserConfig) *fakeAgent {
	n := startNode(f.t, discovery.Config{Name: name, Role: discovery.RoleAgent, Seeds: seeds, Keys: f.keys, RTTInterval: 500 * time.Millisecond})
	cc.InUse = func() string {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.inUse[name]
	}
	c, err := discovery.NewChooser(n, cc, nil, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &fakeAgent{name: name, node: n, chooser: c, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(a.done); _ = c.Run(ctx) }()
	// The "sender": connects to the preferred relay at once, unless that
	// relay is dead (then disconnected until the chooser changes its mind).
	go func() {
		for {
			p := c.Preferred()
			f.mu.Lock()
			alive := false
			for _, r := range f.relays {
				if r.addr == p && r.node != nil {
					select {
					case <-r.done:
					default:
						alive = true
					}
				}
			}
			if alive {
				f.inUse[name] = p
			} else {
				delete(f.inUse, name)
			}
			f.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-c.Changed():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	f.t.Cleanup(func() { cancel(); <-a.done })
	f.agents = append(f.agents, a)
	return a
}

func (f *fakeFleet) loads() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for _, a := range f.inUse {
		out[a]++
	}
	return out
}

func (f *fakeFleet) connected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.inUse)
}

func spread(l map[string]int, relays []string) (lo, hi int) {
	lo = 1 << 30
	for _, r := range relays {
		lo = min(lo, l[r])
		hi = max(hi, l[r])
	}
	return lo, hi
}

// TestFleetBalancesFailsOverAndReturns: 15 agents and 3 equally near relays
// in one gossip pool. Every agent gets a relay; loads end within the stated
// bound (max - min <= 20 % of the mean + 1); a crashed relay's agents move
// to the others; when it is back, agents return in waves of a bounded
// share until the bound holds again.
func TestFleetBalancesFailsOverAndReturns(t *testing.T) {
	if testing.Short() {
		t.Skip("gossip fleet: -short")
	}
	const agents = 15
	f := &fakeFleet{t: t, inUse: map[string]string{}, relays: map[string]*fakeRelay{}, keys: []string{keyA}}
	r1 := f.startRelay("relay-1", nil)
	r2 := f.startRelay("relay-2", []string{r1.node.Addr()})
	r3 := f.startRelay("relay-3", []string{r1.node.Addr()})
	addrs := []string{r1.addr, r2.addr, r3.addr}
	cc := discovery.ChooserConfig{Interval: 500 * time.Millisecond, Rand: rand.New(rand.NewPCG(1, 2)).Float64}
	var rmu sync.Mutex
	rnd := cc.Rand
	cc.Rand = func() float64 { rmu.Lock(); defer rmu.Unlock(); return rnd() }
	for i := range agents {
		f.startAgent(fmt.Sprintf("agent-%02d", i), []string{r1.node.Addr(), r2.node.Addr()}, cc)
	}
	balanced := func(relays []string) func() bool {
		return func() bool {
			l := f.loads()
			lo, hi := spread(l, relays)
			mean := float64(agents) / float64(len(relays))
			on := 0
			for _, r := range relays {
				on += l[r]
			}
			return on == agents && float64(hi-lo) <= 0.2*mean+1
		}
	}
	start := time.Now()
	defer func() {
		if t.Failed() {
			t.Logf("loads at failure: %v", f.loads())
		}
	}()
	waitFor(t, 60*time.Second, "every agent connected and balanced over 3 relays", balanced(addrs))
	t.Logf("balanced after %v: %v", time.Since(start).Round(time.Millisecond), f.loads())

	// Crash relay-1.
	killed := time.Now()
	r1.kill()
	waitFor(t, 60*time.Second, "agents off the crashed relay, balanced over 2", balanced(addrs[1:]))
	t.Logf("after crash, rebalanced in %v: %v", time.Since(killed).Round(time.Millisecond), f.loads())

	// Back: same name, new process. Agents return gradually.
	back := time.Now()
	r1b := f.startRelay("relay-1", []string{r2.node.Addr()})
	_ = r1b
	maxStep := 0
	prev := 0
	waitFor(t, 60*time.Second, "agents back on relay-1, balanced over 3", func() bool {
		n := f.loads()[r1b.addr]
		maxStep = max(maxStep, n-prev)
		prev = n
		return balanced(addrs)()
	})
	t.Logf("returned in %v: %v; most agents moving within one 20 ms poll: %d", time.Since(back).Round(time.Millisecond), f.loads(), maxStep)
	if maxStep > agents/2 {
		t.Errorf("%d of %d agents moved to the returning relay at once; want a bounded share (<= %d)", maxStep, agents, agents/2)
	}
}

// TestNoFlapping: two relays whose scores differ by less than the hysteresis;
// over many evaluations no agent changes its relay.
func TestNoFlapping(t *testing.T) {
	f := &fakeFleet{t: t, inUse: map[string]string{}, relays: map[string]*fakeRelay{}}
	r1 := f.startRelay("relay-1", nil)
	f.startRelay("relay-2", []string{r1.node.Addr()})
	// Confirm x Interval spans several RTT samples and metadata updates, as
	// the defaults (3 x 2s) do.
	cc := discovery.ChooserConfig{Interval: 500 * time.Millisecond, Confirm: 6}
	var as []*fakeAgent
	for i := range 6 {
		as = append(as, f.startAgent(fmt.Sprintf("agent-%d", i), []string{r1.node.Addr()}, cc))
	}
	waitFor(t, 10*time.Second, "agents connected", func() bool { return f.connected() == 6 })
	waitFor(t, 60*time.Second, "loads settle 3/3", func() bool {
		l := f.loads()
		return len(l) == 2 && l["10.0.0.1:8433"] == 3
	})
	// Settled: nobody changed for 3s (advertised loads caught up).
	first := map[string]string{}
	stable := time.Now()
	waitFor(t, 60*time.Second, "choices stable for 3s", func() bool {
		for _, a := range as {
			if p := a.chooser.Preferred(); p != first[a.name] {
				first[a.name] = p
				stable = time.Now()
			}
		}
		return time.Since(stable) > 3*time.Second
	})
	deadline := time.Now().Add(5 * time.Second) // 10 evaluations each
	for time.Now().Before(deadline) {
		for _, a := range as {
			if p := a.chooser.Preferred(); p != first[a.name] {
				t.Fatalf("%s flapped from %s to %s with equal relays; loads %v, its scores %+v", a.name, first[a.name], p, f.loads(), a.chooser.Scores())
			}
		}
		<-time.After(20 * time.Millisecond)
	}
}

// TestRedirectsFromPool: a relay's redirect list (what it names to agents
// it refuses as busy or tells to drain) holds the other relays that are
// ready and have room, least loaded first; not-ready, draining and full
// relays, and itself, are left out.
func TestRedirectsFromPool(t *testing.T) {
	type st struct {
		addr string
		s    discovery.RelayStatus
	}
	relays := []st{
		{"10.0.0.1:8433", discovery.RelayStatus{Ready: true, Agents: 90, MaxAgents: 100}}, // the one asking (busy)
		{"10.0.0.2:8433", discovery.RelayStatus{Ready: true, Agents: 50, MaxAgents: 100}},
		{"10.0.0.3:8433", discovery.RelayStatus{Ready: true, Agents: 10, MaxAgents: 100}},
		{"10.0.0.4:8433", discovery.RelayStatus{Ready: false, Agents: 0, MaxAgents: 100}},
		{"10.0.0.5:8433", discovery.RelayStatus{Ready: true, Draining: true, MaxAgents: 100}},
		{"10.0.0.6:8433", discovery.RelayStatus{Ready: true, Agents: 100, MaxAgents: 100}},
		{"10.0.0.7:8433", discovery.RelayStatus{Ready: true, Agents: 30, MaxAgents: 100}},
	}
	var seed string
	var mu sync.Mutex
	var got []string
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for i, r := range relays {
		var seeds []string
		if seed != "" {
			seeds = []string{seed}
		}
		n := startNode(t, discovery.Config{Name: fmt.Sprintf("relay-%d", i+1), Role: discovery.RoleRelay, Seeds: seeds, MetaInterval: 100 * time.Millisecond})
		if seed == "" {
			seed = n.Addr()
		}
		var set func([]string)
		if i == 0 {
			set = func(a []string) { mu.Lock(); got = a; mu.Unlock() }
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.AdvertiseRelay(ctx, r.addr, 50*time.Millisecond, func() discovery.RelayStatus { return r.s }, set)
		}()
	}
	want := "10.0.0.3:8433,10.0.0.7:8433,10.0.0.2:8433"
	var last string
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		last = strings.Join(got, ",")
		mu.Unlock()
		if last == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redirects of the busy relay: got %q, want %q (ready, with room, least loaded first, at most 3)", last, want)
		}
		<-time.After(20 * time.Millisecond)
	}
}
