package sender

import "github.com/prometheus/client_golang/prometheus"

type senderMetrics struct {
	sent, acked, ackedMetrics, nacked, bytes prometheus.Counter
	moves, heartbeats                        prometheus.Counter
	rejected, connects                       *prometheus.CounterVec
	inflight, connected                      prometheus.Gauge
	relay                                    *prometheus.GaugeVec
}

func newMetrics() senderMetrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "falconet_agent_sender_" + name, Help: help})
	}
	return senderMetrics{
		sent:         c("batches_sent_total", "Batch frames written to relays (resends included)."),
		acked:        c("batches_acked_total", "Batches a relay answered OK or Invalid, deleted from the queue."),
		ackedMetrics: c("metrics_acked_total", "Metrics in batches a relay stored."),
		nacked:       c("batches_nacked_total", "In-flight batches handed back to the queue (retry later, disconnect, drain)."),
		bytes:        c("sent_bytes_total", "Batch frame bytes written."),
		moves:        c("relay_moves_total", "Voluntary moves to a relay discovery preferred (not failovers)."),
		heartbeats:   c("heartbeats_sent_total", "Heartbeats written: while batches wait for an answer, or after a long idle stretch."),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "falconet_agent_sender_batches_rejected_total",
			Help: "Batches a relay refused, by status (invalid: dropped; retry_later: kept)."}, []string{"status"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "falconet_agent_sender_connects_total",
			Help: "Connection attempts by result (ok, rejected, error)."}, []string{"result"}),
		inflight:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "falconet_agent_sender_inflight_batches", Help: "Batches sent and not yet answered."}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "falconet_agent_sender_connected", Help: "1 while connected to a relay."}),
		relay: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "falconet_agent_sender_relay",
			Help: "1 for the relay address the sender is connected to (no series while disconnected)."}, []string{"addr"}),
	}
}

func (m *senderMetrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.moves, m.heartbeats, m.sent, m.acked, m.ackedMetrics, m.nacked, m.bytes, m.rejected, m.connects, m.inflight, m.connected, m.relay} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
