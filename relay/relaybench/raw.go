// Package relaybench holds the relay's benchmark anchor: a raw sarama async
// producer writing the same records the relay would write, so that a
// benchmark can state the relay's throughput as a fraction of what sarama
// alone reaches against the same broker in the same run.
//
// It lives under relay/ because sarama may only be imported there (and in
// saver/); it is not used by the relay itself.
package relaybench

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/IBM/sarama"

	"github.com/falconet/falconet/relay"
)

// RawConfig is the raw producer's configuration: acks=all always; the
// rest as a tuned sarama user would set it.
type RawConfig struct {
	Brokers     []string
	Topic       string
	Compression string        // lz4, zstd, snappy, gzip, none
	Idempotent  bool          // one open request per broker, as the relay's default
	Linger      time.Duration // Producer.Flush.Frequency
	Version     string        // Kafka protocol version, default 2.1.0
}

// RawResult is what one raw run measured.
type RawResult struct {
	Records int           `json:"records"`
	Errors  int           `json:"errors"`
	Elapsed time.Duration `json:"elapsed_ns"`
	// CPU is this process's user+system time spent while producing.
	CPU time.Duration `json:"cpu_ns"`
}

// PerSecond is records per second.
func (r RawResult) PerSecond() float64 { return float64(r.Records) / r.Elapsed.Seconds() }

// CPUPer100k is CPU milliseconds per 100,000 records.
func (r RawResult) CPUPer100k() float64 {
	return float64(r.CPU) / float64(time.Millisecond) / (float64(r.Records) / 1e5)
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// RawProduce sends n records, cycling through keys and values (the same
// index of each), and returns when Kafka answered every one of them.
func RawProduce(ctx context.Context, cfg RawConfig, keys, values [][]byte, n int) (RawResult, error) {
	if len(keys) == 0 || len(keys) != len(values) {
		return RawResult{}, errors.New("relaybench: want as many keys as values, at least one")
	}
	sc := sarama.NewConfig()
	if cfg.Version == "" {
		cfg.Version = "2.1.0"
	}
	v, err := sarama.ParseKafkaVersion(cfg.Version)
	if err != nil {
		return RawResult{}, err
	}
	c, err := relay.CompressionCodec(cfg.Compression)
	if err != nil {
		return RawResult{}, fmt.Errorf("relaybench: compression %q: %w", cfg.Compression, err)
	}
	sc.Version = v
	sc.ClientID = "falconet-bench-raw"
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Compression = c
	sc.Producer.Flush.Frequency = cfg.Linger
	sc.Producer.Idempotent = cfg.Idempotent
	if cfg.Idempotent {
		sc.Net.MaxOpenRequests = 1
	}
	p, err := sarama.NewAsyncProducer(cfg.Brokers, sc)
	if err != nil {
		return RawResult{}, fmt.Errorf("relaybench: producer: %w", err)
	}
	res := RawResult{Records: n}
	done := make(chan struct{})
	go func() {
		defer close(done)
		succ, errs := p.Successes(), p.Errors()
		for got := 0; got < n; {
			select {
			case <-succ:
			case <-errs:
				res.Errors++
			}
			got++
		}
	}()
	cpu0, start := processCPU(), time.Now()
	in := p.Input()
	var msgs []sarama.ProducerMessage // allocated 1,000 at a time, as the relay does per batch
	for i := 0; i < n; i++ {
		if len(msgs) == 0 {
			msgs = make([]sarama.ProducerMessage, 1000)
		}
		m := &msgs[0]
		msgs = msgs[1:]
		j := i % len(keys)
		*m = sarama.ProducerMessage{Topic: cfg.Topic, Key: sarama.ByteEncoder(keys[j]), Value: sarama.ByteEncoder(values[j])}
		select {
		case in <- m:
		case <-ctx.Done():
			p.AsyncClose()
			return res, ctx.Err()
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		p.AsyncClose()
		return res, ctx.Err()
	}
	res.Elapsed = time.Since(start)
	res.CPU = processCPU() - cpu0
	err = p.Close()
	return res, err
}
