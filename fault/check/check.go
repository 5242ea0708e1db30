// Package check compares what a load generator had accepted with what
// Elasticsearch holds: generated, stored, missing, duplicated. It talks plain
// HTTP to the Elasticsearch REST API (`_search` with an `ids` query, `_count`,
// `_refresh`), so it works against the dev server and a real cluster alike.
//
// A metric is stored when a document with its id (metric.DocID) exists in the
// index of its own UTC day and its source decodes back to the same series,
// timestamp and value. A duplicate is any further document for the same series
// and timestamp: the same id in a second index, or a document of the stream's
// endpoint under an id the generator never produced.
package check

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/falconet/falconet/fault/load"
	"github.com/falconet/falconet/metric"
)

// ES is an Elasticsearch endpoint.
type ES struct {
	URL string // e.g. http://10.213.77.3:9200
	// Indices is the pattern searched (default "falconet-metrics-*").
	Indices string
	// EndpointField is the field holding the metric's endpoint, used for
	// counts (default "endpoint").
	EndpointField string
	// IndexPrefix names the daily index: prefix + metric.Day() (default
	// "falconet-metrics-").
	IndexPrefix string
	Client      *http.Client
}

func (es *ES) defaults() {
	if es.Indices == "" {
		es.Indices = "falconet-metrics-*"
	}
	if es.EndpointField == "" {
		es.EndpointField = "endpoint"
	}
	if es.IndexPrefix == "" {
		es.IndexPrefix = "falconet-metrics-"
	}
	if es.Client == nil {
		es.Client = &http.Client{Timeout: 30 * time.Second}
	}
}

// Result is the outcome of a check.
type Result struct {
	Generated  int // metrics accepted by the agent (push mode) or sent (legacy)
	Stored     int // of those, found exactly where they belong
	Missing    int // accepted but not found
	Duplicated int // documents beyond one per series and timestamp
	Misplaced  int // found in the wrong index or with a different source
	// Uncertain counts attempted-but-unacknowledged metrics found stored
	// (allowed: the agent may store a push whose answer was lost).
	Uncertain int
	// Samples of problems, for the failure message.
	MissingSamples   []string
	DuplicateSamples []string
	MisplacedSamples []string
}

// OK reports whether the contract held: everything stored, once.
func (r Result) OK() bool {
	return r.Missing == 0 && r.Duplicated == 0 && r.Misplaced == 0 && r.Stored == r.Generated
}

func (r Result) String() string {
	s := fmt.Sprintf("generated=%d stored=%d missing=%d duplicated=%d misplaced=%d uncertain-stored=%d",
		r.Generated, r.Stored, r.Missing, r.Duplicated, r.Misplaced, r.Uncertain)
	if len(r.MissingSamples) > 0 {
		s += "\n  missing (series@timestamp): " + strings.Join(r.MissingSamples, ", ")
	}
	if len(r.DuplicateSamples) > 0 {
		s += "\n  duplicated: " + strings.Join(r.DuplicateSamples, ", ")
	}
	if len(r.MisplacedSamples) > 0 {
		s += "\n  misplaced: " + strings.Join(r.MisplacedSamples, ", ")
	}
	return s
}

// Add merges another result (several streams).
func (r *Result) Add(o Result) {
	r.Generated += o.Generated
	r.Stored += o.Stored
	r.Missing += o.Missing
	r.Duplicated += o.Duplicated
	r.Misplaced += o.Misplaced
	r.Uncertain += o.Uncertain
	r.MissingSamples = appendCapped(r.MissingSamples, o.MissingSamples...)
	r.DuplicateSamples = appendCapped(r.DuplicateSamples, o.DuplicateSamples...)
	r.MisplacedSamples = appendCapped(r.MisplacedSamples, o.MisplacedSamples...)
}

const maxSamples = 40

func appendCapped(dst []string, src ...string) []string {
	for _, s := range src {
		if len(dst) >= maxSamples {
			break
		}
		dst = append(dst, s)
	}
	return dst
}

type hit struct {
	Index  string          `json:"_index"`
	ID     string          `json:"_id"`
	Source json.RawMessage `json:"_source"`
}

type searchResponse struct {
	Hits struct {
		Total struct {
			Value int `json:"value"`
		} `json:"total"`
		Hits []hit `json:"hits"`
	} `json:"hits"`
}

func (es *ES) do(ctx context.Context, method, path string, body any, out any) error {
	es.defaults()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(es.URL, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := es.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("check: %s %s: HTTP %d: %.300s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("check: %s %s: %w", method, path, err)
		}
	}
	return nil
}

// Refresh makes everything indexed so far searchable.
func (es *ES) Refresh(ctx context.Context) error {
	es.defaults()
	return es.do(ctx, http.MethodPost, "/"+es.Indices+"/_refresh?allow_no_indices=true", nil, nil)
}

const idChunk = 1000

// searchIDs returns every document with one of ids in the indices.
func (es *ES) searchIDs(ctx context.Context, ids []string) ([]hit, error) {
	es.defaults()
	var hits []hit
	for len(ids) > 0 {
		n := min(len(ids), idChunk)
		chunk := ids[:n]
		ids = ids[n:]
		var resp searchResponse
		// size 2n: the same id may sit in more than one index (a duplicate).
		q := map[string]any{
			"size":             2 * n,
			"track_total_hits": true,
			"query":            map[string]any{"ids": map[string]any{"values": chunk}},
		}
		if err := es.do(ctx, http.MethodPost, "/"+es.Indices+"/_search?allow_no_indices=true", q, &resp); err != nil {
			return nil, err
		}
		if resp.Hits.Total.Value > len(resp.Hits.Hits) {
			return nil, fmt.Errorf("check: ids query: %d hits, %d returned", resp.Hits.Total.Value, len(resp.Hits.Hits))
		}
		hits = append(hits, resp.Hits.Hits...)
	}
	return hits, nil
}

// CountIDs counts documents with one of ids (cheap progress polling).
func (es *ES) CountIDs(ctx context.Context, ids []string) (int, error) {
	es.defaults()
	total := 0
	for len(ids) > 0 {
		n := min(len(ids), idChunk)
		var resp struct {
			Count int `json:"count"`
		}
		q := map[string]any{"query": map[string]any{"ids": map[string]any{"values": ids[:n]}}}
		if err := es.do(ctx, http.MethodPost, "/"+es.Indices+"/_count?allow_no_indices=true", q, &resp); err != nil {
			return 0, err
		}
		total += resp.Count
		ids = ids[n:]
	}
	return total, nil
}

// Present reports which of ids exist (in any index).
func (es *ES) Present(ctx context.Context, ids []string) (map[string]bool, error) {
	hits, err := es.searchIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	m := make(map[string]bool, len(hits))
	for _, h := range hits {
		m[h.ID] = true
	}
	return m, nil
}

// CountAll counts every document in the indices.
func (es *ES) CountAll(ctx context.Context) (int, error) {
	es.defaults()
	var resp struct {
		Count int `json:"count"`
	}
	if err := es.do(ctx, http.MethodPost, "/"+es.Indices+"/_count?allow_no_indices=true", map[string]any{"query": map[string]any{"match_all": map[string]any{}}}, &resp); err != nil {
		return 0, err
	}
	return resp.Count, nil
}

// CountEndpoint counts every document of an endpoint.
func (es *ES) CountEndpoint(ctx context.Context, endpoint string) (int, error) {
	es.defaults()
	var resp struct {
		Count int `json:"count"`
	}
	q := map[string]any{"query": map[string]any{"term": map[string]any{es.EndpointField: endpoint}}}
	if err := es.do(ctx, http.MethodPost, "/"+es.Indices+"/_count?allow_no_indices=true", q, &resp); err != nil {
		return 0, err
	}
	return resp.Count, nil
}

// IDs returns the document ids of the given seqs of a stream.
func IDs(st load.Stream, seqs []int64) []string {
	ids := make([]string, 0, len(seqs)*st.Series)
	for _, seq := range seqs {
		for s := 0; s < st.Series; s++ {
			m := st.Metric(seq, s)
			ids = append(ids, m.DocID())
		}
	}
	return ids
}

type want struct {
	m        metric.Metric
	accepted bool
}

// Check compares one generator's record with Elasticsearch. Call Refresh
// first.
func (es *ES) Check(ctx context.Context, rec *load.Record) (Result, error) {
	es.defaults()
	var res Result
	byID := make(map[string]want, len(rec.Attempted)*rec.Series)
	ids := make([]string, 0, len(byID))
	seqs := make([]int64, 0, len(rec.Attempted))
	for seq := range rec.Attempted {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	for _, seq := range seqs {
		_, acc := rec.Accepted[seq]
		if _, sent := rec.Sent[seq]; sent {
			acc = true
		}
		for s := 0; s < rec.Series; s++ {
			m := rec.Metric(seq, s)
			id := m.DocID()
			byID[id] = want{m: m, accepted: acc}
			ids = append(ids, id)
			if acc {
				res.Generated++
			}
		}
	}
	hits, err := es.searchIDs(ctx, ids)
	if err != nil {
		return res, err
	}
	byHit := make(map[string][]hit, len(hits))
	for _, h := range hits {
		byHit[h.ID] = append(byHit[h.ID], h)
	}
	problemOf := func(w want, h hit) string {
		var got metric.Metric
		if err := json.Unmarshal(h.Source, &got); err != nil {
			return "source does not decode: " + err.Error()
		}
		if got.DocID() != h.ID || got.Value != w.m.Value {
			return fmt.Sprintf("source is %s@%d value %v", got.SeriesKey(), got.Timestamp, got.Value)
		}
		if wantIdx := es.IndexPrefix + w.m.Day(); h.Index != wantIdx {
			return fmt.Sprintf("in index %s, want %s", h.Index, wantIdx)
		}
		return ""
	}
	seen := make(map[string]int, len(byHit))
	for _, id := range ids {
		copies := byHit[id]
		if len(copies) == 0 || seen[id] > 0 {
			continue
		}
		seen[id] = len(copies)
		w := byID[id]
		// The copy where it belongs is the metric; any other copy of the
		// same id (another daily index) is a duplicate.
		good := -1
		var problem string
		for i, h := range copies {
			if p := problemOf(w, h); p == "" {
				good = i
				break
			} else if problem == "" {
				problem = p
			}
		}
		if good < 0 {
			res.Misplaced++
			res.MisplacedSamples = appendCapped(res.MisplacedSamples, fmt.Sprintf("%s@%d: %s", w.m.SeriesKey(), w.m.Timestamp, problem))
		} else if w.accepted {
			res.Stored++
		} else {
			res.Uncertain++
		}
		for i, h := range copies {
			if i == good || (good < 0 && i == 0) {
				continue
			}
			res.Duplicated++
			res.DuplicateSamples = appendCapped(res.DuplicateSamples, fmt.Sprintf("%s@%d (id %s also in %s)", w.m.SeriesKey(), w.m.Timestamp, h.ID, h.Index))
		}
	}
	for _, id := range ids {
		if w := byID[id]; w.accepted && seen[id] == 0 {
			res.Missing++
			res.MissingSamples = appendCapped(res.MissingSamples, fmt.Sprintf("%s@%d(seq %d)", w.m.SeriesKey(), w.m.Timestamp, int64(w.m.Value)))
		}
	}
	// Documents of this endpoint under ids the generator never produced:
	// the same series and timestamp stored twice under a different id.
	total, err := es.CountEndpoint(ctx, rec.Endpoint)
	if err != nil {
		return res, err
	}
	if extra := total - len(hits); extra > 0 {
		res.Duplicated += extra
		res.DuplicateSamples = appendCapped(res.DuplicateSamples, fmt.Sprintf("%d documents of endpoint %s under ids the generator never made", extra, rec.Endpoint))
	}
	return res, nil
}

// CheckAll checks several records after a refresh and merges the results.
func (es *ES) CheckAll(ctx context.Context, recs ...*load.Record) (Result, error) {
	if err := es.Refresh(ctx); err != nil {
		return Result{}, err
	}
	var all Result
	for _, r := range recs {
		res, err := es.Check(ctx, r)
		if err != nil {
			return all, err
		}
		all.Add(res)
	}
	return all, nil
}
