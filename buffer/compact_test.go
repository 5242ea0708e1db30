package buffer_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/falconet/falconet/buffer"
	"github.com/falconet/falconet/buffer/buffertest"
)

// fillAndDrain appends n batches of ~4.5 KB and acks all but the last keep.
func fillAndDrain(t *testing.T, q *buffer.Queue, n, keep int) map[uint64]uint64 {
	t.Helper()
	ctx := context.Background()
	ids := map[uint64]uint64{}
	for id := uint64(1); id <= uint64(n); id++ {
		seq, err := q.Append(ctx, buffertest.Payload(id, 10, 400), 10)
		if err != nil {
			t.Fatal(err)
		}
		ids[seq] = id
	}
	all := readAll(t, q)
	var acks []uint64
	for _, b := range all[:len(all)-keep] {
		acks = append(acks, b.Seq)
		delete(ids, b.Seq)
	}
	if err := q.Ack(acks...); err != nil {
		t.Fatal(err)
	}
	q.Nack(func() []uint64 {
		var s []uint64
		for _, b := range all[len(all)-keep:] {
			s = append(s, b.Seq)
		}
		return s
	}()...)
	return ids
}

func TestCompaction(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.CompactFreeBytes = 1 << 20
	cfg.CompactFreeRatio = 0.5
	cfg.NoSync = true // this test is about compaction, not fsync
	q := openTest(t, cfg)
	ids := fillAndDrain(t, q, 3000, 50) // ~13 MB in, 50 batches left
	before, _ := os.Stat(cfg.Path)
	// the commit loop compacts by itself once the acks are committed
	waitFor(t, func() bool { return q.Stats().Compactions >= 1 }, "an automatic compaction")
	after, _ := os.Stat(cfg.Path)
	t.Logf("file %d bytes before, %d after compaction", before.Size(), after.Size())
	if after.Size() >= before.Size()/4 {
		t.Fatalf("file %d bytes after compaction, want well under a quarter of %d", after.Size(), before.Size())
	}
	got := checkSalvaged(t, q, ids) // every remaining batch, under its seq; appends go on
	if got != 50 {
		t.Fatalf("after compaction got %d batches, want 50", got)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, cfg)
	if st := q.Stats(); st.Batches != 51 {
		t.Fatalf("after reopen got %d batches, want 51", st.Batches)
	}
}

func TestCompactionTimeout(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.CompactFreeBytes, cfg.CompactFreeRatio = 0, 0 // only on request
	cfg.CompactTimeout = time.Nanosecond
	cfg.NoSync = true
	q := openTest(t, cfg)
	ids := fillAndDrain(t, q, 500, 100)
	if err := q.Compact(); !errors.Is(err, buffer.ErrCompactTimeout) {
		t.Fatalf("Compact with a 1ns bound got %v, want ErrCompactTimeout", err)
	}
	if _, err := os.Stat(cfg.Path + ".compact"); !os.IsNotExist(err) {
		t.Fatalf("the abandoned copy is still there: %v", err)
	}
	if got := checkSalvaged(t, q, ids); got != 100 {
		t.Fatalf("after an abandoned compaction got %d batches, want 100", got)
	}
}
