package buffer_test

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/falconet/falconet/buffer"
)

// stepClock is a wall clock the test can step: real time plus an offset.
// The queue measures elapsed time with the monotonic clock, so only its
// reading of the wall time is stepped, as on a host whose clock is set.
type stepClock struct{ off atomic.Int64 }

func (c *stepClock) Now() time.Time       { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *stepClock) step(d time.Duration) { c.off.Add(int64(d)) }

func holdFor(t *testing.T, d time.Duration) {
	t.Helper()
	start := time.Now()
	waitFor(t, func() bool { return time.Since(start) >= d }, d.String()+" of real time")
}

// TestClockStepBackKeepsLiveFirst: a backlog is stored, then the clock is
// stepped back an hour. Read naively, the backlog is an hour in the future,
// never older than live_after, and live batches would wait behind it.
func TestClockStepBackKeepsLiveFirst(t *testing.T) {
	clk := &stepClock{}
	cfg := testConfig(t.TempDir())
	cfg.LiveFirst, cfg.LiveAfter = true, 300*time.Millisecond
	cfg.Clock = clk.Now
	q := openTest(t, cfg)
	appendIDs(t, q, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10) // the backlog
	holdFor(t, 600*time.Millisecond)               // the backlog ages past live_after
	clk.step(-time.Hour)
	appendIDs(t, q, 11) // commits in the new frame; the step is seen first
	for _, step := range []struct {
		appendLive []uint64
		max        int
		want       []uint64
		mode       string
	}{
		{nil, 3, []uint64{1, 2, 3}, buffer.ModeBackfill},
		{[]uint64{12, 13}, 3, []uint64{12, 13, 4}, buffer.ModeBackfill}, // live first
		{nil, 100, []uint64{5, 6, 7, 8, 9, 10, 11}, buffer.ModeLive},
	} {
		appendIDs(t, q, step.appendLive...)
		if got := nextIDs(t, q, step.max); !slices.Equal(got, step.want) {
			t.Fatalf("after appending %v, Next(%d) got %v, want %v", step.appendLive, step.max, got, step.want)
		}
		if got := q.Stats().Mode; got != step.mode {
			t.Fatalf("after Next returned %v, mode %q, want %q", step.want, got, step.mode)
		}
	}
	if st := q.Stats(); st.ClockSteps != 1 {
		t.Errorf("Stats.ClockSteps %d, want 1", st.ClockSteps)
	}
}

// TestClockStepForwardDropsNothing: with max_age 30m, the clock stepped
// forward an hour must not make fresh batches look an hour old (they would
// be dropped) nor turn them into a backlog; stepped back again, ages are
// still true.
func TestClockStepForwardDropsNothing(t *testing.T) {
	clk := &stepClock{}
	cfg := testConfig(t.TempDir())
	cfg.LiveFirst, cfg.LiveAfter = true, time.Minute
	cfg.MaxAge = 30 * time.Minute
	cfg.Clock = clk.Now
	q := openTest(t, cfg)
	first := time.Now()
	appendIDs(t, q, 1, 2, 3, 4, 5)
	clk.step(time.Hour)
	appendIDs(t, q, 6) // this commit applies max_age
	clk.step(-time.Hour)
	appendIDs(t, q, 7)
	// housekeeping runs every second and checks max_age too: let it run.
	waitFor(t, func() bool { return time.Since(first) > 1500*time.Millisecond }, "a housekeeping round")
	st := q.Stats()
	if st.Batches != 7 || st.DroppedBatches != 0 {
		t.Fatalf("after the steps: %d batches, %d dropped; want 7, 0", st.Batches, st.DroppedBatches)
	}
	if st.ClockSteps != 2 {
		t.Errorf("Stats.ClockSteps %d, want 2", st.ClockSteps)
	}
	if d := st.Oldest.Sub(first); d < -time.Second || d > 5*time.Second {
		t.Errorf("Stats.Oldest %v is %v from the real append time, want within seconds", st.Oldest, d)
	}
	if got := nextIDs(t, q, 100); !slices.Equal(got, []uint64{1, 2, 3, 4, 5, 6, 7}) {
		t.Fatalf("Next got %v, want 1..7 in order", got)
	}
	if got := q.Stats().Mode; got != buffer.ModeLive {
		t.Errorf("mode %q, want %q: fresh batches are no backlog", got, buffer.ModeLive)
	}
}
