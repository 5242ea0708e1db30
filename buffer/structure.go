package buffer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/falconet/falconet/metric"
)

// The structure check walks a bbolt file's B+tree with plain reads, before
// bbolt maps it: bbolt trusts its pages, and on a damaged file it panics on
// a goroutine of its own (rebuilding the freelist at Open), which would take
// the agent down. The walk mirrors bbolt's own consistency check (page ids,
// page types, bounds, every page referenced once, key order) and, on the way,
// reads every record of the batches bucket.

const (
	branchPageFlag   = 0x01
	freelistPageFlag = 0x10
	branchElemSize   = 16
	maxTreeDepth     = 64
	noFreelist       = ^uint64(0)
	maxPageSpan      = 512 << 20 // one batch is at most max_bytes; refuse absurd spans
)

// fileReport is what a structure walk found.
type fileReport struct {
	meta         boltMeta
	hasBatches   bool // the batches bucket exists
	otherBuckets []string
	sequence     uint64 // the batches bucket's sequence
	batches      int
	metrics      int64
	bytes        int64
	bad          []uint64 // records failing their checksum
	badErrs      []string // the first few reasons
	quarantined  int
	pages        int    // reachable pages
	firstSeq     uint64 // of the batches bucket, 0 when empty
	lastSeq      uint64
	firstVal     []byte // the oldest and newest records (copies), for inspect
	lastVal      []byte
	// The earliest and latest metric timestamp in any batch (decode walks
	// only; timesKnown false otherwise): a replayed old metric can sit in a
	// newer batch.
	oldestTS, newestTS int64
	timesKnown         bool
}

type walker struct {
	r         io.ReaderAt
	size      int64
	ps        int64
	hwm       uint64
	reachable map[uint64]bool
	verifyCRC bool
	decode    bool // also decode every payload: verify checks it (with verifyCRC); both note metric times
	rep       *fileReport
}

// walkFile checks the structure of the bbolt file f and reads its records.
func walkFile(f *os.File, verifyCRC, decode bool) (*fileReport, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return walkReader(f, fi.Size(), f.Name(), verifyCRC, decode)
}

// walkReader is walkFile on any ReaderAt of size bytes. It never panics.
func walkReader(r io.ReaderAt, size int64, name string, verifyCRC, decode bool) (*fileReport, error) {
	if size == 0 {
		return nil, corruptf("%s is empty (zero bytes)", name)
	}
	metas := readMetas(r)
	m, ok := metas.newest()
	if !ok {
		return nil, corruptf("%s has no valid bbolt meta page (not a bbolt file, or its header is damaged)", name)
	}
	if need := int64(m.pgid) * int64(m.pageSize); size < need || need < 0 || m.pgid > 1<<40 {
		return nil, corruptf("%s is truncated: %d bytes, its meta page needs %d", name, size, need)
	}
	f := struct{ name string }{name}
	w := &walker{r: r, size: size, ps: int64(m.pageSize), hwm: m.pgid, reachable: map[uint64]bool{},
		verifyCRC: verifyCRC, decode: decode, rep: &fileReport{meta: m}}
	w.reachable[0], w.reachable[1] = true, true
	if m.freelist != noFreelist {
		if err := w.checkFreelist(m.freelist); err != nil {
			return w.rep, corruptf("%s: %v", f.name, err)
		}
	}
	if _, err := w.tree(m.root, nil, nil, 0, "root"); err != nil {
		return w.rep, corruptf("%s: %v", f.name, err)
	}
	w.rep.pages = len(w.reachable)
	if p := metas.problem(); p != "" {
		// The tree bbolt would use is sound, but it may be older than the
		// last commit: report it; Open salvages every record on disk.
		return w.rep, corruptf("%s: %s", f.name, p)
	}
	return w.rep, nil
}

// page reads page id with its overflow, checking id, type and bounds.
func (w *walker) page(id uint64) ([]byte, error) {
	if id < 2 || id >= w.hwm {
		return nil, fmt.Errorf("page %d out of bounds (high water mark %d)", id, w.hwm)
	}
	var hdr [pageHeaderSize]byte
	if _, err := w.r.ReadAt(hdr[:], int64(id)*w.ps); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	if got := binary.LittleEndian.Uint64(hdr[:]); got != id {
		return nil, fmt.Errorf("page %d identifies itself as %d", id, got)
	}
	overflow := uint64(binary.LittleEndian.Uint32(hdr[12:]))
	if id+overflow >= w.hwm || int64(id+overflow+1)*w.ps > w.size || int64(overflow)*w.ps > maxPageSpan {
		return nil, fmt.Errorf("page %d: overflow %d past the end", id, overflow)
	}
	for i := id; i <= id+overflow; i++ {
		if w.reachable[i] {
			return nil, fmt.Errorf("page %d: multiple references", i)
		}
		w.reachable[i] = true
	}
	buf := make([]byte, int64(overflow+1)*w.ps)
	if _, err := w.r.ReadAt(buf, int64(id)*w.ps); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	return buf, nil
}

func (w *walker) checkFreelist(id uint64) error {
	p, err := w.page(id)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	if binary.LittleEndian.Uint16(p[8:]) != freelistPageFlag {
		return fmt.Errorf("freelist page %d has flags %#x", id, binary.LittleEndian.Uint16(p[8:]))
	}
	count, off := uint64(binary.LittleEndian.Uint16(p[10:])), uint64(pageHeaderSize)
	if count == 0xFFFF {
		count, off = binary.LittleEndian.Uint64(p[pageHeaderSize:]), pageHeaderSize+8
	}
	if off+count*8 > uint64(len(p)) {
		return fmt.Errorf("freelist page %d: %d ids do not fit", id, count)
	}
	return nil
}

// tree walks the B+tree rooted at page id; keys must lie in [min, maxOpen).
// It returns the largest key seen.
func (w *walker) tree(id uint64, minKey, maxOpen []byte, depth int, bucket string) ([]byte, error) {
	if depth > maxTreeDepth {
		return nil, fmt.Errorf("page %d: tree deeper than %d", id, maxTreeDepth)
	}
	p, err := w.page(id)
	if err != nil {
		return nil, err
	}
	return w.node(p, id, minKey, maxOpen, depth, bucket)
}

func (w *walker) node(p []byte, id uint64, minKey, maxOpen []byte, depth int, bucket string) ([]byte, error) {
	flags := binary.LittleEndian.Uint16(p[8:])
	count := int(binary.LittleEndian.Uint16(p[10:]))
	switch flags {
	case branchPageFlag:
		if count == 0 {
			return nil, fmt.Errorf("branch page %d is empty", id)
		}
		type elem struct {
			key   []byte
			child uint64
		}
		elems := make([]elem, count)
		for i := range elems {
			e := pageHeaderSize + i*branchElemSize
			if e+branchElemSize > len(p) {
				return nil, fmt.Errorf("branch page %d: element %d past the page", id, i)
			}
			pos := int64(binary.LittleEndian.Uint32(p[e:]))
			ksize := int64(binary.LittleEndian.Uint32(p[e+4:]))
			ks := int64(e) + pos
			if ks+ksize > int64(len(p)) {
				return nil, fmt.Errorf("branch page %d: key %d past the page", id, i)
			}
			elems[i] = elem{key: p[ks : ks+ksize], child: binary.LittleEndian.Uint64(p[e+8:])}
		}
		running := minKey
		var maxSeen []byte
		for i, el := range elems {
			if err := keyOrder(id, i, el.key, running, maxOpen); err != nil {
				return nil, err
			}
			next := maxOpen
			if i < len(elems)-1 {
				next = elems[i+1].key
			}
			m, err := w.tree(el.child, el.key, next, depth+1, bucket)
			if err != nil {
				return nil, err
			}
			maxSeen, running = m, m
		}
		return maxSeen, nil
	case leafPageFlag:
		running := minKey
		for i := range count {
			e := pageHeaderSize + i*leafElemSize
			if e+leafElemSize > len(p) {
				return nil, fmt.Errorf("leaf page %d: element %d past the page", id, i)
			}
			eflags := binary.LittleEndian.Uint32(p[e:])
			pos := int64(binary.LittleEndian.Uint32(p[e+4:]))
			ksize := int64(binary.LittleEndian.Uint32(p[e+8:]))
			vsize := int64(binary.LittleEndian.Uint32(p[e+12:]))
			ks := int64(e) + pos
			if ks+ksize+vsize > int64(len(p)) {
				return nil, fmt.Errorf("leaf page %d: element %d past the page", id, i)
			}
			k, v := p[ks:ks+ksize], p[ks+ksize:ks+ksize+vsize]
			if err := keyOrder(id, i, k, running, maxOpen); err != nil {
				return nil, err
			}
			running = k
			if eflags&bucketLeafFlag != 0 {
				if err := w.bucket(k, v, depth, bucket); err != nil {
					return nil, err
				}
				continue
			}
			w.record(bucket, k, v)
		}
		return running, nil
	}
	return nil, fmt.Errorf("page %d: unexpected type %#x", id, flags)
}

func keyOrder(id uint64, i int, key, prev, maxOpen []byte) error {
	if prev != nil {
		c := bytes.Compare(prev, key)
		if (i == 0 && c > 0) || (i > 0 && c >= 0) {
			return fmt.Errorf("page %d: key %d (%x) out of order after %x", id, i, key, prev)
		}
	}
	if maxOpen != nil && bytes.Compare(key, maxOpen) >= 0 {
		return fmt.Errorf("page %d: key %d (%x) not below the parent's next key %x", id, i, key, maxOpen)
	}
	return nil
}

// bucket follows a bucket entry: a 16-byte header (root page, sequence), then
// an inline page if root is 0.
func (w *walker) bucket(name, v []byte, depth int, parent string) error {
	if len(v) < 16 {
		return fmt.Errorf("bucket %q: header of %d bytes", name, len(v))
	}
	path := string(name)
	if parent != "root" {
		path = parent + "/" + path
	}
	if parent == "root" {
		switch {
		case bytes.Equal(name, bucketBatches):
			w.rep.hasBatches = true
			w.rep.sequence = binary.LittleEndian.Uint64(v[8:])
		case bytes.Equal(name, bucketQuarantine):
		default:
			w.rep.otherBuckets = append(w.rep.otherBuckets, string(name))
		}
	}
	root := binary.LittleEndian.Uint64(v)
	if root == 0 {
		inline := v[16:]
		if len(inline) < pageHeaderSize || binary.LittleEndian.Uint16(inline[8:]) != leafPageFlag {
			return fmt.Errorf("bucket %q: bad inline page", name)
		}
		_, err := w.node(inline, 0, nil, nil, depth+1, path)
		return err
	}
	_, err := w.tree(root, nil, nil, depth+1, path)
	return err
}

func (w *walker) record(bucket string, k, v []byte) {
	switch bucket {
	case string(bucketQuarantine):
		w.rep.quarantined++
		return
	case string(bucketBatches):
	default:
		return
	}
	r := w.rep
	s, ok := keySeq(k)
	m, _, herr := decodeRecordHeader(v)
	if herr != nil {
		m = 0
	}
	r.batches++
	r.metrics += int64(m)
	r.bytes += int64(len(k) + len(v))
	if ok {
		if r.firstSeq == 0 {
			r.firstSeq, r.firstVal = s, bytes.Clone(v)
		}
		r.lastSeq, r.lastVal = s, v
	}
	bad := herr
	if bad == nil && (w.verifyCRC || !ok) {
		_, bad = decodeRecord(k, v)
	}
	if bad == nil && w.decode {
		ms, err := metric.DecodeBatch(nil, v[recordHeaderLen:])
		switch {
		case err != nil && w.verifyCRC:
			bad = fmt.Errorf("batch %d: %w", s, err)
		case err == nil && len(ms) != m && w.verifyCRC:
			bad = fmt.Errorf("batch %d: header says %d metrics, payload holds %d", s, m, len(ms))
		case err == nil:
			r.noteTimes(ms)
		}
	}
	if bad != nil {
		r.bad = append(r.bad, s)
		if len(r.badErrs) < 5 {
			r.badErrs = append(r.badErrs, bad.Error())
		}
	}
}

func (r *fileReport) noteTimes(ms []metric.Metric) {
	for _, m := range ms {
		if !r.timesKnown {
			r.oldestTS, r.newestTS, r.timesKnown = m.Timestamp, m.Timestamp, true
			continue
		}
		r.oldestTS, r.newestTS = min(r.oldestTS, m.Timestamp), max(r.newestTS, m.Timestamp)
	}
}

// lockFile takes bbolt's advisory lock (flock) on path, retrying until
// timeout; shared for readers. bbolt takes the same lock when it opens.
func lockFile(path string, exclusive bool, timeout time.Duration) (*os.File, error) {
	mode := os.O_RDWR
	how := syscall.LOCK_EX
	if !exclusive {
		mode, how = os.O_RDONLY, syscall.LOCK_SH
	}
	f, err := os.OpenFile(path, mode, 0)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			_ = f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("%w: %s", ErrLocked, path)
			}
			return nil, fmt.Errorf("buffer: lock %s: %w", path, err)
		}
		<-time.After(20 * time.Millisecond) // flock has no timeout of its own
	}
}

func unlockFile(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	_ = f.Close()
}
