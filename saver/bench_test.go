package saver

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/falconet/falconet/metric"
)

// benchRecords returns n canonical metric records like an agent's: a few
// tags, ~200 bytes each.
func benchRecords(n int, now time.Time) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		m := metric.Metric{Endpoint: fmt.Sprintf("host-%04d", i%1000), Name: fmt.Sprintf("disk.io.read_bytes.%d", i%50),
			Value: float64(i) * 1.5, Timestamp: now.Unix() - int64(i%600), Step: 10, Type: metric.Counter,
			Tags: map[string]string{"device": fmt.Sprintf("sd%c", 'a'+i%4), "dc": "fra1", "role": "web"}}
		out[i], _ = json.Marshal(m)
	}
	return out
}

// BenchmarkEncodeBatch is the saver's CPU work per document without Kafka
// or Elasticsearch: decode the record, validate, compute the index and id,
// encode the bulk lines, and batch them through the writer's batcher into
// 5000-document bodies.
func BenchmarkEncodeBatch(b *testing.B) {
	now := time.Now()
	recs := benchRecords(10000, now)
	cfg := DefaultConfig()
	w := newWriter(&cfg.Elasticsearch, nil, nil, newMetrics(nil), slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); w.batchLoop(ctx) }()
	var bodyBytes int
	go func() {
		defer wg.Done()
		for {
			select {
			case bt := <-w.work:
				bodyBytes += len(bt.body)
				// What the bulk request does with each item: its two lines.
				for i := range bt.items {
					_ = bt.lines(i)
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	s := &Saver{cfg: cfg, now: func() time.Time { return now }, writer: w}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		rec := &record{value: recs[i%len(recs)]}
		if !s.route(ctx, rec) {
			b.Fatal("route failed")
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "docs/s")
	cancel()
	wg.Wait()
}

// BenchmarkEncodeBatchParallel encodes on two goroutines (two partitions),
// as the consumer does, into the one batcher.
func BenchmarkEncodeBatchParallel(b *testing.B) {
	now := time.Now()
	recs := benchRecords(10000, now)
	cfg := DefaultConfig()
	w := newWriter(&cfg.Elasticsearch, nil, nil, newMetrics(nil), slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); w.batchLoop(ctx) }()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-w.work:
			case <-ctx.Done():
				return
			}
		}
	}()
	s := &Saver{cfg: cfg, now: func() time.Time { return now }, writer: w}
	b.ReportAllocs()
	b.SetParallelism(1)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			rec := &record{value: recs[i%len(recs)]}
			i++
			if !s.route(ctx, rec) {
				b.Error("route failed")
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "docs/s")
	cancel()
	wg.Wait()
}
