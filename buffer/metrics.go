package buffer

import (
	"github.com/prometheus/client_golang/prometheus"
)

type queueMetrics struct {
	reg             prometheus.Registerer
	collectors      []prometheus.Collector
	appendedBatches prometheus.Counter
	appendedMetrics prometheus.Counter
	acked           prometheus.Counter
	droppedBatches  prometheus.Counter
	droppedMetrics  prometheus.Counter
	quarantined     prometheus.Counter
	commits         prometheus.Counter
	commitErrors    prometheus.Counter
	compactions     prometheus.Counter
	diskFull        prometheus.Counter
	salvages        prometheus.Counter
	salvaged        prometheus.Counter
	clockSteps      prometheus.Counter
	commitSeconds   prometheus.Histogram
}

func newQueueMetrics(q *Queue, reg prometheus.Registerer) *queueMetrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "falconet_buffer_" + name, Help: help})
	}
	m := &queueMetrics{
		reg:             reg,
		appendedBatches: counter("appended_batches_total", "Batches appended durably."),
		appendedMetrics: counter("appended_metrics_total", "Metrics appended durably."),
		acked:           counter("acked_batches_total", "Batches acknowledged and deleted."),
		droppedBatches:  counter("dropped_batches_total", "Oldest batches dropped because the buffer was full (max_bytes, max_age or disk full)."),
		droppedMetrics:  counter("dropped_metrics_total", "Metrics in the dropped batches."),
		quarantined:     counter("quarantined_batches_total", "Batches whose checksum failed, moved to the quarantine bucket."),
		commits:         counter("commits_total", "Group commits (one transaction and one fsync each)."),
		commitErrors:    counter("commit_errors_total", "Commits that failed for a reason other than a full disk."),
		compactions:     counter("compactions_total", "File compactions completed."),
		diskFull:        counter("disk_full_total", "Commits that failed for lack of disk space (handled like a full buffer)."),
		salvages:        counter("salvages_total", "Times the file was found damaged (structure, pages or meta pages), moved aside and salvaged."),
		salvaged:        counter("salvaged_batches_total", "Batches recovered into a fresh file by salvages."),
		clockSteps:      counter("clock_steps_total", "Wall-clock steps (more than 2 s against the monotonic clock) seen; stored append times are read in the new frame."),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "falconet_buffer_commit_seconds", Help: "Time of one group commit including fsync.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}),
	}
	gauge := func(name, help string, f func(Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "falconet_buffer_" + name, Help: help},
			func() float64 { return f(q.Stats()) })
	}
	m.collectors = []prometheus.Collector{
		m.appendedBatches, m.appendedMetrics, m.acked, m.droppedBatches, m.droppedMetrics, m.quarantined,
		m.commits, m.commitErrors, m.compactions, m.diskFull, m.salvages, m.salvaged, m.clockSteps, m.commitSeconds,
		gauge("batches", "Batches stored.", func(s Stats) float64 { return float64(s.Batches) }),
		gauge("metrics", "Metrics stored.", func(s Stats) float64 { return float64(s.Metrics) }),
		gauge("bytes", "Record bytes stored (what max_bytes caps).", func(s Stats) float64 { return float64(s.Bytes) }),
		gauge("file_bytes", "Size of the bbolt file.", func(s Stats) float64 { return float64(s.FileBytes) }),
		gauge("free_bytes", "Bytes in free pages of the bbolt file.", func(s Stats) float64 { return float64(s.FreeBytes) }),
		gauge("inflight_batches", "Batches handed out and not yet acked.", func(s Stats) float64 { return float64(s.InFlight) }),
		gauge("memory_batches", "Batches held only in memory because the disk is full.", func(s Stats) float64 { return float64(s.MemoryBatches) }),
		gauge("disk_full", "1 while the last commit failed for lack of disk space.", func(s Stats) float64 { return b2f(s.DiskFull) }),
		gauge("oldest_age_seconds", "Age of the oldest stored batch.", func(s Stats) float64 {
			if s.Oldest.IsZero() {
				return 0
			}
			return timeSince(s.Oldest).Seconds()
		}),
		gauge("backfill", "1 in backfill mode (live batches first, backlog oldest-first), 0 in live mode.",
			func(s Stats) float64 { return b2f(s.Mode == ModeBackfill) }),
	}
	if reg != nil {
		for _, c := range m.collectors {
			if err := reg.Register(c); err != nil {
				q.logger.Warn("buffer: metric not registered", "err", err)
			}
		}
	}
	return m
}

func (m *queueMetrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
