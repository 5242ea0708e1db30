package agent

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the agent's own Prometheus metrics. One value is shared by the
// scheduler, the script runners and the push API.
type Metrics struct {
	CollectDuration  *prometheus.HistogramVec
	CollectErrors    *prometheus.CounterVec
	CollectedMetrics *prometheus.CounterVec
	InvalidMetrics   *prometheus.CounterVec
	SkippedTicks     *prometheus.CounterVec
	ScriptTimeouts   *prometheus.CounterVec
	SinkErrors       *prometheus.CounterVec
	PushRequests     *prometheus.CounterVec
	PushMetrics      prometheus.Counter
	BufferBatches    prometheus.Counter
	BufferMetrics    prometheus.Counter
}

// NewMetrics creates the agent's metrics and registers them with reg; a nil
// reg leaves them unregistered (tests, -test mode).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		CollectDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "falconet_agent_collect_duration_seconds",
			Help:    "Time one collector took for one round.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"collector"}),
		CollectErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "falconet_agent_collect_errors_total",
			Help: "Collector rounds that returned an error (for scripts: timeouts, non-zero exits, bad output).",
		}, []string{"collector"}),
		CollectedMetrics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "falconet_agent_collected_metrics_total",
			Help: "Valid metrics collectors handed to the sink.",
		}, []string{"collector"}),
		InvalidMetrics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "falconet_agent_invalid_metrics_total",
			Help: "Metrics a collector produced that failed validation and were dropped.",
		}, []string{"collector"}),
		SkippedTicks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "falconet_agent_skipped_ticks_total",
			Help: "Ticks skipped because the collector's previous round was still running.",
		}, []string{"collector"}),
		ScriptTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "falconet_agent_script_timeouts_total",
			Help: "User script runs killed (whole process group) at their timeout.",
		}, []string{"script"}),
		SinkErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "falconet_agent_sink_errors_total",
			Help: "Sink writes that failed; the metrics of a failed collector write are lost and counted here.",
		}, []string{"source"}),
		PushRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "falconet_agent_push_requests_total",
			Help: "Requests to the local push API by HTTP status code.",
		}, []string{"code"}),
		PushMetrics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "falconet_agent_push_metrics_total",
			Help: "Metrics accepted by the local push API (stored before the 200 was sent).",
		}),
		BufferBatches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "falconet_agent_sink_batches_total",
			Help: "Batches the buffer sink appended to the queue.",
		}),
		BufferMetrics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "falconet_agent_sink_metrics_total",
			Help: "Metrics the buffer sink appended to the queue.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.CollectDuration, m.CollectErrors, m.CollectedMetrics, m.InvalidMetrics,
			m.SkippedTicks, m.ScriptTimeouts, m.SinkErrors, m.PushRequests, m.PushMetrics,
			m.BufferBatches, m.BufferMetrics)
	}
	return m
}

func orNewMetrics(m *Metrics) *Metrics {
	if m == nil {
		return NewMetrics(nil)
	}
	return m
}
