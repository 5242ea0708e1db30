package relay_test

import (
	"fmt"
	"net/rpc"
	"net/rpc/jsonrpc"
	"sync"
	"testing"
	"time"

	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/relay/relaytest"
)

// BenchmarkOpenFalconRPC: falcon-agent style Transfer.Update calls of 120
// metrics (about 16 KB each) → one relay → dev Kafka (acks=all). "serial" is
// one falcon-agent (one call at a time on one connection, as it sends);
// "64-agents" is 64 such connections at once. Reports metrics/s, the mean
// call latency and the CPU time of the whole process (the clients' JSON
// encoding, the relay and the broker) per 100,000 metrics.
func BenchmarkOpenFalconRPC(b *testing.B) {
	for _, conns := range []int{1, 64} {
		name := "serial"
		if conns > 1 {
			name = fmt.Sprintf("%d-agents", conns)
		}
		b.Run(name, func(b *testing.B) {
			k := devstack.StartKafkaT(b, topic)
			cfg := relaytest.Config(k.Addr())
			cfg.OpenFalcon.Enabled = true
			r := relaytest.Start(b, cfg, nil)
			clients := make([]*rpc.Client, conns)
			for i := range clients {
				c, err := jsonrpc.Dial("tcp", r.ProtocolAddr())
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				clients[i] = c
			}
			call := func(c *rpc.Client, seed int) {
				items := make([]*ofMetricValue, 120)
				for j := range items {
					items[j] = &ofMetricValue{Endpoint: fmt.Sprintf("falcon-host-%04d", seed%1000), Metric: fmt.Sprintf("df.bytes.used.percent.%d", j),
						Value: float64(j) * 1.5, Step: 60, Type: "GAUGE", Tags: fmt.Sprintf("mount=/data/%d,fstype=ext4", j), Timestamp: 1764000000 + int64(seed)}
				}
				var resp ofTransferResponse
				if err := c.Call("Transfer.Update", items, &resp); err != nil || resp.Message != "ok" || resp.Invalid != 0 {
					b.Errorf("call: %+v, %v", resp, err)
				}
			}
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			var wg sync.WaitGroup
			next := make(chan int)
			for _, c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range next {
						call(c, i)
					}
				}()
			}
			for i := range b.N {
				next <- i
			}
			close(next)
			wg.Wait()
			el, cpu := time.Since(start), cpuTime()-cpu0
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N*120)*1e5, "cpu-ms/100k-metrics(all)")
			b.ReportMetric(float64(b.N*120)/el.Seconds(), "metrics/s")
			b.ReportMetric(float64(el.Milliseconds())/float64(b.N)*float64(conns), "ms/call")
		})
	}
}
