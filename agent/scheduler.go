package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/falconet/falconet/metric"
)

// Sink receives collected metrics. Write returns when the metrics are safe
// (for the durable buffer: on disk) or with the reason they are not.
// It is called from many goroutines at once.
type Sink interface {
	Write(ctx context.Context, ms []metric.Metric) error
}

// ShutdownWriteGrace is how long a round's sink write may still take after
// the scheduler's context ended.
const ShutdownWriteGrace = 2 * time.Second

// ErrSchedulerStopped is returned by AddMetric after Run has ended.
var ErrSchedulerStopped = errors.New("agent: scheduler stopped")

// SchedulerConfig configures a Scheduler.
type SchedulerConfig struct {
	// Hostname is stamped on metrics without an endpoint.
	Hostname string
	// MaxJitter bounds the random delay of a collector's first tick (its
	// phase); later ticks keep that phase, so a fleet started at the same
	// moment spreads its collections instead of hitting relays together.
	// The phase is also capped at the collector's interval. 0: no jitter.
	MaxJitter time.Duration
	Logger    *slog.Logger
	Metrics   *Metrics // nil: unregistered metrics
}

// Scheduler runs collectors on their intervals and hands their metrics to a
// Sink. Each collector has its own ticker goroutine; a round runs in a
// goroutine of its own, so a slow collector or a slow sink never delays
// another collector. A collector whose previous round is still running when
// its tick comes has that tick skipped and counted: it never runs twice at
// once.
type Scheduler struct {
	sink    Sink
	cfg     SchedulerConfig
	logger  *slog.Logger
	metrics *Metrics

	mu      sync.Mutex
	jobs    []*job
	ctx     context.Context // set while running
	stopped bool
	wg      sync.WaitGroup
}

type job struct {
	name     string
	fn       CollectFunc
	interval time.Duration
	busy     atomic.Bool
	errLog   logLimiter
}

// JobOption sets an optional property of a collector added with AddMetric.
type JobOption func(*job)

// Named names the collector in logs and the agent's metrics (default
// "collector-N").
func Named(name string) JobOption { return func(j *job) { j.name = name } }

// NewScheduler returns a scheduler writing to sink.
func NewScheduler(sink Sink, cfg SchedulerConfig) *Scheduler {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{sink: sink, cfg: cfg, logger: logger, metrics: orNewMetrics(cfg.Metrics)}
}

// AddMetric schedules fn every interval. It returns at once, before or
// during Run; after Run ended it returns ErrSchedulerStopped.
func (s *Scheduler) AddMetric(fn CollectFunc, interval time.Duration, opts ...JobOption) error {
	if fn == nil || interval <= 0 {
		return fmt.Errorf("agent: AddMetric needs a function and a positive interval (got %v)", interval)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return ErrSchedulerStopped
	}
	j := &job{name: fmt.Sprintf("collector-%d", len(s.jobs)+1), fn: fn, interval: interval}
	for _, o := range opts {
		o(j)
	}
	s.jobs = append(s.jobs, j)
	if s.ctx != nil {
		s.start(j)
	}
	return nil
}

// start runs j's ticker; s.mu is held.
func (s *Scheduler) start(j *job) {
	s.wg.Add(1)
	go s.loop(s.ctx, j)
}

// Run runs every collector until ctx ends, then waits for every goroutine
// it started (ticker loops and rounds in progress) to return. Rounds in
// progress see ctx cancelled (scripts are killed).
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.stopped || s.ctx != nil {
		s.mu.Unlock()
		return errors.New("agent: scheduler: Run called twice")
	}
	s.ctx = ctx
	for _, j := range s.jobs {
		s.start(j)
	}
	s.mu.Unlock()

	<-ctx.Done()
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Scheduler) loop(ctx context.Context, j *job) {
	defer s.wg.Done()
	phase := time.Duration(0)
	if maxJ := min(s.cfg.MaxJitter, j.interval); maxJ > 0 {
		phase = rand.N(maxJ)
	}
	next := time.Now().Add(phase)
	timer := time.NewTimer(phase)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if j.busy.CompareAndSwap(false, true) {
			s.wg.Add(1)
			go s.round(ctx, j)
		} else {
			s.metrics.SkippedTicks.WithLabelValues(j.name).Inc()
			j.errLog.log(s.logger, "collector still running at its next tick; tick skipped", "collector", j.name, "interval", j.interval)
		}
		// Keep the phase; after a long stall (suspend) resume from now
		// rather than firing every missed tick at once.
		now := time.Now()
		next = next.Add(j.interval)
		if next.Before(now) {
			next = now.Add(j.interval - now.Sub(next)%j.interval)
		}
		timer.Reset(next.Sub(now))
	}
}

// round runs one collection and writes its metrics.
func (s *Scheduler) round(ctx context.Context, j *job) {
	defer s.wg.Done()
	defer j.busy.Store(false)
	start := time.Now()
	ms, err := j.fn(ctx)
	s.metrics.CollectDuration.WithLabelValues(j.name).Observe(time.Since(start).Seconds())
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down
		}
		s.metrics.CollectErrors.WithLabelValues(j.name).Inc()
		j.errLog.log(s.logger, "collector failed", "collector", j.name, "err", err)
	}
	ms = s.prepare(ms, j, start)
	if len(ms) == 0 {
		return
	}
	// A round that finished collecting is written even when shutdown began
	// meanwhile (the buffer is local; losing the last round would be
	// gratuitous), but only for ShutdownWriteGrace after it began.
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(ShutdownWriteGrace, cancel) })
	defer stop()
	if err := s.sink.Write(wctx, ms); err != nil {
		s.metrics.SinkErrors.WithLabelValues("collector").Inc()
		j.errLog.log(s.logger, "sink write failed; metrics of this round lost", "collector", j.name, "metrics", len(ms), "err", err)
		return
	}
	s.metrics.CollectedMetrics.WithLabelValues(j.name).Add(float64(len(ms)))
}

// prepare stamps the metrics and drops (and counts) invalid ones.
func (s *Scheduler) prepare(ms []metric.Metric, j *job, at time.Time) []metric.Metric {
	Stamp(ms, s.cfg.Hostname, at, j.interval)
	good := ms[:0]
	for i := range ms {
		if err := ms[i].Validate(); err != nil {
			s.metrics.InvalidMetrics.WithLabelValues(j.name).Inc()
			j.errLog.log(s.logger, "collector produced an invalid metric; dropped", "collector", j.name, "err", err)
			continue
		}
		good = append(good, ms[i])
	}
	return good
}

// logLimiter logs at most one line a minute per owner, saying how many it
// suppressed in between.
type logLimiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (l *logLimiter) log(logger *slog.Logger, msg string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < time.Minute {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	l.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	logger.Warn(msg, args...)
}
