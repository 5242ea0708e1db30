package buffer_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/falconet/falconet/buffer"
	"github.com/falconet/falconet/metric"
)

// benchPayload is a realistic batch: 100 metrics of one host, 20 names with
// two or three tags each.
func benchPayload(b testing.TB, seed int) []byte {
	ms := make([]metric.Metric, 100)
	for i := range ms {
		ms[i] = metric.Metric{
			Endpoint: "edge-host-0042.example.net", Name: fmt.Sprintf("system.metric_%d", i%20),
			Value: float64(seed*1000 + i), Timestamp: 1_764_000_000 + int64(seed), Step: 10, Type: metric.Gauge,
			Tags: map[string]string{"cpu": strconv.Itoa(i % 8), "dc": "fra1", "role": "edge"},
		}
	}
	p, err := metric.EncodeBatch(nil, ms)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func benchQueue(b *testing.B, maxBytes int64) (*buffer.Queue, string) {
	cfg := buffer.DefaultConfig()
	cfg.Path = filepath.Join(b.TempDir(), "buffer.db")
	cfg.MaxBytes = maxBytes
	q, err := buffer.Open(cfg, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	return q, cfg.Path
}

// BenchmarkAppend measures durable appends (group commit, fsync on) of
// 100-metric batches with 1, 8 and 64 concurrent writers.
func BenchmarkAppend(b *testing.B) {
	for _, writers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			q, _ := benchQueue(b, 4<<30)
			defer func() { _ = q.Close() }()
			payload := benchPayload(b, 1)
			b.SetBytes(int64(len(payload)))
			runWriters(b, writers, func() error {
				_, err := q.Append(context.Background(), payload, 100)
				return err
			})
		})
	}
}

// runWriters runs b.N appends of one 100-metric batch from writers
// goroutines and reports metrics/s and batches/s.
func runWriters(b *testing.B, writers int, appendOne func() error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := appendOne(); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N)*100/el, "metrics/s")
	b.ReportMetric(float64(b.N)/el, "batches/s")
}

// BenchmarkDrain measures Next(64) + Ack of a backlog (default 64 MiB,
// FALCONET_BENCH_DRAIN_MB to change), until the deletes are durable.
func BenchmarkDrain(b *testing.B) {
	mb := envInt("FALCONET_BENCH_DRAIN_MB", 64)
	for range b.N {
		b.StopTimer()
		q, path := benchQueue(b, int64(mb+64)<<20)
		fill(b, q, int64(mb)<<20)
		st := q.Stats()
		b.StartTimer()
		start := time.Now()
		for done := 0; done < st.Batches; {
			bs, err := q.Next(context.Background(), 64)
			if err != nil {
				b.Fatal(err)
			}
			seqs := make([]uint64, len(bs))
			for i, bt := range bs {
				seqs[i] = bt.Seq
			}
			if err := q.Ack(seqs...); err != nil {
				b.Fatal(err)
			}
			done += len(bs)
		}
		if err := q.Close(); err != nil { // flushes the last deletes
			b.Fatal(err)
		}
		el := time.Since(start).Seconds()
		b.StopTimer()
		if r, err := buffer.Inspect(path, time.Second); err != nil || r.Batches != 0 {
			b.Fatalf("after the drain the file holds %d batches (%v), want 0", r.Batches, err)
		}
		_ = os.Remove(path) // b.N rounds would otherwise keep b.N files until the end
		b.StartTimer()
		b.ReportMetric(float64(st.Bytes)/el/1e6, "MB/s")
		b.ReportMetric(float64(st.Metrics)/el, "metrics/s")
	}
}

// fill appends about size bytes of batches with 64 writers.
func fill(b testing.TB, q *buffer.Queue, size int64) {
	payload := benchPayload(b, 2)
	n := size / int64(len(payload)+25)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= n {
				if _, err := q.Append(context.Background(), payload, 100); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkBacklogRSS appends a backlog (default 256 MiB; set
// FALCONET_BENCH_BACKLOG_MB=1024 for the 1 GiB measurement) and reports the
// process RSS at each quarter and after reopening the file.
func BenchmarkBacklogRSS(b *testing.B) {
	mb := envInt("FALCONET_BENCH_BACKLOG_MB", 256)
	for range b.N {
		q, path := benchQueue(b, int64(mb+64)<<20)
		var rss []string
		for quarter := 1; quarter <= 4; quarter++ {
			fill(b, q, int64(mb)<<20/4)
			st := q.Stats()
			anon, file := rssKB()
			rss = append(rss, fmt.Sprintf("%dMiB:anon=%dMB,file=%dMB", st.Bytes>>20, anon/1024, file/1024))
			if quarter == 4 {
				b.ReportMetric(float64(anon)/1024, "rss_anon_MB")
				b.ReportMetric(float64(file)/1024, "rss_file_MB")
				b.ReportMetric(float64(st.FileBytes)/1e6, "file_MB")
			}
		}
		cfg := buffer.DefaultConfig()
		_ = q.Close()
		cfg.Path = path
		q2, err := buffer.Open(cfg, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		anon, file := rssKB()
		rss = append(rss, fmt.Sprintf("reopened:anon=%dMB,file=%dMB", anon/1024, file/1024))
		b.ReportMetric(float64(anon)/1024, "reopen_rss_anon_MB")
		_ = q2.Close()
		_ = os.Remove(path)
		b.Logf("RSS while holding a %d MiB backlog: %s", mb, strings.Join(rss, " "))
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// rssKB returns this process's anonymous and file-backed resident memory.
func rssKB() (anon, file int64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(fs[1], 10, 64)
		switch fs[0] {
		case "RssAnon:":
			anon = v
		case "RssFile:", "RssShmem:":
			file += v
		}
	}
	return anon, file
}
