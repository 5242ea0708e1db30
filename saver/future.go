package saver

import (
	"log/slog"
	"sync"
	"time"

	"github.com/falconet/falconet/metric"
)

// A metric more than future_skew ahead of the saver's clock goes to the
// dead-letter topic (reason "future"), counted in
// falconet_saver_dead_letters_total{reason="future"}. Almost always the
// sending host's clock is wrong (no NTP, stepped forward), so the operator
// needs the host and by how much: futureLog logs that once a minute per
// endpoint, and falconet_saver_future_skew_seconds holds the skew of the
// last one refused.

const (
	futureLogEvery     = time.Minute
	futureLogEndpoints = 1000 // endpoints remembered for the rate limit
)

type futureLog struct {
	mu   sync.Mutex
	last map[string]time.Time // endpoint -> last log line
}

// note records one refused metric; it reports whether a line was logged.
func (f *futureLog) note(logger *slog.Logger, m *metric.Metric, now time.Time, skewLimit time.Duration) bool {
	skew := m.Time().Sub(now)
	f.mu.Lock()
	if f.last == nil {
		f.last = map[string]time.Time{}
	}
	if at, ok := f.last[m.Endpoint]; ok && now.Sub(at) < futureLogEvery && now.Sub(at) >= 0 {
		f.mu.Unlock()
		return false
	}
	if len(f.last) >= futureLogEndpoints {
		clear(f.last) // a flood of endpoints: start over rather than grow
	}
	f.last[m.Endpoint] = now
	f.mu.Unlock()
	logger.Warn("metric refused: timestamp too far in the future; the sending host's clock is probably ahead (check NTP on it); it went to the dead-letter topic",
		"endpoint", m.Endpoint, "metric", m.Name, "timestamp", m.Time().UTC().Format(time.RFC3339),
		"skew", skew.Round(time.Second), "future_skew", skewLimit)
	return true
}
