package update

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	running       *prometheus.GaugeVec
	trial         prometheus.Gauge
	checks        *prometheus.CounterVec
	refused       *prometheus.CounterVec
	applied       prometheus.Counter
	committed     prometheus.Counter
	rollbacks     *prometheus.CounterVec
	failureTime   prometheus.Gauge
	failureInfo   *prometheus.GaugeVec
	badVersions   prometheus.Gauge
	manifestSerie prometheus.Gauge
}

func newMetrics() *metrics {
	return &metrics{
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "falconet_update_running_version_info",
			Help: "1 for the version this agent runs; state is committed, trial or installed."}, []string{"version", "state"}),
		trial: prometheus.NewGauge(prometheus.GaugeOpts{Name: "falconet_update_trial",
			Help: "1 while the running version is on trial (not yet proven healthy)."}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "falconet_update_checks_total",
			Help: "Feed checks by result (ok, error)."}, []string{"result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "falconet_update_refused_total",
			Help: "Releases or manifests refused, by reason (bad_signature, checksum, size, downgrade, bad_version, platform, replay, ...)."}, []string{"reason"}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{Name: "falconet_update_applied_total",
			Help: "Verified releases written into the versions directory and started on trial."}),
		committed: prometheus.NewCounter(prometheus.CounterOpts{Name: "falconet_update_committed_total",
			Help: "Trials this process committed after passing the health gate."}),
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "falconet_update_rollbacks_total",
			Help: "Versions rolled back by this process, by reason (exited, hung, no_ack, exec_failed, halted)."}, []string{"reason"}),
		failureTime: prometheus.NewGauge(prometheus.GaugeOpts{Name: "falconet_update_last_failure_timestamp_seconds",
			Help: "When the last rollback on this host happened (0: never)."}),
		failureInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "falconet_update_last_failure_info",
			Help: "1 for the last version rolled back on this host and why."}, []string{"version", "reason"}),
		badVersions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "falconet_update_bad_versions",
			Help: "Versions marked bad on this host (never taken again)."}),
		manifestSerie: prometheus.NewGauge(prometheus.GaugeOpts{Name: "falconet_update_manifest_serial",
			Help: "Serial of the last verified manifest."}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.running, m.trial, m.checks, m.refused, m.applied, m.committed,
		m.rollbacks, m.failureTime, m.failureInfo, m.badVersions, m.manifestSerie} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// showState publishes the parts of the state file that the metrics show.
func (m *metrics) showState(s *State) {
	m.badVersions.Set(float64(len(s.Bad)))
	m.failureInfo.Reset()
	if f := s.LastFailure; f != nil {
		m.failureTime.Set(float64(f.At.Unix()))
		m.failureInfo.WithLabelValues(f.Version, f.Reason).Set(1)
	}
}
