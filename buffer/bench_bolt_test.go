package buffer_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/falconet/falconet/buffer"
)

// The raw-bbolt anchors: the same 100-metric batches, the same bbolt options
// as the queue (page size, map freelist not synced, fsync on), with nothing of
// the queue around them (no record header, no accounting, no drop-oldest, no
// in-memory index). They are the ceilings BenchmarkAppend and BenchmarkDrain
// are read against: make bench prints ours as a ratio of these.

var boltBucket = []byte("batches")

// rawValueOverhead is the queue's record header: the raw value is as long as
// the queue's stored record, so both write the same bytes.
const rawValueOverhead = 17

func rawBolt(b *testing.B) (*bolt.DB, string) {
	path := filepath.Join(b.TempDir(), "raw.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        time.Second,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		PageSize:       buffer.DefaultConfig().PageSize,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(boltBucket)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	return db, path
}

func rawValue(b testing.TB, seed int) []byte {
	p := benchPayload(b, seed)
	return append(make([]byte, rawValueOverhead, rawValueOverhead+len(p)), p...)
}

func rawPut(tx *bolt.Tx, v []byte) error {
	bk := tx.Bucket(boltBucket)
	seq, err := bk.NextSequence()
	if err != nil {
		return err
	}
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return bk.Put(k[:], v)
}

// BenchmarkBoltBatchAppend is db.Batch's ceiling for the writers of
// BenchmarkAppend: MaxBatchSize equals the number of writers, so a
// transaction commits as soon as every writer has joined it and never waits
// for MaxBatchDelay (10 ms, the queue's commit window) unless one is missing.
func BenchmarkBoltBatchAppend(b *testing.B) {
	for _, writers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			db, _ := rawBolt(b)
			defer func() { _ = db.Close() }()
			db.MaxBatchSize = writers
			db.MaxBatchDelay = buffer.DefaultConfig().CommitWindow
			v := rawValue(b, 1)
			b.SetBytes(int64(len(v) - rawValueOverhead))
			runWriters(b, writers, func() error {
				return db.Batch(func(tx *bolt.Tx) error { return rawPut(tx, v) })
			})
		})
	}
}

// BenchmarkBoltDrain is the raw drain BenchmarkDrain is read against: the same
// backlog (FALCONET_BENCH_DRAIN_MB, default 64 MiB), read and deleted 64
// batches per transaction (the queue's Next(64) + Ack), fsync on.
func BenchmarkBoltDrain(b *testing.B) {
	mb := envInt("FALCONET_BENCH_DRAIN_MB", 64)
	for range b.N {
		b.StopTimer()
		db, path := rawBolt(b)
		v := rawValue(b, 2)
		n := (int64(mb) << 20) / int64(len(v)+8)
		for done := int64(0); done < n; { // filled 64 per transaction, as fill's 64 writers group
			if err := db.Update(func(tx *bolt.Tx) error {
				for i := 0; i < 64 && done < n; i++ {
					if err := rawPut(tx, v); err != nil {
						return err
					}
					done++
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start := time.Now()
		var bytes, batches int64
		for {
			var got int
			if err := db.Update(func(tx *bolt.Tx) error {
				c := tx.Bucket(boltBucket).Cursor()
				keys := make([][]byte, 0, 64)
				for k, val := c.First(); k != nil && len(keys) < 64; k, val = c.Next() {
					out := make([]byte, len(val)) // the sender keeps the batch past the transaction
					copy(out, val)
					bytes += int64(len(k) + len(out)) // as the queue's Stats().Bytes counts
					keys = append(keys, append([]byte(nil), k...))
				}
				for _, k := range keys {
					if err := tx.Bucket(boltBucket).Delete(k); err != nil {
						return err
					}
				}
				got = len(keys)
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			batches += int64(got)
			if got == 0 {
				break
			}
		}
		el := time.Since(start).Seconds()
		b.StopTimer()
		if batches != n {
			b.Fatalf("drained %d batches, want %d", batches, n)
		}
		_ = db.Close()
		_ = os.Remove(path)
		b.StartTimer()
		b.ReportMetric(float64(bytes)/el/1e6, "MB/s")
		b.ReportMetric(float64(batches)*100/el, "metrics/s")
	}
}
