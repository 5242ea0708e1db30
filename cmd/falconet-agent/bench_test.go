package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falconet/falconet/agent"
	"github.com/falconet/falconet/buffer"
)

// BenchmarkPushDurable is POST /v1/push of 100 metrics answered only after
// the real bbolt buffer committed them (fsync on), from parallel clients so
// group commit shares fsyncs.
func BenchmarkPushDurable(b *testing.B) {
	cfg := buffer.DefaultConfig()
	cfg.Path = filepath.Join(b.TempDir(), "buffer.db")
	cfg.MaxBytes = 1 << 30
	q, err := buffer.Open(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	metrics := agent.NewMetrics(nil)
	mux := http.NewServeMux()
	mux.Handle("POST /v1/push", agent.NewPushHandler(agent.NewBufferSink(q, 0, metrics), 0, nil, metrics))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	var items []string
	for i := range 100 {
		items = append(items, fmt.Sprintf(`{"endpoint":"app-1","metric":"app.m%d","value":%d,"step":10,"counterType":"GAUGE","tags":"svc=api","timestamp":1700000000}`, i, i))
	}
	body := []byte("[" + strings.Join(items, ",") + "]")
	b.SetParallelism(8) // 16 clients on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := http.Post(srv.URL+"/v1/push", "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "metrics/s")
}
