package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// change is what one commit did, applied to the in-memory state only after
// the transaction is durable.
type change struct {
	batches    int
	metrics    int64
	bytes      int64
	dropped    []uint64 // seqs dropped for space or age
	dropB      uint64
	dropM      uint64
	acked      int
	appendedM  int64
	dropReason string
	quar       int
}

func (c *change) remove(v []byte) int {
	m, _, err := decodeRecordHeader(v)
	if err != nil {
		m = 0
	}
	c.batches--
	c.metrics -= int64(m)
	c.bytes -= int64(keyLen + len(v))
	return m
}

// loop is the single writer: it gathers appends, acks and quarantines into
// one transaction at a time.
func (q *Queue) loop() {
	defer close(q.loopDone)
	debug.SetPanicOnFault(true) // a fault in a damaged mmap becomes an error, not a crash
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastGroup := 1
	for {
		select {
		case <-q.stop:
			q.commitOnce(false)
			q.logDrops(true)
			return
		case <-tick.C:
			q.housekeeping()
			continue
		case reply := <-q.compactReq:
			q.commitOnce(false)
			reply <- q.compact()
			continue
		case <-q.wake:
		}
		if q.needRecover.Swap(false) {
			q.recoverInPlace(errors.New("a reader found the file damaged"))
		}
		if q.cfg.CommitWindow > 0 && lastGroup > 1 {
			q.linger(lastGroup)
		}
		if n := q.commitOnce(false); n > 0 {
			lastGroup = n
		}
	}
}

// linger waits up to CommitWindow for as many appends as the last group had.
func (q *Queue) linger(want int) {
	t := time.NewTimer(q.cfg.CommitWindow)
	defer t.Stop()
	for {
		q.mu.Lock()
		n := len(q.pending)
		q.mu.Unlock()
		if n >= want || n == 0 {
			return
		}
		select {
		case <-q.wake:
		case <-t.C:
			return
		case <-q.stop:
			return
		}
	}
}

func (q *Queue) housekeeping() {
	q.mu.Lock()
	last := q.lastSeq
	q.mu.Unlock()
	wallNow := q.observeClock(last)
	q.mu.Lock()
	memWaiting := len(q.mem) > 0
	q.mu.Unlock()
	if memWaiting || q.oldestTooOld(wallNow) {
		q.commitOnce(true)
	}
	q.logDrops(false)
	q.maybeCompact()
}

// commitOnce commits everything pending. It returns the number of appends
// committed.
func (q *Queue) commitOnce(force bool) (appended int) {
	q.mu.Lock()
	reqs, group := q.pending, q.group
	q.pending, q.group = nil, nil
	acks, quar := q.pendingAcks, q.quarantine
	q.pendingAcks, q.quarantine = nil, nil
	mem := q.mem
	seq := q.lastSeq
	stored := q.bytes - q.memBytes
	q.mu.Unlock()
	if len(reqs) == 0 && len(acks) == 0 && len(quar) == 0 && len(mem) == 0 && !force {
		return 0
	}
	var addBytes int64
	// One wall reading for the step check, the stamps and max_age: a step
	// then falls between seq and the batches below, never inside this commit.
	wallNow := q.observeClock(seq)
	stamp := wallNow
	for _, r := range reqs {
		seq++
		r.seq = seq
		binary.LittleEndian.PutUint64(r.value[9:], uint64(stamp))
		binary.LittleEndian.PutUint32(r.value, recordCRC(seq, r.value))
		addBytes += int64(keyLen + len(r.value))
	}
	var memBytes int64
	for _, r := range mem {
		memBytes += int64(keyLen + len(r.value))
	}
	var ch change
	start := time.Now()
	txn := func(tx *bolt.Tx) error {
		ch = change{}
		b := tx.Bucket(bucketBatches)
		b.FillPercent = fillPercent
		for _, r := range mem {
			if err := b.Put(seqKey(r.seq), r.value); err != nil {
				return err
			}
		}
		for _, r := range reqs {
			if err := b.Put(seqKey(r.seq), r.value); err != nil {
				return err
			}
			ch.batches++
			m, _, _ := decodeRecordHeader(r.value)
			ch.metrics += int64(m)
			ch.appendedM += int64(m)
			ch.bytes += int64(keyLen + len(r.value))
		}
		if seq > b.Sequence() {
			if err := b.SetSequence(seq); err != nil {
				return err
			}
		}
		for _, s := range acks {
			if v := b.Get(seqKey(s)); v != nil {
				ch.remove(v)
				ch.acked++
				if err := b.Delete(seqKey(s)); err != nil {
					return err
				}
			}
		}
		if len(quar) > 0 {
			if err := q.moveToQuarantine(tx, b, quar, &ch); err != nil {
				return err
			}
		}
		// drop the oldest over the cap (the stored bytes include mem, flushed here)
		total := stored + memBytes + ch.bytes
		var cutoff int64
		var steps []clockStep
		if q.cfg.MaxAge > 0 {
			cutoff = wallNow - int64(q.cfg.MaxAge)
			steps = q.clockStepsNow()
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.First() {
			over := total > q.cfg.MaxBytes
			if over {
				ch.dropReason = "max_bytes"
			} else if cutoff != 0 {
				_, appended, err := decodeRecordHeader(v)
				s, _ := keySeq(k)
				over = err == nil && inFrame(steps, s, appended) < cutoff
				ch.dropReason = "max_age"
			}
			if !over {
				break
			}
			s, _ := keySeq(k)
			total -= int64(keyLen + len(v))
			ch.dropM += uint64(ch.remove(v))
			ch.dropB++
			ch.dropped = append(ch.dropped, s)
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	}
	err := q.update(txn)
	if errors.Is(err, ErrCorrupt) {
		q.recoverInPlace(err)
		err = q.update(txn)
	}
	if err != nil && isNoSpace(err) {
		q.mu.Lock()
		q.stats.DiskFullEvents++
		q.mu.Unlock()
		q.m.diskFull.Inc()
	}
	if err != nil && isNoSpace(err) && (len(reqs) > 0 || len(mem) > 0) {
		// Disk full: free the oldest batches (as much as we add, twice over)
		// in a delete-only transaction, then try again.
		if ferr := q.freeSpace(2 * (addBytes + memBytes)); ferr == nil {
			err = q.update(txn)
		}
	}
	q.m.commitSeconds.Observe(time.Since(start).Seconds())
	if err != nil && isNoSpace(err) {
		q.holdInMemory(reqs, seq, acks, quar, err)
		if group != nil {
			close(group.done)
		}
		return len(reqs)
	}
	if err != nil {
		q.logger.Error("buffer: commit failed", "err", err, "appends", len(reqs), "acks", len(acks))
		q.m.commitErrors.Inc()
		q.mu.Lock()
		// acks and quarantines are retried with the next commit
		q.pendingAcks = append(q.pendingAcks, acks...)
		q.quarantine = append(q.quarantine, quar...)
		q.mu.Unlock()
		if group != nil {
			group.err = fmt.Errorf("buffer: commit: %w", err)
			close(group.done)
		}
		return 0
	}
	q.m.commits.Inc()
	// bbolt reads the previous version of each page it rewrites through its
	// mmap: drop those pages from our RSS now and then.
	if q.writtenSinceDrop += addBytes; q.writtenSinceDrop > dropEvery {
		q.writtenSinceDrop = 0
		_ = q.view(func(tx *bolt.Tx) error { dropMapped(tx); return nil })
	}
	q.mu.Lock()
	if len(mem) > 0 {
		q.logger.Info("buffer: disk has space again; batches held in memory are now on disk", "batches", len(mem))
		q.mem, q.memBytes = nil, 0 // only this goroutine changes q.mem
	}
	q.diskFull = false
	q.lastSeq = seq
	q.batches += ch.batches
	q.metrics += ch.metrics
	q.bytes += ch.bytes
	for _, s := range acks {
		delete(q.skip, s)
	}
	for _, s := range quar {
		delete(q.skip, s)
	}
	for _, s := range ch.dropped {
		delete(q.inflight, s)
		delete(q.nacked, s)
	}
	q.noteDrops(ch.dropB, ch.dropM, ch.dropReason)
	q.stats.Quarantined += uint64(ch.quar)
	if len(reqs) > 0 {
		q.broadcast()
	}
	q.mu.Unlock()
	q.m.appendedBatches.Add(float64(len(reqs)))
	q.m.appendedMetrics.Add(float64(ch.appendedM))
	q.m.acked.Add(float64(ch.acked))
	q.m.quarantined.Add(float64(ch.quar))
	if group != nil {
		close(group.done)
	}
	return len(reqs)
}

func (q *Queue) update(fn func(*bolt.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: panic in commit: %v", ErrCorrupt, p)
		}
	}()
	q.dbMu.RLock()
	defer q.dbMu.RUnlock()
	return q.db.Update(fn)
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		strings.Contains(err.Error(), "no space left on device")
}

// freeSpace drops the oldest stored batches worth at least want bytes (and at
// least one batch), counted as drops.
func (q *Queue) freeSpace(want int64) error {
	var ch change
	err := q.update(func(tx *bolt.Tx) error {
		ch = change{}
		c := tx.Bucket(bucketBatches).Cursor()
		var freed int64
		for k, v := c.First(); k != nil && (freed < want || ch.dropB == 0); k, v = c.First() {
			s, _ := keySeq(k)
			freed += int64(keyLen + len(v))
			ch.dropM += uint64(ch.remove(v))
			ch.dropB++
			ch.dropped = append(ch.dropped, s)
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	q.mu.Lock()
	q.batches += ch.batches
	q.metrics += ch.metrics
	q.bytes += ch.bytes
	for _, s := range ch.dropped {
		delete(q.inflight, s)
		delete(q.nacked, s)
	}
	q.noteDrops(ch.dropB, ch.dropM, "disk full")
	q.mu.Unlock()
	return nil
}

// holdInMemory keeps the group's batches in memory when the disk is full,
// dropping the oldest held batches beyond buffer.memory_bytes.
func (q *Queue) holdInMemory(reqs []*appendReq, seq uint64, acks, quar []uint64, cause error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.diskFull {
		q.logger.Error("buffer: disk full; dropping oldest batches and keeping the newest in memory", "path", q.cfg.Path,
			"memory_bytes", q.cfg.MemoryBytes, "err", cause)
	}
	q.diskFull = true
	q.pendingAcks = append(q.pendingAcks, acks...)
	q.quarantine = append(q.quarantine, quar...)
	q.lastSeq = seq
	for _, r := range reqs {
		m, _, _ := decodeRecordHeader(r.value)
		q.mem = append(q.mem, memRecord{seq: r.seq, metrics: m, value: r.value})
		size := int64(keyLen + len(r.value))
		q.memBytes += size
		q.batches++
		q.metrics += int64(m)
		q.bytes += size
	}
	// batches acked while held in memory need not wait for the disk
	kept := q.mem[:0]
	for _, r := range q.mem {
		if _, acked := q.skip[r.seq]; acked {
			size := int64(keyLen + len(r.value))
			q.memBytes -= size
			q.batches--
			q.metrics -= int64(r.metrics)
			q.bytes -= size
			continue
		}
		kept = append(kept, r)
	}
	q.mem = kept
	var dropB, dropM uint64
	for q.memBytes > q.cfg.MemoryBytes && len(q.mem) > 1 {
		r := q.mem[0]
		q.mem = q.mem[1:]
		size := int64(keyLen + len(r.value))
		q.memBytes -= size
		q.batches--
		q.metrics -= int64(r.metrics)
		q.bytes -= size
		delete(q.inflight, r.seq)
		delete(q.nacked, r.seq)
		dropB++
		dropM += uint64(r.metrics)
	}
	q.noteDrops(dropB, dropM, "disk full")
	if len(reqs) > 0 {
		q.broadcast()
	}
}

// noteDrops counts drops. Called with q.mu held.
func (q *Queue) noteDrops(batches, metrics uint64, reason string) {
	if batches == 0 {
		return
	}
	q.stats.DroppedBatches += batches
	q.stats.DroppedMetrics += metrics
	q.m.droppedBatches.Add(float64(batches))
	q.m.droppedMetrics.Add(float64(metrics))
	q.dropLog.batches += batches
	q.dropLog.metrics += metrics
	q.dropLog.reason = reason
	if time.Since(q.dropLog.last) >= q.cfg.DropLogInterval {
		q.flushDropLog()
	}
}

// flushDropLog logs the drops since the last line. Called with q.mu held.
func (q *Queue) flushDropLog() {
	if q.dropLog.batches == 0 {
		return
	}
	q.logger.Warn("buffer: full; dropped oldest batches", "reason", q.dropLog.reason,
		"batches", q.dropLog.batches, "metrics", q.dropLog.metrics,
		"dropped_batches_total", q.stats.DroppedBatches, "dropped_metrics_total", q.stats.DroppedMetrics,
		"max_bytes", q.cfg.MaxBytes)
	q.dropLog.batches, q.dropLog.metrics = 0, 0
	q.dropLog.last = time.Now()
}

func (q *Queue) logDrops(final bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if final || time.Since(q.dropLog.last) >= q.cfg.DropLogInterval {
		q.flushDropLog()
	}
}

// moveToQuarantine moves records that failed their CRC into the quarantine
// bucket, keeping the newest maxQuarantined.
func (q *Queue) moveToQuarantine(tx *bolt.Tx, b *bolt.Bucket, seqs []uint64, ch *change) error {
	qb := tx.Bucket(bucketQuarantine)
	for _, s := range seqs {
		v := b.Get(seqKey(s))
		if v == nil {
			continue
		}
		ch.remove(v)
		ch.quar++
		if err := qb.Put(seqKey(s), append([]byte(nil), v...)); err != nil {
			return err
		}
		if err := b.Delete(seqKey(s)); err != nil {
			return err
		}
	}
	for qb.Stats().KeyN > maxQuarantined {
		k, _ := qb.Cursor().First()
		if k == nil {
			break
		}
		if err := qb.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// recoverInPlace handles a file found damaged while running: like Open, it
// moves the file aside, salvages what it can into a fresh one and carries on.
// In-flight batches stay in flight (salvage keeps sequence numbers).
func (q *Queue) recoverInPlace(cause error) {
	q.logger.Error("buffer: file damaged while running; moving it aside and salvaging", "path", q.cfg.Path, "err", cause)
	q.mu.Lock() // lock order: mu, then dbMu
	defer q.mu.Unlock()
	q.dbMu.Lock()
	defer q.dbMu.Unlock()
	_ = guarded(func() error { return q.db.Close() })
	res, err := salvageFile(q.cfg.Path, q.opts, q.logger)
	if err != nil {
		q.logger.Error("buffer: salvage failed", "err", err)
	}
	ld, err := q.openLoad()
	if err != nil {
		q.logger.Error("buffer: reopening after salvage failed; appends will fail until restart", "err", err)
		return
	}
	q.stats.Salvaged += res.Batches
	q.m.salvages.Inc()
	q.m.salvaged.Add(float64(res.Batches))
	q.lastSeq = max(q.lastSeq, ld.lastSeq)
	q.batches, q.metrics, q.bytes = ld.batches+len(q.mem), ld.metrics, ld.bytes+q.memBytes
	for _, r := range q.mem {
		q.metrics += int64(r.metrics)
	}
	for _, s := range ld.bad {
		q.skip[s] = struct{}{}
		q.quarantine = append(q.quarantine, s)
	}
	q.broadcast()
}

// oldestTooOld reports whether the oldest stored batch is past max_age.
func (q *Queue) oldestTooOld(wallNow int64) bool {
	if q.cfg.MaxAge <= 0 {
		return false
	}
	old := false
	steps := q.clockStepsNow()
	_ = q.view(func(tx *bolt.Tx) error {
		if k, v := tx.Bucket(bucketBatches).Cursor().First(); k != nil {
			_, appended, err := decodeRecordHeader(v)
			s, _ := keySeq(k)
			old = err == nil && time.Duration(wallNow-inFrame(steps, s, appended)) > q.cfg.MaxAge
		}
		return nil
	})
	return old
}

// view runs a read transaction on the loop goroutine, where faults are
// already panics; a panic becomes an ErrCorrupt error.
func (q *Queue) view(fn func(*bolt.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: panic in read: %v", ErrCorrupt, p)
		}
	}()
	q.dbMu.RLock()
	defer q.dbMu.RUnlock()
	return q.db.View(fn)
}
