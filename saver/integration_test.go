package saver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/internal/confkit"
	"github.com/falconet/falconet/metric"
	"github.com/falconet/falconet/saver/savertest"
)

const (
	testTopic = "falconet-metrics"
	testDLQ   = "falconet-metrics-dlq"
)

// testES is the Elasticsearch the test writes to: FALCONET_TEST_ES_URL if
// set (a real cluster), else the dev server. es is nil against a real
// cluster (no fault injection).
type testES struct {
	url    string
	dev    *devstack.ES
	client *elastic.Client
}

func startTestES(t testing.TB) *testES {
	t.Helper()
	te := &testES{url: os.Getenv("FALCONET_TEST_ES_URL")}
	if te.url == "" {
		te.dev = devstack.StartES(t)
		te.url = te.dev.URL()
	}
	te.client = savertest.NewESClient(t, te.url)
	return te
}

func (te *testES) needFaults(t *testing.T) {
	if te.dev == nil {
		t.Skip("fault injection needs the dev server (FALCONET_TEST_ES_URL points at a real cluster)")
	}
}

// count is the number of documents in the indices matching pattern after a
// refresh; -1 when ES does not answer.
func (te *testES) count(t testing.TB, pattern string) int64 {
	return savertest.Count(te.client, pattern)
}

// checkStored checks that every metric is in its day's index under its id
// with its value, and that the indices hold nothing else: it reads every
// document back (search_after over series and timestamp).
func (te *testES) checkStored(t testing.TB, ms []metric.Metric) {
	t.Helper()
	if got, want := te.count(t, IndexPrefix+"*"), int64(len(ms)); got != want {
		t.Fatalf("documents in %s*: got %d, want %d", IndexPrefix, got, want)
	}
	type where struct {
		index string
		value float64
	}
	want := make(map[string]where, len(ms))
	for i := range ms {
		want[ms[i].DocID()] = where{IndexPrefix + ms[i].Day(), ms[i].Value}
	}
	ctx := context.Background()
	seen := 0
	var after []any
	for {
		svc := te.client.Search(IndexPrefix+"*").Sort("series", true).Sort("timestamp", true).Size(5000).
			FetchSourceContext(elastic.NewFetchSourceContext(true).Include("value"))
		if after != nil {
			svc = svc.SearchAfter(after...)
		}
		res, err := svc.Do(ctx)
		if err != nil {
			t.Fatalf("read back: %v", err)
		}
		for _, h := range res.Hits.Hits {
			w, ok := want[h.Id]
			if !ok {
				t.Fatalf("document %s/%s: not a produced metric, or stored twice", h.Index, h.Id)
			}
			var doc struct{ Value float64 }
			json.Unmarshal(h.Source, &doc)
			if h.Index != w.index || doc.Value != w.value {
				t.Fatalf("document %s: in %s with value %v, want %s and %v", h.Id, h.Index, doc.Value, w.index, w.value)
			}
			delete(want, h.Id)
			seen++
		}
		if len(res.Hits.Hits) < 5000 {
			break
		}
		after = res.Hits.Hits[len(res.Hits.Hits)-1].Sort
	}
	if len(want) != 0 || seen != len(ms) {
		t.Fatalf("read back %d documents, %d metrics missing", seen, len(want))
	}
}

// genMetrics makes n distinct metrics of a few hundred series over the last
// minutes before now.
func genMetrics(n int, now time.Time, prefix string) []metric.Metric {
	ms := make([]metric.Metric, n)
	for i := range ms {
		ms[i] = metric.Metric{
			Endpoint:  fmt.Sprintf("%shost-%03d", prefix, i%97),
			Name:      fmt.Sprintf("cpu.%d", i%7),
			Value:     float64(i) + 0.25,
			Timestamp: now.Unix() - int64(i/679),
			Step:      10,
			Type:      metric.Gauge,
			Tags:      map[string]string{"core": fmt.Sprint(i % 3)},
		}
	}
	return ms
}

type rawRecord = savertest.Record

func metricRecords(ms []metric.Metric) []rawRecord { return savertest.Records(ms) }

func produce(t testing.TB, broker string, recs []rawRecord) {
	t.Helper()
	savertest.Produce(t, broker, testTopic, recs)
}

type deadLetter struct {
	value, reason, source string
}

// readDLQ reads the dead-letter topic until it holds want records (or the
// deadline), and returns them.
func readDLQ(t testing.TB, broker string, want int) []deadLetter {
	t.Helper()
	var out []deadLetter
	for _, d := range savertest.ReadTopic(t, broker, testDLQ, want, 30*time.Second) {
		out = append(out, deadLetter{value: d.Value, reason: d.Headers[HeaderReason], source: d.Headers[HeaderSource]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].value < out[j].value })
	return out
}

// committed returns the group's committed offsets and the topic's end
// offsets, summed over partitions.
func committed(t testing.TB, broker, group string) (commit, end int64) {
	t.Helper()
	return savertest.Committed(t, broker, testTopic, group)
}

// waitFor polls cond until it reports true or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	savertest.WaitFor(t, timeout, what, cond)
}

func testConfig(broker, esURL string) Config {
	cfg := DefaultConfig()
	cfg.HTTP.Listen = ""
	cfg.Kafka.Brokers = []string{broker}
	cfg.Kafka.CommitInterval = confkit.Duration(100 * time.Millisecond)
	cfg.Kafka.SessionTimeout = confkit.Duration(6 * time.Second)
	cfg.Kafka.RebalanceDrain = confkit.Duration(5 * time.Second)
	cfg.Elasticsearch.URLs = []string{esURL}
	cfg.Elasticsearch.Replicas = 0
	cfg.Elasticsearch.BulkDocs = 500
	cfg.Elasticsearch.FlushInterval = confkit.Duration(50 * time.Millisecond)
	cfg.Elasticsearch.RetryInitial = confkit.Duration(20 * time.Millisecond)
	cfg.Elasticsearch.RetryMax = confkit.Duration(500 * time.Millisecond)
	cfg.ShutdownTimeout = confkit.Duration(10 * time.Second)
	return cfg
}

type runningSaver struct {
	s      *Saver
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func startSaver(t testing.TB, cfg Config, opts ...Option) *runningSaver {
	t.Helper()
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s, err := New(cfg, logger, reg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rs := &runningSaver{s: s, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { rs.done <- s.Run(ctx) }()
	t.Cleanup(func() { rs.stop(t) })
	return rs
}

// stop ends Run and waits for it (idempotent).
func (rs *runningSaver) stop(t testing.TB) {
	t.Helper()
	if rs.cancel == nil {
		return
	}
	rs.cancel()
	rs.cancel = nil
	select {
	case err := <-rs.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return within 60s of cancel")
	}
}

// counter reads a counter or gauge.
func (rs *runningSaver) counter(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func TestSaverEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	k := devstack.StartKafkaT(t, testTopic, testDLQ)
	es := startTestES(t)
	now := time.Now().UTC()
	ms := genMetrics(5000, now, "e2e-")
	// Three days ago: that day's index, not today's.
	old := metric.Metric{Endpoint: "e2e-old", Name: "disk.used", Value: 42, Timestamp: now.Add(-72 * time.Hour).Unix(), Type: metric.Gauge}
	ms = append(ms, old)
	recs := metricRecords(ms)
	// Redelivered by the relay: same metric twice.
	recs = append(recs, recs[17], recs[4000])
	future := metric.Metric{Endpoint: "e2e-future", Name: "clock.skewed", Value: 1, Timestamp: now.Add(time.Hour).Unix(), Type: metric.Gauge}
	fv, _ := json.Marshal(future)
	bad := []rawRecord{
		{Key: []byte("x"), Value: []byte(`cpu.idle 97 1700000000`)},                                                          // malformed
		{Key: nil, Value: []byte(`{"endpoint":"a/b","name":"x","value":1,"timestamp":1764072000,"step":10,"type":"GAUGE"}`)}, // invalid
		{Key: []byte(future.SeriesKey()), Value: fv},                                                                         // future beyond skew
	}
	recs = append(recs, bad...)
	produce(t, k.Addr(), recs)

	rs := startSaver(t, testConfig(k.Addr(), es.url))
	waitFor(t, 60*time.Second, "every record committed", func() (bool, string) {
		c, e := committed(t, k.Addr(), "falconet-saver")
		return c == e && e == int64(len(recs)), fmt.Sprintf("committed %d of %d (produced %d)", c, e, len(recs))
	})
	es.checkStored(t, ms)
	if got := es.count(t, IndexPrefix+old.Day()); got != 1 {
		t.Errorf("index %s holds %d documents, want 1 (the three-day-old metric)", IndexPrefix+old.Day(), got)
	}
	dl := readDLQ(t, k.Addr(), 3)
	if len(dl) != 3 {
		t.Fatalf("dead letters: got %d (%+v), want 3", len(dl), dl)
	}
	wantReasons := map[string]string{string(bad[0].Value): ReasonMalformed, string(bad[1].Value): ReasonInvalid, string(fv): ReasonFuture}
	for _, d := range dl {
		if w := wantReasons[d.value]; !strings.HasPrefix(d.reason, w+": ") || !strings.HasPrefix(d.source, testTopic+"/") {
			t.Errorf("dead letter %q: reason %q source %q, want reason %q and a source", d.value, d.reason, d.source, w)
		}
	}
	// A metric Validate accepts but Elasticsearch refuses: tag "core.sub"
	// needs tags.core to be an object, and it is a keyword in that index
	// (400 mapper_parsing_exception). It goes to the dead-letter topic, the
	// offset moves on, nothing else is affected.
	clash := ms[0]
	clash.Tags = map[string]string{"core.sub": "1"}
	clash.Value = -1
	produce(t, k.Addr(), metricRecords([]metric.Metric{clash}))
	waitFor(t, 30*time.Second, "the clashing record committed", func() (bool, string) {
		c, e := committed(t, k.Addr(), "falconet-saver")
		return c == e && e == int64(len(recs)+1), fmt.Sprintf("committed %d of %d", c, e)
	})
	dl = readDLQ(t, k.Addr(), 4)
	var rejected []string
	for _, d := range dl {
		if strings.HasPrefix(d.reason, ReasonRejected) {
			rejected = append(rejected, d.reason)
		}
	}
	if len(dl) != 4 || len(rejected) != 1 || !strings.Contains(rejected[0], "status 400: mapper_parsing_exception") {
		t.Fatalf("after a mapping clash: %d dead letters, rejected %q; want 4 and one 400 mapper_parsing_exception", len(dl), rejected)
	}
	es.checkStored(t, ms)
	if got := rs.counter(rs.s.m.duplicates); got != 2 {
		t.Errorf("duplicates (409 on create) = %v, want 2", got)
	}
	if got := rs.counter(rs.s.m.deadLetters.WithLabelValues(ReasonFuture)); got != 1 {
		t.Errorf(`dead_letters_total{reason="future"} = %v, want 1`, got)
	}
	// The metric is an hour ahead: the gauge says so (the run took seconds).
	if got := rs.counter(rs.s.m.futureSkew); got < 3500 || got > 3600 {
		t.Errorf("future_skew_seconds = %v, want about 3600", got)
	}
	// The template shaped the index: timestamp is a date.
	// (GetMappingService asks for "/index/_mapping/", which dev-es
	// refuses; ES accepts the trailing slash. Ask without it.)
	res, err := es.client.PerformRequest(context.Background(), elastic.PerformRequestOptions{
		Method: "GET", Path: "/" + IndexPrefix + ms[0].Day() + "/_mapping"})
	if err != nil {
		t.Fatal(err)
	}
	var mp map[string]struct {
		Mappings struct {
			Properties map[string]map[string]any `json:"properties"`
		} `json:"mappings"`
	}
	if err := json.Unmarshal(res.Body, &mp); err != nil {
		t.Fatal(err)
	}
	ts := mp[IndexPrefix+ms[0].Day()].Mappings.Properties["timestamp"]
	if ts["type"] != "date" || ts["format"] != "epoch_second" {
		t.Errorf("mapping %s: timestamp is %v, want an epoch_second date", res.Body, ts)
	}
	rs.stop(t)
}

// A saver that dies without committing (its context cancelled with the
// commit loop cut off is not a crash: run the real binary and SIGKILL it, see
// TestSaverBinaryKill) -- here two savers share the group and one leaves in
// the middle: the rebalance loses and duplicates nothing.
func TestSaverRebalance(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	k := devstack.StartKafkaT(t, testTopic, testDLQ)
	es := startTestES(t)
	now := time.Now().UTC()
	ms := genMetrics(30000, now, "rb-")
	recs := metricRecords(ms)
	cfg := testConfig(k.Addr(), es.url)
	cfg.Elasticsearch.BulkDocs = 200
	t0 := time.Now()
	phase := func(what string) { t.Logf("%s: %s", what, time.Since(t0).Round(time.Millisecond)) }
	a := startSaver(t, cfg)
	produce(t, k.Addr(), recs[:5000])
	b := startSaver(t, cfg)
	waitFor(t, 60*time.Second, "b owning partitions", func() (bool, string) {
		lag, ok := b.s.lag()
		return ok, fmt.Sprintf("b owns none (lag %d)", lag)
	})
	phase("b owns partitions")
	produce(t, k.Addr(), recs[5000:20000])
	sent := 20000
	waitFor(t, 60*time.Second, "both savers storing", func() (bool, string) {
		sa, sb := a.counter(a.s.m.stored), b.counter(b.s.m.stored)
		return sa > 0 && sb > 0, fmt.Sprintf("a stored %v, b stored %v", sa, sb)
	})
	// a leaves while records keep coming: its partitions move to b.
	phase("both storing")
	a.stop(t)
	phase("a stopped")
	produce(t, k.Addr(), recs[sent:])
	waitFor(t, 60*time.Second, "every record committed", func() (bool, string) {
		c, e := committed(t, k.Addr(), "falconet-saver")
		return c == e && e == int64(len(recs)), fmt.Sprintf("committed %d of %d", c, e)
	})
	phase("all committed")
	es.checkStored(t, ms)
	phase("checked")
	t.Logf("saver a stored %v, b stored %v, duplicates a %v b %v", a.counter(a.s.m.stored), b.counter(b.s.m.stored),
		a.counter(a.s.m.duplicates), b.counter(b.s.m.duplicates))
}

func TestSaverES429(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	k := devstack.StartKafkaT(t, testTopic, testDLQ)
	es := startTestES(t)
	es.needFaults(t)
	ms := genMetrics(8000, time.Now().UTC(), "r429-")
	produce(t, k.Addr(), metricRecords(ms))
	rs := startSaver(t, testConfig(k.Addr(), es.url))
	waitFor(t, 30*time.Second, "templates installed", func() (bool, string) {
		return rs.counter(rs.s.m.bulks.WithLabelValues("ok")) > 0, "no bulk answered yet"
	})
	es.dev.SetFaults(devstack.ESFaults{RejectFraction: 0.3})
	waitFor(t, 90*time.Second, "every record committed", func() (bool, string) {
		c, e := committed(t, k.Addr(), "falconet-saver")
		return c == e && e == int64(len(ms)), fmt.Sprintf("committed %d of %d", c, e)
	})
	es.dev.SetFaults(devstack.ESFaults{})
	if got := rs.counter(rs.s.m.itemRetries); got == 0 {
		t.Errorf("item retries = 0, want > 0 with 30%% of items rejected")
	}
	es.checkStored(t, ms)
	if got := rs.counter(rs.s.m.deadLetters.WithLabelValues(ReasonRejected)); got != 0 {
		t.Errorf("dead letters for 429 items = %v, want 0", got)
	}
}

func TestSaverESDown(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	k := devstack.StartKafkaT(t, testTopic, testDLQ)
	es := startTestES(t)
	es.needFaults(t)
	cfg := testConfig(k.Addr(), es.url)
	cfg.Elasticsearch.BulkDocs = 100
	cfg.Elasticsearch.MaxInFlight = 2
	rs := startSaver(t, cfg)
	waitFor(t, 30*time.Second, "saver joined", func() (bool, string) {
		rs.s.mu.Lock()
		defer rs.s.mu.Unlock()
		return rs.s.joined, "not joined"
	})
	es.dev.SetFaults(devstack.ESFaults{Unavailable: true})
	ms := genMetrics(20000, time.Now().UTC(), "down-")
	produce(t, k.Addr(), metricRecords(ms))
	waitFor(t, 30*time.Second, "bulk failures while ES is down", func() (bool, string) {
		n := rs.counter(rs.s.m.bulks.WithLabelValues("error"))
		return n >= 5, fmt.Sprintf("%v failed bulks", n)
	})
	// Nothing stored: nothing committed; records held in memory stay under
	// the bound (max_in_flight+2 batches and one record per partition).
	if c, _ := committed(t, k.Addr(), "falconet-saver"); c != 0 {
		t.Errorf("committed %d offsets while ES is down, want 0", c)
	}
	held := rs.counter(rs.s.m.consumed) - rs.counter(rs.s.m.stored)
	bound := float64((cfg.Elasticsearch.MaxInFlight+2)*cfg.Elasticsearch.BulkDocs + 10)
	if held > bound {
		t.Errorf("records held while ES is down = %v, want <= %v", held, bound)
	}
	t.Logf("while down: %v records held (bound %v), %v failed bulks", held, bound, rs.counter(rs.s.m.bulks.WithLabelValues("error")))
	// Then gone altogether: connections refused.
	failed := rs.counter(rs.s.m.bulks.WithLabelValues("error"))
	if err := es.dev.Stop(); err != nil {
		t.Fatal(err)
	}
	es.dev.SetFaults(devstack.ESFaults{})
	waitFor(t, 30*time.Second, "bulk failures while ES refuses connections", func() (bool, string) {
		n := rs.counter(rs.s.m.bulks.WithLabelValues("error"))
		return n >= failed+3, fmt.Sprintf("%v failed bulks", n)
	})
	if c, _ := committed(t, k.Addr(), "falconet-saver"); c != 0 {
		t.Errorf("committed %d offsets while ES is down, want 0", c)
	}
	if err := es.dev.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, "every record committed after ES returned", func() (bool, string) {
		c, e := committed(t, k.Addr(), "falconet-saver")
		return c == e && e == int64(len(ms)), fmt.Sprintf("committed %d of %d", c, e)
	})
	es.checkStored(t, ms)
}

func TestRetention(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	es := startTestES(t)
	ctx := context.Background()
	cfg := DefaultConfig().Elasticsearch
	cfg.RetentionDays = 7
	cfg.RollupRetentionMonths = 2
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var all []string
	for d := 0; d <= 12; d++ {
		all = append(all, IndexPrefix+now.AddDate(0, 0, -d).Format("2006.01.02"))
	}
	all = append(all, RollupPrefix+"5m-2026.11", RollupPrefix+"5m-2026.09", RollupPrefix+"1h-2026.08", "falconet-metrics-keep")
	for _, name := range all {
		if _, err := es.client.CreateIndex(name).Do(ctx); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	// Expected by hand: days 8..12 ago are older than 7 days (cutoff
	// 2026.11.18); months before 2026.09 go.
	want := []string{"falconet-metrics-2026.11.13", "falconet-metrics-2026.11.14", "falconet-metrics-2026.11.15",
		"falconet-metrics-2026.11.16", "falconet-metrics-2026.11.17", RollupPrefix + "1h-2026.08"}
	plan, err := RetentionPlan(ctx, es.client, &cfg, now)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(plan, want) {
		t.Fatalf("RetentionPlan = %v, want %v", plan, want)
	}
	deleted, err := ApplyRetention(ctx, es.client, &cfg, now)
	if err != nil || !slices.Equal(deleted, want) {
		t.Fatalf("ApplyRetention = %v, %v; want %v", deleted, err, want)
	}
	left, err := ListIndices(ctx, es.client)
	if err != nil {
		t.Fatal(err)
	}
	wantLeft := slices.DeleteFunc(slices.Clone(all), func(n string) bool { return slices.Contains(want, n) || n == "falconet-metrics-keep" })
	slices.Sort(wantLeft)
	wantLeft = append(wantLeft, "falconet-metrics-keep")
	slices.Sort(wantLeft)
	if !slices.Equal(left, wantLeft) {
		t.Fatalf("indices after retention = %v, want %v", left, wantLeft)
	}
	if again, _ := RetentionPlan(ctx, es.client, &cfg, now); len(again) != 0 {
		t.Fatalf("second RetentionPlan = %v, want nothing", again)
	}
}

// expectedRollups computes the rollups of ms by hand.
func expectedRollups(ms []metric.Metric, step time.Duration) map[string]Rollup {
	out := map[string]Rollup{}
	for _, m := range ms {
		ws := WindowStart(m.Timestamp, step)
		id := RollupID(step, m.SeriesKey(), ws)
		r, ok := out[id]
		if !ok {
			r = Rollup{Series: m.SeriesKey(), Window: StepName(step), WindowStart: ws, Min: m.Value, Max: m.Value}
		}
		r.Min, r.Max = min(r.Min, m.Value), max(r.Max, m.Value)
		r.Sum += m.Value
		r.Count++
		r.Avg = r.Sum / float64(r.Count)
		out[id] = r
	}
	return out
}

func checkRollups(t *testing.T, es *testES, step time.Duration, want map[string]Rollup) {
	t.Helper()
	ctx := context.Background()
	for id, w := range want {
		idx := RollupIndex(step, w.WindowStart)
		res, err := es.client.Get().Index(idx).Id(id).Do(ctx)
		if err != nil || !res.Found {
			t.Fatalf("rollup %s %s @ %d: not in %s: %v", w.Window, w.Series, w.WindowStart, idx, err)
		}
		var got Rollup
		if err := json.Unmarshal(res.Source, &got); err != nil {
			t.Fatal(err)
		}
		if got.Series != w.Series || got.Count != w.Count || got.Min != w.Min || got.Max != w.Max ||
			got.Sum != w.Sum || got.Avg != w.Avg || got.WindowStart != w.WindowStart || got.Window != w.Window {
			t.Fatalf("rollup %s: got %+v, want %+v", id, got, w)
		}
	}
	if got := es.count(t, RollupPrefix+StepName(step)+"-*"); got != int64(len(want)) {
		t.Fatalf("rollup documents for %s: got %d, want %d", StepName(step), got, len(want))
	}
}

func TestRollups(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	k := devstack.StartKafkaT(t, testTopic, testDLQ)
	es := startTestES(t)
	// A fixed clock: 2026-11-25 10:00:00 plus what the test advances.
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var clockMu sync.Mutex
	clock := base
	now := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
	setNow := func(t time.Time) { clockMu.Lock(); clock = t; clockMu.Unlock() }

	// 09:40 .. 09:59:50, every 10 s, 6 series, values varied.
	var ms []metric.Metric
	for ts := base.Add(-20 * time.Minute).Unix(); ts < base.Unix(); ts += 10 {
		for s := range 6 {
			ms = append(ms, metric.Metric{Endpoint: fmt.Sprintf("ru-%d", s), Name: "load", Value: float64((ts/10)%17) * float64(s+1) / 4,
				Timestamp: ts, Step: 10, Type: metric.Gauge, Tags: map[string]string{"s": fmt.Sprint(s % 2)}})
		}
	}
	produce(t, k.Addr(), metricRecords(ms))
	cfg := testConfig(k.Addr(), es.url)
	cfg.Rollup.Enabled = true
	cfg.Rollup.Steps = []confkit.Duration{confkit.Duration(5 * time.Minute), confkit.Duration(time.Hour)}
	cfg.Rollup.Lateness = confkit.Duration(10 * time.Minute)
	cfg.Rollup.Delay = confkit.Duration(30 * time.Second)
	cfg.Rollup.Interval = confkit.Duration(time.Hour) // the test drives runOnce
	cfg.Rollup.Lookback = confkit.Duration(30 * time.Minute)
	cfg.Elasticsearch.RetentionDays = 0
	cfg.FutureSkew = confkit.Duration(24 * time.Hour)
	rs := startSaver(t, cfg, WithClock(now))
	waitFor(t, 60*time.Second, "raw data committed", func() (bool, string) {
		c, e := committed(t, k.Addr(), "falconet-saver")
		return c == e && e == int64(len(ms)), fmt.Sprintf("committed %d of %d", c, e)
	})
	// 10:00:30: the 5m windows 09:30..09:55 are closed past their delay;
	// the 1h window 09:00 is too.
	setNow(base.Add(30 * time.Second))
	if err := rs.s.rollups.runOnce(context.Background()); err != nil {
		t.Fatalf("runOnce: %v", err)
	}
	checkRollups(t, es, 5*time.Minute, expectedRollups(ms, 5*time.Minute))
	checkRollups(t, es, time.Hour, expectedRollups(ms, time.Hour))

	// Late data for 09:57 (within the lateness) re-triggers 09:55 and the
	// 09:00 hour; a point for 09:41 at 10:08 is past the 09:40 window's
	// lateness (closed 09:45) and is stored raw but changes no rollup...
	// except the hour, which closed at 10:00 and is still within lateness.
	setNow(base.Add(8 * time.Minute))
	late := []metric.Metric{
		{Endpoint: "ru-0", Name: "load", Value: 1000, Timestamp: base.Add(-3*time.Minute + 5*time.Second).Unix(), Type: metric.Gauge, Tags: map[string]string{"s": "0"}},
		{Endpoint: "ru-9", Name: "load", Value: -5, Timestamp: base.Add(-19*time.Minute + 5*time.Second).Unix(), Type: metric.Gauge},
	}
	produce(t, k.Addr(), metricRecords(late))
	waitFor(t, 30*time.Second, "late data committed", func() (bool, string) {
		c, e := committed(t, k.Addr(), "falconet-saver")
		return c == e && e == int64(len(ms)+len(late)), fmt.Sprintf("committed %d of %d", c, e)
	})
	if err := rs.s.rollups.runOnce(context.Background()); err != nil {
		t.Fatalf("runOnce: %v", err)
	}
	all := append(slices.Clone(ms), late...)
	want5 := expectedRollups(ms, 5*time.Minute)
	for id, r := range expectedRollups(all, 5*time.Minute) {
		if r.WindowStart == base.Add(-5*time.Minute).Unix() {
			want5[id] = r // only the re-triggered window changed
		}
	}
	checkRollups(t, es, 5*time.Minute, want5)
	checkRollups(t, es, time.Hour, expectedRollups(all, time.Hour))
	if got := rs.counter(rs.s.m.rollupLate); got != 2 {
		t.Errorf("late re-triggers = %v, want 2 (5m 09:55 and 1h 09:00)", got)
	}
	_ = io.Discard
}

// SIGTERM while Elasticsearch is down: Run returns (bounded by
// rebalance_drain and shutdown_timeout), commits nothing it did not store,
// and the next saver stores everything.
func TestSaverShutdownWhileESDown(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	k := devstack.StartKafkaT(t, testTopic, testDLQ)
	es := startTestES(t)
	es.needFaults(t)
	cfg := testConfig(k.Addr(), es.url)
	cfg.Kafka.RebalanceDrain = confkit.Duration(2 * time.Second)
	cfg.ShutdownTimeout = confkit.Duration(3 * time.Second)
	rs := startSaver(t, cfg)
	waitFor(t, 30*time.Second, "templates installed", func() (bool, string) {
		rs.s.mu.Lock()
		defer rs.s.mu.Unlock()
		return rs.s.joined, "not joined"
	})
	es.dev.SetFaults(devstack.ESFaults{Unavailable: true})
	ms := genMetrics(5000, time.Now().UTC(), "term-")
	produce(t, k.Addr(), metricRecords(ms))
	waitFor(t, 30*time.Second, "bulk failures", func() (bool, string) {
		n := rs.counter(rs.s.m.bulks.WithLabelValues("error"))
		return n >= 3, fmt.Sprintf("%v failed bulks", n)
	})
	start := time.Now()
	rs.stop(t) // fails the test if Run does not return within 60 s
	t.Logf("shutdown with ES down took %s (rebalance_drain 2s, shutdown_timeout 3s)", time.Since(start).Round(time.Millisecond))
	if c, _ := committed(t, k.Addr(), "falconet-saver"); c != 0 {
		t.Fatalf("committed %d offsets with nothing stored, want 0", c)
	}
	es.dev.SetFaults(devstack.ESFaults{})
	startSaver(t, testConfig(k.Addr(), es.url))
	waitFor(t, 60*time.Second, "every record committed by the next saver", func() (bool, string) {
		c, e := committed(t, k.Addr(), "falconet-saver")
		return c == e && e == int64(len(ms)), fmt.Sprintf("committed %d of %d", c, e)
	})
	es.checkStored(t, ms)
}

// The central promise, checked while it happens: whenever an offset is
// committed, every record below it in that partition is in Elasticsearch
// (or the dead-letter topic; none here). Elasticsearch rejects half the
// items with 429, so records complete out of order.
func TestSaverCommitsOnlyStored(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	k := devstack.StartKafkaT(t, testTopic, testDLQ)
	es := startTestES(t)
	es.needFaults(t)
	ms := genMetrics(6000, time.Now().UTC(), "commit-")
	pos := savertest.ProduceOne(t, k.Addr(), testTopic, metricRecords(ms))
	byPos := map[savertest.Position]*metric.Metric{}
	for i := range ms {
		byPos[pos[i]] = &ms[i]
	}
	cfg := testConfig(k.Addr(), es.url)
	cfg.Elasticsearch.BulkDocs = 150
	cfg.Elasticsearch.MaxInFlight = 4
	cfg.Kafka.CommitInterval = confkit.Duration(30 * time.Millisecond)
	rs := startSaver(t, cfg)
	waitFor(t, 30*time.Second, "first bulk", func() (bool, string) {
		return rs.counter(rs.s.m.bulks.WithLabelValues("ok")) > 0, "none yet"
	})
	es.dev.SetFaults(devstack.ESFaults{RejectFraction: 0.5})
	checked := map[int32]int64{} // per partition: offsets below are verified
	checks := 0
	ctx := context.Background()
	waitFor(t, 120*time.Second, "every record committed", func() (bool, string) {
		committedNow := savertest.CommittedByPartition(t, k.Addr(), testTopic, "falconet-saver")
		var total int64
		for p, c := range committedNow {
			total += c
			for off := checked[p]; off < c; off++ {
				m := byPos[savertest.Position{Partition: p, Offset: off}]
				if m == nil {
					t.Fatalf("partition %d offset %d: not produced by this test", p, off)
				}
				res, err := es.client.Get().Index(IndexPrefix + m.Day()).Id(m.DocID()).Do(ctx)
				if err != nil || !res.Found {
					t.Fatalf("partition %d committed at %d, but offset %d (%s) is not in Elasticsearch: %v", p, c, off, m.DocID(), err)
				}
				checks++
			}
			checked[p] = max(checked[p], c)
		}
		return total == int64(len(ms)), fmt.Sprintf("committed %d of %d", total, len(ms))
	})
	es.dev.SetFaults(devstack.ESFaults{})
	if checks != len(ms) {
		t.Fatalf("verified %d committed records, want %d", checks, len(ms))
	}
	if rs.counter(rs.s.m.itemRetries) == 0 {
		t.Fatal("no item was retried: the faults did not bite")
	}
	t.Logf("%d records verified against their committed offsets; %v items retried", checks, rs.counter(rs.s.m.itemRetries))
}

// A proxy in front of Elasticsearch with a small body limit (nginx's
// client_max_body_size) answers 413 to large bulks: the saver halves them
// until they pass, and dead-letters a single document that never fits.
func TestSaverBodyTooLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	k := devstack.StartKafkaT(t, testTopic, testDLQ)
	es := startTestES(t)
	target, err := url.Parse(es.url)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 8 << 10
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			http.Error(w, "413 Request Entity Too Large", http.StatusRequestEntityTooLarge)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	now := time.Now().UTC()
	ms := genMetrics(3000, now, "big-")
	huge := metric.Metric{Endpoint: "big-huge", Name: "many.tags", Value: 1, Timestamp: now.Unix(), Type: metric.Gauge,
		Tags: map[string]string{}}
	for i := range metric.MaxTags {
		huge.Tags[fmt.Sprintf("t%02d", i)] = strings.Repeat("v", metric.MaxTagValueLen)
	}
	produce(t, k.Addr(), metricRecords(append(slices.Clone(ms), huge)))
	cfg := testConfig(k.Addr(), srv.URL)
	cfg.Elasticsearch.BulkDocs = 500
	rs := startSaver(t, cfg)
	waitFor(t, 60*time.Second, "every record committed", func() (bool, string) {
		c, e := committed(t, k.Addr(), "falconet-saver")
		return c == e && e == int64(len(ms)+1), fmt.Sprintf("committed %d of %d", c, e)
	})
	es.checkStored(t, ms)
	dl := readDLQ(t, k.Addr(), 1)
	if len(dl) != 1 || !strings.HasPrefix(dl[0].reason, ReasonRejected+": status 413") {
		t.Fatalf("dead letters %+v, want the one oversized document with a 413 reason", dl)
	}
	t.Logf("%v bulks answered 413 and split", rs.counter(rs.s.m.bulks.WithLabelValues("too_large")))
}

// A tag whose first value looks like a date must stay a keyword: with ES's
// default date detection (run before dynamic templates) the tag would become
// a date and every later non-date value a 400 mapping error.
func TestSaverDateLikeTagStaysKeyword(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	k := devstack.StartKafkaT(t, testTopic, testDLQ)
	es := startTestES(t)
	now := time.Now().UTC().Truncate(time.Second)
	ms := []metric.Metric{
		{Endpoint: "h", Name: "backup.age", Value: 1, Timestamp: now.Unix() - 2, Tags: map[string]string{"release": "2026-01-02"}},
		{Endpoint: "h", Name: "backup.age", Value: 2, Timestamp: now.Unix() - 1, Tags: map[string]string{"release": "stable"}},
	}
	recs := metricRecords(ms)
	produce(t, k.Addr(), recs[:1])
	startSaver(t, testConfig(k.Addr(), es.url))
	waitFor(t, 60*time.Second, "the date-like record committed", func() (bool, string) {
		c, e := committed(t, k.Addr(), "falconet-saver")
		return c == 1 && e == 1, fmt.Sprintf("committed %d of %d", c, e)
	})
	produce(t, k.Addr(), recs[1:])
	waitFor(t, 60*time.Second, "both records committed", func() (bool, string) {
		c, e := committed(t, k.Addr(), "falconet-saver")
		return c == 2 && e == 2, fmt.Sprintf("committed %d of %d", c, e)
	})
	es.checkStored(t, ms)
}
