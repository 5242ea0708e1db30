package buffer_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/falconet/falconet/buffer"
	"github.com/falconet/falconet/buffer/buffertest"
)

// metaTxids reads the txid of both meta pages (page header 16 bytes, txid
// at offset 48 of the meta).
func metaTxids(t *testing.T, data []byte, ps int) [2]uint64 {
	t.Helper()
	var tx [2]uint64
	for k := range 2 {
		tx[k] = binary.LittleEndian.Uint64(data[k*ps+16+48:])
	}
	return tx
}

func newest(tx [2]uint64) int {
	if tx[1] > tx[0] {
		return 1
	}
	return 0
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// TestDamagedMetaPage is the field report: batches appended one commit at a
// time, the agent stopped, then the newest meta page damaged (64 bytes at
// pagesize*k + 16) or replaced by a stale copy. bbolt would fall back to the
// older meta page and silently forget the last commit. Verify must report
// it; Open must treat it as damage and bring back every batch not acked.
func TestDamagedMetaPage(t *testing.T) {
	const appended, acked = 12, 4
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, data, stale []byte, ps int)
	}{
		{"newest meta overwritten", func(t *testing.T, data, _ []byte, ps int) {
			k := newest(metaTxids(t, data, ps))
			copy(data[k*ps+16:], bytes.Repeat([]byte{0x5A}, 64))
		}},
		{"newest meta zeroed", func(t *testing.T, data, _ []byte, ps int) {
			k := newest(metaTxids(t, data, ps))
			clear(data[k*ps : (k+1)*ps])
		}},
		{"newest meta replaced by a stale copy", func(t *testing.T, data, stale []byte, ps int) {
			// A disk that lost the last writes to this page: it holds an old,
			// valid meta with the same parity.
			k := newest(metaTxids(t, data, ps))
			copy(data[k*ps:(k+1)*ps], stale[k*ps:(k+1)*ps])
			if tx := metaTxids(t, data, ps); tx[k] >= tx[1-k] {
				t.Fatalf("stale copy is not older: txids %v", tx)
			}
		}},
		{"older meta overwritten", func(t *testing.T, data, _ []byte, ps int) {
			k := 1 - newest(metaTxids(t, data, ps))
			copy(data[k*ps+16:], bytes.Repeat([]byte{0xA5}, 64))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(dir)
			q := openTest(t, cfg)
			ids := map[uint64]uint64{}
			add := func(id uint64) {
				seq, err := q.Append(context.Background(), buffertest.Payload(id, 100, 20), 100)
				if err != nil {
					t.Fatal(err)
				}
				ids[seq] = id
			}
			for id := uint64(1); id <= 6; id++ {
				add(id)
			}
			// Ack the first ones and let the ack commit, then snapshot the file
			// (the stale meta copy comes from here).
			bs, err := q.Next(context.Background(), acked)
			if err != nil || len(bs) != acked {
				t.Fatalf("Next: %d batches, %v", len(bs), err)
			}
			ackedSeqs := map[uint64]bool{}
			for _, b := range bs {
				ackedSeqs[b.Seq] = true
				if err := q.Ack(b.Seq); err != nil {
					t.Fatal(err)
				}
			}
			add(7) // commits the acks with it
			stale, err := os.ReadFile(cfg.Path)
			if err != nil {
				t.Fatal(err)
			}
			for id := uint64(8); id <= appended; id++ {
				add(id) // one commit each: the newest meta holds the last one
			}
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(cfg.Path)
			if err != nil {
				t.Fatal(err)
			}
			ps := cfg.PageSize
			tc.damage(t, data, stale, ps)
			if err := os.WriteFile(cfg.Path, data, 0o600); err != nil {
				t.Fatal(err)
			}

			rep, err := buffer.Verify(cfg.Path, time.Second)
			if !errors.Is(err, buffer.ErrCorrupt) || !strings.Contains(err.Error(), "meta page") {
				t.Fatalf("Verify got %v, want an ErrCorrupt naming the meta page", err)
			}
			t.Logf("verify: %v (problems %q)", err, rep.Problems)

			reg := prometheus.NewRegistry()
			q2, err := buffer.Open(cfg, nil, reg)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { _ = q2.Close() })
			if moved, _ := filepath.Glob(cfg.Path + ".corrupt-*"); len(moved) != 1 {
				t.Fatalf("got %d files moved aside, want 1", len(moved))
			}
			if got := counterValue(t, reg, "falconet_buffer_salvages_total"); got != 1 {
				t.Errorf("falconet_buffer_salvages_total got %v, want 1", got)
			}
			all := readAll(t, q2)
			got := map[uint64]bool{}
			for _, b := range all {
				id, err := buffertest.PayloadID(b.Payload)
				if err != nil || ids[b.Seq] != id {
					t.Fatalf("salvaged seq %d holds id %d (%v), want %d", b.Seq, id, err, ids[b.Seq])
				}
				if got[b.Seq] {
					t.Fatalf("seq %d delivered twice", b.Seq)
				}
				got[b.Seq] = true
			}
			// Nothing un-acked may be missing. Acked ones may come back (the
			// ack may sit in the forgotten commit): a duplicate, not a loss.
			for seq, id := range ids {
				if !ackedSeqs[seq] && !got[seq] {
					t.Errorf("batch seq %d (id %d) not acked and lost", seq, id)
				}
			}
			if st := q2.Stats(); st.Salvaged != len(all) {
				t.Errorf("Stats.Salvaged %d, delivered %d", st.Salvaged, len(all))
			}
			if got := counterValue(t, reg, "falconet_buffer_salvaged_batches_total"); int(got) != len(all) {
				t.Errorf("falconet_buffer_salvaged_batches_total got %v, want %d", got, len(all))
			}
			t.Logf("delivered %d batches (%d appended, %d acked)", len(all), appended, acked)
			if err := q2.Close(); err != nil {
				t.Fatal(err)
			}
			// The salvaged file is sound and keeps the agent's page size.
			rep, err = buffer.Verify(cfg.Path, time.Second)
			if err != nil {
				t.Fatalf("Verify of the salvaged file: %v", err)
			}
			if rep.PageSize != cfg.PageSize {
				t.Errorf("salvaged file page size %d, want %d", rep.PageSize, cfg.PageSize)
			}
		})
	}
}
