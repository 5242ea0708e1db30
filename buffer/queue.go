package buffer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/falconet/falconet/metric"
)

// Sentinel errors.
var (
	ErrClosed   = errors.New("buffer: closed")
	ErrLocked   = errors.New("buffer: file is locked by another process (is the agent running?)")
	ErrTooLarge = errors.New("buffer: batch larger than buffer.max_bytes")
	ErrCorrupt  = errors.New("buffer: corrupt file")
)

var (
	bucketBatches    = []byte("batches")
	bucketQuarantine = []byte("quarantine")
)

// dropEvery: after handing out this many bytes, Next drops the mapped pages
// it read from our RSS.
const dropEvery = 32 << 20

// fillPercent: keys only ever grow, so pages can be filled (bbolt's default
// 0.5 leaves appended-to pages half empty).
const fillPercent = 0.95

// maxQuarantined bounds the quarantine bucket: the newest are kept.
const maxQuarantined = 100

// Modes reported by Stats.Mode and the falconet_buffer_mode metric.
const (
	ModeLive     = "live"
	ModeBackfill = "backfill"
)

// Stats is a snapshot of the queue.
type Stats struct {
	Batches int   // stored batches (on disk and, while the disk is full, in memory)
	Metrics int64 // metrics in them
	Bytes   int64 // record bytes, the quantity max_bytes caps
	// Oldest and Newest are the append times of the oldest and newest stored
	// batch; zero when empty.
	Oldest, Newest time.Time
	InFlight       int    // handed out by Next, not yet acked or nacked
	Mode           string // ModeLive or ModeBackfill
	BacklogBatches int    // in backfill mode: backlog batches not yet handed out (approximate)
	DroppedBatches uint64 // dropped by max_bytes, max_age or a full disk since Open
	DroppedMetrics uint64
	Quarantined    uint64 // batches whose checksum failed since Open
	DiskFull       bool   // the last commit failed for lack of space
	DiskFullEvents uint64 // commits that hit ENOSPC (or EDQUOT) since Open
	MemoryBatches  int    // batches held only in memory because the disk is full
	FileBytes      int64  // size of the bbolt file
	FreeBytes      int64  // bytes in free pages (compaction reclaims them)
	Compactions    uint64
	Salvaged       int // batches salvaged from a corrupt file at Open
	ClockSteps     int // wall-clock steps seen (clock.go)
	LastSeq        uint64
}

type appendReq struct {
	value []byte // record with the CRC not yet filled in
	seq   uint64
	group *commitGroup
}

type commitGroup struct {
	done chan struct{}
	err  error
}

// Queue is the durable batch queue. All methods are safe for concurrent use.
type Queue struct {
	cfg      Config
	logger   *slog.Logger
	m        *queueMetrics
	opts     *bolt.Options
	pageSize int

	dbMu sync.RWMutex // write-held only while the file is swapped (compaction)
	db   *bolt.DB

	wake        chan struct{} // to the commit loop
	needRecover atomic.Bool   // a reader found the file damaged
	compactReq  chan chan error
	stop        chan struct{} // closed by Close
	loopDone    chan struct{}
	closeOnce   sync.Once
	closeErr    error

	mu               sync.Mutex
	closed           bool
	notify           chan struct{} // closed and replaced when batches become available
	pending          []*appendReq
	group            *commitGroup
	pendingAcks      []uint64
	quarantine       []uint64            // seqs whose records failed their CRC
	skip             map[uint64]struct{} // acked or quarantined, delete not yet committed
	inflight         map[uint64]struct{}
	nacked           map[uint64]struct{}
	cursor           uint64 // next seq of the oldest-first stream
	liveFrom         uint64 // 0: live mode; else backfill and seqs >= liveFrom are live
	liveCursor       uint64
	tokens           float64
	tokensAt         time.Time
	lastSeq          uint64
	batches          int
	metrics          int64
	bytes            int64
	readSinceDrop    int       // payload bytes handed out since the last dropMapped
	compactRetry     time.Time // commit loop only: no automatic compaction before this
	lastIdleCompact  time.Time // commit loop only: the last compaction by the idle rule
	clockRefWall     int64     // commit loop only: wall and monotonic readings of the last clock check
	clockRefMono     time.Time
	clockSteps       []clockStep // wall-clock steps seen (under mu)
	writtenSinceDrop int64       // bytes committed since the last dropMapped (commit loop only)
	mem              []memRecord // the disk is full: newest batches, seq order
	memBytes         int64
	diskFull         bool
	stats            Stats // counters only: Dropped*, Quarantined, Compactions, Salvaged
	dropLog          struct {
		batches, metrics uint64
		reason           string
		last             time.Time
	}
}

type memRecord struct {
	seq     uint64
	metrics int
	value   []byte
}

// Open opens or creates the queue file. A file another process holds fails
// with ErrLocked after cfg.LockTimeout. A file that cannot be opened or fails
// its check is moved aside as PATH.corrupt-<time>, its readable batches are
// salvaged into a fresh file, and Open carries on. reg may be nil.
func Open(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	q := &Queue{
		cfg:        cfg,
		logger:     logger,
		wake:       make(chan struct{}, 1),
		compactReq: make(chan chan error),
		stop:       make(chan struct{}),
		loopDone:   make(chan struct{}),
		notify:     make(chan struct{}),
		skip:       map[uint64]struct{}{},
		inflight:   map[uint64]struct{}{},
		nacked:     map[uint64]struct{}{},
		opts: &bolt.Options{
			Timeout:        cfg.LockTimeout,
			NoFreelistSync: true,
			FreelistType:   bolt.FreelistMapType,
			NoSync:         cfg.NoSync,
			PageSize:       cfg.PageSize,
		},
	}
	if q.opts.Timeout == 0 {
		q.opts.Timeout = time.Millisecond // 0 means wait forever in bbolt
	}
	if err := os.MkdirAll(dirOf(cfg.Path), 0o750); err != nil {
		return nil, fmt.Errorf("buffer.path: %w", err)
	}
	ld, err := q.openLoad()
	salvaged := false
	if errors.Is(err, ErrCorrupt) {
		salvaged = true
		logger.Error("buffer file is corrupt; moving it aside and salvaging", "path", cfg.Path, "err", err)
		res, serr := salvageFile(cfg.Path, q.opts, logger)
		if serr != nil {
			return nil, fmt.Errorf("buffer: salvaging %s: %w", cfg.Path, serr)
		}
		q.stats.Salvaged = res.Batches
		ld, err = q.openLoad()
	}
	if err != nil {
		return nil, err
	}
	q.lastSeq = ld.lastSeq
	q.batches, q.metrics, q.bytes = ld.batches, ld.metrics, ld.bytes
	q.m = newQueueMetrics(q, reg)
	if salvaged {
		q.m.salvages.Inc()
		q.m.salvaged.Add(float64(q.stats.Salvaged))
	}
	if len(ld.bad) > 0 {
		logger.Warn("buffer: batches failed their checksum at open; quarantining", "batches", len(ld.bad))
		q.quarantine = append(q.quarantine, ld.bad...)
		for _, s := range ld.bad {
			q.skip[s] = struct{}{}
		}
	}
	logger.Info("buffer opened", "path", cfg.Path, "batches", q.batches, "metrics", q.metrics, "bytes", q.bytes, "last_seq", q.lastSeq)
	go q.loop()
	if len(q.quarantine) > 0 {
		q.kick()
	}
	return q, nil
}

func dirOf(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			if i == 0 {
				return "/"
			}
			return p[:i]
		}
	}
	return "."
}

func (q *Queue) kick() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// broadcast wakes every waiting Next. Call with q.mu held.
func (q *Queue) broadcast() {
	close(q.notify)
	q.notify = make(chan struct{})
}

// Append stores a batch (metric.EncodeBatch's output holding metrics metrics)
// and returns its sequence number once it is durable: written and fsynced in
// a group commit. If ctx ends first Append returns ctx.Err(), and the batch
// may still be stored. While the disk is full the batch is kept in memory
// (bounded by buffer.memory_bytes) and Append returns nil: see doc.go.
func (q *Queue) Append(ctx context.Context, payload []byte, metrics int) (uint64, error) {
	n, err := metric.BatchLen(payload)
	if err != nil {
		return 0, fmt.Errorf("buffer: append: %w", err)
	}
	if n != metrics {
		return 0, fmt.Errorf("buffer: append: payload holds %d metrics, caller says %d", n, metrics)
	}
	size := int64(keyLen + recordHeaderLen + len(payload))
	if size > q.cfg.MaxBytes {
		return 0, fmt.Errorf("%w: %d bytes, max %d", ErrTooLarge, size, q.cfg.MaxBytes)
	}
	v := make([]byte, recordHeaderLen+len(payload))
	v[4] = recordVersion
	binary.LittleEndian.PutUint32(v[5:], uint32(metrics))
	// the append time is stamped at commit, with the sequence (clock.go)
	copy(v[recordHeaderLen:], payload)
	r := &appendReq{value: v}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return 0, ErrClosed
	}
	if q.group == nil {
		q.group = &commitGroup{done: make(chan struct{})}
	}
	r.group = q.group
	q.pending = append(q.pending, r)
	q.mu.Unlock()
	q.kick()
	select {
	case <-r.group.done:
		if r.group.err != nil {
			return 0, r.group.err
		}
		return r.seq, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Ack deletes delivered batches. The deletes are grouped into the next
// commit; Close flushes them. Unknown or already acked seqs are ignored.
// Until a delete is durable a crash can deliver the batch again
// (at-least-once).
func (q *Queue) Ack(seqs ...uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	for _, s := range seqs {
		if _, dup := q.skip[s]; dup {
			continue
		}
		delete(q.inflight, s)
		delete(q.nacked, s)
		q.skip[s] = struct{}{}
		q.pendingAcks = append(q.pendingAcks, s)
	}
	if len(q.pendingAcks) > 0 {
		q.kick()
	}
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Nack hands in-flight batches back: the next Next delivers them again,
// before anything else. Seqs not in flight are ignored.
func (q *Queue) Nack(seqs ...uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, s := range seqs {
		if _, ok := q.inflight[s]; ok {
			delete(q.inflight, s)
			q.nacked[s] = struct{}{}
			n++
		}
	}
	if n > 0 && !q.closed {
		q.broadcast()
	}
}

// Next returns up to max batches not already handed out, blocking until there
// is at least one or ctx ends. It removes nothing: Ack deletes, Nack hands
// back. Order: nacked batches first; then, in live mode, oldest first; in
// backfill mode, live batches (appended since backfill began) first and the
// backlog oldest-first at buffer.backfill_rate.
func (q *Queue) Next(ctx context.Context, max int) ([]Batch, error) {
	if max <= 0 {
		max = 1
	}
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, ErrClosed
		}
		out, wait, err := q.collect(max)
		notify := q.notify
		q.mu.Unlock()
		if errors.Is(err, ErrCorrupt) {
			// the commit loop salvages the file and wakes us
			q.logger.Error("buffer: read failed; the file will be salvaged", "err", err)
			out, err = nil, nil
		}
		if err != nil {
			return nil, err
		}
		if len(out) > 0 {
			return out, nil
		}
		var timer *time.Timer
		var timeout <-chan time.Time
		if wait > 0 {
			timer = time.NewTimer(wait)
			timeout = timer.C
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-q.stop:
			err = ErrClosed
		case <-notify:
		case <-timeout:
		}
		if timer != nil {
			timer.Stop()
		}
		if err != nil {
			return nil, err
		}
	}
}

// collect gathers batches for Next. Called with q.mu held.
func (q *Queue) collect(max int) (out []Batch, wait time.Duration, err error) {
	q.dbMu.RLock()
	defer q.dbMu.RUnlock()
	// A file damaged under us must not take the caller down: a fault in the
	// mmap becomes a panic, the panic an error, and the commit loop salvages.
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if p := recover(); p != nil {
			out, wait = nil, 0
			err = corruptf("reading batches: %v", p)
			q.needRecover.Store(true)
			q.kick()
		}
	}()
	err = q.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBatches)
		// nacked first, oldest first
		if len(q.nacked) > 0 {
			seqs := make([]uint64, 0, len(q.nacked))
			for s := range q.nacked {
				seqs = append(seqs, s)
			}
			slices.Sort(seqs)
			for _, s := range seqs {
				if len(out) >= max {
					break
				}
				delete(q.nacked, s)
				if bt, ok := q.readOne(b, s); ok {
					out = append(out, bt)
				}
			}
		}
		now := time.Now()
		if q.liveFrom == 0 && q.cfg.LiveFirst && len(out) < max {
			if appended, ok := q.peekAppended(b, q.cursor); ok && q.wall().Sub(time.Unix(0, appended)) > q.cfg.LiveAfter {
				q.liveFrom = q.lastSeq + 1
				q.liveCursor = q.liveFrom
				q.tokens, q.tokensAt = 0, now
				q.logger.Info("buffer: backlog found; live batches first, backlog oldest-first",
					"backlog_batches", q.batches-len(q.inflight), "oldest", time.Unix(0, appended).UTC(), "backfill_rate", q.cfg.BackfillRate)
			}
		}
		if q.readSinceDrop > dropEvery {
			dropMapped(tx)
			q.readSinceDrop = 0
		}
		if q.liveFrom == 0 {
			out, q.cursor = q.scan(b, out, q.cursor, 0, max, nil)
			return nil
		}
		// backfill mode: live first
		out, q.liveCursor = q.scan(b, out, q.liveCursor, 0, max, nil)
		if len(out) < max {
			budget := func(int) bool { return true }
			if rate := float64(q.cfg.BackfillRate); rate > 0 {
				q.tokens = min(q.tokens+rate*now.Sub(q.tokensAt).Seconds(), rate)
				q.tokensAt = now
				budget = func(size int) bool {
					if q.tokens <= 0 {
						return false
					}
					q.tokens -= float64(size)
					return true
				}
			}
			out, q.cursor = q.scan(b, out, q.cursor, q.liveFrom, max, budget)
			if q.tokens <= 0 && q.cfg.BackfillRate > 0 {
				wait = time.Duration(-q.tokens/float64(q.cfg.BackfillRate)*float64(time.Second)) + time.Millisecond
			}
		}
		if q.readSinceDrop > dropEvery {
			dropMapped(tx)
			q.readSinceDrop = 0
		}
		if !q.hasBetween(b, q.cursor, q.liveFrom) {
			q.logger.Info("buffer: backlog drained; back to live mode")
			q.cursor = q.liveCursor
			q.liveFrom, q.liveCursor = 0, 0
			wait = 0
		}
		return nil
	})
	for _, bt := range out {
		q.inflight[bt.Seq] = struct{}{}
		q.readSinceDrop += len(bt.Payload)
	}
	return out, wait, err
}

// readOne reads one batch by seq (disk or memory). Called with q.mu held.
func (q *Queue) readOne(b *bolt.Bucket, s uint64) (Batch, bool) {
	if _, gone := q.skip[s]; gone {
		return Batch{}, false
	}
	if v := b.Get(seqKey(s)); v != nil {
		return q.toBatch(s, v)
	}
	if i, ok := slices.BinarySearchFunc(q.mem, s, func(r memRecord, s uint64) int { return cmpU64(r.seq, s) }); ok {
		return memBatch(q.mem[i]), true
	}
	return Batch{}, false
}

func memBatch(r memRecord) Batch {
	return Batch{Seq: r.seq, Payload: slices.Clone(r.value[recordHeaderLen:]), Metrics: r.metrics}
}

// toBatch decodes and copies a stored record; a record that fails its CRC is
// queued for quarantine and skipped.
func (q *Queue) toBatch(s uint64, v []byte) (Batch, bool) {
	rec, err := decodeRecord(seqKey(s), v)
	if err != nil {
		q.logger.Warn("buffer: batch failed its checksum; quarantined", "seq", s, "err", err)
		q.skip[s] = struct{}{}
		q.quarantine = append(q.quarantine, s)
		q.kick()
		return Batch{}, false
	}
	return Batch{Seq: s, Payload: slices.Clone(rec.payload), Metrics: rec.metrics}, true
}

// scan appends batches with seq in [from, until) (until 0: no bound) not in
// flight, up to max, and returns the position after the last one taken.
func (q *Queue) scan(b *bolt.Bucket, out []Batch, from, until uint64, max int, budget func(int) bool) ([]Batch, uint64) {
	c := b.Cursor()
	for k, v := c.Seek(seqKey(from)); k != nil && len(out) < max; k, v = c.Next() {
		s, _ := keySeq(k)
		if until != 0 && s >= until {
			return out, from
		}
		if _, busy := q.inflight[s]; busy {
			from = s + 1
			continue
		}
		if _, gone := q.skip[s]; gone {
			from = s + 1
			continue
		}
		if budget != nil && !budget(len(v)) {
			return out, from
		}
		from = s + 1
		if bt, ok := q.toBatch(s, v); ok {
			out = append(out, bt)
		}
	}
	for _, r := range q.mem {
		if len(out) >= max || (until != 0 && r.seq >= until) {
			break
		}
		if r.seq < from {
			continue
		}
		if _, busy := q.inflight[r.seq]; busy {
			from = r.seq + 1
			continue
		}
		if _, gone := q.skip[r.seq]; gone {
			from = r.seq + 1
			continue
		}
		if budget != nil && !budget(len(r.value)) {
			break
		}
		out = append(out, memBatch(r))
		from = r.seq + 1
	}
	return out, from
}

// peekAppended returns the append time of the first stored batch at or after
// seq that is not in flight.
func (q *Queue) peekAppended(b *bolt.Bucket, from uint64) (int64, bool) {
	c := b.Cursor()
	for k, v := c.Seek(seqKey(from)); k != nil; k, v = c.Next() {
		s, _ := keySeq(k)
		if _, busy := q.inflight[s]; busy {
			continue
		}
		if _, gone := q.skip[s]; gone {
			continue
		}
		_, appended, err := decodeRecordHeader(v)
		return q.appendedAt(s, appended), err == nil
	}
	return 0, false
}

// hasBetween reports whether a batch with seq in [from, until) waits, on
// disk or in memory.
func (q *Queue) hasBetween(b *bolt.Bucket, from, until uint64) bool {
	for _, r := range q.mem {
		if r.seq >= from && r.seq < until {
			_, busy := q.inflight[r.seq]
			_, gone := q.skip[r.seq]
			if !busy && !gone {
				return true
			}
		}
	}
	c := b.Cursor()
	for k, _ := c.Seek(seqKey(from)); k != nil; k, _ = c.Next() {
		s, _ := keySeq(k)
		if s >= until {
			return false
		}
		if _, busy := q.inflight[s]; busy {
			continue
		}
		if _, gone := q.skip[s]; gone {
			continue
		}
		return true
	}
	return false
}

// Stats returns a snapshot.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	st := q.stats
	st.Batches, st.Metrics, st.Bytes = q.batches, q.metrics, q.bytes
	st.InFlight = len(q.inflight)
	st.Mode = ModeLive
	st.DiskFull = q.diskFull
	st.MemoryBatches = len(q.mem)
	st.LastSeq = q.lastSeq
	closed := q.closed
	backfill := q.liveFrom != 0
	if backfill {
		st.Mode = ModeBackfill
	}
	liveFrom, cursor := q.liveFrom, q.cursor
	if len(q.mem) > 0 {
		r := q.mem[len(q.mem)-1]
		st.Newest = time.Unix(0, q.appendedAt(r.seq, int64(binary.LittleEndian.Uint64(r.value[9:]))))
	}
	steps := slices.Clone(q.clockSteps)
	q.mu.Unlock()
	if closed {
		return st
	}
	q.dbMu.RLock()
	defer q.dbMu.RUnlock()
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if p := recover(); p != nil {
			q.needRecover.Store(true)
			q.kick()
		}
	}()
	_ = q.db.View(func(tx *bolt.Tx) error {
		st.FileBytes = tx.Size()
		c := tx.Bucket(bucketBatches).Cursor()
		at := func(k []byte, a int64) time.Time {
			s, _ := keySeq(k)
			return time.Unix(0, inFrame(steps, s, a))
		}
		if k, v := c.First(); k != nil {
			if _, a, err := decodeRecordHeader(v); err == nil {
				st.Oldest = at(k, a)
			}
		}
		if k, v := c.Last(); k != nil && st.Newest.IsZero() {
			if _, a, err := decodeRecordHeader(v); err == nil {
				st.Newest = at(k, a)
			}
		}
		if backfill {
			for k, _ := c.Seek(seqKey(cursor)); k != nil; k, _ = c.Next() {
				if s, _ := keySeq(k); s >= liveFrom {
					break
				}
				st.BacklogBatches++
			}
		}
		return nil
	})
	if fi, err := os.Stat(q.cfg.Path); err == nil {
		st.FileBytes = fi.Size()
	}
	st.FreeBytes = int64(q.db.Stats().FreeAlloc) // free and pending pages
	return st
}

// Close flushes pending appends and acks, stops the commit loop and closes
// the file. It is idempotent.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		q.mu.Lock()
		q.closed = true
		close(q.stop)
		q.mu.Unlock()
		<-q.loopDone
		q.dbMu.Lock()
		q.closeErr = q.db.Close()
		q.dbMu.Unlock()
		q.m.unregister()
		q.mu.Lock()
		if len(q.mem) > 0 {
			q.logger.Error("buffer: closing with batches held only in memory (disk full); they are lost", "batches", len(q.mem))
		}
		q.mu.Unlock()
		q.logger.Info("buffer closed", "path", q.cfg.Path)
	})
	return q.closeErr
}
