package saver

import (
	"context"
	"sync"
	"time"
)

// partTracker follows the records of one claimed partition from receipt to
// "stored or dead-lettered", and reports the highest offset below which
// everything is done. Records complete in any order (several bulks in flight,
// item retries); the committable offset only moves over a done prefix.
type partTracker struct {
	mark func(next int64) // called with the next offset to read, in order, under mu

	mu      sync.Mutex
	headSeq uint64  // sequence number of offs[0]
	offs    []int64 // offsets not yet passed, in arrival order
	done    []bool
	nextSeq uint64
	pending int
	closed  bool
	changed chan struct{} // signalled (non-blocking) on every completion
	// position is the next offset not yet done (committable); -1 until
	// known.
	position int64
}

func newPartTracker(mark func(next int64)) *partTracker {
	return &partTracker{mark: mark, changed: make(chan struct{}, 1), position: -1}
}

// pos returns the next offset not yet done, or -1 if unknown.
func (t *partTracker) pos() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.offs) > 0 {
		return t.offs[0]
	}
	return t.position
}

// add registers a received record and returns its sequence number for done.
func (t *partTracker) add(offset int64) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	seq := t.nextSeq
	t.nextSeq++
	t.offs = append(t.offs, offset)
	t.done = append(t.done, false)
	t.pending++
	return seq
}

// complete marks the record seq done and moves the committable offset over
// the done prefix, calling mark with the new position. It is safe from any
// goroutine, also after close (then it only counts).
func (t *partTracker) complete(seq uint64) {
	t.mu.Lock()
	i := int(seq - t.headSeq)
	if seq < t.headSeq || i >= len(t.done) || t.done[i] {
		t.mu.Unlock()
		return
	}
	t.done[i] = true
	t.pending--
	n := 0
	for n < len(t.done) && t.done[n] {
		n++
	}
	var next int64 = -1
	if n > 0 {
		next = t.offs[n-1] + 1
		t.position = next
		t.offs = t.offs[n:]
		t.done = t.done[n:]
		t.headSeq += uint64(n)
		if cap(t.offs) > 4096 && len(t.offs) < cap(t.offs)/4 {
			t.offs = append([]int64(nil), t.offs...)
			t.done = append([]bool(nil), t.done...)
		}
	}
	// Marking under the lock keeps marks in order across goroutines; mark
	// (sarama's MarkOffset) never calls back into the tracker.
	if next >= 0 && !t.closed {
		t.mark(next)
	}
	t.mu.Unlock()
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// forget removes the record seq, which must be the last added and never
// handed on (the claim ended before it could be): it stays uncommitted.
func (t *partTracker) forget(seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := int(seq - t.headSeq)
	if seq != t.nextSeq-1 || seq < t.headSeq || i != len(t.offs)-1 || t.done[i] {
		return
	}
	t.offs, t.done = t.offs[:i], t.done[:i]
	t.nextSeq--
	t.pending--
}

// outstanding is the number of records received and not yet done.
func (t *partTracker) outstanding() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pending
}

// waitIdle waits until every received record is done, timeout passes or ctx
// ends; it reports whether the partition is idle.
func (t *partTracker) waitIdle(ctx context.Context, timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		if t.outstanding() == 0 {
			return true
		}
		select {
		case <-t.changed:
		case <-timer.C:
			return t.outstanding() == 0
		case <-ctx.Done():
			return t.outstanding() == 0
		}
	}
}

// close stops marking: the claim is over, a later completion must not touch
// the ended session.
func (t *partTracker) close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
}
