package buffer

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var timeSince = time.Since

type loaded struct {
	lastSeq uint64
	batches int
	metrics int64
	bytes   int64
	bad     []uint64 // records that failed their CRC
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// guarded runs f on a goroutine where a memory fault (a damaged or truncated
// mmap) or a panic inside bbolt becomes an ErrCorrupt error.
func guarded(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		debug.SetPanicOnFault(true)
		defer func() {
			if p := recover(); p != nil {
				errc <- corruptf("reading the file failed: %v", p)
			}
		}()
		errc <- f()
	}()
	return <-errc
}

// openLoad opens the file (creating it if missing), checks it and counts its
// batches. It returns ErrLocked, an ErrCorrupt error, or another error.
func (q *Queue) openLoad() (loaded, error) {
	var ld loaded
	path := q.cfg.Path
	_, err := os.Stat(path)
	exists := err == nil
	if exists {
		lf, err := lockFile(path, true, q.opts.Timeout)
		if err != nil {
			return ld, err
		}
		rep, werr := walkFile(lf, q.cfg.VerifyOnOpen, false)
		unlockFile(lf)
		if rep != nil && rep.bytes > 64<<20 {
			debug.FreeOSMemory() // the walk read the whole file through short-lived buffers
		}
		if werr != nil {
			return ld, werr
		}
		if !rep.hasBatches && len(rep.otherBuckets) > 0 {
			return ld, corruptf("%s is a bbolt file of something else (buckets %q), not a falconet buffer", path, rep.otherBuckets)
		}
		ld.lastSeq = max(rep.sequence, rep.lastSeq)
		ld.batches, ld.metrics, ld.bytes, ld.bad = rep.batches, rep.metrics, rep.bytes, rep.bad
	}
	var db *bolt.DB
	err = guarded(func() error {
		var err error
		db, err = bolt.Open(path, 0o600, q.opts)
		return err
	})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return ld, fmt.Errorf("%w: %s", ErrLocked, path)
	case errors.Is(err, ErrCorrupt):
		return ld, err
	case err != nil && exists && !errors.Is(err, os.ErrPermission) && !isNoSpace(err):
		return ld, corruptf("bbolt cannot open %s: %v", path, err)
	case err != nil:
		return ld, fmt.Errorf("buffer: open %s: %w", path, err)
	}
	if err == nil {
		err = db.Update(func(tx *bolt.Tx) error {
			if _, err := tx.CreateBucketIfNotExists(bucketBatches); err != nil {
				return err
			}
			_, err := tx.CreateBucketIfNotExists(bucketQuarantine)
			return err
		})
		if err != nil && !isNoSpace(err) {
			err = corruptf("creating buckets: %v", err)
		}
	}
	if err != nil {
		_ = db.Close()
		return ld, err
	}
	q.db = db
	q.pageSize = db.Info().PageSize // no transaction runs yet: safe to read
	dropPageCache(db)
	return ld, nil
}
