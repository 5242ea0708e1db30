package memtrim

import (
	"context"
	"log/slog"
	"os"
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
