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

// TestCompactionAfterDrain: with the production thresholds (64 MiB free), a
// backlog of ~20 MB that drains leaves far less than 64 MiB free, which
// once kept the file at its peak size. Once the queue is nearly empty the
// idle rule compacts it back to about the size of a fresh file.
func TestCompactionAfterDrain(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.NoSync = true // this test is about the file's size, not fsync
	if cfg.CompactFreeBytes != 64<<20 {
		t.Fatalf("default compact_free_bytes %d; the test assumes 64 MiB", cfg.CompactFreeBytes)
	}
	q := openTest(t, cfg)
	ids := fillAndDrain(t, q, 4500, 20) // ~20 MB in, 20 batches left
	before, _ := os.Stat(cfg.Path)
	waitFor(t, func() bool { return q.Stats().Compactions >= 1 }, "a compaction after the drain")
	after, _ := os.Stat(cfg.Path)

	// The idle size: a fresh file holding the same 20 batches.
	idleCfg := testConfig(t.TempDir())
	idleCfg.NoSync = true
	iq := openTest(t, idleCfg)
	for id := uint64(1); id <= 20; id++ {
		if _, err := iq.Append(context.Background(), buffertest.Payload(id, 10, 400), 10); err != nil {
			t.Fatal(err)
		}
	}
	idle, _ := os.Stat(idleCfg.Path)
	t.Logf("file %d bytes at the peak, %d after the drain's compaction; a fresh file with the same batches: %d", before.Size(), after.Size(), idle.Size())
	if after.Size() > 2*idle.Size()+1<<20 {
		t.Errorf("file %d bytes after the drain, want about the idle size %d (at most twice it plus 1 MiB)", after.Size(), idle.Size())
	}
	if got := checkSalvaged(t, q, ids); got != 20 {
		t.Fatalf("after compaction got %d batches, want 20", got)
	}
}
