package buffer

import (
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrCompactTimeout is returned when a compaction ran past CompactTimeout and
// was abandoned (the old file stays in use; nothing is lost).
var ErrCompactTimeout = errors.New("buffer: compaction took longer than buffer.compact_timeout; abandoned")

// Compact copies the live batches into a new file and swaps it in, giving
// the free pages back to the file system. The queue compacts by itself when
// free pages pass CompactFreeBytes and CompactFreeRatio; this is for tools
// and tests. Appends wait while it copies.
func (q *Queue) Compact() error {
	reply := make(chan error, 1)
	select {
	case q.compactReq <- reply:
	case <-q.stop:
		return ErrClosed
	}
	select {
	case err := <-reply:
		return err
	case <-q.loopDone:
		return ErrClosed
	}
}

// After a drain the queue holds little, and copying it costs next to
// nothing: then the file is compacted back to about its idle size as soon as
// its free pages pass idleCompactFree (and the ratio), whatever
// compact_free_bytes says. While the backlog is large only the configured
// thresholds apply, so one copy is never larger than what it frees.
const (
	idleCompactLive  = 4 << 20 // live record bytes at most: the copy is small
	idleCompactFree  = 1 << 20 // free bytes at least: not worth a copy below
	idleCompactEvery = time.Minute
)

// compactDue decides whether a file of fileBytes, free bytes of it in free
// pages and live bytes of records, should be compacted now. sinceIdle is the
// time since the last compaction taken through the idle rule.
func compactDue(cfg Config, free, fileBytes, live int64, sinceIdle time.Duration) (due, idle bool) {
	if cfg.CompactFreeBytes == 0 && cfg.CompactFreeRatio == 0 {
		return false, false // automatic compaction off
	}
	if float64(free) < cfg.CompactFreeRatio*float64(fileBytes) {
		return false, false
	}
	if free >= cfg.CompactFreeBytes {
		return true, false
	}
	if live <= idleCompactLive && free >= idleCompactFree && sinceIdle >= idleCompactEvery {
		return true, true
	}
	return false, false
}

func (q *Queue) maybeCompact() {
	if q.cfg.CompactFreeBytes == 0 && q.cfg.CompactFreeRatio == 0 {
		return
	}
	if time.Now().Before(q.compactRetry) {
		return // the last one failed (disk full, too slow): do not hammer the disk
	}
	q.dbMu.RLock()
	free := int64(q.db.Stats().FreeAlloc) // free and pending pages
	q.dbMu.RUnlock()
	fi, err := os.Stat(q.cfg.Path)
	if err != nil {
		return
	}
	q.mu.Lock()
	live := q.bytes
	q.mu.Unlock()
	due, idle := compactDue(q.cfg, free, fi.Size(), live, time.Since(q.lastIdleCompact))
	if !due {
		return
	}
	if err := q.compact(); err != nil {
		q.compactRetry = time.Now().Add(time.Minute)
		return
	}
	if idle {
		q.lastIdleCompact = time.Now()
	}
}

// compact runs on the commit loop: no write transaction can run meanwhile,
// so a read transaction's view is the whole truth.
func (q *Queue) compact() error {
	start := time.Now()
	deadline := start.Add(q.cfg.CompactTimeout)
	path := q.cfg.Path
	tmp := path + ".compact"
	_ = os.Remove(tmp)
	before, _ := os.Stat(path)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second, NoSync: true, NoFreelistSync: true,
		FreelistType: bolt.FreelistMapType, PageSize: q.pageSize})
	if err != nil {
		q.logger.Warn("buffer: compaction skipped", "err", err)
		return err
	}
	var copied int
	q.dbMu.RLock()
	err = q.db.View(func(stx *bolt.Tx) error {
		for _, name := range [][]byte{bucketBatches, bucketQuarantine} {
			src := stx.Bucket(name)
			dtx, err := dst.Begin(true)
			if err != nil {
				return err
			}
			b, err := dtx.CreateBucketIfNotExists(name)
			if err != nil {
				_ = dtx.Rollback()
				return err
			}
			if err := b.SetSequence(src.Sequence()); err != nil {
				_ = dtx.Rollback()
				return err
			}
			b.FillPercent = 1 // copied in key order: pages can be full
			size := 0
			c := src.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if err := b.Put(k, v); err != nil {
					_ = dtx.Rollback()
					return err
				}
				copied++
				size += len(k) + len(v)
				if size > 16<<20 {
					if time.Now().After(deadline) {
						_ = dtx.Rollback()
						return ErrCompactTimeout
					}
					if err := dtx.Commit(); err != nil {
						return err
					}
					if dtx, err = dst.Begin(true); err != nil {
						return err
					}
					b = dtx.Bucket(name)
					b.FillPercent = 1
					size = 0
				}
			}
			if time.Now().After(deadline) {
				_ = dtx.Rollback()
				return ErrCompactTimeout
			}
			if err := dtx.Commit(); err != nil {
				return err
			}
		}
		return nil
	})
	q.dbMu.RUnlock()
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		q.logger.Warn("buffer: compaction abandoned; the file stays as it is", "err", err, "took", time.Since(start).Round(time.Millisecond))
		return err
	}

	if err := q.swapIn(tmp, path); err != nil {
		return err
	}
	after, _ := os.Stat(path)
	q.mu.Lock()
	q.stats.Compactions++
	q.mu.Unlock()
	q.m.compactions.Inc()
	var oldSize, newSize int64
	if before != nil {
		oldSize = before.Size()
	}
	if after != nil {
		newSize = after.Size()
	}
	q.logger.Info("buffer: compacted", "path", path, "batches", copied, "bytes_before", oldSize, "bytes_after", newSize,
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

// swapIn closes the file, renames tmp over it and reopens it. It holds dbMu
// but never mu (Next holds mu while it waits for dbMu).
func (q *Queue) swapIn(tmp, path string) error {
	q.dbMu.Lock()
	defer q.dbMu.Unlock()
	if err := q.db.Close(); err != nil {
		q.logger.Warn("buffer: closing the old file for compaction", "err", err)
	}
	renameErr := os.Rename(tmp, path)
	if renameErr == nil {
		syncDir(dirOf(path))
	} else {
		_ = os.Remove(tmp)
	}
	db, err := bolt.Open(path, 0o600, q.opts)
	if err != nil {
		q.logger.Error("buffer: reopening after compaction failed", "path", path, "err", err)
		return fmt.Errorf("buffer: reopen after compaction: %w", err)
	}
	q.db = db
	dropPageCache(db)
	if renameErr != nil {
		q.logger.Warn("buffer: compaction could not swap the file in", "err", renameErr)
		return renameErr
	}
	return nil
}

// dropPageCache tells the kernel this process no longer needs the file pages
// it has touched through bbolt's mmap (bbolt's freelist rebuild at open,
// drained batches): they stay in the page cache but stop counting in our RSS,
// which stays flat however large the backlog.
func dropPageCache(db *bolt.DB) {
	_ = db.View(func(tx *bolt.Tx) error {
		dropMapped(tx)
		return nil
	})
}

// dropMapped must run inside a transaction: bbolt cannot remap meanwhile.
func dropMapped(tx *bolt.Tx) {
	madviseDontNeed(tx.DB().Info().Data, uintptr(tx.Size()))
}
