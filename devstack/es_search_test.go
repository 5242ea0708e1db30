package devstack

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/falconet/falconet/metric"
)

// seedMetrics indexes canonical metric documents (the saver's shape) with
// explicit mappings and refresh=true.
func seedMetrics(t *testing.T, env *esEnv, ix string, ms []metric.Metric) {
	t.Helper()
	env.must(200, "PUT", "/"+ix, `{"settings":{"number_of_replicas":0},"mappings":{"dynamic_templates":[{"tags":{"path_match":"tags.*","match_mapping_type":"string","mapping":{"type":"keyword"}}}],
	"properties":{"endpoint":{"type":"keyword"},"name":{"type":"keyword"},"value":{"type":"double"},"timestamp":{"type":"date","format":"epoch_second"},"step":{"type":"long"},"type":{"type":"keyword"}}}}`)
	var b strings.Builder
	for _, m := range ms {
		js, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "{\"index\":{\"_index\":%q,\"_id\":%q}}\n%s\n", ix, m.DocID(), js)
	}
	r := env.must(200, "POST", "/_bulk?refresh=true", b.String())
	expect(t, r, "errors", false)
}

func sampleMetrics(now time.Time) []metric.Metric {
	var ms []metric.Metric
	base := now.Truncate(time.Hour).Add(-2 * time.Hour).Unix()
	for i := 0; i < 12; i++ {
		ms = append(ms, metric.Metric{Endpoint: fmt.Sprintf("web-%d", i%3), Name: "cpu.idle", Value: float64(i),
			Timestamp: base + int64(i)*600, Step: 60, Type: metric.Gauge, Tags: map[string]string{"dc": []string{"eu", "us"}[i%2]}})
	}
	return ms
}

// Reference: "Query DSL": match_all, term, terms, range, bool, exists, ids;
// "Search API > Request body": size, from, sort, _source, track_total_hits;
// "Count API".
func TestESSearchQueries(t *testing.T) {
	env := newESEnv(t)
	ix := env.idx("m")
	now := time.Now().UTC()
	ms := sampleMetrics(now)
	seedMetrics(t, env, ix, ms)
	env.must(201, "PUT", "/"+ix+"/_doc/extra?refresh=true", `{"endpoint":"web-9","name":"mem","value":1,"timestamp":1,"step":60,"type":"gauge"}`)
	cases := []struct {
		name  string
		query string
		count int
	}{
		{"match_all", `{"match_all":{}}`, 13},
		{"term", `{"term":{"endpoint":"web-1"}}`, 4},
		{"term value object", `{"term":{"endpoint":{"value":"web-1"}}}`, 4},
		{"term on a dynamic-template tag", `{"term":{"tags.dc":"eu"}}`, 6},
		{"terms", `{"terms":{"endpoint":["web-1","web-2"]}}`, 8},
		{"term long", `{"term":{"step":60}}`, 13},
		{"range double", `{"range":{"value":{"gte":3,"lt":6}}}`, 3},
		{"range date math", `{"range":{"timestamp":{"gte":"now-1d/d"}}}`, 12},
		{"range epoch_second", fmt.Sprintf(`{"range":{"timestamp":{"gte":%d}}}`, ms[6].Timestamp), 6},
		{"range explicit format", fmt.Sprintf(`{"range":{"timestamp":{"gt":"%s","format":"strict_date_optional_time"}}}`, time.Unix(ms[9].Timestamp, 0).UTC().Format(time.RFC3339)), 2},
		{"bool", `{"bool":{"must":[{"term":{"name":"cpu.idle"}}],"filter":[{"range":{"value":{"gte":2}}}],"must_not":[{"term":{"endpoint":"web-2"}}]}}`, 6},
		{"bool should", `{"bool":{"should":[{"term":{"endpoint":"web-0"}},{"term":{"endpoint":"web-9"}}]}}`, 5},
		{"bool should msm 2", `{"bool":{"should":[{"term":{"endpoint":"web-0"}},{"term":{"tags.dc":"eu"}}],"minimum_should_match":2}}`, 2},
		{"exists", `{"exists":{"field":"tags"}}`, 12},
		{"exists leaf", `{"exists":{"field":"tags.dc"}}`, 12},
		{"ids", fmt.Sprintf(`{"ids":{"values":["%s","extra","nope"]}}`, ms[0].DocID()), 2},
		{"term unmapped", `{"term":{"nope":"x"}}`, 0},
		{"term _index", `{"term":{"_index":"` + ix + `"}}`, 13},
		{"term other _index", `{"term":{"_index":"other"}}`, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := env.must(200, "POST", "/"+ix+"/_count", `{"query":`+tc.query+`}`)
			expect(t, r, "count", tc.count)
			s := env.must(200, "POST", "/"+ix+"/_search", `{"query":`+tc.query+`,"track_total_hits":true}`)
			expect(t, s, "hits.total.value", tc.count)
			expect(t, s, "hits.total.relation", "eq")
		})
	}
	// size/from/sort/_source
	s := env.must(200, "POST", "/"+ix+"/_search", `{"query":{"term":{"name":"cpu.idle"}},"size":3,"from":2,"sort":[{"value":"desc"}],"_source":["endpoint","val*"]}`)
	hits, _ := get(s, "hits.hits").([]any)
	if len(hits) != 3 {
		t.Fatalf("size 3: got %d hits", len(hits))
	}
	expect(t, s, "hits.hits.0._source.value", 9)
	expect(t, s, "hits.hits.0.sort.0", 9)
	expect(t, s, "hits.hits.2._source.value", 7)
	if get(s, "hits.hits.0._source.name") != nil || get(s, "hits.hits.0._source.endpoint") == nil {
		t.Fatalf("_source filter: got %v", get(s, "hits.hits.0._source"))
	}
	expect(t, s, "hits.max_score", nil)
	s = env.must(200, "POST", "/"+ix+"/_search", `{"size":1,"_source":false,"track_total_hits":5}`)
	expect(t, s, "hits.total.value", 5)
	expect(t, s, "hits.total.relation", "gte")
	if get(s, "hits.hits.0._source") != nil {
		t.Fatalf("_source false: got a source")
	}
	s = env.must(200, "POST", "/"+ix+"/_search", `{"size":0,"track_total_hits":false}`)
	if get(s, "hits.total") != nil {
		t.Fatalf("track_total_hits false: got total %v", get(s, "hits.total"))
	}
	// olivere
	c := env.client()
	res, err := c.Search(ix).Query(elastic.NewBoolQuery().Filter(elastic.NewTermQuery("endpoint", "web-0"), elastic.NewRangeQuery("value").Gte(3))).
		Sort("value", true).Size(10).Do(ctx(t))
	if err != nil {
		t.Fatalf("olivere search: %v", err)
	}
	if res.TotalHits() != 3 || len(res.Hits.Hits) != 3 {
		t.Fatalf("olivere search: got total %d, hits %d, want 3", res.TotalHits(), len(res.Hits.Hits))
	}
	var first metric.Metric
	if err := json.Unmarshal(res.Hits.Hits[0].Source, &first); err != nil || first.Value != 3 {
		t.Fatalf("first hit: got %+v, %v", first, err)
	}
	n, err := c.Count(ix).Query(elastic.NewTermsQuery("endpoint", "web-1", "web-9")).Do(ctx(t))
	if err != nil || n != 5 {
		t.Fatalf("olivere count: got %d, %v, want 5", n, err)
	}
}

// Reference: "Search API" errors: unknown query (parsing_exception),
// result window (from + size <= index.max_result_window), sorting on a text
// field, unknown body keys, bad values for the field type, and features
// dev-es lacks (400 "dev-es does not support").
func TestESSearchErrors(t *testing.T) {
	env := newESEnv(t)
	ix := env.idx("e")
	env.must(201, "PUT", "/"+ix+"/_doc/1?refresh=true", `{"n":1,"s":"some text"}`)
	cases := []struct {
		name, body string
		status     int
		errType    string
	}{
		{"unknown query", `{"query":{"bogus":{}}}`, 400, "parsing_exception"},
		{"unknown key", `{"quer":{}}`, 400, "parsing_exception"},
		{"empty clause", `{"query":{"bool":{"must":[{}]}}}`, 400, "parsing_exception"},
		{"window", `{"from":9995,"size":10}`, 400, "search_phase_execution_exception"},
		{"sort text", `{"sort":["s"]}`, 400, "search_phase_execution_exception"},
		{"bad long", `{"query":{"term":{"n":"abc"}}}`, 400, "search_phase_execution_exception"},
		{"agg on text", `{"aggs":{"x":{"terms":{"field":"s"}}}}`, 400, "search_phase_execution_exception"},
		{"unknown agg", `{"aggs":{"x":{"bogus":{"field":"n"}}}}`, 400, "parsing_exception"},
		{"malformed json", `{"query":`, 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := env.do("POST", "/"+ix+"/_search", tc.body)
			if r.status != tc.status {
				t.Fatalf("got status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.errType != "" {
				expect(t, r.json(t), "error.type", tc.errType)
			}
		})
	}
	r := env.must(404, "POST", "/"+env.idx("missing")+"/_search", `{}`)
	expect(t, r, "error.type", "index_not_found_exception")
	env.must(200, "POST", "/"+env.idx("missing")+"*/_search", `{}`) // wildcard: no indices is fine
	env.must(200, "POST", "/"+env.idx("missing")+"/_search?ignore_unavailable=true", `{}`)
	env.must(400, "POST", "/"+ix+"/_search?from=-1", `{}`)
	env.must(400, "POST", "/"+ix+"/_search?size=-1", `{}`)
	env.must(400, "POST", "/"+ix+"/_search", `{"size":-1}`)
	r = env.must(400, "POST", "/"+ix+"/_search?bogus=1", `{}`)
	expect(t, r, "error.type", "illegal_argument_exception")
	if env.dev != nil {
		r = env.must(400, "POST", "/"+ix+"/_search", `{"query":{"match_phrase":{"s":"some text"}}}`)
		if reason, _ := get(r, "error.reason").(string); !strings.HasPrefix(reason, "dev-es does not support") {
			t.Fatalf("unsupported query: got reason %q", reason)
		}
	}
}

// Reference: "Aggregations": terms (size, order, sum_other_doc_count),
// date_histogram (fixed_interval, calendar_interval, min_doc_count 0 fills
// gaps, key_as_string), min/max/avg/sum/value_count/cardinality, sub-aggregations.
func TestESAggregations(t *testing.T) {
	env := newESEnv(t)
	ix := env.idx("agg")
	now := time.Now().UTC()
	ms := sampleMetrics(now)
	seedMetrics(t, env, ix, ms)
	r := env.must(200, "POST", "/"+ix+"/_search", `{"size":0,"aggs":{
		"by_ep":{"terms":{"field":"endpoint","size":2},"aggs":{"avg_v":{"avg":{"field":"value"}},"max_ts":{"max":{"field":"timestamp"}}}},
		"by_hour":{"date_histogram":{"field":"timestamp","fixed_interval":"1h","min_doc_count":0},"aggs":{"s":{"sum":{"field":"value"}}}},
		"by_day":{"date_histogram":{"field":"timestamp","calendar_interval":"day"}},
		"mn":{"min":{"field":"value"}},"mx":{"max":{"field":"value"}},"sm":{"sum":{"field":"value"}},
		"vc":{"value_count":{"field":"endpoint"}},"card":{"cardinality":{"field":"endpoint"}},
		"empty_min":{"min":{"field":"nope"}}}}`)
	expect(t, r, "aggregations.by_ep.buckets.0.key", "web-0")
	expect(t, r, "aggregations.by_ep.buckets.0.doc_count", 4)
	expect(t, r, "aggregations.by_ep.buckets.0.avg_v.value", 4.5) // 0,3,6,9
	expect(t, r, "aggregations.by_ep.buckets.1.key", "web-1")
	expect(t, r, "aggregations.by_ep.sum_other_doc_count", 4)
	if len(get(r, "aggregations.by_ep.buckets").([]any)) != 2 {
		t.Fatalf("terms size 2: got %v", get(r, "aggregations.by_ep.buckets"))
	}
	if s, _ := get(r, "aggregations.by_ep.buckets.0.max_ts.value_as_string").(string); s == "" {
		t.Fatalf("max on a date: no value_as_string")
	}
	hours := get(r, "aggregations.by_hour.buckets").([]any)
	if len(hours) != 2 {
		t.Fatalf("hourly buckets: got %d, want 2: %v", len(hours), hours)
	}
	expect(t, r, "aggregations.by_hour.buckets.0.doc_count", 6)
	expect(t, r, "aggregations.by_hour.buckets.0.s.value", 15)
	expect(t, r, "aggregations.by_hour.buckets.0.key", ms[0].Timestamp*1000)
	expect(t, r, "aggregations.by_hour.buckets.0.key_as_string", fmt.Sprint(ms[0].Timestamp)) // epoch_second format
	expect(t, r, "aggregations.mn.value", 0)
	expect(t, r, "aggregations.mx.value", 11)
	expect(t, r, "aggregations.sm.value", 66)
	expect(t, r, "aggregations.vc.value", 12)
	expect(t, r, "aggregations.card.value", 3)
	expect(t, r, "aggregations.empty_min.value", nil)
	days := 0
	for _, b := range get(r, "aggregations.by_day.buckets").([]any) {
		days += int(get(b, "doc_count").(int64))
	}
	if days != 12 {
		t.Fatalf("daily buckets: got %d docs, want 12", days)
	}
	// gaps are filled with min_doc_count 0
	r = env.must(200, "POST", "/"+ix+"/_search", `{"size":0,"query":{"terms":{"value":[0,11]}},"aggs":{"h":{"date_histogram":{"field":"timestamp","fixed_interval":"10m"}}}}`)
	if n := len(get(r, "aggregations.h.buckets").([]any)); n != 12 {
		t.Fatalf("filled buckets: got %d, want 12", n)
	}
	expect(t, r, "aggregations.h.buckets.1.doc_count", 0)
	// terms without sub-aggregations, multi-valued keyword field
	env.must(201, "PUT", "/"+ix+"/_doc/multi?refresh=true", `{"endpoint":["web-0","web-0","web-9"],"name":"x","value":1,"timestamp":1,"step":1,"type":"gauge"}`)
	r = env.must(200, "POST", "/"+ix+"/_search", `{"size":0,"aggs":{"t":{"terms":{"field":"endpoint","size":1}}}}`)
	expect(t, r, "aggregations.t.buckets.0.key", "web-0")
	expect(t, r, "aggregations.t.buckets.0.doc_count", 5)
	expect(t, r, "aggregations.t.sum_other_doc_count", 9)
	env.must(200, "DELETE", "/"+ix+"/_doc/multi?refresh=true", "")
	// sort mode on a multi-valued field
	env.must(201, "PUT", "/"+ix+"/_doc/mv?refresh=true", `{"endpoint":"web-z","name":"x","value":[-5,100],"timestamp":1,"step":1,"type":"gauge"}`)
	r = env.must(200, "POST", "/"+ix+"/_search", `{"size":1,"sort":[{"value":{"order":"asc","mode":"max"}}]}`)
	expect(t, r, "hits.hits.0.sort.0", 0)
	r = env.must(200, "POST", "/"+ix+"/_search", `{"size":1,"sort":[{"value":{"order":"asc"}}]}`)
	expect(t, r, "hits.hits.0.sort.0", -5)
	env.must(200, "DELETE", "/"+ix+"/_doc/mv?refresh=true", "")
	// order by sub-aggregation
	r = env.must(200, "POST", "/"+ix+"/_search", `{"size":0,"aggs":{"t":{"terms":{"field":"endpoint","order":{"m":"desc"}},"aggs":{"m":{"max":{"field":"value"}}}}}}`)
	expect(t, r, "aggregations.t.buckets.0.key", "web-2")
	// olivere
	c := env.client()
	res, err := c.Search(ix).Size(0).Aggregation("eps", elastic.NewTermsAggregation().Field("endpoint").
		SubAggregation("h", elastic.NewDateHistogramAggregation().Field("timestamp").CalendarInterval("1h"))).Do(ctx(t))
	if err != nil {
		t.Fatalf("olivere aggs: %v", err)
	}
	terms, ok := res.Aggregations.Terms("eps")
	if !ok || len(terms.Buckets) != 3 {
		t.Fatalf("olivere terms: got %+v", terms)
	}
	h, ok := terms.Buckets[0].DateHistogram("h")
	if !ok || len(h.Buckets) == 0 {
		t.Fatalf("olivere date_histogram: got %+v", h)
	}
	// missing and format
	env.must(201, "PUT", "/"+ix+"/_doc/nots?refresh=true", `{"endpoint":"web-x","name":"x","value":1,"step":1,"type":"gauge"}`)
	r = env.must(200, "POST", "/"+ix+"/_search", `{"size":0,"query":{"term":{"endpoint":"web-x"}},"aggs":{"h":{"date_histogram":{"field":"timestamp","calendar_interval":"day","missing":946684800}},
		"t":{"terms":{"field":"timestamp","missing":946684800,"format":"yyyy-MM-dd"}}}}`)
	expect(t, r, "aggregations.h.buckets.0.key", 946684800000)
	expect(t, r, "aggregations.h.buckets.0.doc_count", 1)
	expect(t, r, "aggregations.t.buckets.0.key_as_string", "2000-01-01")
	env.must(200, "DELETE", "/"+ix+"/_doc/nots?refresh=true", "")
	// errors
	env.must(400, "POST", "/"+ix+"/_search", `{"aggs":{"h":{"date_histogram":{"field":"timestamp","calendar_interval":"2d"}}}}`)
	env.must(400, "POST", "/"+ix+"/_search", `{"aggs":{"h":{"date_histogram":{"field":"timestamp"}}}}`)
	env.must(400, "POST", "/"+ix+"/_search", `{"aggs":{"m":{"min":{"field":"value"},"aggs":{"x":{"max":{"field":"value"}}}}}}`)
}

// Reference: "Paginate search results > Search after": pages by the sort
// values of the last hit; from must be 0; one value per sort field.
func TestESSearchAfter(t *testing.T) {
	env := newESEnv(t)
	ix := env.idx("sa")
	ms := sampleMetrics(time.Now().UTC())
	seedMetrics(t, env, ix, ms)
	c := env.client()
	var got []string
	var after []any
	for page := 0; page < 10; page++ {
		svc := c.Search(ix).Query(elastic.NewRangeQuery("timestamp").Gte(ms[0].Timestamp).Lt(ms[11].Timestamp+1).Format("epoch_second")).
			Sort("endpoint", true).Sort("timestamp", true).Size(5).
			FetchSourceContext(elastic.NewFetchSourceContext(true).Include("endpoint", "timestamp"))
		if after != nil {
			svc = svc.SearchAfter(after...)
		}
		res, err := svc.Do(ctx(t))
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		for _, h := range res.Hits.Hits {
			var m struct {
				Endpoint  string `json:"endpoint"`
				Timestamp int64  `json:"timestamp"`
			}
			if err := json.Unmarshal(h.Source, &m); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s/%d", m.Endpoint, m.Timestamp))
		}
		if len(res.Hits.Hits) < 5 {
			break
		}
		after = res.Hits.Hits[len(res.Hits.Hits)-1].Sort
	}
	if len(got) != 12 {
		t.Fatalf("paged through %d hits, want 12: %v", len(got), got)
	}
	for i := 1; i < len(got); i++ {
		if got[i-1] >= got[i] {
			t.Fatalf("hits out of order or repeated at %d: %v", i, got)
		}
	}
	env.must(400, "POST", "/"+ix+"/_search", `{"sort":["endpoint"],"search_after":["a","b"]}`)
	env.must(400, "POST", "/"+ix+"/_search", `{"sort":["endpoint"],"from":1,"search_after":["a"]}`)
}

// Reference: "Paginate search results > Scroll search results": the first
// search opens a context (_scroll_id), /_search/scroll pages through a
// point-in-time view, clear scroll frees it, an unknown id is 404.
func TestESScroll(t *testing.T) {
	env := newESEnv(t)
	ix := env.idx("sc")
	seedMetrics(t, env, ix, sampleMetrics(time.Now().UTC()))
	c := env.client()
	svc := c.Scroll(ix).Size(5).Sort("value", true)
	var got []float64
	for {
		res, err := svc.Do(ctx(t))
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("scroll: %v", err)
		}
		if res.TotalHits() != 12 {
			t.Fatalf("scroll total: got %d, want 12", res.TotalHits())
		}
		for _, h := range res.Hits.Hits {
			var m metric.Metric
			if err := json.Unmarshal(h.Source, &m); err != nil {
				t.Fatal(err)
			}
			got = append(got, m.Value)
			// a write after the scroll opened does not show up in it
			env.do("PUT", "/"+ix+"/_doc/late-"+h.Id+"?refresh=true", `{"endpoint":"late","name":"x","value":100,"timestamp":1,"step":1,"type":"gauge"}`)
		}
	}
	if len(got) != 12 || got[0] != 0 || got[11] != 11 {
		t.Fatalf("scrolled values: got %v", got)
	}
	if err := svc.Clear(ctx(t)); err != nil {
		t.Fatalf("clear scroll: %v", err)
	}
	r := env.must(200, "POST", "/"+ix+"/_search?scroll=1m", `{"size":2}`)
	id, _ := get(r, "_scroll_id").(string)
	if id == "" {
		t.Fatalf("no _scroll_id: %v", r)
	}
	env.must(200, "POST", "/_search/scroll", `{"scroll":"1m","scroll_id":"`+id+`"}`)
	env.must(200, "DELETE", "/_search/scroll", `{"scroll_id":"`+id+`"}`)
	r = env.must(404, "POST", "/_search/scroll", `{"scroll":"1m","scroll_id":"`+id+`"}`)
	expect(t, r, "status", 404)
	env.must(400, "POST", "/"+ix+"/_search?scroll=1m", `{"from":1}`)
}
