package agent

import (
	"context"
	"time"

	"github.com/falconet/falconet/metric"
)

// CollectFunc gathers one round of metrics. It may return metrics and an
// error together (a script that printed some good and some bad lines). The
// scheduler fills in what the collector left empty: Endpoint (the agent's
// host name), Timestamp (the round's start) and Step (the interval). A
// CollectFunc is never called concurrently with itself by the scheduler.
type CollectFunc func(ctx context.Context) ([]metric.Metric, error)

// Builtin is one built-in collector.
type Builtin struct {
	// Name is the collector's name in the config ([collectors] key), in logs
	// and in the agent's own metrics.
	Name string
	// New returns a fresh collector with its own state (previous counter
	// samples).
	New func() CollectFunc
	// Rates is true when the collector reports rates: its first round
	// reports no rate metrics, only the baseline is taken.
	Rates bool
}

// Builtins lists the built-in collectors in a fixed order.
func Builtins() []Builtin {
	return []Builtin{
		{Name: "cpu", New: NewCPUCollector, Rates: true},
		{Name: "load", New: NewLoadCollector},
		{Name: "memory", New: NewMemoryCollector},
		{Name: "filesystem", New: NewFilesystemCollector},
		{Name: "diskio", New: NewDiskIOCollector, Rates: true},
		{Name: "net", New: NewNetCollector, Rates: true},
		{Name: "processes", New: NewProcessCollector, Rates: true},
		{Name: "uptime", New: NewUptimeCollector},
	}
}

func gauge(name string, v float64, tags map[string]string) metric.Metric {
	return metric.Metric{Name: name, Value: v, Type: metric.Gauge, Tags: tags}
}

// Stamp fills the fields a collector may leave empty: the endpoint, the
// timestamp and the step.
func Stamp(ms []metric.Metric, endpoint string, at time.Time, step time.Duration) {
	ts := at.Unix()
	st := int64(step / time.Second)
	for i := range ms {
		m := &ms[i]
		if m.Endpoint == "" {
			m.Endpoint = endpoint
		}
		if m.Timestamp == 0 {
			m.Timestamp = ts
		}
		if m.Step == 0 {
			m.Step = st
		}
	}
}

func percent(part, total float64) float64 {
	if total <= 0 {
		return 0
	}
	return part / total * 100
}
