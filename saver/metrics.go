package saver

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	consumed    prometheus.Counter
	stored      prometheus.Counter
	duplicates  prometheus.Counter
	deadLetters *prometheus.CounterVec
	bulks       *prometheus.CounterVec
	itemRetries prometheus.Counter
	bulkSeconds prometheus.Histogram
	inflight    prometheus.Gauge
	esUp        prometheus.Gauge
	commits     prometheus.Counter
	kafkaErrors prometheus.Counter
	dlqUp       prometheus.Gauge
	retention   prometheus.Counter
	rollupWins  prometheus.Counter
	rollupDocs  prometheus.Counter
	rollupLate  prometheus.Counter
	futureSkew  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		consumed: prometheus.NewCounter(prometheus.CounterOpts{Name: "falconet_saver_records_consumed_total",
			Help: "Kafka records received."}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{Name: "falconet_saver_docs_stored_total",
			Help: "Documents Elasticsearch accepted (including 409 on create: already stored)."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "falconet_saver_docs_duplicate_total",
			Help: "Documents answered 409 on create: a redelivery of a stored document."}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "falconet_saver_dead_letters_total",
			Help: "Records written to the dead-letter topic, by reason."}, []string{"reason"}),
		bulks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "falconet_saver_bulk_requests_total",
			Help: "Bulk requests by result (ok: per-item results; error: the whole request failed; too_large: 413, split in halves)."}, []string{"result"}),
		itemRetries: prometheus.NewCounter(prometheus.CounterOpts{Name: "falconet_saver_bulk_item_retries_total",
			Help: "Bulk items sent again after 429/5xx."}),
		bulkSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "falconet_saver_bulk_duration_seconds",
			Help: "Duration of one bulk request.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "falconet_saver_bulk_inflight_requests",
			Help: "Bulk requests being written (including their retries)."}),
		esUp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "falconet_saver_elasticsearch_up",
			Help: "1 when the last bulk request got an answer, 0 while they fail."}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{Name: "falconet_saver_offset_commits_total",
			Help: "Offset commit rounds (failures show in falconet_saver_kafka_errors_total)."}),
		kafkaErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "falconet_saver_kafka_errors_total",
			Help: "Errors the consumer group reported (failed commits, fetch errors)."}),
		dlqUp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "falconet_saver_dead_letter_up",
			Help: "1 when the last dead-letter produce succeeded, 0 while they fail."}),
		retention: prometheus.NewCounter(prometheus.CounterOpts{Name: "falconet_saver_retention_deleted_indices_total",
			Help: "Indices deleted by retention."}),
		rollupWins: prometheus.NewCounter(prometheus.CounterOpts{Name: "falconet_saver_rollup_windows_total",
			Help: "Rollup windows computed (a window per step)."}),
		rollupDocs: prometheus.NewCounter(prometheus.CounterOpts{Name: "falconet_saver_rollup_docs_total",
			Help: "Rollup documents written."}),
		rollupLate: prometheus.NewCounter(prometheus.CounterOpts{Name: "falconet_saver_rollup_late_retriggers_total",
			Help: "Rollup windows recomputed because late data arrived."}),
		futureSkew: prometheus.NewGauge(prometheus.GaugeOpts{Name: "falconet_saver_future_skew_seconds",
			Help: "How far ahead of the saver's clock the last metric refused as too far in the future was (see the log for its endpoint)."}),
	}
	if reg != nil {
		reg.MustRegister(m.consumed, m.stored, m.duplicates, m.deadLetters, m.bulks, m.itemRetries, m.bulkSeconds,
			m.inflight, m.esUp, m.commits, m.kafkaErrors, m.dlqUp, m.retention, m.rollupWins, m.rollupDocs, m.rollupLate, m.futureSkew)
	}
	return m
}
