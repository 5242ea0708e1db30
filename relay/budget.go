package relay

import (
	"context"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// budget bounds bytes held by batches between reading and Kafka's ack.
type budget struct {
	sem     *semaphore.Weighted
	size    int64
	used    atomic.Int64
	waiting atomic.Int64 // acquirers blocked: the budget is exhausted
}

func newBudget(size int64) *budget {
	return &budget{sem: semaphore.NewWeighted(size), size: size}
}

// acquire blocks until n bytes are free (n is capped at the budget's size,
// so one huge batch can always pass alone). It returns the amount taken,
// which release must be given back.
func (b *budget) acquire(ctx context.Context, n int64) (int64, error) {
	n = min(max(n, 1), b.size)
	if !b.sem.TryAcquire(n) {
		b.waiting.Add(1)
		err := b.sem.Acquire(ctx, n)
		b.waiting.Add(-1)
		if err != nil {
			return 0, err
		}
	}
	b.used.Add(n)
	return n, nil
}

func (b *budget) release(n int64) {
	if n <= 0 {
		return
	}
	b.used.Add(-n)
	b.sem.Release(n)
}
