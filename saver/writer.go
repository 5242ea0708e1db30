package saver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
	"unsafe"

	"github.com/olivere/elastic/v7"
)

// ack is how a record reports that it is stored or dead-lettered.
type ack struct {
	tracker *partTracker
	seq     uint64
}

func (a ack) done() {
	if a.tracker != nil {
		a.tracker.complete(a.seq)
	}
}

// record is one Kafka record on its way to Elasticsearch or the DLQ.
type record struct {
	lines  []byte // bulk action + document lines (nil for DLQ-only records)
	docOff int    // where the document line starts in lines
	key    []byte // original Kafka key and value, for the dead-letter topic
	value  []byte
	source string // topic/partition/offset
	ts     int64  // the metric's timestamp (rollup late-data detection)
	ack    ack
}

// batch is one bulk request's worth of records; body holds their lines
// back to back.
type batch struct {
	body  []byte
	items []batchItem
}

type batchItem struct {
	start, docOff, end int // byte ranges in body
	rec                *record
}

// bulkLine implements elastic.BulkableRequest over bytes already encoded: the
// body is written once by the saver and never re-marshalled.
type bulkLine struct{ action, doc string }

func (l bulkLine) String() string            { return l.action + "\n" + l.doc }
func (l bulkLine) Source() ([]string, error) { return []string{l.action, l.doc}, nil }

// lines returns the item's action and document lines without their '\n'.
// The strings alias b.body, which is never modified after the batch is
// sealed.
func (b *batch) lines(i int) bulkLine {
	it := &b.items[i]
	s := unsafe.String(unsafe.SliceData(b.body), len(b.body))
	return bulkLine{action: s[it.start : it.docOff-1], doc: s[it.docOff : it.end-1]}
}

// writer batches records into bulk requests and runs them, at most
// MaxInFlight at a time.
type writer struct {
	cfg    *ElasticsearchConfig
	client *elastic.Client
	dlq    *deadLetters
	m      *metrics
	logger *slog.Logger
	// onStored, if set, is told the timestamps of each bulk's stored
	// documents (rollups watch for late data).
	onStored func(timestamps []int64)

	in    chan *record
	flush chan struct{}
	work  chan *batch

	healthMu     sync.Mutex
	failingSince time.Time // zero while bulks succeed
	lastErr      error
	loggedAt     time.Time // last "failing" log line (rate limit)
}

func newWriter(cfg *ElasticsearchConfig, client *elastic.Client, dlq *deadLetters, m *metrics, logger *slog.Logger) *writer {
	return &writer{
		cfg: cfg, client: client, dlq: dlq, m: m, logger: logger,
		in:    make(chan *record, cfg.BulkDocs),
		flush: make(chan struct{}, 1),
		work:  make(chan *batch),
	}
}

// submit hands a record to the batcher; it blocks while the writer is full
// (backpressure into the Kafka fetch) and gives up when ctx ends.
func (w *writer) submit(ctx context.Context, r *record) bool {
	select {
	case w.in <- r:
		return true
	case <-ctx.Done():
		return false
	}
}

// flushSoon asks the batcher to send what it holds now (shutdown,
// rebalance).
func (w *writer) flushSoon() {
	select {
	case w.flush <- struct{}{}:
	default:
	}
}

// run batches and writes until ctx ends. Records still held then are not
// acked: their offsets stay uncommitted and they are read again.
func (w *writer) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range w.cfg.MaxInFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case b := <-w.work:
					w.m.inflight.Inc()
					w.write(ctx, b)
					w.m.inflight.Dec()
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	w.batchLoop(ctx)
	wg.Wait()
}

func (w *writer) batchLoop(ctx context.Context) {
	maxBytes := int(w.cfg.BulkBytes)
	cur := &batch{}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	timerOn := false
	send := func() bool {
		if timerOn {
			timer.Stop()
			timerOn = false
		}
		if len(cur.items) == 0 {
			return true
		}
		select {
		case w.work <- cur:
		case <-ctx.Done():
			return false
		}
		cur = &batch{body: make([]byte, 0, min(maxBytes+4096, 2*len(cur.body)))}
		return true
	}
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-w.in:
			if len(cur.items) > 0 && len(cur.body)+len(r.lines) > maxBytes {
				if !send() {
					return
				}
			}
			start := len(cur.body)
			cur.body = append(cur.body, r.lines...)
			cur.items = append(cur.items, batchItem{start: start, docOff: start + r.docOff, end: len(cur.body), rec: r})
			r.lines = nil
			if len(cur.items) >= w.cfg.BulkDocs || len(cur.body) >= maxBytes {
				if !send() {
					return
				}
			} else if !timerOn {
				timer.Reset(w.cfg.FlushInterval.D())
				timerOn = true
			}
		case <-timer.C:
			timerOn = false
			if !send() {
				return
			}
		case <-w.flush:
			// Take what is already queued too, then send.
			for drained := false; !drained; {
				select {
				case r := <-w.in:
					start := len(cur.body)
					cur.body = append(cur.body, r.lines...)
					cur.items = append(cur.items, batchItem{start: start, docOff: start + r.docOff, end: len(cur.body), rec: r})
					r.lines = nil
					if len(cur.items) >= w.cfg.BulkDocs || len(cur.body) >= maxBytes {
						if !send() {
							return
						}
					}
				default:
					drained = true
				}
			}
			if !send() {
				return
			}
		}
	}
}

// write sends one batch until every item is stored or dead-lettered, or ctx
// ends. Only the items that failed with 429/5xx are sent again.
func (w *writer) write(ctx context.Context, b *batch) {
	pending := make([]int, len(b.items))
	for i := range pending {
		pending[i] = i
	}
	w.writeItems(ctx, b, pending)
}

// writeItems writes the items pending of b; see write.
func (w *writer) writeItems(ctx context.Context, b *batch, pending []int) {
	attempt := 0
	for len(pending) > 0 {
		if attempt > 0 && !w.sleep(ctx, attempt) {
			return
		}
		attempt++
		resp, err := w.send(ctx, b, pending)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ee *elastic.Error
			if errors.As(err, &ee) && ee.Status == http.StatusRequestEntityTooLarge {
				// The body is larger than the cluster (or a proxy in front
				// of it) takes: halve the request; a single document that
				// is still too large is dead-lettered.
				w.m.bulks.WithLabelValues("too_large").Inc()
				if len(pending) == 1 {
					if !w.dlq.trySend(ctx, b.items[pending[0]].rec, ReasonRejected+": status 413: document larger than Elasticsearch accepts") {
						return
					}
					return
				}
				half := len(pending) / 2
				w.writeItems(ctx, b, pending[:half])
				if ctx.Err() != nil {
					return
				}
				pending, attempt = pending[half:], 0
				continue
			}
			w.setFailing(err)
			w.m.bulks.WithLabelValues("error").Inc()
			continue
		}
		w.m.bulks.WithLabelValues("ok").Inc()
		var retry []int
		var storedTS []int64
		for n, idx := range pending {
			item := resp.Items[n]
			var res *elastic.BulkResponseItem
			for _, v := range item {
				res = v
			}
			rec := b.items[idx].rec
			switch {
			case res == nil:
				retry = append(retry, idx)
			case res.Status >= 200 && res.Status < 300:
				w.m.stored.Inc()
				storedTS = append(storedTS, rec.ts)
				rec.ack.done()
			case res.Status == http.StatusConflict && w.cfg.OpType == "create":
				w.m.stored.Inc()
				w.m.duplicates.Inc()
				rec.ack.done()
			case res.Status == http.StatusTooManyRequests || res.Status >= 500 || res.Status == http.StatusConflict,
				res.Error != nil && res.Error.Type == "cluster_block_exception":
				// Overloaded, failing, or read-only (disk flood stage):
				// the document is fine, try it again later.
				retry = append(retry, idx)
			default:
				reason := fmt.Sprintf("%s: status %d", ReasonRejected, res.Status)
				if res.Error != nil {
					reason += ": " + res.Error.Type + ": " + res.Error.Reason
				}
				if !w.dlq.trySend(ctx, rec, reason) {
					return
				}
			}
		}
		if w.onStored != nil && len(storedTS) > 0 {
			w.onStored(storedTS)
		}
		if len(retry) > 0 && len(retry) == len(pending) {
			// An answer, but no progress: as bad as no answer.
			w.setFailing(fmt.Errorf("saver: all %d bulk items refused (first status %d)", len(retry), firstStatus(resp)))
		} else {
			w.setOK()
		}
		if len(retry) > 0 {
			w.m.itemRetries.Add(float64(len(retry)))
		} else {
			attempt = 0
		}
		pending = retry
	}
}

func firstStatus(resp *elastic.BulkResponse) int {
	for _, it := range resp.Items {
		for _, v := range it {
			return v.Status
		}
	}
	return 0
}

var errBulkShape = errors.New("saver: bulk response does not match the request")

func (w *writer) send(ctx context.Context, b *batch, idxs []int) (*elastic.BulkResponse, error) {
	// Only what item handling reads: the response for 5000 items shrinks
	// about fivefold, and decoding it was a tenth of the saver's CPU.
	svc := w.client.Bulk().FilterPath("took", "errors", "items.*.status", "items.*.error.type", "items.*.error.reason")
	for _, i := range idxs {
		svc.Add(b.lines(i))
	}
	rctx, cancel := context.WithTimeout(ctx, w.cfg.RequestTimeout.D())
	defer cancel()
	start := time.Now()
	resp, err := svc.Do(rctx)
	w.m.bulkSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, fmt.Errorf("saver: bulk of %d: %w", len(idxs), err)
	}
	if len(resp.Items) != len(idxs) {
		return nil, fmt.Errorf("%w: %d items for %d actions", errBulkShape, len(resp.Items), len(idxs))
	}
	return resp, nil
}

// sleep waits the attempt's back-off (exponential, full jitter, capped); false
// when ctx ended first.
func (w *writer) sleep(ctx context.Context, attempt int) bool {
	d := backoff(w.cfg.RetryInitial.D(), w.cfg.RetryMax.D(), attempt)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func backoff(initial, maxD time.Duration, attempt int) time.Duration {
	d := initial
	for i := 1; i < attempt && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	// Half fixed, half random: spread retries of many savers without ever
	// retrying immediately.
	return d/2 + rand.N(d/2+1)
}

func (w *writer) setFailing(err error) {
	w.healthMu.Lock()
	defer w.healthMu.Unlock()
	if w.failingSince.IsZero() {
		w.failingSince = time.Now()
		if time.Since(w.loggedAt) > 10*time.Second {
			if why := explainESError(err, w.cfg); why != "" {
				w.logger.Error("elasticsearch refuses the saver, backing off and keeping offsets", "why", why, "err", err)
			} else {
				w.logger.Warn("elasticsearch bulk failing, backing off and keeping offsets", "err", err)
			}
			w.loggedAt = time.Now()
		}
	}
	w.lastErr = err
	w.m.esUp.Set(0)
}

func (w *writer) setOK() {
	w.healthMu.Lock()
	defer w.healthMu.Unlock()
	if !w.failingSince.IsZero() && time.Since(w.failingSince) > time.Second {
		w.logger.Info("elasticsearch bulk recovered", "failed_for", time.Since(w.failingSince).Round(time.Millisecond))
	}
	w.failingSince = time.Time{}
	w.lastErr = nil
	w.m.esUp.Set(1)
}

// health is an error while bulks have failed for longer than grace.
func (w *writer) health(grace time.Duration) error {
	w.healthMu.Lock()
	defer w.healthMu.Unlock()
	if !w.failingSince.IsZero() && w.lastErr != nil {
		// credentials or TLS: no grace, nothing will pass until it is fixed
		if why := explainESError(w.lastErr, w.cfg); why != "" {
			return fmt.Errorf("elasticsearch: %s: %v", why, w.lastErr)
		}
	}
	if !w.failingSince.IsZero() && time.Since(w.failingSince) > grace {
		return fmt.Errorf("elasticsearch failing for %s: %v", time.Since(w.failingSince).Round(time.Second), w.lastErr)
	}
	return nil
}
