package saver

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/falconet/falconet/metric"
)

func TestFutureLog(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	var f futureLog
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	m := metric.Metric{Endpoint: "edge-17", Name: "cpu.idle", Timestamp: now.Add(time.Hour).Unix()}
	if !f.note(logger, &m, now, 10*time.Minute) {
		t.Fatal("first refused metric of an endpoint not logged")
	}
	line := buf.String()
	for _, want := range []string{"endpoint=edge-17", "metric=cpu.idle", "skew=1h0m0s", "future_skew=10m0s", "2026-12-03T10:00:00Z", "clock"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q lacks %q", line, want)
		}
	}
	// The same endpoint within a minute: counted, not logged again.
	if f.note(logger, &m, now.Add(30*time.Second), 10*time.Minute) {
		t.Error("second metric of the same endpoint within a minute logged again")
	}
	// Another endpoint is logged; the first one again after a minute.
	other := m
	other.Endpoint = "edge-18"
	if !f.note(logger, &other, now.Add(31*time.Second), 10*time.Minute) {
		t.Error("another endpoint's first refused metric not logged")
	}
	if !f.note(logger, &m, now.Add(61*time.Second), 10*time.Minute) {
		t.Error("the first endpoint not logged again after a minute")
	}
	if n := strings.Count(buf.String(), "\n"); n != 3 {
		t.Errorf("got %d log lines, want 3:\n%s", n, buf.String())
	}
}
