package agent

import (
	"context"
	"fmt"

	"github.com/falconet/falconet/metric"
)

// Appender is the one method of the durable queue the agent writes through
// (buffer.Queue has it). Append returns after payload is durable.
type Appender interface {
	Append(ctx context.Context, payload []byte, metrics int) (seq uint64, err error)
}

// DefaultBatchMetrics is the default largest batch BufferSink appends.
const DefaultBatchMetrics = 1000

// BufferSink is the Sink in front of the durable queue: it cuts each Write
// into batches of at most maxBatch metrics, encodes each with
// metric.EncodeBatch (the bytes the buffer stores and the wire carries), and
// appends them. Write returns only after every Append returned, so a nil
// error means every metric is durable. A failed Append stops the Write;
// batches appended before it stay in the queue (a retry duplicates them,
// which the document ids make harmless).
type BufferSink struct {
	app      Appender
	maxBatch int
	metrics  *Metrics
}

// NewBufferSink returns a sink appending to app; maxBatch <= 0 means
// DefaultBatchMetrics.
func NewBufferSink(app Appender, maxBatch int, metrics *Metrics) *BufferSink {
	if maxBatch <= 0 {
		maxBatch = DefaultBatchMetrics
	}
	return &BufferSink{app: app, maxBatch: min(maxBatch, metric.MaxBatchMetrics), metrics: orNewMetrics(metrics)}
}

// Write implements Sink.
func (s *BufferSink) Write(ctx context.Context, ms []metric.Metric) error {
	for len(ms) > 0 {
		n := min(len(ms), s.maxBatch)
		// A fresh slice per batch: the queue may keep the payload until
		// its commit completes.
		payload, err := metric.EncodeBatch(make([]byte, 0, 64*n), ms[:n])
		if err != nil {
			return fmt.Errorf("agent: encode batch: %w", err)
		}
		if _, err := s.app.Append(ctx, payload, n); err != nil {
			return fmt.Errorf("agent: append batch: %w", err)
		}
		s.metrics.BufferBatches.Inc()
		s.metrics.BufferMetrics.Add(float64(n))
		ms = ms[n:]
	}
	return nil
}
