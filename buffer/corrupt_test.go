package buffer_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/falconet/falconet/buffer"
	"github.com/falconet/falconet/buffer/buffertest"
)

// makeFile writes n batches (ids 1..n, ~1 KB each) and returns the file's
// bytes and the id stored under each seq.
func makeFile(t *testing.T, n int) ([]byte, map[uint64]uint64) {
	t.Helper()
	cfg := testConfig(t.TempDir())
	q := openTest(t, cfg)
	ids := map[uint64]uint64{}
	for id := uint64(1); id <= uint64(n); id++ {
		seq, err := q.Append(context.Background(), buffertest.Payload(id, 10, 80), 10)
		if err != nil {
			t.Fatal(err)
		}
		ids[seq] = id
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	return data, ids
}

// readAll hands out everything the queue holds.
func readAll(t *testing.T, q *buffer.Queue) []buffer.Batch {
	t.Helper()
	var all []buffer.Batch
	for {
		c, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		bs, err := q.Next(c, 1000)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return all
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		all = append(all, bs...)
	}
}

// checkSalvaged checks that every batch delivered is one that was stored,
// under its own seq, once; it returns how many were delivered.
func checkSalvaged(t *testing.T, q *buffer.Queue, ids map[uint64]uint64) int {
	t.Helper()
	seen := map[uint64]bool{}
	all := readAll(t, q)
	for _, b := range all {
		id, err := buffertest.PayloadID(b.Payload)
		if err != nil {
			t.Fatalf("salvaged batch %d does not decode: %v", b.Seq, err)
		}
		if ids[b.Seq] != id {
			t.Fatalf("salvaged batch seq %d holds id %d, want %d", b.Seq, id, ids[b.Seq])
		}
		if seen[b.Seq] {
			t.Fatalf("batch %d delivered twice", b.Seq)
		}
		seen[b.Seq] = true
	}
	// the queue works on after a salvage
	seq, err := q.Append(context.Background(), buffertest.Payload(999999, 1, 0), 1)
	if err != nil {
		t.Fatalf("Append after salvage: %v", err)
	}
	for s := range seen {
		if seq <= s {
			t.Fatalf("new seq %d after salvage, want > salvaged seq %d", seq, s)
		}
	}
	return len(all)
}

func TestCorruptFiles(t *testing.T) {
	const n = 300
	orig, ids := makeFile(t, n)
	// bbolt grows the file ahead of its data: cut relative to the used part
	p := filepath.Join(t.TempDir(), "x.db")
	_ = os.WriteFile(p, orig, 0o600)
	r, err := buffer.Inspect(p, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	used, ps := int(r.Pages)*r.PageSize, r.PageSize
	notBolt := bytes.Repeat([]byte("this is not a bbolt file\n"), 4000)
	foreign := func(t *testing.T) []byte {
		p := filepath.Join(t.TempDir(), "other.db")
		db, err := bolt.Open(p, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = db.Update(func(tx *bolt.Tx) error {
			b, _ := tx.CreateBucket([]byte("settings"))
			return b.Put([]byte("k"), []byte("v"))
		})
		_ = db.Close()
		data, _ := os.ReadFile(p)
		return data
	}
	for _, tc := range []struct {
		name       string
		data       func(t *testing.T) []byte
		minSalvage int // at least this many batches salvaged
	}{
		{"zero-length", func(*testing.T) []byte { return nil }, 0},
		{"not bbolt", func(*testing.T) []byte { return notBolt }, 0},
		{"other bbolt file", foreign, 0},
		{"truncated to 60%", func(*testing.T) []byte { return orig[:used*6/10/ps*ps] }, n / 5},
		{"truncated mid-page", func(*testing.T) []byte { return orig[:used/2+123] }, n / 10},
		{"meta pages zeroed", func(*testing.T) []byte {
			d := bytes.Clone(orig)
			clear(d[:2*ps])
			return d
		}, n * 9 / 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			data := tc.data(t)
			if err := os.WriteFile(cfg.Path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			q := openTest(t, cfg)
			moved, _ := filepath.Glob(cfg.Path + ".corrupt-*")
			if len(moved) != 1 {
				t.Fatalf("got %d files moved aside (%v), want 1", len(moved), moved)
			}
			if kept, _ := os.ReadFile(moved[0]); !bytes.Equal(kept, data) {
				t.Fatalf("the file moved aside differs from the corrupt file (%d vs %d bytes)", len(kept), len(data))
			}
			st := q.Stats()
			got := checkSalvaged(t, q, ids)
			if got != st.Salvaged || got < tc.minSalvage {
				t.Fatalf("delivered %d batches, Stats.Salvaged %d; want equal and >= %d", got, st.Salvaged, tc.minSalvage)
			}
			t.Logf("salvaged %d of %d", got, n)
		})
	}
}

func TestRandomOverwrite(t *testing.T) {
	const n = 300
	orig, ids := makeFile(t, n)
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 42))
		d := bytes.Clone(orig)
		for range 8 {
			off := rng.IntN(len(d) - 256)
			for i := range 1 + rng.IntN(256) {
				d[off+i] = byte(rng.Uint32())
			}
		}
		cfg := testConfig(t.TempDir())
		if err := os.WriteFile(cfg.Path, d, 0o600); err != nil {
			t.Fatal(err)
		}
		q := openTest(t, cfg)
		got := checkSalvaged(t, q, ids) // its Append commits after the quarantine
		st := q.Stats()
		moved, _ := filepath.Glob(cfg.Path + ".corrupt-*")
		t.Logf("seed %d: delivered %d of %d, salvaged %d, quarantined %d, moved aside %d", seed, got, n, st.Salvaged, st.Quarantined, len(moved))
		switch {
		case len(moved) == 0 && got+int(st.Quarantined) != n:
			t.Fatalf("seed %d: file kept: delivered %d + quarantined %d, want %d (none lost silently)", seed, got, st.Quarantined, n)
		case len(moved) == 1 && got != st.Salvaged:
			t.Fatalf("seed %d: file salvaged: delivered %d, Stats.Salvaged %d", seed, got, st.Salvaged)
		case len(moved) > 1:
			t.Fatalf("seed %d: %d files moved aside", seed, len(moved))
		}
		_ = q.Close()
	}
}

// flipPayloadByte damages one batch's payload in place, leaving bbolt's
// structure intact, and returns the id of the damaged batch.
func flipPayloadByte(t *testing.T, data []byte) uint64 {
	t.Helper()
	marker := buffertest.Payload(150, 10, 80)
	i := bytes.Index(data, marker)
	if i < 0 {
		t.Fatal("batch 150 not found in the file")
	}
	data[i+len(marker)/2] ^= 0xff
	return 150
}

func TestChecksumQuarantine(t *testing.T) {
	const n = 300
	orig, ids := makeFile(t, n)
	for _, verify := range []bool{true, false} {
		cfg := testConfig(t.TempDir())
		cfg.VerifyOnOpen = verify
		d := bytes.Clone(orig)
		bad := flipPayloadByte(t, d)
		if err := os.WriteFile(cfg.Path, d, 0o600); err != nil {
			t.Fatal(err)
		}
		q := openTest(t, cfg)
		all := readAll(t, q)
		if len(all) != n-1 {
			t.Fatalf("verify_on_open=%v: got %d batches, want %d (all but the damaged one)", verify, len(all), n-1)
		}
		for _, b := range all {
			if id, _ := buffertest.PayloadID(b.Payload); id == bad || ids[b.Seq] != id {
				t.Fatalf("verify_on_open=%v: got batch seq %d id %d; the damaged id is %d", verify, b.Seq, id, bad)
			}
		}
		waitFor(t, func() bool { return q.Stats().Quarantined == 1 }, "Stats.Quarantined == 1")
		if st := q.Stats(); st.Batches != n-1 {
			t.Fatalf("verify_on_open=%v: Stats.Batches got %d, want %d", verify, st.Batches, n-1)
		}
		if moved, _ := filepath.Glob(cfg.Path + ".corrupt-*"); len(moved) != 0 {
			t.Fatalf("a bad checksum moved the whole file aside: %v", moved)
		}
		_ = q.Close()
		q = openTest(t, cfg) // the quarantine is durable
		if st := q.Stats(); st.Batches != n-1 || st.Quarantined != 0 {
			t.Fatalf("after reopen got batches %d quarantined %d, want %d, 0", st.Batches, st.Quarantined, n-1)
		}
		_ = q.Close()
	}
}

func TestLockedFileRefused(t *testing.T) {
	cfg := testConfig(t.TempDir())
	q := openTest(t, cfg)
	_ = q
	start := time.Now()
	_, err := buffer.Open(cfg, nil, nil)
	if !errors.Is(err, buffer.ErrLocked) {
		t.Fatalf("second Open got %v, want buffer.ErrLocked", err)
	}
	if d := time.Since(start); d > 10*cfg.LockTimeout {
		t.Fatalf("second Open took %s with lock_timeout %s", d, cfg.LockTimeout)
	}
	if moved, _ := filepath.Glob(cfg.Path + ".corrupt-*"); len(moved) != 0 {
		t.Fatalf("a locked file was treated as corrupt: %v", moved)
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-time.After(5 * time.Millisecond)
	}
}

// TestDamagedWhileRunning overwrites the file's pages under an open queue:
// the queue must not crash; it moves the file aside, salvages, and goes on.
func TestDamagedWhileRunning(t *testing.T) {
	cfg := testConfig(t.TempDir())
	q := openTest(t, cfg)
	appendIDs(t, q, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	f, err := os.OpenFile(cfg.Path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	junk := bytes.Repeat([]byte{0xAB}, int(fi.Size())-2*cfg.PageSize)
	if _, err := f.WriteAt(junk, int64(2*cfg.PageSize)); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, _ = q.Next(ctx, 10) // finds the damage (or finds nothing); must not crash
	cancel()
	if _, err := q.Append(context.Background(), buffertest.Payload(11, 10, 80), 10); err != nil {
		t.Fatalf("Append after the file was damaged: %v", err)
	}
	waitFor(t, func() bool { m, _ := filepath.Glob(cfg.Path + ".corrupt-*"); return len(m) == 1 }, "the damaged file to be moved aside")
	got := nextIDs(t, q, 100)
	if !slices.Contains(got, 11) {
		t.Fatalf("after salvage Next got %v, want it to include the new batch 11", got)
	}
}
