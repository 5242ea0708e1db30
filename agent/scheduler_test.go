package agent

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/falconet/falconet/metric"
)

// recordSink keeps what it was given; an optional gate blocks writes.
type recordSink struct {
	mu   sync.Mutex
	ms   []metric.Metric
	gate chan struct{} // nil: never blocks
	err  error
}

func (s *recordSink) Write(ctx context.Context, ms []metric.Metric) error {
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.ms = append(s.ms, ms...)
	return nil
}

func (s *recordSink) count(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.ms {
		if m.Name == name {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond) //nolint:forbidigo // polling with a deadline
	}
}

func constCollector(name string) CollectFunc {
	return func(context.Context) ([]metric.Metric, error) {
		return []metric.Metric{gauge(name, 1, nil)}, nil
	}
}

func startScheduler(t *testing.T, s *Scheduler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return 10 s after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestSchedulerStampsAndDelivers(t *testing.T) {
	sink := &recordSink{}
	s := NewScheduler(sink, SchedulerConfig{Hostname: "host-1"})
	if err := s.AddMetric(constCollector("a.b"), 20*time.Millisecond, Named("a")); err != nil {
		t.Fatal(err)
	}
	startScheduler(t, s)
	waitFor(t, "3 rounds", 5*time.Second, func() bool { return sink.count("a.b") >= 3 })
	sink.mu.Lock()
	m := sink.ms[0]
	sink.mu.Unlock()
	if m.Endpoint != "host-1" || m.Step != 0 || m.Timestamp < time.Now().Unix()-5 {
		// step is whole seconds of the interval: 20 ms rounds down to 0
		t.Errorf("got %+v, want endpoint host-1, step 0, a current timestamp", m)
	}
}

// TestSchedulerSlowCollectorBlocksNobody: a collector that hangs does not
// delay another one, and its ticks are skipped and counted, never overlapped.
func TestSchedulerSlowCollectorBlocksNobody(t *testing.T) {
	sink := &recordSink{}
	metrics := NewMetrics(nil)
	s := NewScheduler(sink, SchedulerConfig{Hostname: "h", Metrics: metrics})
	var running, maxRunning, calls atomic.Int32
	release := make(chan struct{})
	slow := func(ctx context.Context) ([]metric.Metric, error) {
		calls.Add(1)
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := maxRunning.Load()
			if n <= m || maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return []metric.Metric{gauge("slow", 1, nil)}, nil
	}
	start := time.Now()
	if err := s.AddMetric(slow, 10*time.Millisecond, Named("slow")); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMetric(constCollector("fast"), 10*time.Millisecond, Named("fast")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("AddMetric took %v, want it to return at once", d)
	}
	startScheduler(t, s)
	waitFor(t, "fast rounds while slow hangs", 5*time.Second, func() bool { return sink.count("fast") >= 10 })
	skipped := metrics.SkippedTicks.WithLabelValues("slow")
	waitFor(t, "skipped ticks counted", 5*time.Second, func() bool { return counterValue(skipped) >= 5 })
	if got := calls.Load(); got != 1 {
		t.Errorf("slow collector started %d times while its first round hung, want 1", got)
	}
	close(release)
	waitFor(t, "slow collector delivers after release", 5*time.Second, func() bool { return sink.count("slow") >= 2 })
	if got := maxRunning.Load(); got != 1 {
		t.Errorf("slow collector ran %d rounds at once, want 1", got)
	}
}

// TestSchedulerBlockedSinkBlocksNobody: a sink write that blocks holds up
// only the interval group that called it (collectors of one interval share
// one write per round).
func TestSchedulerBlockedSinkBlocksNobody(t *testing.T) {
	blocked := &recordSink{gate: make(chan struct{})}
	free := &recordSink{}
	mux := sinkFunc(func(ctx context.Context, ms []metric.Metric) error {
		if ms[0].Name == "stuck" {
			return blocked.Write(ctx, ms)
		}
		return free.Write(ctx, ms)
	})
	s := NewScheduler(mux, SchedulerConfig{Hostname: "h"})
	_ = s.AddMetric(constCollector("stuck"), 10*time.Millisecond)
	_ = s.AddMetric(constCollector("ok"), 11*time.Millisecond)
	stop := startScheduler(t, s)
	waitFor(t, "rounds while the sink is blocked for another collector", 5*time.Second, func() bool { return free.count("ok") >= 10 })
	stop() // must return although a sink write is blocked: it sees ctx end
}

type sinkFunc func(ctx context.Context, ms []metric.Metric) error

func (f sinkFunc) Write(ctx context.Context, ms []metric.Metric) error { return f(ctx, ms) }

// TestSchedulerCleanStop: Run returns only after every goroutine ended, and
// AddMetric after that is refused.
func TestSchedulerCleanStop(t *testing.T) {
	before := runtime.NumGoroutine()
	s := NewScheduler(&recordSink{}, SchedulerConfig{Hostname: "h", MaxJitter: 5 * time.Millisecond})
	var inFlight atomic.Int32
	for range 20 {
		_ = s.AddMetric(func(ctx context.Context) ([]metric.Metric, error) {
			inFlight.Add(1)
			defer inFlight.Add(-1)
			<-ctx.Done()
			return nil, ctx.Err()
		}, 5*time.Millisecond)
	}
	stop := startScheduler(t, s)
	waitFor(t, "all collectors running", 5*time.Second, func() bool { return inFlight.Load() == 20 })
	// Added while running: starts too.
	var late atomic.Bool
	_ = s.AddMetric(func(context.Context) ([]metric.Metric, error) { late.Store(true); return nil, nil }, 5*time.Millisecond)
	waitFor(t, "collector added during Run to run", 5*time.Second, late.Load)
	stop()
	if n := inFlight.Load(); n != 0 {
		t.Errorf("%d rounds still running after Run returned", n)
	}
	if err := s.AddMetric(constCollector("x"), time.Second); !errors.Is(err, ErrSchedulerStopped) {
		t.Errorf("AddMetric after stop: err = %v, want ErrSchedulerStopped", err)
	}
	waitFor(t, "goroutines back to the baseline", 5*time.Second, func() bool { return runtime.NumGoroutine() <= before })
}

func TestSchedulerCountsErrorsAndInvalid(t *testing.T) {
	sink := &recordSink{}
	metrics := NewMetrics(nil)
	s := NewScheduler(sink, SchedulerConfig{Hostname: "h", Metrics: metrics})
	_ = s.AddMetric(func(context.Context) ([]metric.Metric, error) {
		return []metric.Metric{gauge("good", 1, nil), gauge("bad name", 1, nil), gauge("nan", nan(), nil)}, errors.New("partial failure")
	}, 10*time.Millisecond, Named("mixed"))
	startScheduler(t, s)
	waitFor(t, "good metrics delivered", 5*time.Second, func() bool { return sink.count("good") >= 2 })
	if got := counterValue(metrics.CollectErrors.WithLabelValues("mixed")); got < 2 {
		t.Errorf("errors counted %v, want >= 2", got)
	}
	if got := counterValue(metrics.InvalidMetrics.WithLabelValues("mixed")); got < 4 {
		t.Errorf("invalid metrics counted %v, want >= 4 (two per round)", got)
	}
	if n := sink.count("bad name") + sink.count("nan"); n != 0 {
		t.Errorf("%d invalid metrics reached the sink", n)
	}
}

func TestSchedulerRejectsBadArgs(t *testing.T) {
	s := NewScheduler(&recordSink{}, SchedulerConfig{})
	if err := s.AddMetric(nil, time.Second); err == nil {
		t.Error("nil collector accepted")
	}
	if err := s.AddMetric(constCollector("x"), 0); err == nil {
		t.Error("zero interval accepted")
	}
}

// TestSchedulerWritesLastRoundOnStop: a round that finishes collecting while
// the scheduler stops is still written to the sink.
func TestSchedulerWritesLastRoundOnStop(t *testing.T) {
	sink := &recordSink{}
	s := NewScheduler(sink, SchedulerConfig{Hostname: "h"})
	started := make(chan struct{})
	var once sync.Once
	_ = s.AddMetric(func(ctx context.Context) ([]metric.Metric, error) {
		once.Do(func() { close(started) })
		<-ctx.Done() // finishes only because shutdown began
		return []metric.Metric{gauge("last", 1, nil)}, nil
	}, time.Hour)
	stop := startScheduler(t, s)
	<-started
	stop()
	if n := sink.count("last"); n != 1 {
		t.Errorf("last round written %d times, want 1", n)
	}
}

// writeLog records every sink Write: when and what.
type writeLog struct {
	mu     sync.Mutex
	writes [][]metric.Metric
	at     []time.Time
}

func (w *writeLog) Write(_ context.Context, ms []metric.Metric) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, append([]metric.Metric(nil), ms...))
	w.at = append(w.at, time.Now())
	return nil
}

func (w *writeLog) n() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.writes)
}

// TestSchedulerOneWritePerInterval: the collectors of one interval share
// the agent's phase and reach the sink in one Write per round (one buffer
// commit, one batch to send), not one per collector.
func TestSchedulerOneWritePerInterval(t *testing.T) {
	sink := &writeLog{}
	metrics := NewMetrics(nil)
	s := NewScheduler(sink, SchedulerConfig{Hostname: "h", MaxJitter: 30 * time.Millisecond, Metrics: metrics})
	names := []string{"c1", "c2", "c3", "c4", "c5"}
	for i, n := range names {
		// Different collection times, all well inside the gather window.
		d := time.Duration(i) * 2 * time.Millisecond
		_ = s.AddMetric(func(context.Context) ([]metric.Metric, error) {
			time.Sleep(d) //nolint:forbidigo // simulated collection time
			return []metric.Metric{gauge(n, 1, nil)}, nil
		}, 100*time.Millisecond, Named(n))
	}
	startScheduler(t, s)
	waitFor(t, "5 writes", 10*time.Second, func() bool { return sink.n() >= 5 })
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for i, w := range sink.writes {
		got := map[string]bool{}
		for _, m := range w {
			got[m.Name] = true
		}
		if len(w) != len(names) || len(got) != len(names) {
			t.Fatalf("write %d holds %d metrics from %v, want one from each of %v in one write", i, len(w), got, names)
		}
	}
	if got := counterValue(metrics.CollectedMetrics.WithLabelValues("c3")); got < 5 {
		t.Errorf("collected metrics counted for c3: %v, want >= 5", got)
	}
}

// TestSchedulerOnePhasePerAgent: the phase is drawn once per scheduler and
// bounded by MaxJitter; every interval group starts on it, so collectors of
// different intervals meet at their common multiples.
func TestSchedulerOnePhasePerAgent(t *testing.T) {
	const maxJ = 200 * time.Millisecond
	phases := map[time.Duration]bool{}
	for range 20 {
		s := NewScheduler(&recordSink{}, SchedulerConfig{MaxJitter: maxJ})
		if p := s.Phase(); p < 0 || p >= maxJ {
			t.Fatalf("phase %v, want in [0, %v)", p, maxJ)
		}
		phases[s.Phase()] = true
	}
	if len(phases) < 10 {
		t.Errorf("20 schedulers drew only %d distinct phases, want them spread", len(phases))
	}

	var mu sync.Mutex
	first := map[string]time.Time{}
	sink := sinkFunc(func(_ context.Context, ms []metric.Metric) error {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range ms {
			if _, ok := first[m.Name]; !ok {
				first[m.Name] = time.Now()
			}
		}
		return nil
	})
	s := NewScheduler(sink, SchedulerConfig{Hostname: "h", MaxJitter: maxJ})
	_ = s.AddMetric(constCollector("fast"), 300*time.Millisecond)
	_ = s.AddMetric(constCollector("slow"), 600*time.Millisecond)
	start := time.Now()
	startScheduler(t, s)
	waitFor(t, "both collectors' first rounds", 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(first) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	for name, at := range first {
		// Never before the agent's phase; the upper bound is loose (a
		// loaded machine delays goroutines) but still before a next tick.
		if d := at.Sub(start) - s.Phase(); d < 0 || d >= 300*time.Millisecond {
			t.Errorf("%s first written %v after start, want at the agent's phase %v (+ less than the 300ms interval)", name, at.Sub(start), s.Phase())
		}
	}
}

// TestSchedulerStragglerWritesAlone: a collector slower than the gather
// window does not hold the round back; its metrics are written on their own
// when it finishes.
func TestSchedulerStragglerWritesAlone(t *testing.T) {
	sink := &writeLog{}
	release := make(chan struct{})
	s := NewScheduler(sink, SchedulerConfig{Hostname: "h", GatherWindow: 20 * time.Millisecond})
	var once sync.Once
	_ = s.AddMetric(func(ctx context.Context) ([]metric.Metric, error) {
		once.Do(func() {
			select {
			case <-release:
			case <-ctx.Done():
			}
		})
		return []metric.Metric{gauge("late", 1, nil)}, nil
	}, time.Second, Named("late"))
	_ = s.AddMetric(constCollector("prompt"), time.Second, Named("prompt"))
	startScheduler(t, s)
	waitFor(t, "the prompt collector written without the late one", 5*time.Second, func() bool { return sink.n() >= 1 })
	close(release)
	waitFor(t, "the late collector written alone", 5*time.Second, func() bool { return sink.n() >= 2 })
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if w := sink.writes[0]; len(w) != 1 || w[0].Name != "prompt" {
		t.Errorf("first write %v, want only prompt", w)
	}
	if w := sink.writes[1]; len(w) != 1 || w[0].Name != "late" {
		t.Errorf("second write %v, want only late", w)
	}
}
