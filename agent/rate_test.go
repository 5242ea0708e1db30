package agent

import (
	"math"
	"testing"
	"time"
)

func TestCounterDelta(t *testing.T) {
	tests := []struct {
		name      string
		prev, cur uint64
		want      uint64
		wantOK    bool
	}{
		{"grew", 100, 250, 150, true},
		{"unchanged", 7, 7, 0, true},
		{"32-bit wrap", math.MaxUint32 - 9, 5, 15, true},
		{"64-bit wrap", math.MaxUint64 - 99, 100, 200, true},
		{"reset small counter", 1_000, 10, 0, false},
		{"reset 64-bit counter", 1 << 40, 1 << 20, 0, false},
		{"32-bit counter from the middle is a reset", math.MaxUint32 / 2, 5, 0, false},
		{"32-bit wrap to a large value is a reset", math.MaxUint32 - 9, math.MaxUint32 / 2, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := counterDelta(tt.prev, tt.cur)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("counterDelta(%d, %d) = %d, %v; want %d, %v", tt.prev, tt.cur, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestRateTracker(t *testing.T) {
	r := newRateTracker()
	t0 := time.Unix(1_700_000_000, 0)
	type step struct {
		key    string
		v      uint64
		at     time.Duration
		want   float64
		wantOK bool
	}
	steps := []step{
		{"a", 1000, 0, 0, false},                 // first sample: no rate
		{"a", 3000, 10 * time.Second, 200, true}, // 2000 in 10 s
		{"a", 3000, 10 * time.Second, 0, false},  // no time passed
		{"a", 10, 20 * time.Second, 0, false},    // reset (agent or device restarted)
		{"a", 510, 30 * time.Second, 50, true},   // counting again from the new baseline
		{"b", math.MaxUint32 - 99, 30 * time.Second, 0, false},
		{"b", 100, 40 * time.Second, 20, true}, // wrapped: 200 in 10 s
	}
	for i, s := range steps {
		got, ok := r.rate(s.key, s.v, t0.Add(s.at))
		if ok != s.wantOK || math.Abs(got-s.want) > 1e-9 {
			t.Errorf("step %d: rate(%s, %d) = %v, %v; want %v, %v", i, s.key, s.v, got, ok, s.want, s.wantOK)
		}
	}
	// A key not sampled in a round is forgotten: it starts fresh.
	r.endRound()
	r.rate("b", 200, t0.Add(50*time.Second))
	r.endRound()
	if _, ok := r.last["a"]; ok {
		t.Errorf("key a still tracked after a round without it")
	}
	if _, ok := r.rate("a", 600, t0.Add(60*time.Second)); ok {
		t.Errorf("key a gave a rate after being forgotten; want a fresh baseline")
	}
}
