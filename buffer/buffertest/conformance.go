// Package buffertest holds the conformance suite every queue implementation
// must pass, and helpers that build real batch payloads for tests.
package buffertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/falconet/falconet/buffer"
	"github.com/falconet/falconet/metric"
)

// Queue is the behaviour under test: what the agent's sender and scheduler use.
type Queue interface {
	Append(ctx context.Context, payload []byte, metrics int) (uint64, error)
	Next(ctx context.Context, max int) ([]buffer.Batch, error)
	Ack(seqs ...uint64) error
	Nack(seqs ...uint64)
	Stats() buffer.Stats
	Close() error
}

// Opener opens (or reopens) the queue stored in dir with the given byte cap.
// Opening the same dir again must see what an earlier, closed queue stored.
type Opener func(t *testing.T, dir string, maxBytes int64) Queue

// Payload returns a real encoded batch of n metrics; the batch's identity id
// is recoverable with PayloadID. pad adds that many bytes of tag value to
// each metric, to make batches bigger.
func Payload(id uint64, n, pad int) []byte {
	ms := make([]metric.Metric, n)
	padding := string(make([]byte, pad))
	for i := range ms {
		ms[i] = metric.Metric{
			Endpoint: "host-1", Name: "test.metric", Value: float64(id), Timestamp: 1_700_000_000 + int64(i),
			Step: 10, Type: metric.Gauge, Tags: map[string]string{"i": strconv.Itoa(i), "pad": strconv.Itoa(i) + padding},
		}
	}
	b, err := metric.EncodeBatch(nil, ms)
	if err != nil {
		panic(err)
	}
	return b
}

// PayloadID returns the id a Payload was built with.
func PayloadID(p []byte) (uint64, error) {
	ms, err := metric.DecodeBatch(nil, p)
	if err != nil {
		return 0, err
	}
	if len(ms) == 0 {
		return 0, errors.New("empty batch")
	}
	return uint64(ms[0].Value), nil
}

// RunConformance runs the suite against queues made by open.
func RunConformance(t *testing.T, open Opener) {
	const big = 64 << 20
	ctx := context.Background()
	appendN := func(t *testing.T, q Queue, from, n uint64, metrics int) []uint64 {
		t.Helper()
		var seqs []uint64
		for id := from; id < from+n; id++ {
			seq, err := q.Append(ctx, Payload(id, metrics, 0), metrics)
			if err != nil {
				t.Fatalf("Append(%d): %v", id, err)
			}
			if len(seqs) > 0 && seq <= seqs[len(seqs)-1] {
				t.Fatalf("Append(%d) got seq %d, want > %d", id, seq, seqs[len(seqs)-1])
			}
			seqs = append(seqs, seq)
		}
		return seqs
	}
	// drain takes everything available now (without acking).
	drain := func(t *testing.T, q Queue, max int) []buffer.Batch {
		t.Helper()
		var all []buffer.Batch
		for {
			c, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			bs, err := q.Next(c, max)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				return all
			}
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if len(bs) == 0 || len(bs) > max {
				t.Fatalf("Next(%d) got %d batches, want 1..%d", max, len(bs), max)
			}
			all = append(all, bs...)
		}
	}
	ids := func(t *testing.T, bs []buffer.Batch) []uint64 {
		t.Helper()
		var out []uint64
		for _, b := range bs {
			id, err := PayloadID(b.Payload)
			if err != nil {
				t.Fatalf("batch %d: payload does not decode: %v", b.Seq, err)
			}
			if n, _ := metric.BatchLen(b.Payload); n != b.Metrics {
				t.Fatalf("batch %d: Metrics %d, payload holds %d", b.Seq, b.Metrics, n)
			}
			out = append(out, id)
		}
		return out
	}
	seqsOf := func(bs []buffer.Batch) []uint64 {
		var out []uint64
		for _, b := range bs {
			out = append(out, b.Seq)
		}
		return out
	}
	span := func(from, n uint64) []uint64 {
		var out []uint64
		for i := from; i < from+n; i++ {
			out = append(out, i)
		}
		return out
	}

	t.Run("Order", func(t *testing.T) {
		q := open(t, t.TempDir(), big)
		defer func() { _ = q.Close() }()
		seqs := appendN(t, q, 1, 20, 3)
		got := drain(t, q, 7)
		if g := ids(t, got); !slices.Equal(g, span(1, 20)) {
			t.Fatalf("got ids %v, want 1..20 in order", g)
		}
		if g := seqsOf(got); !slices.Equal(g, seqs) {
			t.Fatalf("got seqs %v, want %v (as Append returned)", g, seqs)
		}
		st := q.Stats()
		if st.Batches != 20 || st.Metrics != 60 || st.InFlight != 20 || st.Bytes <= 0 {
			t.Fatalf("Stats got batches=%d metrics=%d inflight=%d bytes=%d, want 20, 60, 20, >0", st.Batches, st.Metrics, st.InFlight, st.Bytes)
		}
		if st.Mode != buffer.ModeLive {
			t.Fatalf("Stats.Mode got %q, want %q", st.Mode, buffer.ModeLive)
		}
	})

	t.Run("InFlightNotHandedTwice", func(t *testing.T) {
		q := open(t, t.TempDir(), big)
		defer func() { _ = q.Close() }()
		appendN(t, q, 1, 4, 1)
		a, err := q.Next(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		b, err := q.Next(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		if g := ids(t, append(a, b...)); !slices.Equal(g, []uint64{1, 2, 3, 4}) {
			t.Fatalf("two Next(2) got ids %v, want [1 2 3 4]", g)
		}
		c, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if bs, err := q.Next(c, 10); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Next with all in flight got %d batches, err %v; want it to block until the deadline", len(bs), err)
		}
	})

	t.Run("NextWaitsForAppend", func(t *testing.T) {
		q := open(t, t.TempDir(), big)
		defer func() { _ = q.Close() }()
		type res struct {
			bs  []buffer.Batch
			err error
		}
		done := make(chan res, 1)
		go func() {
			c, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			bs, err := q.Next(c, 10)
			done <- res{bs, err}
		}()
		appendN(t, q, 42, 1, 2)
		r := <-done
		if r.err != nil {
			t.Fatalf("Next: %v", r.err)
		}
		if g := ids(t, r.bs); !slices.Equal(g, []uint64{42}) {
			t.Fatalf("got ids %v, want [42]", g)
		}
	})

	t.Run("AckDeletes", func(t *testing.T) {
		dir := t.TempDir()
		q := open(t, dir, big)
		seqs := appendN(t, q, 1, 10, 2)
		bs := drain(t, q, 100)
		if len(bs) != 10 {
			t.Fatalf("got %d batches, want 10", len(bs))
		}
		if err := q.Ack(seqs[0], seqs[2], seqs[4], seqs[6], seqs[8]); err != nil {
			t.Fatal(err)
		}
		if err := q.Ack(seqs[0]); err != nil { // twice: ignored
			t.Fatal(err)
		}
		if err := q.Ack(1 << 60); err != nil { // unknown: ignored
			t.Fatal(err)
		}
		if st := q.Stats(); st.InFlight != 5 {
			t.Fatalf("InFlight got %d, want 5", st.InFlight)
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		q = open(t, dir, big)
		defer func() { _ = q.Close() }()
		if st := q.Stats(); st.Batches != 5 || st.Metrics != 10 {
			t.Fatalf("after reopen Stats got batches=%d metrics=%d, want 5, 10", st.Batches, st.Metrics)
		}
		if g := ids(t, drain(t, q, 100)); !slices.Equal(g, []uint64{2, 4, 6, 8, 10}) {
			t.Fatalf("after acking odd ones and reopening got ids %v, want [2 4 6 8 10]", g)
		}
	})

	t.Run("NackRedelivers", func(t *testing.T) {
		q := open(t, t.TempDir(), big)
		defer func() { _ = q.Close() }()
		seqs := appendN(t, q, 1, 6, 1)
		bs := drain(t, q, 3)
		if len(bs) != 6 {
			t.Fatalf("got %d, want 6", len(bs))
		}
		q.Nack(seqs[4], seqs[1])
		q.Nack(seqs[1]) // not in flight any more: ignored
		got := drain(t, q, 10)
		if g := ids(t, got); !slices.Equal(g, []uint64{2, 5}) {
			t.Fatalf("after Nack got ids %v, want [2 5] (oldest first)", g)
		}
		if err := q.Ack(seqs...); err != nil {
			t.Fatal(err)
		}
		if st := q.Stats(); st.InFlight != 0 {
			t.Fatalf("InFlight got %d, want 0", st.InFlight)
		}
		q.Nack(seqs[0]) // acked: ignored
		if got := drain(t, q, 10); len(got) != 0 {
			t.Fatalf("after acking everything got %d batches, want 0", len(got))
		}
	})

	t.Run("RedeliveryAfterReopen", func(t *testing.T) {
		dir := t.TempDir()
		q := open(t, dir, big)
		seqs := appendN(t, q, 1, 8, 4)
		if got := drain(t, q, 100); len(got) != 8 {
			t.Fatalf("got %d, want 8", len(got))
		}
		if err := q.Ack(seqs[:3]...); err != nil {
			t.Fatal(err)
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		q = open(t, dir, big)
		got := drain(t, q, 100)
		if g := ids(t, got); !slices.Equal(g, []uint64{4, 5, 6, 7, 8}) {
			t.Fatalf("after reopen got ids %v, want [4 5 6 7 8]", g)
		}
		if g := seqsOf(got); !slices.Equal(g, seqs[3:]) {
			t.Fatalf("after reopen got seqs %v, want %v", g, seqs[3:])
		}
		more := appendN(t, q, 9, 1, 1)
		if more[0] <= seqs[len(seqs)-1] {
			t.Fatalf("seq after reopen got %d, want > %d (never reused)", more[0], seqs[len(seqs)-1])
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		if err := q.Close(); err != nil { // idempotent
			t.Fatalf("second Close: %v", err)
		}
		if _, err := q.Append(ctx, Payload(1, 1, 0), 1); !errors.Is(err, buffer.ErrClosed) {
			t.Fatalf("Append after Close got %v, want buffer.ErrClosed", err)
		}
		if _, err := q.Next(ctx, 1); !errors.Is(err, buffer.ErrClosed) {
			t.Fatalf("Next after Close got %v, want buffer.ErrClosed", err)
		}
	})

	t.Run("CapDropsOldestCounted", func(t *testing.T) {
		const maxBytes = 64 << 10
		q := open(t, t.TempDir(), maxBytes)
		defer func() { _ = q.Close() }()
		payload := Payload(0, 10, 400) // ~4.5 KB
		per := len(payload)
		const n = 40
		var metrics int
		for id := uint64(1); id <= n; id++ {
			if _, err := q.Append(ctx, Payload(id, 10, 400), 10); err != nil {
				t.Fatal(err)
			}
			metrics += 10
		}
		st := q.Stats()
		if st.Bytes > maxBytes {
			t.Fatalf("Stats.Bytes got %d, want <= max_bytes %d", st.Bytes, maxBytes)
		}
		if st.Batches < maxBytes/(per+64)-1 {
			t.Fatalf("Stats.Batches got %d, want about %d (the cap full)", st.Batches, maxBytes/per)
		}
		if got, want := st.DroppedBatches, uint64(n-st.Batches); got != want {
			t.Fatalf("DroppedBatches got %d, want %d", got, want)
		}
		if got, want := st.DroppedMetrics, uint64(10*(n-st.Batches)); got != want {
			t.Fatalf("DroppedMetrics got %d, want %d", got, want)
		}
		got := ids(t, drain(t, q, 100))
		if want := span(uint64(n-st.Batches+1), uint64(st.Batches)); !slices.Equal(got, want) {
			t.Fatalf("after the cap got ids %v, want the newest %v", got, want)
		}
		if _, err := q.Append(ctx, Payload(1, 200, 400), 200); !errors.Is(err, buffer.ErrTooLarge) {
			t.Fatalf("Append of a batch larger than max_bytes got %v, want buffer.ErrTooLarge", err)
		}
	})

	t.Run("ConcurrentAppends", func(t *testing.T) {
		q := open(t, t.TempDir(), big)
		defer func() { _ = q.Close() }()
		const writers, each = 8, 40
		var mu sync.Mutex
		seen := map[uint64]uint64{}
		var wg sync.WaitGroup
		errc := make(chan error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					id := uint64(w*1000 + i + 1)
					seq, err := q.Append(ctx, Payload(id, 5, 0), 5)
					if err != nil {
						errc <- err
						return
					}
					mu.Lock()
					if other, dup := seen[seq]; dup {
						mu.Unlock()
						errc <- fmt.Errorf("seq %d returned for ids %d and %d", seq, other, id)
						return
					}
					seen[seq] = id
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
		got := drain(t, q, 64)
		if len(got) != writers*each {
			t.Fatalf("got %d batches, want %d", len(got), writers*each)
		}
		for i, b := range got {
			id, _ := PayloadID(b.Payload)
			if seen[b.Seq] != id {
				t.Fatalf("batch seq %d holds id %d, Append returned that seq for id %d", b.Seq, id, seen[b.Seq])
			}
			if i > 0 && b.Seq <= got[i-1].Seq {
				t.Fatalf("Next order: seq %d after %d", b.Seq, got[i-1].Seq)
			}
		}
	})

	t.Run("BadPayloadRefused", func(t *testing.T) {
		q := open(t, t.TempDir(), big)
		defer func() { _ = q.Close() }()
		for _, tc := range []struct {
			name    string
			payload []byte
			metrics int
		}{
			{"empty", nil, 0},
			{"not a batch", []byte("hello"), 1},
			{"count mismatch", Payload(1, 3, 0), 4},
		} {
			if _, err := q.Append(ctx, tc.payload, tc.metrics); err == nil {
				t.Errorf("%s: Append got nil error, want a refusal", tc.name)
			}
		}
		if st := q.Stats(); st.Batches != 0 {
			t.Fatalf("Stats.Batches got %d after refused appends, want 0", st.Batches)
		}
	})
}
