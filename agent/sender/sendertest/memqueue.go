// Package sendertest holds test helpers for the sender: an in-memory queue
// with buffer.Queue's semantics (for tests and benchmarks that must not
// depend on disk speed).
package sendertest

import (
	"context"
	"slices"
	"sync"

	"github.com/falconet/falconet/buffer"
	"github.com/falconet/falconet/metric"
)

// MemQueue is an in-memory sender.Queue: Next hands out batches that are not
// in flight, oldest first; Ack deletes; Nack makes batches available again.
type MemQueue struct {
	mu       sync.Mutex
	wake     chan struct{}
	seq      uint64
	stored   map[uint64]buffer.Batch
	ready    []uint64 // sorted
	inflight map[uint64]bool
	acked    int
	ackedM   int
	nacked   int
	handed   int
}

// NewMemQueue returns an empty queue.
func NewMemQueue() *MemQueue {
	return &MemQueue{wake: make(chan struct{}), stored: map[uint64]buffer.Batch{}, inflight: map[uint64]bool{}}
}

// Append encodes ms as one batch and returns its sequence number.
func (q *MemQueue) Append(ms []metric.Metric) (uint64, error) {
	p, err := metric.EncodeBatch(nil, ms)
	if err != nil {
		return 0, err
	}
	return q.AppendPayload(p, len(ms)), nil
}

// AppendPayload stores an already encoded batch.
func (q *MemQueue) AppendPayload(p []byte, metrics int) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	q.stored[q.seq] = buffer.Batch{Seq: q.seq, Payload: p, Metrics: metrics}
	q.ready = append(q.ready, q.seq)
	q.signal()
	return q.seq
}

func (q *MemQueue) signal() {
	close(q.wake)
	q.wake = make(chan struct{})
}

// Next implements sender.Queue.
func (q *MemQueue) Next(ctx context.Context, max int) ([]buffer.Batch, error) {
	for {
		q.mu.Lock()
		if len(q.ready) > 0 {
			n := min(max, len(q.ready))
			out := make([]buffer.Batch, 0, n)
			for _, s := range q.ready[:n] {
				out = append(out, q.stored[s])
				q.inflight[s] = true
			}
			q.ready = q.ready[n:]
			q.handed += n
			q.mu.Unlock()
			return out, nil
		}
		wake := q.wake
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wake:
		}
	}
}

// Ack implements sender.Queue.
func (q *MemQueue) Ack(seqs ...uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, s := range seqs {
		if b, ok := q.stored[s]; ok {
			q.acked++
			q.ackedM += b.Metrics
			delete(q.stored, s)
			delete(q.inflight, s)
		}
	}
	q.signal()
	return nil
}

// Nack implements sender.Queue.
func (q *MemQueue) Nack(seqs ...uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, s := range seqs {
		if q.inflight[s] {
			delete(q.inflight, s)
			q.ready = append(q.ready, s)
			q.nacked++
		}
	}
	slices.Sort(q.ready)
	q.signal()
}

// Stats is a snapshot of the queue's counters.
type Stats struct {
	Stored, InFlight, Acked, AckedMetrics, Nacked, HandedOut int
}

// Stats returns the counters.
func (q *MemQueue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return Stats{Stored: len(q.stored), InFlight: len(q.inflight), Acked: q.acked, AckedMetrics: q.ackedM, Nacked: q.nacked, HandedOut: q.handed}
}

// Empty reports whether every batch was acked.
func (q *MemQueue) Empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.stored) == 0
}
