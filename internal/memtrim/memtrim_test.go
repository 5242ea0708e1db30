package memtrim

import (
	"context"
	"log/slog"
	"runtime"
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

func TestSetMaxProcsDefault(t *testing.T) {
	old := runtime.GOMAXPROCS(4)
	defer runtime.GOMAXPROCS(old)

	t.Setenv("GOMAXPROCS", "")
	if !SetMaxProcsDefault(2) || runtime.GOMAXPROCS(0) != 2 {
		t.Errorf("from 4, cap 2: GOMAXPROCS %d, want 2", runtime.GOMAXPROCS(0))
	}
	if SetMaxProcsDefault(3) || runtime.GOMAXPROCS(0) != 2 {
		t.Errorf("from 2, cap 3: GOMAXPROCS %d, want 2 (never raised)", runtime.GOMAXPROCS(0))
	}
	runtime.GOMAXPROCS(4)
	t.Setenv("GOMAXPROCS", "4")
	if SetMaxProcsDefault(2) || runtime.GOMAXPROCS(0) != 4 {
		t.Errorf("GOMAXPROCS=4 in the environment: GOMAXPROCS %d, want 4 untouched", runtime.GOMAXPROCS(0))
	}
}
