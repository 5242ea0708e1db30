package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/falconet/falconet/metric"
)

// memQueue is an in-memory Appender that decodes what it is given, so the
// test checks the real encoding.
type memQueue struct {
	mu      sync.Mutex
	batches [][]byte
	counts  []int
	failAt  int // fail the failAt-th append (1-based); 0 never
}

func (q *memQueue) Append(_ context.Context, payload []byte, n int) (uint64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failAt > 0 && len(q.batches)+1 == q.failAt {
		return 0, errors.New("buffer: disk full")
	}
	q.batches = append(q.batches, payload)
	q.counts = append(q.counts, n)
	return uint64(len(q.batches)), nil
}

func testMetrics(n int) []metric.Metric {
	ms := make([]metric.Metric, n)
	for i := range ms {
		ms[i] = metric.Metric{Endpoint: "h", Name: fmt.Sprintf("m.%d", i), Value: float64(i), Timestamp: 1_700_000_000, Step: 10,
			Tags: map[string]string{"k": "v"}}
	}
	return ms
}

func TestBufferSinkBatches(t *testing.T) {
	tests := []struct {
		n, max    int
		wantSizes []int
	}{
		{1, 1000, []int{1}},
		{1000, 1000, []int{1000}},
		{2500, 1000, []int{1000, 1000, 500}},
		{7, 3, []int{3, 3, 1}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d_by_%d", tt.n, tt.max), func(t *testing.T) {
			q := &memQueue{}
			metrics := NewMetrics(nil)
			s := NewBufferSink(q, tt.max, metrics)
			in := testMetrics(tt.n)
			if err := s.Write(context.Background(), in); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(q.counts) != fmt.Sprint(tt.wantSizes) {
				t.Fatalf("batch sizes %v, want %v", q.counts, tt.wantSizes)
			}
			var out []metric.Metric
			for i, b := range q.batches {
				got, err := metric.DecodeBatch(nil, b)
				if err != nil {
					t.Fatalf("batch %d: %v", i, err)
				}
				if len(got) != q.counts[i] {
					t.Errorf("batch %d holds %d metrics, Append was told %d", i, len(got), q.counts[i])
				}
				out = append(out, got...)
			}
			for i := range in {
				if in[i].DocID() != out[i].DocID() || in[i].Value != out[i].Value {
					t.Fatalf("metric %d: got %+v, want %+v", i, out[i], in[i])
				}
			}
			if got := counterValue(metrics.BufferMetrics); got != float64(tt.n) {
				t.Errorf("sink metrics counted %v, want %d", got, tt.n)
			}
		})
	}
}

func TestBufferSinkAppendError(t *testing.T) {
	q := &memQueue{failAt: 2}
	err := NewBufferSink(q, 10, nil).Write(context.Background(), testMetrics(25))
	if err == nil || len(q.batches) != 1 {
		t.Errorf("err %v, %d batches stored; want the append error after 1 batch", err, len(q.batches))
	}
}
