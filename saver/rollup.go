package saver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/olivere/elastic/v7"
)

// Rollup is one rollup document: the statistics of one series over one
// window [WindowStart, WindowStart+step).
type Rollup struct {
	Endpoint    string            `json:"endpoint"`
	Name        string            `json:"name"`
	Tags        map[string]string `json:"tags,omitempty"`
	Series      string            `json:"series"`
	Window      string            `json:"window"`       // the step, "5m"
	WindowStart int64             `json:"window_start"` // unix seconds
	Min         float64           `json:"min"`
	Max         float64           `json:"max"`
	Sum         float64           `json:"sum"`
	Avg         float64           `json:"avg"`
	Count       int64             `json:"count"`
}

// rawPoint is what a rollup reads back from a raw document.
type rawPoint struct {
	Endpoint  string            `json:"endpoint"`
	Name      string            `json:"name"`
	Tags      map[string]string `json:"tags"`
	Series    string            `json:"series"`
	Value     float64           `json:"value"`
	Timestamp int64             `json:"timestamp"`
}

// StepName is the step as it appears in index names and documents: "5m",
// "1h", "90m" -> "90m", "1d" for a day.
func StepName(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	default:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
}

// WindowStart is the start of the step window holding ts (unix seconds);
// windows are aligned to the unix epoch, so to UTC days for steps that divide
// a day.
func WindowStart(ts int64, step time.Duration) int64 {
	s := int64(step / time.Second)
	return ts - ((ts%s)+s)%s
}

// RollupIndex is the monthly index of a window: falconet-rollup-5m-2026.11.
func RollupIndex(step time.Duration, windowStart int64) string {
	return RollupPrefix + StepName(step) + "-" + time.Unix(windowStart, 0).UTC().Format("2006.01")
}

// RollupID is the deterministic document id of a series' window: recomputing
// overwrites.
func RollupID(step time.Duration, series string, windowStart int64) string {
	sum := sha256.Sum256([]byte(StepName(step) + "|" + series + "@" + strconv.FormatInt(windowStart, 10)))
	return hex.EncodeToString(sum[:16])
}

// aggregate folds points of one series and window into a rollup.
func aggregate(step time.Duration, windowStart int64, pts []rawPoint) Rollup {
	r := Rollup{Window: StepName(step), WindowStart: windowStart, Min: math.Inf(1), Max: math.Inf(-1)}
	for i, p := range pts {
		if i == 0 {
			r.Endpoint, r.Name, r.Tags, r.Series = p.Endpoint, p.Name, p.Tags, p.Series
		}
		r.Min = math.Min(r.Min, p.Value)
		r.Max = math.Max(r.Max, p.Value)
		r.Sum += p.Value
		r.Count++
	}
	if r.Count > 0 {
		r.Avg = r.Sum / float64(r.Count)
	}
	return r
}

// rollupScheduler computes rollups of closed windows from the raw documents
// in Elasticsearch, so a restart, a rebalance or several savers never make a
// partial rollup: every computation reads the whole window back.
type rollupScheduler struct {
	cfg    *Config
	es     *elastic.Client
	m      *metrics
	logger *slog.Logger
	now    func() time.Time
	// caughtUp gates computation (nil: always).
	caughtUp func() (bool, string)
	// leader reports whether this saver computes the scheduled windows
	// (nil: always). Every saver computes the windows it saw late data for.
	leader func() bool

	mu        sync.Mutex
	watermark map[time.Duration]int64          // windows starting before this are computed
	dirty     map[time.Duration]map[int64]bool // computed windows that got late data
	lookback  time.Duration
	wasLeader bool
}

func newRollupScheduler(cfg *Config, es *elastic.Client, m *metrics, logger *slog.Logger, now func() time.Time) *rollupScheduler {
	r := &rollupScheduler{cfg: cfg, es: es, m: m, logger: logger, now: now,
		watermark: map[time.Duration]int64{}, dirty: map[time.Duration]map[int64]bool{}}
	lookback := cfg.Rollup.Lookback.D()
	if lookback == 0 {
		for _, s := range cfg.Rollup.Steps {
			lookback = max(lookback, s.D())
		}
		lookback += cfg.Rollup.Lateness.D() + cfg.Rollup.Delay.D()
	}
	r.lookback = lookback
	r.rewind()
	for _, s := range cfg.Rollup.Steps {
		r.dirty[s.D()] = map[int64]bool{}
	}
	return r
}

// rewind sets every step's watermark lookback before now: those windows are
// computed (again) at the next run.
func (r *rollupScheduler) rewind() {
	start := r.now().Add(-r.lookback).Unix()
	for _, s := range r.cfg.Rollup.Steps {
		r.watermark[s.D()] = WindowStart(start, s.D())
	}
}

// stored is told the timestamps of documents just stored; a document in a
// window already computed, within the lateness, marks that window dirty.
func (r *rollupScheduler) stored(timestamps []int64) {
	now := r.now().Unix()
	late := int64(r.cfg.Rollup.Lateness.D() / time.Second)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range r.cfg.Rollup.Steps {
		step := st.D()
		wm := r.watermark[step]
		secs := int64(step / time.Second)
		for _, ts := range timestamps {
			ws := WindowStart(ts, step)
			if ws >= wm || ws+secs+late < now || r.dirty[step][ws] {
				continue
			}
			r.dirty[step][ws] = true
			r.m.rollupLate.Inc()
		}
	}
}

// due returns the windows to compute now: dirty ones, and for the leader the
// closed windows past their delay. Every saver advances its watermark with
// the clock (late-data detection needs it); one that becomes leader rewinds
// by the lookback first, so windows the previous leader may have missed are
// computed (again: it is idempotent).
func (r *rollupScheduler) due(leader bool) map[time.Duration][]int64 {
	now := r.now().Unix()
	delay := int64(r.cfg.Rollup.Delay.D() / time.Second)
	r.mu.Lock()
	defer r.mu.Unlock()
	if leader && !r.wasLeader {
		r.rewind()
	}
	r.wasLeader = leader
	out := map[time.Duration][]int64{}
	for _, st := range r.cfg.Rollup.Steps {
		step := st.D()
		secs := int64(step / time.Second)
		for ws := range r.dirty[step] {
			out[step] = append(out[step], ws)
		}
		clear(r.dirty[step])
		for ws := r.watermark[step]; ws+secs+delay <= now; ws += secs {
			if leader {
				out[step] = append(out[step], ws)
			}
			r.watermark[step] = ws + secs
		}
	}
	return out
}

// redo puts windows back after a failed computation.
func (r *rollupScheduler) redo(step time.Duration, windows []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ws := range windows {
		r.dirty[step][ws] = true
	}
}

func (r *rollupScheduler) run(ctx context.Context) {
	t := time.NewTicker(r.cfg.Rollup.Interval.D())
	defer t.Stop()
	for {
		if err := r.runOnce(ctx); err != nil && errors.Is(err, errBehind) {
			r.logger.Debug("rollups waiting", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// errBehind is returned by runOnce while the saver is catching up.
var errBehind = errors.New("saver: rollups wait: consumer behind")

func (r *rollupScheduler) runOnce(ctx context.Context) error {
	if r.caughtUp != nil {
		if ok, why := r.caughtUp(); !ok {
			return fmt.Errorf("%w: %s", errBehind, why)
		}
	}
	var firstErr error
	computed, docs := 0, 0
	defer func() {
		if computed > 0 {
			r.logger.Info("rollups computed", "windows", computed, "docs", docs)
		}
	}()
	for step, windows := range r.due(r.leader == nil || r.leader()) {
		for i, ws := range windows {
			n, err := ComputeRollup(ctx, r.es, step, ws, r.cfg.Elasticsearch.RequestTimeout.D())
			if err != nil {
				if ctx.Err() == nil {
					r.logger.Warn("rollup failed, retrying at the next run", "step", StepName(step),
						"window", time.Unix(ws, 0).UTC(), "err", err)
				}
				r.redo(step, windows[i:])
				if firstErr == nil {
					firstErr = err
				}
				break
			}
			r.m.rollupWins.Inc()
			r.m.rollupDocs.Add(float64(n))
			computed++
			docs += n
		}
	}
	return firstErr
}

// ComputeRollup reads the raw documents of the window [windowStart,
// windowStart+step) back from Elasticsearch (sorted by series and time,
// paged with search_after), folds them per series and writes one rollup
// document per series with a deterministic id. It returns the number of
// rollup documents written.
func ComputeRollup(ctx context.Context, es *elastic.Client, step time.Duration, windowStart int64, timeout time.Duration) (int, error) {
	end := windowStart + int64(step/time.Second)
	// Every day the window touches (one for steps dividing a day).
	var indices []string
	for d := WindowStart(windowStart, 24*time.Hour); d < end; d += 86400 {
		indices = append(indices, IndexPrefix+time.Unix(d, 0).UTC().Format("2006.01.02"))
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Make documents written in the last refresh interval visible.
	if _, err := es.Refresh(indices...).Do(rctx); err != nil && !elastic.IsNotFound(err) {
		return 0, fmt.Errorf("saver: rollup refresh: %w", err)
	}
	const page = 5000
	var (
		after   []any
		series  string
		pts     []rawPoint
		written int
		bulk    = es.Bulk()
	)
	flushSeries := func() {
		if len(pts) == 0 {
			return
		}
		doc := aggregate(step, windowStart, pts)
		bulk.Add(elastic.NewBulkIndexRequest().Index(RollupIndex(step, windowStart)).
			Id(RollupID(step, doc.Series, windowStart)).Doc(doc))
		pts = pts[:0]
	}
	writeBulk := func() error {
		if bulk.NumberOfActions() == 0 {
			return nil
		}
		n := bulk.NumberOfActions()
		resp, err := bulk.Do(rctx)
		if err != nil {
			return fmt.Errorf("saver: rollup bulk: %w", err)
		}
		if resp.Errors {
			for _, it := range resp.Failed() {
				return fmt.Errorf("saver: rollup bulk item %s: status %d: %v", it.Id, it.Status, it.Error)
			}
		}
		written += n
		bulk = es.Bulk()
		return nil
	}
	for {
		q := elastic.NewRangeQuery("timestamp").Gte(windowStart).Lt(end).Format("epoch_second")
		svc := es.Search(indices...).IgnoreUnavailable(true).AllowNoIndices(true).Query(q).
			Sort("series", true).Sort("timestamp", true).Size(page).
			FetchSourceContext(elastic.NewFetchSourceContext(true).Include("endpoint", "name", "tags", "series", "value", "timestamp"))
		if after != nil {
			svc = svc.SearchAfter(after...)
		}
		res, err := svc.Do(rctx)
		if err != nil {
			if elastic.IsNotFound(err) {
				break
			}
			return written, fmt.Errorf("saver: rollup search: %w", err)
		}
		hits := res.Hits.Hits
		for _, h := range hits {
			var p rawPoint
			if err := json.Unmarshal(h.Source, &p); err != nil {
				return written, fmt.Errorf("saver: rollup: document %s: %w", h.Id, err)
			}
			if p.Series != series {
				flushSeries()
				series = p.Series
			}
			pts = append(pts, p)
		}
		if bulk.NumberOfActions() >= 1000 {
			if err := writeBulk(); err != nil {
				return written, err
			}
		}
		if len(hits) < page {
			break
		}
		after = hits[len(hits)-1].Sort
	}
	flushSeries()
	return written, writeBulk()
}
