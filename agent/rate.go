package agent

import (
	"math"
	"time"
)

// counterDelta is how much a monotonically increasing kernel counter grew
// from prev to cur. A counter that went down either wrapped (32-bit counters
// wrap at 2^32, 64-bit ones at 2^64) or was reset (device re-created, driver
// reloaded, host rebooted under us). A wrap is assumed only when prev was in
// the top quarter of its range and cur is in the bottom quarter; anything
// else is a reset, and a reset gives no delta: the counter's new value says
// nothing about how much happened since the last sample.
func counterDelta(prev, cur uint64) (uint64, bool) {
	if cur >= prev {
		return cur - prev, true
	}
	const q32 = math.MaxUint32 / 4
	if prev <= math.MaxUint32 {
		if prev > math.MaxUint32-q32 && cur < q32 {
			return (math.MaxUint32 - prev) + cur + 1, true
		}
		return 0, false
	}
	const q64 = math.MaxUint64 / 4
	if prev > math.MaxUint64-q64 && cur < q64 {
		return (math.MaxUint64 - prev) + cur + 1, true
	}
	return 0, false
}

type rateSample struct {
	value uint64
	at    time.Time
	seen  bool // sampled during the current round
}

// rateTracker turns counters into per-second rates. The first sample of a key
// gives no rate; so does a sample after a reset or with no time elapsed.
// Keys not sampled during a round are forgotten by endRound (a vanished
// device), so a device that comes back starts fresh.
type rateTracker struct {
	last map[string]rateSample
}

func newRateTracker() *rateTracker { return &rateTracker{last: make(map[string]rateSample)} }

// rate records v for key at t and returns the rate since the previous sample.
func (r *rateTracker) rate(key string, v uint64, t time.Time) (float64, bool) {
	prev, ok := r.last[key]
	r.last[key] = rateSample{value: v, at: t, seen: true}
	if !ok {
		return 0, false
	}
	dt := t.Sub(prev.at).Seconds()
	if dt <= 0 {
		return 0, false
	}
	d, ok := counterDelta(prev.value, v)
	if !ok {
		return 0, false
	}
	return float64(d) / dt, true
}

// endRound forgets keys not sampled since the previous endRound.
func (r *rateTracker) endRound() {
	for k, s := range r.last {
		if !s.seen {
			delete(r.last, k)
			continue
		}
		s.seen = false
		r.last[k] = s
	}
}
