package buffer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SalvageResult reports what a salvage recovered.
type SalvageResult struct {
	MovedTo string // where the corrupt file now is
	Batches int    // batches salvaged (checksum intact)
	Metrics int64
	Bad     int    // records found whose checksum failed: lost
	WalkErr string // why the index walk stopped early, if it did ("" when the index was read whole)
	RawScan bool   // the pages were scanned one by one because the index could not be walked
	// MetaDamage says what was wrong with the meta pages ("" if nothing):
	// the index walked was then possibly older than the last commit, and
	// the pages were scanned for the records appended after it.
	MetaDamage string
	Newer      int // batches found by that scan beyond the index (the commit bbolt had lost)
	LastSeq    uint64
	Duration   time.Duration
}

// salvageWriter puts salvaged records into the fresh file in chunks.
type salvageWriter struct {
	db      *bolt.DB
	pending map[uint64][]byte
	size    int
	res     *SalvageResult
	seen    map[uint64]bool
	err     error
}

func (w *salvageWriter) put(seq uint64, v []byte, metrics int) {
	if w.seen[seq] || w.err != nil {
		return
	}
	w.seen[seq] = true
	w.pending[seq] = bytes.Clone(v)
	w.size += len(v)
	w.res.Batches++
	w.res.Metrics += int64(metrics)
	w.res.LastSeq = max(w.res.LastSeq, seq)
	if w.size > 4<<20 {
		w.flush()
	}
}

func (w *salvageWriter) flush() {
	if w.err != nil || len(w.pending) == 0 {
		return
	}
	w.err = w.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBatches)
		for s, v := range w.pending {
			if err := b.Put(seqKey(s), v); err != nil {
				return err
			}
		}
		return nil
	})
	clear(w.pending)
	w.size = 0
}

// salvageFile copies every readable batch of the (corrupt) file at path into
// a fresh file, moves the corrupt one aside as PATH.corrupt-<time> and puts
// the fresh one in its place. If even the fresh file cannot be written, the
// corrupt file is still moved aside, so the queue can start empty.
func salvageFile(path string, opts *bolt.Options, logger *slog.Logger) (SalvageResult, error) {
	start := time.Now()
	res := SalvageResult{MovedTo: path + ".corrupt-" + start.UTC().Format("20060102T150405Z")}
	for i := 1; fileExists(res.MovedTo); i++ {
		res.MovedTo = fmt.Sprintf("%s.corrupt-%s-%d", path, start.UTC().Format("20060102T150405Z"), i)
	}
	tmp := path + ".salvage"
	_ = os.Remove(tmp)
	err := salvageInto(path, tmp, opts, &res)
	if err != nil {
		_ = os.Remove(tmp)
		logger.Error("buffer: salvage failed; starting with an empty buffer", "path", path, "err", err)
	}
	if rerr := os.Rename(path, res.MovedTo); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		_ = os.Remove(tmp)
		return res, fmt.Errorf("moving the corrupt file aside: %w", rerr)
	}
	if err == nil {
		if rerr := os.Rename(tmp, path); rerr != nil {
			return res, fmt.Errorf("putting the salvaged file in place: %w", rerr)
		}
	}
	syncDir(dirOf(path))
	res.Duration = time.Since(start)
	logger.Error("buffer: corrupt file moved aside; salvaged what could be read",
		"path", path, "moved_to", res.MovedTo, "salvaged_batches", res.Batches, "salvaged_metrics", res.Metrics,
		"lost_batches_checksum", res.Bad, "index_walk_error", res.WalkErr, "raw_page_scan", res.RawScan,
		"meta_damage", res.MetaDamage, "batches_beyond_index", res.Newer,
		"took", res.Duration.Round(time.Millisecond))
	return res, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

func salvageInto(path, tmp string, opts *bolt.Options, res *SalvageResult) error {
	// The queue's page size (32 KiB for the agent), so a salvaged file is
	// laid out like every other buffer file.
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second, NoSync: true, NoFreelistSync: true,
		FreelistType: bolt.FreelistMapType, PageSize: opts.PageSize})
	if err != nil {
		return err
	}
	defer dst.Close()
	if err := dst.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucket(bucketBatches); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketQuarantine)
		return err
	}); err != nil {
		return err
	}
	w := &salvageWriter{db: dst, pending: map[uint64][]byte{}, seen: map[uint64]bool{}, res: res}
	res.MetaDamage = metaProblemFile(path)
	oldSeq, walkErr := walkIndex(path, opts, w)
	switch {
	case walkErr != nil:
		res.WalkErr = walkErr.Error()
		res.RawScan = true
		if err := guarded(func() error { return rawScanFile(path, w, 0) }); err != nil && res.WalkErr != "" {
			res.WalkErr += "; raw scan: " + err.Error()
		}
	case res.MetaDamage != "":
		// bbolt read the tree of the older meta page. The commits after it
		// wrote their records to pages that are still on disk: take every
		// record newer than anything that tree knew. Older records missing
		// from the tree were acked long ago and stay gone.
		floor := max(oldSeq, res.LastSeq)
		before := res.Batches
		res.RawScan = true
		if err := guarded(func() error { return rawScanFile(path, w, floor) }); err != nil {
			res.WalkErr = "raw scan: " + err.Error()
		}
		res.Newer = res.Batches - before
	}
	w.flush()
	if w.err != nil {
		return w.err
	}
	if err := dst.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBatches).SetSequence(max(oldSeq, res.LastSeq))
	}); err != nil {
		return err
	}
	if err := dst.Sync(); err != nil {
		return err
	}
	return dst.Close()
}

// walkIndex reads the batches through bbolt's index. It stops at the first
// fault, panic or out-of-order key and returns why.
func walkIndex(path string, opts *bolt.Options, w *salvageWriter) (seq uint64, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	if fi.Size() == 0 {
		return 0, errors.New("empty file")
	}
	if _, err := checkMeta(path, fi.Size()); err != nil {
		return 0, err
	}
	maxItems := fi.Size()/int64(keyLen+recordHeaderLen) + 1
	var src *bolt.DB
	err = guarded(func() error {
		var err error
		src, err = bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: 100 * time.Millisecond,
			NoFreelistSync: opts.NoFreelistSync, FreelistType: opts.FreelistType})
		return err
	})
	if err != nil {
		return 0, err
	}
	defer src.Close()
	err = guarded(func() error {
		return src.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketBatches)
			if b == nil {
				return fmt.Errorf("no %q bucket", bucketBatches)
			}
			seq = b.Sequence()
			c := b.Cursor()
			var prev uint64
			var n int64
			for k, v := c.First(); k != nil; k, v = c.Next() {
				n++
				s, ok := keySeq(k)
				if !ok || (n > 1 && s <= prev) || n > maxItems {
					return fmt.Errorf("index damaged near key %x", k)
				}
				prev = s
				rec, err := decodeRecord(k, v)
				if err != nil {
					w.res.Bad++
					continue
				}
				w.put(s, v, rec.metrics)
			}
			return nil
		})
	})
	return seq, err
}

// rawScanFile scans every page for records with a sequence above floor.
func rawScanFile(path string, w *salvageWriter, floor uint64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	sizes := candidatePageSizes
	if m, ok := readMeta(f); ok {
		sizes = []int64{int64(m.pageSize)}
	}
	// Without a meta page the page size is unknown: try each; pages read at
	// the wrong size fail the page-id check, records the checksum.
	for _, ps := range sizes {
		err := scanPages(f, fi.Size(), int(ps), func(seq uint64, v []byte, metrics int) {
			if seq > floor {
				w.put(seq, v, metrics)
			}
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// bbolt page layout: header id(8) flags(2) count(2) overflow(4); leaf
// elements flags(4) pos(4) ksize(4) vsize(4), pos relative to the element.
const (
	leafPageFlag   = 0x02
	bucketLeafFlag = 0x01
	leafElemSize   = 16
	maxScanSpan    = 64 << 20
)

// scanPages reads a bbolt file page by page without trusting its index and
// calls found for every leaf element that is a record with a valid checksum.
// It never panics and reads at most maxScanSpan bytes at a time.
func scanPages(r io.ReaderAt, size int64, pageSize int, found func(seq uint64, v []byte, metrics int)) error {
	if pageSize < pageHeaderSize+leafElemSize {
		return fmt.Errorf("page size %d too small", pageSize)
	}
	ps := int64(pageSize)
	hdr := make([]byte, pageHeaderSize)
	for pid := int64(2); (pid+1)*ps <= size; {
		if _, err := r.ReadAt(hdr, pid*ps); err != nil {
			return err
		}
		id := binary.LittleEndian.Uint64(hdr[0:])
		flags := binary.LittleEndian.Uint16(hdr[8:])
		overflow := int64(binary.LittleEndian.Uint32(hdr[12:]))
		if flags&leafPageFlag == 0 || id != uint64(pid) {
			pid++
			continue
		}
		span := overflow + 1
		if (pid+span)*ps > size {
			span = size/ps - pid
		}
		if span*ps > maxScanSpan {
			span = maxScanSpan / ps
		}
		buf := make([]byte, span*ps)
		if _, err := r.ReadAt(buf, pid*ps); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		scanLeaf(buf, found, 0)
		pid += span
	}
	return nil
}

// scanLeaf reads the elements of one leaf page (with its overflow) held in p.
func scanLeaf(p []byte, found func(seq uint64, v []byte, metrics int), depth int) {
	if len(p) < pageHeaderSize {
		return
	}
	count := int(binary.LittleEndian.Uint16(p[10:]))
	for i := range count {
		e := pageHeaderSize + i*leafElemSize
		if e+leafElemSize > len(p) {
			return
		}
		flags := binary.LittleEndian.Uint32(p[e:])
		pos := int64(binary.LittleEndian.Uint32(p[e+4:]))
		ksize := int64(binary.LittleEndian.Uint32(p[e+8:]))
		vsize := int64(binary.LittleEndian.Uint32(p[e+12:]))
		ks := int64(e) + pos
		if ks+ksize+vsize > int64(len(p)) {
			continue
		}
		k, v := p[ks:ks+ksize], p[ks+ksize:ks+ksize+vsize]
		if flags&bucketLeafFlag != 0 {
			// an inline bucket: 16-byte bucket header, then a page
			if depth == 0 && bytes.Equal(k, bucketBatches) && len(v) > 16 && binary.LittleEndian.Uint64(v) == 0 {
				scanLeaf(v[16:], found, depth+1)
			}
			continue
		}
		if ksize != keyLen {
			continue
		}
		if rec, err := decodeRecord(k, v); err == nil {
			found(rec.seq, v, rec.metrics)
		}
	}
}
