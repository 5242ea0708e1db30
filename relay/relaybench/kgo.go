package relaybench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// KgoProduce is RawProduce with franz-go's kgo client instead of sarama: a
// reference for what a producer without sarama's per-record channel hops
// costs against the same broker, with the same records and settings
// (acks=all, compression, linger, idempotence). The relay does not use kgo.
func KgoProduce(ctx context.Context, cfg RawConfig, keys, values [][]byte, n int) (RawResult, error) {
	if len(keys) == 0 || len(keys) != len(values) {
		return RawResult{}, errors.New("relaybench: want as many keys as values, at least one")
	}
	var codec kgo.CompressionCodec
	switch strings.ToLower(cfg.Compression) {
	case "lz4":
		codec = kgo.Lz4Compression()
	case "zstd":
		codec = kgo.ZstdCompression()
	case "snappy":
		codec = kgo.SnappyCompression()
	case "gzip":
		codec = kgo.GzipCompression()
	case "none", "":
		codec = kgo.NoCompression()
	default:
		return RawResult{}, fmt.Errorf("relaybench: compression %q", cfg.Compression)
	}
	opts := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.DefaultProduceTopic(cfg.Topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(cfg.Linger), kgo.ProducerBatchCompression(codec), kgo.ClientID("falconet-bench-kgo")}
	if !cfg.Idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return RawResult{}, fmt.Errorf("relaybench: kgo client: %w", err)
	}
	defer cl.Close()
	// Metadata and the producer id before the clock starts, as sarama's
	// constructor does.
	if err := cl.Ping(ctx); err != nil {
		return RawResult{}, err
	}
	res := RawResult{Records: n}
	var wg sync.WaitGroup
	var failed atomic.Int64
	wg.Add(n)
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
		}
		wg.Done()
	}
	cpu0, start := processCPU(), time.Now()
	var recs []kgo.Record // allocated 1,000 at a time, as the relay does per batch
	for i := 0; i < n; i++ {
		if len(recs) == 0 {
			recs = make([]kgo.Record, 1000)
		}
		r := &recs[0]
		recs = recs[1:]
		j := i % len(keys)
		r.Key, r.Value = keys[j], values[j]
		cl.Produce(ctx, r, done)
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.CPU = processCPU() - cpu0
	res.Errors = int(failed.Load())
	return res, ctx.Err()
}
