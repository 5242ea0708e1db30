package relay_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/falconet/falconet/agent/sender"
	"github.com/falconet/falconet/agent/sender/sendertest"
	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/metric"
	"github.com/falconet/falconet/relay/relaytest"
	"github.com/falconet/falconet/wire"
)

// benchPayload is one batch of n realistic metrics (10 endpoints' worth of
// names and tags), encoded once.
func benchPayload(b *testing.B, seed, n int) []byte {
	ms := make([]metric.Metric, n)
	for j := range ms {
		ms[j] = metric.Metric{Endpoint: fmt.Sprintf("edge-host-%04d", seed), Name: fmt.Sprintf("net.if.in.bytes.%d", j%50), Value: float64(j) * 1.5,
			Timestamp: 1764000000 + int64(j/50), Step: 10, Type: metric.Counter, Tags: map[string]string{"iface": fmt.Sprintf("eth%d", j%4), "dc": "fra1"}}
	}
	p, err := metric.EncodeBatch(nil, ms)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRelayThroughput: agents (4 senders, in-memory queues) → one relay
// → dev Kafka (acks=all, lz4, idempotent). One iteration moves 200,000
// metrics in batches of 1,000.
func BenchmarkRelayThroughput(b *testing.B) {
	for _, tc := range []struct {
		name       string
		idempotent bool
	}{{"idempotent", true}, {"non-idempotent", false}} {
		b.Run(tc.name, func(b *testing.B) {
			k := devstack.StartKafkaT(b, topic)
			cfg := relaytest.Config(k.Addr())
			cfg.Kafka.Idempotent = tc.idempotent
			if l := os.Getenv("BENCH_LINGER"); l != "" {
				cfg.Kafka.Linger.UnmarshalText([]byte(l))
			}
			if m := os.Getenv("BENCH_MAXMSG"); m != "" {
				cfg.Kafka.MaxMessageBytes.UnmarshalText([]byte(m))
			}
			if c := os.Getenv("BENCH_COMPRESSION"); c != "" {
				cfg.Kafka.Compression = c
			}
			r := relaytest.Start(b, cfg, nil)
			const agents, perBatch, batchesPerIter = 4, 1000, 200
			queues := make([]*sendertest.MemQueue, agents)
			var wg sync.WaitGroup
			ctx, cancel := context.WithCancel(context.Background())
			defer func() { cancel(); wg.Wait() }()
			for i := range queues {
				queues[i] = sendertest.NewMemQueue()
				s, err := sender.New(sender.Config{AgentID: fmt.Sprint("bench-", i)}, queues[i], sender.StaticRelays(r.ProtocolAddr()), nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() { defer wg.Done(); s.Run(ctx) }()
			}
			payloads := make([][]byte, agents)
			for i := range payloads {
				payloads[i] = benchPayload(b, i, perBatch)
			}
			b.ResetTimer()
			cpu0, start := cpuTime(), time.Now()
			for range b.N {
				for j := range batchesPerIter {
					queues[j%agents].AppendPayload(payloads[j%agents], perBatch)
				}
				for _, q := range queues {
					for !q.Empty() {
						<-time.After(time.Millisecond)
					}
				}
			}
			el := time.Since(start)
			b.StopTimer()
			n := float64(b.N * batchesPerIter * perBatch)
			b.ReportMetric(n/el.Seconds(), "metrics/s")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/(n/1e5), "cpu-ms/100k-metrics(all)")
		})
	}
}

// BenchmarkSenderCPU measures the sender's CPU per 100,000 metrics against a
// minimal in-process peer that acks every batch on receipt (the peer's CPU is
// included: an upper bound for the sender alone).
func BenchmarkSenderCPU(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := wire.NewReader(c, 0)
				w := wire.NewWriter(c)
				r.ReadMessage()
				w.WriteMessage(&wire.Welcome{MaxInFlight: 64})
				w.Flush()
				for {
					m, err := r.ReadMessage()
					if err != nil {
						return
					}
					if bt, ok := m.(*wire.Batch); ok {
						w.WriteMessage(&wire.Ack{Results: []wire.AckResult{{Seq: bt.Seq}}})
						w.Flush()
					}
				}
			}()
		}
	}()
	q := sendertest.NewMemQueue()
	s, err := sender.New(sender.Config{AgentID: "bench"}, q, sender.StaticRelays(ln.Addr().String()), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	const perBatch = 100
	payload := benchPayload(b, 1, perBatch)
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		for range 1000 {
			q.AppendPayload(payload, perBatch)
		}
		for !q.Empty() {
			<-time.After(200 * time.Microsecond)
		}
	}
	b.StopTimer()
	n := float64(b.N * 1000 * perBatch)
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/(n/1e5), "cpu-ms/100k-metrics")
}

// BenchmarkRelayMemory1000Conns opens 1,000 agent connections to one relay,
// each sending a batch of 100 metrics and waiting for its ack, then holds
// them open and reports heap in use per connection (client sides included:
// an upper bound).
func BenchmarkRelayMemory1000Conns(b *testing.B) {
	k := devstack.StartKafkaT(b, topic)
	r := relaytest.Start(b, relaytest.Config(k.Addr()), nil)
	payload := benchPayload(b, 2, 100)
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()
		const conns = 1000
		cs := make([]net.Conn, 0, conns)
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, 50)
		for i := range conns {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				c, err := net.Dial("tcp", r.ProtocolAddr())
				if err != nil {
					b.Error(err)
					return
				}
				c.SetDeadline(time.Now().Add(30 * time.Second))
				rd := wire.NewReader(c, 0)
				c.Write(wire.AppendMessage(nil, &wire.Hello{AgentID: fmt.Sprint("a", i)}))
				if _, err := rd.ReadMessage(); err != nil {
					b.Error(err)
					return
				}
				c.Write(wire.AppendMessage(nil, &wire.Batch{Seq: 1, Payload: payload}))
				for {
					m, err := rd.ReadMessage()
					if err != nil {
						b.Error(err)
						return
					}
					if _, ok := m.(*wire.Ack); ok {
						break
					}
				}
				mu.Lock()
				cs = append(cs, c)
				mu.Unlock()
			}()
		}
		wg.Wait()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/conns, "heap-bytes/conn")
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/conns, "goroutines/conn")
		b.ReportMetric(float64(after.HeapInuse)/(1<<20), "heap-MiB-total")
		for _, c := range cs {
			c.Close()
		}
	}
}
