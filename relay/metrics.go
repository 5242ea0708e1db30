package relay

import "github.com/prometheus/client_golang/prometheus"

type relayMetrics struct {
	produced, produceErrors                  prometheus.Counter
	metricsIn, invalidMetrics                *prometheus.CounterVec
	batches                                  *prometheus.CounterVec
	connsRefused, frameErrors                *prometheus.CounterVec
	legacyLines, legacyBadLines              prometheus.Counter
	agentConns, legacyConns, inflight, kafka prometheus.Gauge
}

func newRelayMetrics(s *Server) relayMetrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "falconet_relay_" + name, Help: help})
	}
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "falconet_relay_" + name, Help: help}, labels)
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: "falconet_relay_" + name, Help: help})
	}
	return relayMetrics{
		produced:       c("kafka_records_acked_total", "Records Kafka acked (acks=all)."),
		produceErrors:  c("kafka_records_failed_total", "Records Kafka failed after the producer's retries."),
		metricsIn:      cv("metrics_received_total", "Valid metrics received, by source (protocol, legacy).", "source"),
		invalidMetrics: cv("invalid_metrics_total", "Metrics refused by validation, by source.", "source"),
		batches:        cv("batches_total", "Agent batches answered, by status (ok, invalid, retry_later).", "status"),
		connsRefused:   cv("connections_refused_total", "Agent connections refused or closed with a reason, by reason.", "reason"),
		frameErrors:    cv("frame_errors_total", "Bad frames from agents, by kind.", "kind"),
		legacyLines:    c("legacy_lines_total", "Lines read on the legacy listener."),
		legacyBadLines: c("legacy_bad_lines_total", "Legacy lines with at least one bad item (not JSON, invalid metric, too long)."),
		agentConns:     g("agent_connections", "Open agent protocol connections."),
		legacyConns:    g("legacy_connections", "Open legacy connections."),
		inflight:       g("inflight_bytes", "Bytes of batches read and not yet acked by Kafka."),
		kafka:          g("ready", "1 when the relay accepts agents (Kafka reachable, not saturated, not draining)."),
	}
}

func (m *relayMetrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.produced, m.produceErrors, m.metricsIn, m.invalidMetrics, m.batches, m.connsRefused,
		m.frameErrors, m.legacyLines, m.legacyBadLines, m.agentConns, m.legacyConns, m.inflight, m.kafka} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
