package buffer_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/falconet/falconet/buffer/buffertest"
)

// TestDiskFull fills a 2 MiB tmpfs: appends must keep succeeding (oldest
// dropped and counted, newest kept in memory), and the queue must recover
// when space comes back.
func TestDiskFull(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a 2 MiB tmpfs (%v: %s): this test needs root (CI runs as root)", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	cfg := testConfig(mnt)
	cfg.MaxBytes = 64 << 20 // far more than the disk holds
	cfg.MemoryBytes = 256 << 10
	q := openTest(t, cfg)
	ctx := context.Background()
	const n = 1000 // ~4.5 MB of batches into 2 MiB
	for id := uint64(1); id <= n; id++ {
		if _, err := q.Append(ctx, buffertest.Payload(id, 10, 400), 10); err != nil {
			t.Fatalf("Append %d on a full disk: %v (want nil: full disk is handled like a full buffer)", id, err)
		}
	}
	st := q.Stats()
	if st.DiskFullEvents == 0 || st.DroppedBatches == 0 {
		t.Fatalf("after %d appends into 2 MiB: disk-full events %d, dropped %d; want > 0, > 0", n, st.DiskFullEvents, st.DroppedBatches)
	}
	t.Logf("stored %d (memory %d), dropped %d batches / %d metrics, disk full %v", st.Batches, st.MemoryBatches, st.DroppedBatches, st.DroppedMetrics, st.DiskFull)
	if got, want := uint64(st.Batches)+st.DroppedBatches, uint64(n); got != want {
		t.Fatalf("stored %d + dropped %d = %d, want %d appended", st.Batches, st.DroppedBatches, got, want)
	}
	if st.DroppedMetrics != 10*st.DroppedBatches {
		t.Fatalf("DroppedMetrics %d, want %d", st.DroppedMetrics, 10*st.DroppedBatches)
	}
	all := readAll(t, q)
	if len(all) != st.Batches {
		t.Fatalf("Next delivered %d, Stats says %d stored", len(all), st.Batches)
	}
	seen := map[uint64]bool{}
	for _, b := range all {
		id, err := buffertest.PayloadID(b.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if seen[id] {
			t.Fatalf("id %d delivered twice", id)
		}
		seen[id] = true
	}
	for id := uint64(n - 20); id <= n; id++ {
		if !seen[id] {
			t.Fatalf("newest batch id %d missing: a full disk must keep the newest", id)
		}
	}
	// space comes back when the relay acks: everything gets onto disk again
	var seqs []uint64
	for _, b := range all {
		seqs = append(seqs, b.Seq)
	}
	if err := q.Ack(seqs...); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Append(ctx, buffertest.Payload(n+1, 10, 400), 10); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { s := q.Stats(); return !s.DiskFull && s.MemoryBatches == 0 }, "disk full to clear after acks")
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, cfg)
	if st := q.Stats(); st.Batches != 1 {
		t.Fatalf("after reopen got %d batches, want 1", st.Batches)
	}

	// Now another file eats the disk while the buffer file is nearly empty:
	// it cannot grow and there is nothing old to drop, so the newest batches
	// (big ones, that no free page fits) wait in memory.
	_ = q.Close()
	if err := os.Remove(cfg.Path); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, cfg)
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	_ = f.Close()
	const m = 50
	for id := uint64(2001); id < 2001+m; id++ {
		if _, err := q.Append(ctx, buffertest.Payload(id, 100, 400), 100); err != nil {
			t.Fatalf("Append %d with the disk taken: %v", id, err)
		}
	}
	st = q.Stats()
	t.Logf("disk taken: stored %d, in memory %d, dropped %d, disk full %v", st.Batches, st.MemoryBatches, st.DroppedBatches, st.DiskFull)
	if !st.DiskFull || st.MemoryBatches == 0 {
		t.Fatalf("with the disk taken got DiskFull %v, MemoryBatches %d; want true, > 0", st.DiskFull, st.MemoryBatches)
	}
	if got, want := uint64(st.Batches)+st.DroppedBatches, uint64(m); got != want {
		t.Fatalf("stored %d + dropped %d, want %d appended", st.Batches, st.DroppedBatches, want)
	}
	if per := int64(len(buffertest.Payload(1, 100, 400)) + 25); int64(st.MemoryBatches)*per > cfg.MemoryBytes {
		t.Fatalf("%d batches of %d bytes in memory, over memory_bytes %d", st.MemoryBatches, per, cfg.MemoryBytes)
	}
	held := readAll(t, q)
	var last uint64
	for _, b := range held {
		last, _ = buffertest.PayloadID(b.Payload)
	}
	if last != 2000+m {
		t.Fatalf("newest delivered id %d, want %d (the newest is kept)", last, 2000+m)
	}
	for _, b := range held {
		q.Nack(b.Seq)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { s := q.Stats(); return !s.DiskFull && s.MemoryBatches == 0 }, "batches in memory to reach the disk")
	want := q.Stats().Batches
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, cfg)
	if got := len(readAll(t, q)); got != want || got < 2 {
		t.Fatalf("after reopen got %d batches, want %d", got, want)
	}
}
