package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/falconet/falconet/agent/sender"
	"github.com/falconet/falconet/agent/sender/sendertest"
	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/metric"
	"github.com/falconet/falconet/relay/relaytest"
	"github.com/falconet/falconet/wire"
)

// startBinary builds and starts falconet-relay against broker and returns
// its protocol address and process.
func startBinary(b *testing.B, broker, extra string) (string, *exec.Cmd) {
	bin := filepath.Join(b.TempDir(), "falconet-relay")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	conf := filepath.Join(b.TempDir(), "relay.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf("[listen]\nprotocol = %q\nlegacy = \"\"\nhttp = \"\"\n[kafka]\nbrokers = [%q]\n%s\n[discovery]\nbind = \"\"\n", addr, broker, extra)), 0o600)
	cmd := exec.Command(bin, "-config", conf)
	var logs safeBuf
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	relaytest.WaitFor(b, 20*time.Second, "relay binary ready", func() bool { return strings.Contains(logs.String(), "connected to kafka") })
	return addr, cmd
}

// procStats reads a process's CPU time (user+system) and resident memory.
func procStats(b *testing.B, pid int) (cpu time.Duration, rssKiB int64) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64) // fields 14 and 15 of stat, counted after the command name
	st, _ := strconv.ParseInt(f[12], 10, 64)
	cpu = time.Duration(ut+st) * (time.Second / 100) // USER_HZ = 100 on Linux
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rssKiB, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	return cpu, rssKiB
}

// BenchmarkBinaryThroughput runs the relay as its own process (4 senders and
// the dev Kafka in the test process) and reports metrics/s and the relay
// process's own CPU per 100k metrics and RSS. One iteration: 200,000 metrics.
func BenchmarkBinaryThroughput(b *testing.B) {
	for _, tc := range []struct{ name, extra string }{{"idempotent", ""}, {"non-idempotent", "idempotent = false"}} {
		b.Run(tc.name, func(b *testing.B) {
			k := devstack.StartKafkaT(b, "falconet-metrics")
			addr, cmd := startBinary(b, k.Addr(), tc.extra)
			const agents, perBatch, batchesPerIter = 4, 1000, 200
			queues := make([]*sendertest.MemQueue, agents)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer func() { cancel(); wg.Wait() }()
			payloads := make([][]byte, agents)
			for i := range queues {
				queues[i] = sendertest.NewMemQueue()
				s, err := sender.New(sender.Config{AgentID: fmt.Sprint("bench-", i)}, queues[i], sender.StaticRelays(addr), nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() { defer wg.Done(); s.Run(ctx) }()
				ms := make([]metric.Metric, perBatch)
				for j := range ms {
					ms[j] = metric.Metric{Endpoint: fmt.Sprintf("edge-host-%04d", i), Name: fmt.Sprintf("net.if.in.bytes.%d", j%50), Value: float64(j),
						Timestamp: 1764000000 + int64(j/50), Step: 10, Type: metric.Counter, Tags: map[string]string{"iface": fmt.Sprintf("eth%d", j%4), "dc": "fra1"}}
				}
				payloads[i], _ = metric.EncodeBatch(nil, ms)
			}
			b.ResetTimer()
			cpu0, _ := procStats(b, cmd.Process.Pid)
			start := time.Now()
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
			cpu1, rss := procStats(b, cmd.Process.Pid)
			n := float64(b.N * batchesPerIter * perBatch)
			b.ReportMetric(n/el.Seconds(), "metrics/s")
			b.ReportMetric(float64(cpu1-cpu0)/float64(time.Millisecond)/(n/1e5), "relay-cpu-ms/100k-metrics")
			b.ReportMetric(float64(rss)/1024, "relay-RSS-MiB")
		})
	}
}

// BenchmarkBinaryRSS1000Conns: the relay process's resident memory with
// 1,000 agent connections open, each having sent one batch of 100 metrics
// and got its ack.
func BenchmarkBinaryRSS1000Conns(b *testing.B) {
	k := devstack.StartKafkaT(b, "falconet-metrics")
	addr, cmd := startBinary(b, k.Addr(), "")
	ms := make([]metric.Metric, 100)
	for j := range ms {
		ms[j] = metric.Metric{Endpoint: "mem-host", Name: fmt.Sprintf("m%d", j), Value: 1, Timestamp: 1764000000, Step: 10}
	}
	payload, _ := metric.EncodeBatch(nil, ms)
	for range b.N {
		_, rss0 := procStats(b, cmd.Process.Pid)
		const conns = 1000
		var mu sync.Mutex
		var open []net.Conn
		var wg sync.WaitGroup
		sem := make(chan struct{}, 50)
		for i := range conns {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Error(err)
					return
				}
				c.SetDeadline(time.Now().Add(30 * time.Second))
				r := wire.NewReader(c, 0)
				c.Write(wire.AppendMessage(nil, &wire.Hello{AgentID: fmt.Sprint("m", i)}))
				if _, err := r.ReadMessage(); err != nil {
					b.Error(err)
					return
				}
				c.Write(wire.AppendMessage(nil, &wire.Batch{Seq: 1, Payload: payload}))
				for {
					m, err := r.ReadMessage()
					if err != nil {
						b.Error(err)
						return
					}
					if m.Type() == wire.TypeAck {
						break
					}
				}
				mu.Lock()
				open = append(open, c)
				mu.Unlock()
			}()
		}
		wg.Wait()
		_, rss1 := procStats(b, cmd.Process.Pid)
		b.ReportMetric(float64(rss1)/1024, "relay-RSS-MiB")
		b.ReportMetric(float64(rss1-rss0)*1024/conns, "RSS-bytes/conn")
		for _, c := range open {
			c.Close()
		}
	}
}
