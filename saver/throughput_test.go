package saver

import (
	"fmt"
	"testing"
	"time"

	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/internal/confkit"
)

// BenchmarkSaverThroughput measures Kafka (kfake) -> saver -> dev-es, all in
// this process on loopback: each iteration produces 50k records first, then
// times a fresh saver from start until every offset is committed (so the
// group join, ~0.2-0.7 s, is included). docs/s is the headline number; the
// sub-benchmarks vary bulk size and requests in flight to choose defaults.
func BenchmarkSaverThroughput(b *testing.B) {
	for _, tc := range []struct {
		docs, inflight int
	}{{1000, 4}, {5000, 2}, {5000, 4}, {10000, 4}} {
		b.Run(fmt.Sprintf("bulk=%d/inflight=%d", tc.docs, tc.inflight), func(b *testing.B) {
			const n = 50000
			var total time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				k := devstack.StartKafkaT(b, testTopic, testDLQ)
				es := startTestES(b)
				ms := genMetrics(n, time.Now().UTC(), fmt.Sprintf("tp%d-", i))
				produce(b, k.Addr(), metricRecords(ms))
				cfg := testConfig(k.Addr(), es.url)
				cfg.Elasticsearch.BulkDocs = tc.docs
				cfg.Elasticsearch.MaxInFlight = tc.inflight
				cfg.Elasticsearch.FlushInterval = confkit.Duration(500 * time.Millisecond)
				cfg.Kafka.CommitInterval = confkit.Duration(100 * time.Millisecond)
				b.StartTimer()
				start := time.Now()
				rs := startSaver(b, cfg)
				waitFor(b, 5*time.Minute, "all committed", func() (bool, string) {
					c, e := committed(b, k.Addr(), "falconet-saver")
					return c == e && e == n, fmt.Sprintf("%d of %d", c, e)
				})
				total += time.Since(start)
				b.StopTimer()
				rs.stop(b)
				b.StartTimer()
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "docs/s")
		})
	}
}
