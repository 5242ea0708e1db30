package devstack

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/falconet/falconet/metric"
)

// benchDocs is the corpus size of the search benchmarks: 100k by default,
// FALCONET_ES_BENCH_DOCS=1000000 for the README's 1M numbers.
func benchDocs() int {
	if v := os.Getenv("FALCONET_ES_BENCH_DOCS"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
	}
	return 100_000
}

const benchIndex = "falconet-metrics-2026.11.25"

// benchBulkBody builds one _bulk body of canonical metric documents (the
// saver's shape: _id = m.DocID()), starting at document number from.
func benchBulkBody(from, n int) []byte {
	var b bytes.Buffer
	base := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC).Unix()
	for i := from; i < from+n; i++ {
		m := metric.Metric{Endpoint: "host-" + strconv.Itoa(i%1000), Name: []string{"cpu.idle", "mem.used", "disk.io", "net.in"}[i%4],
			Value: float64(i % 100), Timestamp: base + int64(i/4000)*10, Step: 10, Type: metric.Gauge,
			Tags: map[string]string{"dc": []string{"eu", "us", "ap"}[i%3]}}
		fmt.Fprintf(&b, "{\"index\":{\"_index\":%q,\"_id\":%q}}\n", benchIndex, m.DocID())
		js, _ := m.AppendJSON(nil)
		b.Write(js)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

const benchTemplate = `{"index_patterns":["falconet-metrics-*"],"template":{"settings":{"number_of_replicas":0,"refresh_interval":"1s"},
"mappings":{"dynamic_templates":[{"tags":{"path_match":"tags.*","match_mapping_type":"string","mapping":{"type":"keyword"}}}],
"properties":{"endpoint":{"type":"keyword"},"name":{"type":"keyword"},"value":{"type":"double"},"timestamp":{"type":"date","format":"epoch_second"},"step":{"type":"long"},"type":{"type":"keyword"}}}}}`

func benchPost(b *testing.B, url, path, ct string, body []byte) []byte {
	res, err := http.Post(url+path, ct, bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || bytes.Contains(out[:min(len(out), 64)], []byte(`"errors":true`)) {
		b.Fatalf("%s: %d %s", path, res.StatusCode, out[:min(len(out), 500)])
	}
	return out
}

func benchPut(b *testing.B, url, path, body string) {
	req, _ := http.NewRequest("PUT", url+path, bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		b.Fatalf("PUT %s: %d", path, res.StatusCode)
	}
}

// BenchmarkESBulkIndex measures _bulk indexing over HTTP, 5,000 canonical
// metric documents per request, into memory and into the bbolt data file
// (one fsynced transaction per request).
func BenchmarkESBulkIndex(b *testing.B) {
	for _, mode := range []string{"memory", "disk"} {
		b.Run(mode, func(b *testing.B) {
			cfg := ESConfig{Listen: "127.0.0.1:0", Memory: mode == "memory"}
			if mode == "disk" {
				cfg.DataDir = b.TempDir()
			}
			es, err := StartESServer(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer es.Close()
			benchPut(b, es.URL(), "/_index_template/m", benchTemplate)
			const per = 5000
			bodies := make([][]byte, 20)
			for i := range bodies {
				bodies[i] = benchBulkBody(i*per, per)
			}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				benchPost(b, es.URL(), "/_bulk", "application/x-ndjson", bodies[i%len(bodies)])
			}
			b.ReportMetric(float64(b.N*per)/time.Since(start).Seconds(), "docs/s")
		})
	}
}

// BenchmarkESSearch loads benchDocs() documents, then measures search latency
// for the queries the saver and an operator run.
func BenchmarkESSearch(b *testing.B) {
	es, err := StartESServer(ESConfig{Listen: "127.0.0.1:0", Memory: true})
	if err != nil {
		b.Fatal(err)
	}
	defer es.Close()
	benchPut(b, es.URL(), "/_index_template/m", benchTemplate)
	n := benchDocs()
	const per = 10000
	t0 := time.Now()
	for i := 0; i < n; i += per {
		benchPost(b, es.URL(), "/_bulk", "application/x-ndjson", benchBulkBody(i, min(per, n-i)))
	}
	load := time.Since(t0)
	benchPost(b, es.URL(), "/_refresh", "application/json", nil)
	b.Logf("loaded %d docs in %v (%.0f docs/s)", n, load.Round(time.Millisecond), float64(n)/load.Seconds())
	queries := map[string]string{
		"count_all":      `{"query":{"match_all":{}}}`,
		"term_endpoint":  `{"query":{"bool":{"filter":[{"term":{"endpoint":"host-7"}},{"term":{"name":"cpu.idle"}}]}},"size":10,"sort":[{"timestamp":"desc"}]}`,
		"range_1h":       `{"query":{"range":{"timestamp":{"gte":"2026-11-25T00:00:00Z||+1h","lt":"2026-11-25T00:00:00Z||+2h","format":"strict_date_optional_time"}}},"size":10}`,
		"agg_terms_avg":  `{"size":0,"aggs":{"n":{"terms":{"field":"name"},"aggs":{"v":{"avg":{"field":"value"}}}}}}`,
		"agg_histo_1h":   `{"size":0,"query":{"term":{"name":"cpu.idle"}},"aggs":{"h":{"date_histogram":{"field":"timestamp","fixed_interval":"1h"},"aggs":{"v":{"max":{"field":"value"}}}}}}`,
		"rollup_5m_host": `{"size":0,"query":{"term":{"endpoint":"host-7"}},"aggs":{"h":{"date_histogram":{"field":"timestamp","fixed_interval":"5m"},"aggs":{"v":{"avg":{"field":"value"}}}}}}`,
		"query_string":   `{"query":{"query_string":{"query":"endpoint:host-7 AND name:cpu.idle"}},"size":10}`,
		"percentiles":    `{"size":0,"aggs":{"p":{"percentiles":{"field":"value"}}}}`,
		"composite_page": `{"size":0,"aggs":{"c":{"composite":{"size":100,"sources":[{"e":{"terms":{"field":"endpoint"}}},{"n":{"terms":{"field":"name"}}}]}}}}`,
		"stats_by_host":  `{"size":0,"aggs":{"e":{"terms":{"field":"endpoint","size":100},"aggs":{"s":{"extended_stats":{"field":"value"}}}}}}`,
	}
	for _, name := range []string{"count_all", "term_endpoint", "range_1h", "agg_terms_avg", "agg_histo_1h", "rollup_5m_host", "query_string", "percentiles", "composite_page", "stats_by_host"} {
		q := queries[name]
		path := "/" + benchIndex + "/_search"
		if name == "count_all" {
			path = "/" + benchIndex + "/_count"
		}
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				benchPost(b, es.URL(), path, "application/json", []byte(q))
			}
		})
	}
}

// BenchmarkESReopen measures how long dev-es takes to start on a data
// directory holding benchDocs()/5 documents (FALCONET_ES_BENCH_DOCS scales it):
// every document is read back and re-parsed into the in-memory columns.
func BenchmarkESReopen(b *testing.B) {
	dir := b.TempDir()
	es, err := StartESServer(ESConfig{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	benchPut(b, es.URL(), "/_index_template/m", benchTemplate)
	n := benchDocs() / 5
	if os.Getenv("FALCONET_ES_BENCH_DOCS") != "" {
		n = benchDocs()
	}
	for i := 0; i < n; i += 10000 {
		benchPost(b, es.URL(), "/_bulk", "application/x-ndjson", benchBulkBody(i, min(10000, n-i)))
	}
	if err := es.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		es, err := StartESServer(ESConfig{Listen: "127.0.0.1:0", DataDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(n)/time.Since(t0).Seconds(), "docs/s")
		_ = es.Close()
	}
}
