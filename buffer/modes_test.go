package buffer_test

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/falconet/falconet/buffer"
	"github.com/falconet/falconet/buffer/buffertest"
)

func appendIDs(t *testing.T, q *buffer.Queue, ids ...uint64) {
	t.Helper()
	for _, id := range ids {
		if _, err := q.Append(context.Background(), buffertest.Payload(id, 10, 80), 10); err != nil {
			t.Fatal(err)
		}
	}
}

func nextIDs(t *testing.T, q *buffer.Queue, max int) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bs, err := q.Next(ctx, max)
	if err != nil {
		t.Fatalf("Next(%d): %v", max, err)
	}
	var ids []uint64
	for _, b := range bs {
		id, _ := buffertest.PayloadID(b.Payload)
		ids = append(ids, id)
	}
	return ids
}

func TestLiveFirstThenBackfill(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.LiveFirst = true
	cfg.LiveAfter = time.Nanosecond // whatever waits counts as a backlog
	q := openTest(t, cfg)
	appendIDs(t, q, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10) // the backlog
	for _, step := range []struct {
		appendLive []uint64
		max        int
		want       []uint64
		mode       string
	}{
		{nil, 3, []uint64{1, 2, 3}, buffer.ModeBackfill},                      // backlog oldest-first
		{[]uint64{11, 12}, 3, []uint64{11, 12, 4}, buffer.ModeBackfill},       // live first
		{[]uint64{13}, 100, []uint64{13, 5, 6, 7, 8, 9, 10}, buffer.ModeLive}, // backlog drained: live again
		{[]uint64{14, 15}, 100, []uint64{14, 15}, buffer.ModeLive},            // a backlog again, drained in one call
	} {
		appendIDs(t, q, step.appendLive...)
		if got := nextIDs(t, q, step.max); !slices.Equal(got, step.want) {
			t.Fatalf("after appending %v, Next(%d) got %v, want %v", step.appendLive, step.max, got, step.want)
		}
		if got := q.Stats().Mode; got != step.mode {
			t.Fatalf("after Next returned %v, mode %q, want %q", step.want, got, step.mode)
		}
	}
}

func TestBackfillRate(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.LiveFirst = true
	cfg.LiveAfter = time.Nanosecond
	size := len(buffertest.Payload(1, 10, 80)) + 25
	cfg.BackfillRate = int64(size * 20) // 20 batches a second
	q := openTest(t, cfg)
	appendIDs(t, q, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21)
	start := time.Now()
	var got []uint64
	for len(got) < 21 {
		got = append(got, nextIDs(t, q, 100)...)
	}
	// 21 batches at 20 a second, starting from an empty bucket: at least ~1 s.
	if el := time.Since(start); el < 700*time.Millisecond {
		t.Fatalf("backlog of 21 batches at 20/s drained in %s, want about 1 s", el)
	}
	if !slices.IsSorted(got) {
		t.Fatalf("backlog order %v, want oldest first", got)
	}

	// A crawling backlog does not hold back live batches.
	cfg2 := testConfig(t.TempDir())
	cfg2.LiveFirst, cfg2.LiveAfter, cfg2.BackfillRate = true, time.Nanosecond, 1
	q2 := openTest(t, cfg2)
	appendIDs(t, q2, 1, 2, 3)
	if got := nextIDs(t, q2, 10); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("first Next at 1 B/s got %v, want [1]", got)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var live []uint64
	go func() {
		defer wg.Done()
		live = nextIDs(t, q2, 10) // waits: the backlog is out of budget
	}()
	appendIDs(t, q2, 4)
	wg.Wait()
	if !slices.Equal(live, []uint64{4}) {
		t.Fatalf("live batch while the backlog crawls: got %v, want [4]", live)
	}
	if st := q2.Stats(); st.Mode != buffer.ModeBackfill || st.BacklogBatches != 2 {
		t.Fatalf("Stats got mode %q backlog %d, want %q, 2", st.Mode, st.BacklogBatches, buffer.ModeBackfill)
	}
}

func TestLiveFirstOffKeepsOrder(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.LiveFirst = false
	q := openTest(t, cfg)
	appendIDs(t, q, 1, 2, 3)
	nextIDs(t, q, 1)
	appendIDs(t, q, 4)
	if got := nextIDs(t, q, 10); !slices.Equal(got, []uint64{2, 3, 4}) {
		t.Fatalf("got %v, want [2 3 4]", got)
	}
}

func TestMaxAge(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxAge = 100 * time.Millisecond
	q := openTest(t, cfg)
	appendIDs(t, q, 1, 2, 3, 4, 5)
	waitFor(t, func() bool { return q.Stats().Batches == 0 }, "batches older than max_age to be dropped")
	if st := q.Stats(); st.DroppedBatches != 5 || st.DroppedMetrics != 50 {
		t.Fatalf("after max_age got dropped %d batches / %d metrics, want 5 / 50", st.DroppedBatches, st.DroppedMetrics)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestDropsLoggedOncePerInterval(t *testing.T) {
	var logs syncBuffer
	cfg := testConfig(t.TempDir())
	cfg.MaxBytes = 64 << 10
	cfg.DropLogInterval = time.Hour
	q, err := buffer.Open(cfg, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	for id := uint64(1); id <= 200; id++ {
		appendIDs(t, q, id)
	}
	st := q.Stats()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(logs.String(), "dropped oldest")
	if st.DroppedBatches < 100 || lines != 2 {
		t.Fatalf("%d drops logged in %d lines, want >= 100 drops in 2 lines (the first at once, the rest at Close):\n%s", st.DroppedBatches, lines, logs.String())
	}
}
