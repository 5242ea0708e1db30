package relay

import (
	"time"
)

// Advert is what the relay tells the discovery pool about itself.
type Advert struct {
	// Ready: Kafka reachable, in-flight memory not nearly full, not draining
	// (Health() == nil).
	Ready bool
	// Draining: shutting down, finishing in-flight batches.
	Draining bool
	// Agents is the number of connected agents; MaxAgents the limit
	// (limits.max_connections).
	Agents, MaxAgents int
	// InflightBytes of batches read and not yet acked by Kafka; InflightMax
	// its limit (limits.max_inflight_bytes).
	InflightBytes, InflightMax int64
	// ProduceLatency is the recent time from a batch going to the producer
	// to Kafka acking all of it (moving average over about 20 batches).
	ProduceLatency time.Duration
}

// Advert returns the relay's current state for discovery.
func (s *Server) Advert() Advert {
	s.mu.Lock()
	agents := len(s.agents)
	s.mu.Unlock()
	return Advert{
		Ready:          s.Health() == nil,
		Draining:       s.draining.Load(),
		Agents:         agents,
		MaxAgents:      s.cfg.Limits.MaxConnections,
		InflightBytes:  s.global.used.Load(),
		InflightMax:    s.global.size,
		ProduceLatency: time.Duration(s.produceNs.Load()),
	}
}

// observeProduce folds one batch's produce latency into the moving average
// (weight 1/20; lost updates under contention only make it smoother).
func (s *Server) observeProduce(d time.Duration) {
	old := s.produceNs.Load()
	if old == 0 {
		s.produceNs.Store(int64(d))
		return
	}
	s.produceNs.Store(old + (int64(d)-old)/20)
}
