package buffer

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func validRecord() (key, value []byte) {
	payload := []byte("FNB\x01\x00") // an empty metric batch
	return seqKey(7), encodeRecord(7, payload, 0, time.Unix(1_700_000_000, 0))
}

// FuzzDecodeRecord: a stored value read back from disk must never panic the
// decoder, and whatever it accepts must re-encode to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	k, v := validRecord()
	f.Add(k, v)
	f.Add(k, v[:recordHeaderLen])
	f.Add([]byte{1, 2, 3}, v)
	f.Add(k, []byte{})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		rec, err := decodeRecord(key, value)
		if err != nil {
			return
		}
		again := encodeRecord(rec.seq, rec.payload, rec.metrics, time.Unix(0, rec.appended))
		if !bytes.Equal(again, value) {
			t.Fatalf("accepted record re-encodes differently:\n got %x\nwant %x", again, value)
		}
	})
}

// sampleFile returns the bytes of a small real buffer file.
func sampleFile(t testing.TB, pageSize int) []byte {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(dir, "b.db")
	cfg.PageSize = pageSize
	cfg.NoSync = true
	q, err := Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, v := validRecord()
	for range 5 {
		if _, err := q.Append(t.Context(), v[recordHeaderLen:], 0); err != nil {
			t.Fatal(err)
		}
	}
	_ = q.Close()
	data, err := os.ReadFile(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// FuzzWalkFile: the structure check reads files bbolt would crash on; it
// must never panic, and the raw page scan must only report records whose
// checksum holds.
func FuzzWalkFile(f *testing.F) {
	good := sampleFile(f, 4096)
	f.Add(good[:3*4096+512])
	f.Add(good)
	f.Add([]byte("not bbolt"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		_, _ = walkReader(r, int64(len(data)), "fuzz", true, true)
		for _, ps := range []int{64, 4096} {
			err := scanPages(r, int64(len(data)), ps, func(seq uint64, v []byte, metrics int) {
				if _, err := decodeRecord(seqKey(seq), v); err != nil {
					t.Fatalf("scanPages reported seq %d that fails its check: %v", seq, err)
				}
			})
			_ = err
		}
	})
}
