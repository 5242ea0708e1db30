package buffer

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// FileReport describes a buffer file, as `falconet buffer inspect|verify` print it.
type FileReport struct {
	Path           string    `json:"path"`
	FileBytes      int64     `json:"file_bytes"`
	PageSize       int       `json:"page_size"`
	Pages          uint64    `json:"pages"`      // high water mark
	FreePages      int64     `json:"free_pages"` // pages no tree references: reusable, reclaimed by compaction
	Batches        int       `json:"batches"`
	Metrics        int64     `json:"metrics"`
	Bytes          int64     `json:"bytes"`
	Quarantined    int       `json:"quarantined"`
	FirstSeq       uint64    `json:"first_seq"`
	LastSeq        uint64    `json:"last_seq"`
	OldestAppended time.Time `json:"oldest_appended,omitzero"`
	NewestAppended time.Time `json:"newest_appended,omitzero"`
	// OldestMetric and NewestMetric are the earliest and the latest metric
	// timestamp in the whole file (every batch's payload is decoded): a
	// replayed or late metric can be older than anything in the oldest
	// batch. Zero when no payload decodes.
	OldestMetric time.Time `json:"oldest_metric,omitzero"`
	NewestMetric time.Time `json:"newest_metric,omitzero"`
	// Problems lists what is wrong (Verify reads everything; Inspect only the structure).
	Problems []string `json:"problems,omitempty"`
}

// Inspect reads a buffer file's structure, counts and metric times without
// checking every checksum. It takes bbolt's lock shared and fails with ErrLocked after
// timeout while an agent has the file open. A damaged file gives a report
// with Problems and an ErrCorrupt error.
func Inspect(path string, timeout time.Duration) (*FileReport, error) {
	return examine(path, timeout, false)
}

// Verify is Inspect plus every record's checksum and every payload decoded.
// It returns an ErrCorrupt error when anything is wrong.
func Verify(path string, timeout time.Duration) (*FileReport, error) {
	return examine(path, timeout, true)
}

func examine(path string, timeout time.Duration, full bool) (*FileReport, error) {
	fr := &FileReport{Path: path}
	fi, err := os.Stat(path)
	if err != nil {
		return fr, err
	}
	fr.FileBytes = fi.Size()
	f, err := lockFile(path, false, timeout)
	if err != nil {
		return fr, err
	}
	defer unlockFile(f)
	// Both decode every payload, for the true oldest and newest metric times;
	// only Verify checks checksums and counts.
	w := func() (*fileReport, error) { return walkFile(f, full, true) }
	var rep *fileReport
	err = guarded(func() error {
		var err error
		rep, err = w()
		return err
	})
	if rep != nil {
		fr.PageSize = int(rep.meta.pageSize)
		fr.Pages = rep.meta.pgid
		if err == nil {
			fr.FreePages = int64(rep.meta.pgid) - int64(rep.pages)
		}
		fr.Batches, fr.Metrics, fr.Bytes = rep.batches, rep.metrics, rep.bytes
		fr.Quarantined = rep.quarantined
		fr.FirstSeq, fr.LastSeq = rep.firstSeq, max(rep.lastSeq, rep.sequence)
		fr.OldestAppended = appendedAt(rep.firstVal)
		fr.NewestAppended = appendedAt(rep.lastVal)
		if rep.timesKnown {
			fr.OldestMetric, fr.NewestMetric = time.Unix(rep.oldestTS, 0).UTC(), time.Unix(rep.newestTS, 0).UTC()
		}
		if !rep.hasBatches && len(rep.otherBuckets) > 0 {
			fr.Problems = append(fr.Problems, fmt.Sprintf("not a falconet buffer: buckets %q and no %q", rep.otherBuckets, bucketBatches))
		}
		if len(rep.bad) > 0 {
			fr.Problems = append(fr.Problems, fmt.Sprintf("%d batches fail their checksum or do not decode (seqs %v)", len(rep.bad), head(rep.bad, 10)))
			fr.Problems = append(fr.Problems, rep.badErrs...)
		}
	}
	if err != nil {
		fr.Problems = append([]string{err.Error()}, fr.Problems...)
		return fr, err
	}
	if len(fr.Problems) > 0 {
		return fr, fmt.Errorf("%w: %s", ErrCorrupt, fr.Problems[0])
	}
	return fr, nil
}

func head(s []uint64, n int) []uint64 {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// appendedAt returns the time a record was appended (zero if unknown).
func appendedAt(v []byte) time.Time {
	if v == nil {
		return time.Time{}
	}
	_, a, err := decodeRecordHeader(v)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(0, a).UTC()
}

// IsLocked reports whether err means another process holds the file.
func IsLocked(err error) bool { return errors.Is(err, ErrLocked) }
