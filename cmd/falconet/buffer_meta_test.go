package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/falconet/falconet/buffer"
	"github.com/falconet/falconet/buffer/buffertest"
)

// The field report behind issue 14: five pushes of 100 metrics, agent
// stopped, 64 bytes of the newest meta page overwritten at pagesize*k+16.
// verify used to print "ok" and exit 0 while bbolt silently fell back to
// the older meta page and lost the last batch.
func TestBufferVerifyDamagedNewestMeta(t *testing.T) {
	cfg := buffer.DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "buffer.db")
	q, err := buffer.Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for id := range uint64(5) {
		if _, err := q.Append(context.Background(), buffertest.Payload(id, 100, 10), 100); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	ps := cfg.PageSize
	k := 0
	if binary.LittleEndian.Uint64(data[ps+16+48:]) > binary.LittleEndian.Uint64(data[16+48:]) {
		k = 1 // txid at offset 48 of the meta, after the 16-byte page header
	}
	copy(data[k*ps+16:], bytes.Repeat([]byte{0xEE}, 64))
	if err := os.WriteFile(cfg.Path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	err = runBuffer(context.Background(), []string{"verify", cfg.Path})
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("verify of a file whose newest meta page is damaged: %v, want exit 1", err)
	}
	// The agent's Open brings every batch back.
	q, err = buffer.Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if st := q.Stats(); st.Batches != 5 || st.Metrics != 500 {
		t.Fatalf("after Open: %d batches, %d metrics; want 5, 500", st.Batches, st.Metrics)
	}
}
