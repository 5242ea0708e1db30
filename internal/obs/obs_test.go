package obs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestServer(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "falconet_test_things_total", Help: "things"})
	reg.MustRegister(c)
	c.Add(3)
	var unhealthy atomic.Bool
	s, err := Listen("127.0.0.1:0", reg, func() error {
		if unhealthy.Load() {
			return errors.New("kafka unreachable")
		}
		return nil
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "falconet_test_things_total 3") {
		t.Errorf("/metrics = %d %q, want 200 with the counter", code, body)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
	unhealthy.Store(true)
	if code, body := get("/healthz"); code != 503 || !strings.Contains(body, "kafka unreachable") {
		t.Errorf("/healthz = %d %q, want 503 with the reason", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel = %v, want nil", err)
	}
}
