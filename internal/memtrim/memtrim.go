package memtrim

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"time"
)

// Region is a range of virtual memory [Start, End).
type Region struct{ Start, End uint64 }

// Len is the region's size in bytes.
func (r Region) Len() uint64 { return r.End - r.Start }

// ReleaseAfter waits for delay (or ctx), then calls ReleaseBinary once and
// logs what it released at debug level. It returns when done or when ctx
// ends; run it in the daemon's errgroup.
func ReleaseAfter(ctx context.Context, delay time.Duration, logger *slog.Logger) error {
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil
	case <-t.C:
	}
	n, err := ReleaseBinary()
	if err != nil {
		logger.Debug("memtrim: could not release the binary's start-up pages", "err", err)
		return nil
	}
	logger.Debug("memtrim: released the binary's start-up pages", "mapped_bytes", n)
	return nil
}

// SetGCPercentDefault sets the garbage collector's target percentage to
// percent unless the GOGC environment variable is set, which wins; it
// reports whether it set it.
func SetGCPercentDefault(percent int) bool {
	if v, ok := os.LookupEnv("GOGC"); ok && v != "" {
		return false
	}
	debug.SetGCPercent(percent)
	return true
}

// SetMaxProcsDefault caps GOMAXPROCS at n unless the GOMAXPROCS environment
// variable is set, which wins; it reports whether it lowered it. Every P
// keeps its own caches of partly used heap spans and, while the GC runs,
// may run a mark worker: a daemon doing little work needs few of them, and
// capping them keeps its memory the same on a 64-core host as on a 2-core one.
func SetMaxProcsDefault(n int) bool {
	if v, ok := os.LookupEnv("GOMAXPROCS"); ok && v != "" {
		return false
	}
	if n < 1 || runtime.GOMAXPROCS(0) <= n {
		return false
	}
	runtime.GOMAXPROCS(n)
	return true
}
