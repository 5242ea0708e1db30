package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/falconet/falconet/metric"
)

func startPush(t *testing.T, sink Sink, maxBytes int64) (string, *Metrics) {
	t.Helper()
	metrics := NewMetrics(nil)
	mux := http.NewServeMux()
	mux.Handle("POST /v1/push", NewPushHandler(sink, maxBytes, nil, metrics))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/v1/push", metrics
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestPushAPI(t *testing.T) {
	now := time.Now().Unix()
	item := func(name string, v string) string {
		return fmt.Sprintf(`{"endpoint":"app-1","metric":%q,"value":%s,"step":60,"counterType":"GAUGE","tags":"svc=api","timestamp":%d}`, name, v, now)
	}
	tests := []struct {
		name       string
		body       string
		wantCode   int
		wantBody   []string
		wantStored int
	}{
		{"open-falcon array", "[" + item("app.qps", "12") + "," + item("app.lat", "0.5") + "]", 200, []string{"success"}, 2},
		// [] is an explicit empty batch (Open-Falcon answers it so too); an
		// empty body is a mistake the client must learn about.
		{"empty array", "[]", 200, []string{"success"}, 0},
		{"empty body", "", 400, []string{"empty body; nothing stored"}, 0},
		{"whitespace body", " \n\t\n", 400, []string{"empty body; nothing stored"}, 0},
		{"one bad item refuses all, naming it", "[" + item("ok", "1") + "," + item("", "1") + "," + item("x", `"abc"`) + "]", 400,
			[]string{"2 of 3 items invalid", "nothing stored", "item 1:", "name is empty", "item 2:"}, 0},
		{"not json", "hello", 400, []string{"item 0:", "invalid character"}, 0},
		{"truncated json", "[" + item("a", "1"), 400, []string{"not JSON"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &recordSink{}
			url, _ := startPush(t, sink, 0)
			code, body := post(t, url, tt.body)
			if code != tt.wantCode {
				t.Errorf("status %d, want %d (body %q)", code, tt.wantCode, body)
			}
			for _, w := range tt.wantBody {
				if !strings.Contains(body, w) {
					t.Errorf("body %q does not mention %q", body, w)
				}
			}
			sink.mu.Lock()
			stored := len(sink.ms)
			sink.mu.Unlock()
			if stored != tt.wantStored {
				t.Errorf("stored %d metrics, want %d", stored, tt.wantStored)
			}
		})
	}
}

func TestPushStoredFields(t *testing.T) {
	sink := &recordSink{}
	url, metrics := startPush(t, sink, 0)
	code, body := post(t, url, `[{"endpoint":"app-1","metric":"app.qps","value":12,"step":60,"counterType":"COUNTER","tags":"svc=api,dc=x","timestamp":1700000000}]`)
	if code != 200 {
		t.Fatalf("status %d (%s), want 200", code, body)
	}
	m := sink.ms[0]
	if m.Endpoint != "app-1" || m.Name != "app.qps" || m.Value != 12 || m.Step != 60 || m.Timestamp != 1700000000 ||
		m.Type.String() != "COUNTER" || m.Tags["svc"] != "api" || m.Tags["dc"] != "x" {
		t.Errorf("stored %+v, want the pushed fields", m)
	}
	if got := counterValue(metrics.PushMetrics); got != 1 {
		t.Errorf("push metrics counted %v, want 1", got)
	}
}

func TestPushOversized(t *testing.T) {
	sink := &recordSink{}
	url, metrics := startPush(t, sink, 2048)
	var b bytes.Buffer
	b.WriteString("[")
	for i := range 100 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"endpoint":"h","metric":"m%d","value":1,"timestamp":1700000000}`, i)
	}
	b.WriteString("]")
	code, body := post(t, url, b.String())
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "2048") {
		t.Errorf("status %d body %q, want 413 naming the limit", code, body)
	}
	if len(sink.ms) != 0 {
		t.Errorf("stored %d metrics from an oversized body, want 0", len(sink.ms))
	}
	if got := counterValue(metrics.PushRequests.WithLabelValues("413")); got != 1 {
		t.Errorf("413s counted %v, want 1", got)
	}
}

// TestPushSinkFailure: when the sink cannot store, the client gets 503 and
// must retry; it never gets a 200 for metrics that are not stored.
func TestPushSinkFailure(t *testing.T) {
	sink := &recordSink{err: errors.New("buffer: closed")}
	url, _ := startPush(t, sink, 0)
	resp, err := http.Post(url, "application/json", strings.NewReader(`[{"endpoint":"h","metric":"m","value":1,"timestamp":1700000000}]`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "buffer: closed") {
		t.Errorf("status %d, Retry-After %q, body %q; want 503 with Retry-After and the reason", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
}

func TestPushWrongMethod(t *testing.T) {
	url, _ := startPush(t, &recordSink{}, 0)
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET status %d, want 405", resp.StatusCode)
	}
}

// BenchmarkPush is one POST /v1/push of 100 Open-Falcon metrics over
// loopback HTTP into a sink that keeps nothing.
func BenchmarkPush(b *testing.B) {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/push", NewPushHandler(sinkFunc(func(context.Context, []metric.Metric) error { return nil }), 0, nil, nil))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	var items []string
	for i := range 100 {
		items = append(items, fmt.Sprintf(`{"endpoint":"app-1","metric":"app.m%d","value":%d,"step":10,"counterType":"GAUGE","tags":"svc=api,dc=x","timestamp":1700000000}`, i, i))
	}
	body := []byte("[" + strings.Join(items, ",") + "]")
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		resp, err := http.Post(srv.URL+"/v1/push", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "metrics/s")
}
