package memtrim

import (
	"context"
	"log/slog"
	"runtime/debug"
	"testing"
	"time"
)

func TestReleaseAfterReturnsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ReleaseAfter(ctx, time.Hour, slog.New(slog.DiscardHandler)) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("ReleaseAfter after cancel: got %v, want nil", err)
	}
}

func TestReleaseAfterReleases(t *testing.T) {
	if err := ReleaseAfter(context.Background(), time.Millisecond, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
}

func TestSetGCPercentDefault(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)

	t.Setenv("GOGC", "")
	if !SetGCPercentDefault(25) {
		t.Fatal("GOGC empty: got not applied, want applied")
	}
	if got := debug.SetGCPercent(100); got != 25 {
		t.Errorf("GOGC empty: GC percent %d, want 25", got)
	}

	t.Setenv("GOGC", "100")
	if SetGCPercentDefault(25) {
		t.Error("GOGC=100 in the environment: got applied, want the environment to win")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC=100: GC percent %d, want 100 untouched", got)
	}
}
