package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/falconet/falconet/agent/sender"
	"github.com/falconet/falconet/agent/sender/sendertest"
	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/discovery"
	"github.com/falconet/falconet/fault/check"
	"github.com/falconet/falconet/internal/confkit"
	"github.com/falconet/falconet/metric"
	"github.com/falconet/falconet/saver"
)

// TestMain lets the test binary run as a relay process (the same run() as
// the falconet-relay binary), so a test can SIGKILL a real relay process.
func TestMain(m *testing.M) {
	if cfg := os.Getenv("FALCONET_TEST_RELAY_CONFIG"); cfg != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, []string{"-config", cfg}, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func freeTCPUDPPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// memberlist wants the same port free for UDP too.
	pc, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		return freeTCPUDPPort(t)
	}
	pc.Close()
	return ln.Addr().String()
}

type relayProc struct {
	t             *testing.T
	name          string
	proto, gossip string
	config        string
	cmd           *exec.Cmd
	stderr        *syncBuffer
	done          chan struct{}
	exitErr       error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (r *relayProc) start() {
	r.t.Helper()
	r.cmd = exec.Command(os.Args[0], "-test.run=^$")
	r.cmd.Env = append(os.Environ(), "FALCONET_TEST_RELAY_CONFIG="+r.config)
	r.stderr = &syncBuffer{}
	r.cmd.Stderr, r.cmd.Stdout = r.stderr, r.stderr
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.done = make(chan struct{})
	go func() { r.exitErr = r.cmd.Wait(); close(r.done) }()
}

func (r *relayProc) signal(sig syscall.Signal) {
	_ = r.cmd.Process.Signal(sig)
	select {
	case <-r.done:
	case <-time.After(40 * time.Second):
		r.t.Fatalf("%s did not exit after %v\n%s", r.name, sig, r.stderr)
	}
}

// gossipKey is a fixed test key (32 bytes).
var gossipKey = base64.StdEncoding.EncodeToString([]byte("falconet-discovery-e2e-test-key!"))

// fleet is N in-process agents (discovery node + chooser + the real sender
// over an in-memory queue) generating metrics with known document ids.
type fleet struct {
	t      *testing.T
	agents []*testAgent
	mu     sync.Mutex
	ids    []string
}

type testAgent struct {
	log     *syncBuffer
	name    string
	q       *sendertest.MemQueue
	snd     *sender.Sender
	chooser *discovery.Chooser
}

func (f *fleet) start(ctx context.Context, n int, seeds []string, gen *sync.WaitGroup, stopGen <-chan struct{}) {
	var wg sync.WaitGroup
	for i := range n {
		name := fmt.Sprintf("agent-%02d", i)
		node, err := discovery.New(discovery.Config{Name: "agent/" + name, Role: discovery.RoleAgent, Bind: "127.0.0.1:0",
			Seeds: seeds, Keys: []string{gossipKey}, RTTInterval: 500 * time.Millisecond}, nil, nil)
		if err != nil {
			f.t.Fatal(err)
		}
		f.t.Cleanup(func() { _ = node.Close() })
		a := &testAgent{name: name, q: sendertest.NewMemQueue(), log: &syncBuffer{}}
		logger := slog.New(slog.NewTextHandler(a.log, nil))
		a.chooser, err = discovery.NewChooser(node, discovery.ChooserConfig{Interval: 500 * time.Millisecond,
			InUse: func() string {
				if a.snd == nil {
					return ""
				}
				return a.snd.Current()
			}}, logger, nil)
		if err != nil {
			f.t.Fatal(err)
		}
		scfg := sender.DefaultConfig()
		scfg.AgentID = name
		scfg.Heartbeat = 500 * time.Millisecond
		scfg.ReadTimeout = 2 * time.Second
		scfg.DialTimeout = time.Second
		scfg.BackoffMin, scfg.BackoffMax = 50*time.Millisecond, time.Second
		scfg.SteerInterval = 500 * time.Millisecond
		snd, err := sender.New(scfg, a.q, a.chooser, logger, nil)
		if err != nil {
			f.t.Fatal(err)
		}
		a.snd = snd // before any goroutine reads it
		wg.Add(2)
		go func() { defer wg.Done(); _ = a.chooser.Run(ctx) }()
		go func() { defer wg.Done(); _ = snd.Run(ctx) }()
		gen.Add(1)
		go func() {
			defer gen.Done()
			f.generate(a, stopGen)
		}()
		f.agents = append(f.agents, a)
	}
	f.t.Cleanup(wg.Wait)
}

// generate appends a batch of 10 metrics every 100 ms until stop.
func (f *fleet) generate(a *testAgent, stop <-chan struct{}) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	// Recent timestamps (the saver refuses old and future ones), one second
	// apart; the endpoint tells agents apart, so ids are unique.
	base := time.Now().Add(-2 * time.Hour).Unix()
	for seq := int64(0); ; seq++ {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ms := make([]metric.Metric, 10)
		ids := make([]string, 10)
		for j := range ms {
			ms[j] = metric.Metric{Endpoint: a.name, Name: fmt.Sprintf("e2e.m%d", j), Value: float64(seq),
				Timestamp: base + seq, Step: 60, Type: metric.Gauge}
			ids[j] = ms[j].DocID()
		}
		if _, err := a.q.Append(ms); err != nil {
			f.t.Errorf("append: %v", err)
			return
		}
		f.mu.Lock()
		f.ids = append(f.ids, ids...)
		f.mu.Unlock()
	}
}

func (f *fleet) loads() map[string]int {
	out := map[string]int{}
	for _, a := range f.agents {
		if c := a.snd.Current(); c != "" {
			out[c]++
		}
	}
	return out
}

func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-time.After(50 * time.Millisecond)
	}
	return time.Since(start)
}

// TestDiscoveryFleetEndToEnd: three relay processes advertise themselves by
// gossip; 9 agents given only the seeds converge to them, balanced within
// max-min <= 20 % of the mean + 1. The relay with the most agents is
// SIGKILLed: its agents fail over within seconds; restarted, it gets agents
// back gradually. Another relay leaves gracefully (SIGTERM): it drains
// first. Every metric generated is in Elasticsearch exactly once.
func TestDiscoveryFleetEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("relay processes, Kafka, saver, ES: not in -short")
	}
	const topic = "falconet-metrics"
	const nAgents = 9
	k := devstack.StartKafkaT(t, topic)
	es := devstack.StartES(t)
	scfg := saver.DefaultConfig()
	scfg.HTTP.Listen = ""
	scfg.Kafka.Brokers = []string{k.Addr()}
	scfg.Elasticsearch.URLs = []string{es.URL()}
	scfg.Elasticsearch.RefreshInterval = "1s"
	scfg.Elasticsearch.Replicas = 0
	scfg.Elasticsearch.FlushInterval = confkit.Duration(50 * time.Millisecond)
	scfg.Kafka.CommitInterval = confkit.Duration(200 * time.Millisecond)
	saverLog := &syncBuffer{}
	sv, err := saver.New(scfg, slog.New(slog.NewTextHandler(saverLog, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	sctx, stopSaver := context.WithCancel(context.Background())
	saverDone := make(chan struct{})
	go func() { defer close(saverDone); _ = sv.Run(sctx) }()
	t.Cleanup(func() { stopSaver(); <-saverDone })

	dir := t.TempDir()
	relays := make([]*relayProc, 3)
	for i := range relays {
		relays[i] = &relayProc{t: t, name: fmt.Sprintf("relay%d", i+1), proto: freeTCPUDPPort(t), gossip: freeTCPUDPPort(t)}
	}
	var gossips []string
	for _, r := range relays {
		gossips = append(gossips, r.gossip)
	}
	for i, r := range relays {
		var seeds []string
		for j, g := range gossips {
			if j != i {
				seeds = append(seeds, fmt.Sprintf("%q", g))
			}
		}
		r.config = filepath.Join(dir, r.name+".toml")
		conf := fmt.Sprintf(`id = %q
[listen]
protocol = %q
legacy = ""
http = ""
[kafka]
brokers = [%q]
topic = %q
[limits]
shutdown_timeout = "20s"
[discovery]
bind = %q
seeds = [%s]
keys = [%q]
`, r.name, r.proto, k.Addr(), topic, r.gossip, strings.Join(seeds, ", "), gossipKey)
		if err := os.WriteFile(r.config, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		r.start()
		t.Cleanup(func() {
			if r.cmd.ProcessState == nil {
				_ = r.cmd.Process.Kill()
				<-r.done
			}
		})
	}
	defer func() {
		if t.Failed() {
			t.Logf("saver log:\n%s", saverLog)
			for _, r := range relays {
				t.Logf("%s log:\n%s", r.name, r.stderr)
			}
		}
	}()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fleet{t: t}
	var gen sync.WaitGroup
	stopGen := make(chan struct{})
	f.start(ctx, nAgents, gossips, &gen, stopGen)
	defer func() {
		if t.Failed() {
			t.Logf("loads: %v; agent-00's scores: %+v", f.loads(), f.agents[0].chooser.Scores())
		}
	}()
	balanced := func(addrs ...string) func() bool {
		return func() bool {
			l := f.loads()
			lo, hi, on := nAgents, 0, 0
			for _, a := range addrs {
				lo, hi, on = min(lo, l[a]), max(hi, l[a]), on+l[a]
			}
			return on == nAgents && float64(hi-lo) <= 0.2*float64(nAgents)/float64(len(addrs))+1
		}
	}
	all := []string{relays[0].proto, relays[1].proto, relays[2].proto}
	took := pollUntil(t, 90*time.Second, "every agent connected, balanced over 3 relays", balanced(all...))
	t.Logf("converged in %v: %v", took.Round(time.Millisecond), f.loads())

	// SIGKILL the relay with the most agents.
	l := f.loads()
	victim := relays[0]
	for _, r := range relays {
		if l[r.proto] > l[victim.proto] {
			victim = r
		}
	}
	var rest []string
	for _, r := range relays {
		if r != victim {
			rest = append(rest, r.proto)
		}
	}
	victim.signal(syscall.SIGKILL)
	took = pollUntil(t, 60*time.Second, "every agent on a surviving relay", func() bool {
		l := f.loads()
		return l[rest[0]]+l[rest[1]] == nAgents
	})
	t.Logf("SIGKILL of %s (%d agents): every agent on a surviving relay after %v: %v", victim.name, l[victim.proto], took.Round(time.Millisecond), f.loads())

	// Restart it on the same addresses: agents come back gradually.
	victim.start()
	maxStep, prev := 0, 0
	took = pollUntil(t, 120*time.Second, "agents back on the restarted relay, balanced over 3", func() bool {
		n := f.loads()[victim.proto]
		maxStep, prev = max(maxStep, n-prev), n
		return balanced(all...)()
	})
	t.Logf("restarted %s: balanced again after %v: %v (most agents arriving within one 50 ms poll: %d)", victim.name, took.Round(time.Millisecond), f.loads(), maxStep)
	if took > 30*time.Second || os.Getenv("FALCONET_TEST_VERBOSE") != "" {
		for _, a := range f.agents {
			t.Logf("%s log:\n%s", a.name, a.log)
		}
	}
	if maxStep > nAgents/2 {
		t.Errorf("%d of %d agents moved to the restarted relay at once; want a bounded share", maxStep, nAgents)
	}

	// Graceful leave of another relay: it drains, its agents move.
	var leaver *relayProc
	for _, r := range relays {
		if r != victim {
			leaver = r
			break
		}
	}
	var left []string
	for _, r := range relays {
		if r != leaver {
			left = append(left, r.proto)
		}
	}
	begin := time.Now()
	leaver.signal(syscall.SIGTERM)
	if leaver.exitErr != nil {
		t.Errorf("%s after SIGTERM: %v, want exit 0", leaver.name, leaver.exitErr)
	}
	if log := leaver.stderr.String(); !strings.Contains(log, "drained") {
		t.Errorf("%s did not drain before leaving; log:\n%s", leaver.name, log)
	}
	pollUntil(t, 60*time.Second, "every agent off the leaving relay", func() bool {
		l := f.loads()
		return l[left[0]]+l[left[1]] == nAgents
	})
	t.Logf("SIGTERM of %s: exited after draining; every agent elsewhere %v after the signal", leaver.name, (time.Since(begin)).Round(time.Millisecond))

	// Stop generating; everything reaches ES once.
	close(stopGen)
	gen.Wait()
	pollUntil(t, 60*time.Second, "every agent queue empty", func() bool {
		for _, a := range f.agents {
			if !a.q.Empty() {
				return false
			}
		}
		return true
	})
	f.mu.Lock()
	ids := append([]string(nil), f.ids...)
	f.mu.Unlock()
	ec := &check.ES{URL: es.URL()}
	var got, all2 int
	defer func() {
		if t.Failed() {
			t.Logf("ES: %d documents with the generated ids, %d in all, want %d", got, all2, len(ids))
		}
	}()
	pollUntil(t, 90*time.Second, fmt.Sprintf("%d documents in ES", len(ids)), func() bool {
		_ = ec.Refresh(ctx)
		got, _ = ec.CountIDs(ctx, ids)
		all2, _ = ec.CountAll(ctx)
		return got >= len(ids)
	})
	if got != len(ids) || all2 != len(ids) {
		t.Fatalf("ES: got %d documents with the generated ids and %d in all, want %d each (every metric once)", got, all2, len(ids))
	}
	present, err := ec.Present(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for _, id := range ids {
		if !present[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d generated metrics missing from ES", missing, len(ids))
	}
	t.Logf("%d metrics generated, each stored once in ES", len(ids))
}
