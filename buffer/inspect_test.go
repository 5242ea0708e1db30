package buffer_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/falconet/falconet/buffer"
	"github.com/falconet/falconet/metric"
)

func TestInspectVerify(t *testing.T) {
	const n = 300
	orig, _ := makeFile(t, n)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.db", orig)
	for _, f := range []func(string, time.Duration) (*buffer.FileReport, error){buffer.Inspect, buffer.Verify} {
		r, err := f(good, time.Second)
		if err != nil {
			t.Fatalf("good file: %v", err)
		}
		if r.Batches != n || r.Metrics != 10*n || r.FirstSeq != 1 || r.LastSeq != n || len(r.Problems) != 0 {
			t.Fatalf("good file: got batches %d metrics %d seqs %d..%d problems %v; want %d, %d, 1..%d, none",
				r.Batches, r.Metrics, r.FirstSeq, r.LastSeq, r.Problems, n, 10*n, n)
		}
		if r.OldestAppended.IsZero() || r.NewestAppended.Before(r.OldestAppended) || r.OldestMetric.IsZero() {
			t.Fatalf("good file: times %v %v %v", r.OldestAppended, r.NewestAppended, r.OldestMetric)
		}
	}

	d := bytes.Clone(orig)
	flipPayloadByte(t, d)
	damaged := write("damaged.db", d)
	if _, err := buffer.Inspect(damaged, time.Second); err != nil {
		t.Fatalf("Inspect of a file with one bad checksum: %v (inspect reads the structure only)", err)
	}
	r, err := buffer.Verify(damaged, time.Second)
	if !errors.Is(err, buffer.ErrCorrupt) || len(r.Problems) == 0 || !strings.Contains(strings.Join(r.Problems, "\n"), "crc32c") {
		t.Fatalf("Verify of a damaged batch got %v, problems %q; want ErrCorrupt naming the checksum", err, r.Problems)
	}

	for name, data := range map[string][]byte{"garbage.db": bytes.Repeat([]byte("x"), 10000), "empty.db": nil, "short.db": orig[:len(orig)/3]} {
		r, err := buffer.Verify(write(name, data), time.Second)
		if !errors.Is(err, buffer.ErrCorrupt) || len(r.Problems) == 0 {
			t.Fatalf("Verify(%s) got %v, problems %v; want ErrCorrupt", name, err, r.Problems)
		}
	}

	cfg := testConfig(t.TempDir())
	q := openTest(t, cfg)
	_ = q
	start := time.Now()
	if _, err := buffer.Verify(cfg.Path, 300*time.Millisecond); !errors.Is(err, buffer.ErrLocked) {
		t.Fatalf("Verify of a file the queue holds got %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Verify of a locked file took %s, want it to give up after the timeout", d)
	}
}

// TestInspectMetricTimes: the oldest and newest metric times are those of
// the whole file, not of the oldest and newest batch: a metric from last
// year replayed into a newer batch is the oldest one.
func TestInspectMetricTimes(t *testing.T) {
	cfg := testConfig(t.TempDir())
	q := openTest(t, cfg)
	ts := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.Unix()
	}
	batches := [][]int64{
		{ts("2026-03-01T10:00:00Z"), ts("2026-03-01T10:00:10Z")}, // oldest batch
		{ts("2025-06-01T00:00:00Z"), ts("2027-01-01T00:00:00Z")}, // a replayed old metric and a future one
		{ts("2026-03-01T10:00:20Z")},                             // newest batch
	}
	for _, b := range batches {
		var ms []metric.Metric
		for _, t0 := range b {
			ms = append(ms, metric.Metric{Endpoint: "web-1", Name: "cpu.idle", Value: 1, Timestamp: t0, Step: 10, Type: metric.Gauge})
		}
		payload, err := metric.EncodeBatch(nil, ms)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := q.Append(context.Background(), payload, len(ms)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func(string, time.Duration) (*buffer.FileReport, error){"Inspect": buffer.Inspect, "Verify": buffer.Verify} {
		r, err := f(cfg.Path, time.Second)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got, want := r.OldestMetric, time.Unix(ts("2025-06-01T00:00:00Z"), 0).UTC(); !got.Equal(want) {
			t.Errorf("%s: OldestMetric got %v, want %v (the 2025 metric in the second batch)", name, got, want)
		}
		if got, want := r.NewestMetric, time.Unix(ts("2027-01-01T00:00:00Z"), 0).UTC(); !got.Equal(want) {
			t.Errorf("%s: NewestMetric got %v, want %v (the 2027 metric in the second batch)", name, got, want)
		}
		if r.Batches != 3 || r.Metrics != 5 {
			t.Errorf("%s: got %d batches, %d metrics; want 3, 5", name, r.Batches, r.Metrics)
		}
	}
}
