package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
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
	// MaxJitter bounds the agent's phase: one random delay, drawn once per
	// scheduler, before the first round of every collector (capped at each
	// interval). Later rounds keep that phase, so a fleet started at the
	// same moment spreads its collections over time while each agent
	// collects all its collectors of one interval together. 0: no jitter.
	MaxJitter time.Duration
	// GatherWindow is how long a round waits for the slowest collector of
	// its interval before writing what it has; a collector finishing later
	// writes its metrics on its own. Capped at half the interval. Default
	// DefaultGatherWindow.
	GatherWindow time.Duration
	Logger       *slog.Logger
	Metrics      *Metrics // nil: unregistered metrics
}

// DefaultGatherWindow is the default SchedulerConfig.GatherWindow.
const DefaultGatherWindow = time.Second

// Scheduler runs collectors on their intervals and hands their metrics to a
// Sink. Collectors of the same interval form a group with one ticker
// goroutine and the agent's one phase: at each tick every collector of the
// group runs in a goroutine of its own, and what they return within the
// gather window goes to the Sink in ONE Write (for the durable buffer: one
// commit, one fsync, one batch to send per interval). A collector slower
// than the gather window never delays the others: its metrics are written
// on their own when it finishes. A collector whose previous round is still
// running (or still being written) when its tick comes has that tick
// skipped and counted: it never runs twice at once.
type Scheduler struct {
	sink    Sink
	cfg     SchedulerConfig
	logger  *slog.Logger
	metrics *Metrics
	phase   time.Duration // drawn once, in [0, MaxJitter)

	mu      sync.Mutex
	groups  map[time.Duration]*group
	njobs   int
	ctx     context.Context // set while running
	base    time.Time       // when Run started: every group's phase is relative to it
	stopped bool
	wg      sync.WaitGroup
}

// group is the collectors sharing one interval.
type group struct {
	interval time.Duration
	jobs     []*job // guarded by Scheduler.mu
	sinkLog  logLimiter
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
	if cfg.GatherWindow <= 0 {
		cfg.GatherWindow = DefaultGatherWindow
	}
	s := &Scheduler{sink: sink, cfg: cfg, logger: logger, metrics: orNewMetrics(cfg.Metrics), groups: map[time.Duration]*group{}}
	if cfg.MaxJitter > 0 {
		s.phase = rand.N(cfg.MaxJitter)
	}
	return s
}

// Phase is the agent's random delay before its first rounds (see
// SchedulerConfig.MaxJitter).
func (s *Scheduler) Phase() time.Duration { return s.phase }

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
	s.njobs++
	j := &job{name: fmt.Sprintf("collector-%d", s.njobs), fn: fn, interval: interval}
	for _, o := range opts {
		o(j)
	}
	g := s.groups[interval]
	if g == nil {
		g = &group{interval: interval}
		s.groups[interval] = g
		if s.ctx != nil {
			s.start(g, time.Now())
		}
	}
	g.jobs = append(g.jobs, j)
	return nil
}

// start runs g's ticker, first ticking on the grid at or after from; s.mu
// is held.
func (s *Scheduler) start(g *group, from time.Time) {
	s.wg.Add(1)
	go s.loop(s.ctx, g, s.firstTick(g, from))
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
	s.base = time.Now()
	for _, g := range s.groups {
		s.start(g, s.base)
	}
	s.mu.Unlock()

	<-ctx.Done()
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// firstTick is the first time at or after from on g's grid: the scheduler's
// start plus its phase (capped at the interval) plus whole intervals. A
// group added during Run joins the same grid, so collectors of different
// intervals still meet at their common multiples.
func (s *Scheduler) firstTick(g *group, from time.Time) time.Time {
	t := s.base.Add(min(s.phase, g.interval))
	if t.Before(from) {
		t = t.Add((from.Sub(t) + g.interval - 1) / g.interval * g.interval)
	}
	return t
}

func (s *Scheduler) loop(ctx context.Context, g *group, next time.Time) {
	defer s.wg.Done()
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		s.mu.Lock()
		jobs := slices.Clone(g.jobs)
		s.mu.Unlock()
		var due []*job
		for _, j := range jobs {
			if j.busy.CompareAndSwap(false, true) {
				due = append(due, j)
			} else {
				s.metrics.SkippedTicks.WithLabelValues(j.name).Inc()
				j.errLog.log(s.logger, "collector still running at its next tick; tick skipped", "collector", j.name, "interval", j.interval)
			}
		}
		if len(due) > 0 {
			s.wg.Add(1)
			go s.round(ctx, g, due)
		}
		// Keep the phase; after a long stall (suspend) resume from now
		// rather than firing every missed tick at once.
		now := time.Now()
		next = next.Add(g.interval)
		if next.Before(now) {
			next = now.Add(g.interval - now.Sub(next)%g.interval)
		}
		timer.Reset(next.Sub(now))
	}
}

// gathering collects one round's results until the gather window closes.
type gathering struct {
	mu      sync.Mutex
	open    bool
	ms      []metric.Metric
	jobs    []*job
	counts  []int
	pending int
	done    chan struct{} // closed when every collector answered in time
}

// round runs one collection of every due job of g (each marked busy) and
// writes what they return within the gather window in one Write.
func (s *Scheduler) round(ctx context.Context, g *group, due []*job) {
	defer s.wg.Done()
	ga := &gathering{open: true, pending: len(due), done: make(chan struct{})}
	for _, j := range due {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			ms := s.collect(ctx, j)
			ga.mu.Lock()
			if ga.open {
				ga.ms = append(ga.ms, ms...)
				ga.jobs = append(ga.jobs, j)
				ga.counts = append(ga.counts, len(ms))
				ga.pending--
				if ga.pending == 0 {
					close(ga.done)
				}
				ga.mu.Unlock()
				return
			}
			ga.mu.Unlock()
			// Late: write alone.
			defer j.busy.Store(false)
			if s.write(ctx, ms, &j.errLog, j.name) {
				s.metrics.CollectedMetrics.WithLabelValues(j.name).Add(float64(len(ms)))
			}
		}()
	}
	window := time.NewTimer(min(s.cfg.GatherWindow, g.interval/2))
	select {
	case <-ga.done:
	case <-window.C:
	}
	window.Stop()
	ga.mu.Lock()
	ga.open = false
	ms, jobs, counts := ga.ms, ga.jobs, ga.counts
	ga.mu.Unlock()
	ok := s.write(ctx, ms, &g.sinkLog, "")
	for i, j := range jobs {
		if ok {
			s.metrics.CollectedMetrics.WithLabelValues(j.name).Add(float64(counts[i]))
		}
		j.busy.Store(false)
	}
}

// collect runs one job once and returns its valid, stamped metrics.
func (s *Scheduler) collect(ctx context.Context, j *job) []metric.Metric {
	start := time.Now()
	ms, err := j.fn(ctx)
	s.metrics.CollectDuration.WithLabelValues(j.name).Observe(time.Since(start).Seconds())
	if err != nil {
		if ctx.Err() != nil {
			return nil // shutting down
		}
		s.metrics.CollectErrors.WithLabelValues(j.name).Inc()
		j.errLog.log(s.logger, "collector failed", "collector", j.name, "err", err)
	}
	return s.prepare(ms, j, start)
}

// write hands ms to the sink; it reports whether they are stored. who names
// the collector for a write of one collector's metrics ("" for a group).
func (s *Scheduler) write(ctx context.Context, ms []metric.Metric, lim *logLimiter, who string) bool {
	if len(ms) == 0 {
		return true
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
		args := []any{"metrics", len(ms), "err", err}
		if who != "" {
			args = append(args, "collector", who)
		}
		lim.log(s.logger, "sink write failed; metrics of this round lost", args...)
		return false
	}
	return true
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
