package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/falconet/falconet/metric"
)

// Job is one configured collector: a built-in or a user script.
type Job struct {
	Name     string
	Collect  CollectFunc
	Interval time.Duration
	Rates    bool // first round gives no rates (see Builtin.Rates)
}

// Jobs builds the collectors cfg enables, built-ins first, then scripts
// (named "script:<path>").
func Jobs(cfg *Config, logger *slog.Logger, metrics *Metrics) []Job {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var jobs []Job
	for _, b := range Builtins() {
		if cfg.Collectors.Enabled(b.Name) {
			jobs = append(jobs, Job{Name: b.Name, Collect: b.New(), Interval: cfg.Interval.D(), Rates: b.Rates})
		}
	}
	for i, s := range cfg.Scripts {
		if _, err := os.Stat(s.Path); err != nil {
			logger.Warn("script not found; it is scheduled anyway and its failures counted", "script", s.Path, "err", err)
		}
		jobs = append(jobs, Job{
			Name:     "script:" + s.Path,
			Collect:  NewUserMetric(s.Path, ScriptOptions{Timeout: cfg.ScriptTimeout(i), Logger: logger, Metrics: metrics}),
			Interval: cfg.ScriptInterval(i),
		})
	}
	return jobs
}

// Agent is the collecting side of the agent: the scheduler with every
// configured collector, and the push API, both writing to one Sink.
type Agent struct {
	sched    *Scheduler
	push     *PushHandler
	hostname string
	logger   *slog.Logger
}

// New builds the agent from cfg. metrics may be nil (unregistered); pass
// the same Metrics to NewBufferSink so all of them reach /metrics.
func New(cfg Config, sink Sink, logger *slog.Logger, metrics *Metrics) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	host, err := cfg.ResolveHostname()
	if err != nil {
		return nil, err
	}
	metrics = orNewMetrics(metrics)
	a := &Agent{
		sched: NewScheduler(sink, SchedulerConfig{
			Hostname: host, MaxJitter: cfg.Jitter.D(), Logger: logger, Metrics: metrics,
		}),
		push:     NewPushHandler(sink, int64(cfg.HTTP.MaxPushBytes), logger, metrics),
		hostname: host,
		logger:   logger,
	}
	for _, j := range Jobs(&cfg, logger, metrics) {
		if err := a.sched.AddMetric(j.Collect, j.Interval, Named(j.Name)); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Hostname is the endpoint stamped on collected metrics.
func (a *Agent) Hostname() string { return a.hostname }

// Scheduler gives access to the scheduler (to add collectors at run time).
func (a *Agent) Scheduler() *Scheduler { return a.sched }

// PushHandler is the POST /v1/push handler.
func (a *Agent) PushHandler() http.Handler { return a.push }

// Run collects until ctx ends and every collector goroutine has returned.
func (a *Agent) Run(ctx context.Context) error { return a.sched.Run(ctx) }

// CollectOnce runs every job once and returns the valid, stamped metrics in
// job order (the -test mode). Rate collectors need two samples: they run
// once for the baseline and again after warmup. Errors are per job.
func CollectOnce(ctx context.Context, jobs []Job, hostname string, warmup time.Duration) ([]metric.Metric, error) {
	needWarmup := false
	for _, j := range jobs {
		if j.Rates {
			_, _ = j.Collect(ctx)
			needWarmup = true
		}
	}
	if needWarmup && warmup > 0 {
		select {
		case <-time.After(warmup):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var out []metric.Metric
	var errs []error
	for _, j := range jobs {
		at := time.Now()
		ms, err := j.Collect(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", j.Name, err))
		}
		Stamp(ms, hostname, at, j.Interval)
		for i := range ms {
			if err := ms[i].Validate(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", j.Name, err))
				continue
			}
			out = append(out, ms[i])
		}
	}
	return out, errors.Join(errs...)
}
