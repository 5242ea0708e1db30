package buffer

import (
	"errors"
	"fmt"
	"time"
)

// Config configures a Queue. The agent's [buffer] TOML table maps onto it.
type Config struct {
	// Path is the bbolt file. Its directory is created if missing.
	Path string
	// MaxBytes caps the stored batches (record bytes: payload plus a 25-byte
	// key and header each). When an append would exceed it, the oldest batches
	// are dropped and counted. The file on disk is larger than this by bbolt's
	// page overhead (about 1.35x for 8 KiB batches) until compaction.
	MaxBytes int64
	// MaxAge, if positive, drops batches appended longer ago than this.
	MaxAge time.Duration
	// CommitWindow bounds how long an append waits for others to join its
	// transaction. The loop commits at once when it expects no one else (the
	// last group had one writer); with many writers it waits up to this long
	// for the last group's size to gather again. One transaction, one fsync per
	// group.
	CommitWindow time.Duration
	// LockTimeout is how long Open waits for bbolt's file lock before failing
	// with ErrLocked (another process has the file open).
	LockTimeout time.Duration
	// LiveFirst turns on live-first delivery: when Next finds the oldest
	// waiting batch older than LiveAfter, everything then stored becomes the
	// backlog; batches appended afterwards (live) are handed out first, and the
	// backlog drains oldest-first at BackfillRate.
	LiveFirst bool
	// LiveAfter is the age of the oldest waiting batch that starts backfill mode.
	LiveAfter time.Duration
	// BackfillRate limits backlog delivery in bytes per second while live
	// batches exist; 0 means no limit (live batches still go first).
	BackfillRate int64
	// MemoryBytes bounds the batches kept in memory while the disk is full.
	MemoryBytes int64
	// DropLogInterval is how often drops are summarized in the log.
	DropLogInterval time.Duration
	// CompactFreeBytes and CompactFreeRatio: the file is compacted when its
	// free pages exceed both this many bytes and this fraction of the file.
	CompactFreeBytes int64
	CompactFreeRatio float64
	// CompactTimeout bounds one compaction; a compaction that takes longer is
	// abandoned (the old file stays, nothing is lost).
	CompactTimeout time.Duration
	// VerifyOnOpen reads every stored batch and checks its CRC on Open (a
	// batch that fails is quarantined). Without it Open reads headers only.
	VerifyOnOpen bool
	// PageSize is the bbolt page size of a new file (an existing file keeps
	// its own). Batches of 100 metrics are 2-8 KiB: with 4 KiB pages most of
	// each page is lost; 32 KiB pages hold several batches.
	PageSize int
	// Clock is the wall clock for append times and their ages (live_after,
	// max_age); nil: time.Now. A seam for tests that step the clock; the
	// queue measures elapsed time with the monotonic clock regardless.
	Clock func() time.Time
	// NoSync skips fsync: only for tests and benchmarks that measure
	// something else. Appends are then not durable.
	NoSync bool
}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		Path:             "/var/lib/falconet/agent/buffer.db",
		MaxBytes:         256 << 20,
		CommitWindow:     10 * time.Millisecond,
		LockTimeout:      2 * time.Second,
		LiveFirst:        true,
		LiveAfter:        time.Minute,
		BackfillRate:     0,
		MemoryBytes:      8 << 20,
		DropLogInterval:  10 * time.Second,
		CompactFreeBytes: 64 << 20,
		CompactFreeRatio: 0.5,
		CompactTimeout:   30 * time.Second,
		VerifyOnOpen:     true,
		PageSize:         32 << 10,
	}
}

// Validate reports the first problem, naming its configuration key.
func (c Config) Validate() error {
	switch {
	case c.Path == "":
		return errors.New("buffer.path: empty")
	case c.MaxBytes < 64<<10:
		return fmt.Errorf("buffer.max_bytes: %d bytes, at least 64KiB", c.MaxBytes)
	case c.MaxAge < 0:
		return fmt.Errorf("buffer.max_age: %s is negative", c.MaxAge)
	case c.CommitWindow < 0 || c.CommitWindow > time.Second:
		return fmt.Errorf("buffer.commit_window: %s, want 0 to 1s", c.CommitWindow)
	case c.LockTimeout < 0:
		return fmt.Errorf("buffer.lock_timeout: %s is negative", c.LockTimeout)
	case c.LiveFirst && c.LiveAfter <= 0:
		return fmt.Errorf("buffer.live_after: %s, want positive when live_first is on", c.LiveAfter)
	case c.BackfillRate < 0:
		return fmt.Errorf("buffer.backfill_rate: %d is negative", c.BackfillRate)
	case c.MemoryBytes < 0:
		return fmt.Errorf("buffer.memory_bytes: %d is negative", c.MemoryBytes)
	case c.CompactFreeRatio < 0 || c.CompactFreeRatio > 1:
		return fmt.Errorf("buffer.compact_free_ratio: %g, want 0 to 1", c.CompactFreeRatio)
	case c.PageSize != 0 && (c.PageSize < 4096 || c.PageSize > 1<<20 || c.PageSize&(c.PageSize-1) != 0):
		return fmt.Errorf("buffer.page_size: %d, want a power of two from 4096 to 1MiB", c.PageSize)
	case c.CompactFreeBytes < 0:
		return fmt.Errorf("buffer.compact_free_bytes: %d is negative", c.CompactFreeBytes)
	}
	return nil
}
