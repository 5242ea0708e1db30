package buffer_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/falconet/falconet/buffer"
	"github.com/falconet/falconet/buffer/buffertest"
)

func testConfig(dir string) buffer.Config {
	cfg := buffer.DefaultConfig()
	cfg.Path = filepath.Join(dir, "buffer.db")
	cfg.LockTimeout = 200 * time.Millisecond
	return cfg
}

func openTest(t *testing.T, cfg buffer.Config) *buffer.Queue {
	t.Helper()
	var logger *slog.Logger
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	q, err := buffer.Open(cfg, logger, nil)
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg.Path, err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

func TestConformance(t *testing.T) {
	buffertest.RunConformance(t, func(t *testing.T, dir string, maxBytes int64) buffertest.Queue {
		cfg := testConfig(dir)
		cfg.MaxBytes = maxBytes
		return openTest(t, cfg)
	})
}

func TestMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := testConfig(t.TempDir())
	cfg.MaxBytes = 64 << 10
	for round := range 2 { // reopening with the same registry works: Close unregisters
		q, err := buffer.Open(cfg, nil, reg)
		if err != nil {
			t.Fatal(err)
		}
		for id := uint64(1); id <= 40; id++ {
			if _, err := q.Append(context.Background(), buffertest.Payload(id, 10, 400), 10); err != nil {
				t.Fatal(err)
			}
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			m := mf.GetMetric()[0]
			switch {
			case m.Counter != nil:
				got[mf.GetName()] = m.Counter.GetValue()
			case m.Gauge != nil:
				got[mf.GetName()] = m.Gauge.GetValue()
			}
		}
		st := q.Stats()
		for name, want := range map[string]float64{
			"falconet_buffer_dropped_batches_total": float64(st.DroppedBatches),
			"falconet_buffer_dropped_metrics_total": float64(st.DroppedMetrics),
			"falconet_buffer_batches":               float64(st.Batches),
			"falconet_buffer_backfill":              0,
			"falconet_buffer_disk_full":             0,
		} {
			if v, ok := got[name]; !ok || v != want {
				t.Errorf("round %d: %s = %v (present %v), want %v", round, name, v, ok, want)
			}
		}
		if got["falconet_buffer_dropped_batches_total"] == 0 {
			t.Errorf("round %d: no drops counted with 40 batches over a 64 KiB cap", round)
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCloseUnblocks: Close wakes a blocked Next and lets in-flight appends
// finish or fail cleanly; afterwards everything returns ErrClosed.
func TestCloseUnblocks(t *testing.T) {
	cfg := testConfig(t.TempDir())
	q, err := buffer.Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	nextErr := make(chan error, 1)
	go func() {
		_, err := q.Next(context.Background(), 10)
		nextErr <- err
	}()
	var wg sync.WaitGroup
	var appended atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := uint64(0); ; id++ {
				_, err := q.Append(context.Background(), buffertest.Payload(id, 1, 0), 1)
				if errors.Is(err, buffer.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Append during Close: %v, want nil or ErrClosed", err)
					return
				}
				appended.Add(1)
			}
		}()
	}
	waitFor(t, func() bool { return appended.Load() > 50 }, "appends to run")
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := <-nextErr; err != nil && !errors.Is(err, buffer.ErrClosed) {
		t.Fatalf("blocked Next after Close got %v", err)
	}
	q2 := openTest(t, cfg)
	if got := q2.Stats().Batches; int64(got) < appended.Load() {
		t.Fatalf("after Close and reopen %d batches, but %d appends returned nil", got, appended.Load())
	}
}
