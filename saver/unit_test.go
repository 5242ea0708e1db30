package saver

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/falconet/falconet/internal/confkit"
	"github.com/falconet/falconet/metric"
)

func testMetric(ts int64) metric.Metric {
	return metric.Metric{Endpoint: "web-1", Name: "cpu.idle", Value: 97.5, Timestamp: ts, Step: 10,
		Type: metric.Gauge, Tags: map[string]string{"core": "0", "dc": `fra"x\`}}
}

func TestDefaultConfigValid(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v, want nil", err)
	}
}

func TestConfigValidateNamesKey(t *testing.T) {
	tests := []struct {
		mutate func(*Config)
		key    string
	}{
		{func(c *Config) { c.Kafka.Brokers = nil }, "saver.kafka.brokers: empty"},
		{func(c *Config) { c.Kafka.Brokers = []string{"nohost"} }, "saver.kafka.brokers"},
		{func(c *Config) { c.Kafka.Topic = "" }, "saver.kafka.topic"},
		{func(c *Config) { c.Kafka.Group = "" }, "saver.kafka.group"},
		{func(c *Config) { c.Kafka.DLQTopic = c.Kafka.Topic }, "saver.kafka.dlq_topic"},
		{func(c *Config) { c.Kafka.Version = "banana" }, "saver.kafka.version"},
		{func(c *Config) { c.Kafka.InitialOffset = "middle" }, "saver.kafka.initial_offset"},
		{func(c *Config) { c.Elasticsearch.URLs = []string{"127.0.0.1:9200"} }, "saver.elasticsearch.urls"},
		{func(c *Config) { c.Elasticsearch.OpType = "update" }, "saver.elasticsearch.op_type"},
		{func(c *Config) { c.Elasticsearch.BulkDocs = 0 }, "saver.elasticsearch.bulk_docs"},
		{func(c *Config) { c.Elasticsearch.BulkBytes = 10 }, "saver.elasticsearch.bulk_bytes"},
		{func(c *Config) { c.Elasticsearch.MaxInFlight = 0 }, "saver.elasticsearch.max_in_flight"},
		{func(c *Config) { c.Elasticsearch.RetryMax = 1 }, "saver.elasticsearch.retry_max"},
		{func(c *Config) { c.Elasticsearch.Shards = 0 }, "saver.elasticsearch.shards"},
		{func(c *Config) { c.Elasticsearch.RetentionDays = -1 }, "saver.elasticsearch.retention_days"},
		{func(c *Config) { c.Elasticsearch.RefreshInterval = "soon" }, "saver.elasticsearch.refresh_interval"},
		{func(c *Config) { c.Rollup.Steps = []confkit.Duration{confkit.Duration(7 * time.Minute)} }, "saver.rollup.steps"},
		{func(c *Config) {
			c.Rollup.Steps = []confkit.Duration{confkit.Duration(5 * time.Minute), confkit.Duration(5 * time.Minute)}
		}, "saver.rollup.steps: duplicate"},
		{func(c *Config) { c.Rollup.Enabled, c.Rollup.Steps = true, nil }, "saver.rollup.steps"},
		{func(c *Config) { c.Log.Level = "loud" }, "saver.log.level"},
		{func(c *Config) { c.HTTP.Listen = "6061" }, "saver.http.listen"},
		{func(c *Config) { c.ShutdownTimeout = 0 }, "saver.shutdown_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.key) || !errors.Is(err, ErrConfig) {
				t.Fatalf("Validate() = %v, want an ErrConfig naming %q", err, tt.key)
			}
		})
	}
}

// The packaged example must load strictly (every key known) and hold the
// defaults, so it documents exactly what the binary does.
func TestPackagedConfigIsTheDefault(t *testing.T) {
	path := filepath.Join("..", "packaging", "config", "saver.toml")
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig(%s) = %v", path, err)
	}
	got, _ := json.Marshal(cfg)
	want, _ := json.Marshal(DefaultConfig())
	if string(got) != string(want) {
		t.Fatalf("packaged config differs from DefaultConfig:\n got %s\nwant %s", got, want)
	}
	data, _ := os.ReadFile(path)
	if err := confkit.Decode("x.toml", append(data, "\n[kafka.extra]\nfoo = 1\n"...), &cfg); err == nil {
		t.Fatal("unknown key accepted, want error")
	}
}

func TestDecodeRecord(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	good := testMetric(now.Unix())
	goodJSON, _ := json.Marshal(good)
	enc := func(m metric.Metric) []byte { b, _ := json.Marshal(m); return b }
	tests := []struct {
		name       string
		value      []byte
		wantReason string
	}{
		{"canonical", goodJSON, ""},
		{"open-falcon", []byte(`{"endpoint":"h","metric":"m","value":1,"timestamp":` + strconv.FormatInt(now.Unix(), 10) + `,"step":60,"counterType":"GAUGE","tags":"a=b"}`), ""},
		{"three days ago", enc(testMetric(now.Add(-72 * time.Hour).Unix())), ""},
		{"within skew", enc(testMetric(now.Add(9 * time.Minute).Unix())), ""},
		{"beyond skew", enc(testMetric(now.Add(11 * time.Minute).Unix())), ReasonFuture},
		{"older than retention", enc(testMetric(now.AddDate(0, 0, -31).Unix())), ReasonExpired},
		{"not json", []byte("cpu.idle 97"), ReasonMalformed},
		{"empty", nil, ReasonMalformed},
		{"array", []byte(`[1,2]`), ReasonMalformed},
		{"invalid endpoint", []byte(`{"endpoint":"a/b","name":"x","value":1,"timestamp":1764072000,"step":10,"type":"GAUGE"}`), ReasonInvalid},
		{"ms timestamp", []byte(`{"endpoint":"a","name":"x","value":1,"timestamp":1764072000000,"step":10,"type":"GAUGE"}`), ReasonInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, reason, err := decodeRecord(tt.value, now, 10*time.Minute, 30)
			if reason != tt.wantReason || (err == nil) != (tt.wantReason == "") {
				t.Fatalf("decodeRecord = reason %q, err %v; want reason %q", reason, err, tt.wantReason)
			}
		})
	}
}

func TestAppendBulkItem(t *testing.T) {
	m := testMetric(time.Date(2026, 11, 22, 23, 59, 59, 0, time.UTC).Unix())
	b, docOff, err := appendBulkItem([]byte("prefix"), "create", &m)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b[6:]), "\n"), "\n")
	if len(lines) != 2 || docOff != 6+len(lines[0])+1 {
		t.Fatalf("got %q (docOff %d), want two lines", b, docOff)
	}
	var action map[string]struct {
		Index string `json:"_index"`
		ID    string `json:"_id"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &action); err != nil {
		t.Fatalf("action line %q: %v", lines[0], err)
	}
	if got, want := action["create"].Index, "falconet-metrics-2026.11.22"; got != want {
		t.Errorf("index = %q, want %q", got, want)
	}
	if got, want := action["create"].ID, m.DocID(); got != want {
		t.Errorf("_id = %q, want %q", got, want)
	}
	var doc struct {
		metric.Metric
		Series string `json:"series"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &doc.Metric); err != nil {
		t.Fatalf("doc line %q: %v", lines[1], err)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &raw); err != nil {
		t.Fatal(err)
	}
	if got, want := raw["series"], m.SeriesKey(); got != want {
		t.Errorf("series = %q, want %q", got, want)
	}
	if doc.Metric.DocID() != m.DocID() || doc.Metric.Value != m.Value {
		t.Errorf("doc decodes to %+v, want %+v", doc.Metric, m)
	}
	// Invalid UTF-8 in a tag value still gives valid JSON.
	m.Tags["bad"] = "\xff"
	b, _, err = appendBulkItem(nil, "index", &m)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !json.Valid([]byte(l)) {
			t.Errorf("line %q is not valid JSON", l)
		}
	}
}

func TestPartTracker(t *testing.T) {
	var mu sync.Mutex
	var marks []int64
	tr := newPartTracker(func(next int64) { mu.Lock(); marks = append(marks, next); mu.Unlock() })
	offsets := []int64{10, 11, 13, 14, 20} // gaps: compaction, control records
	seqs := make([]uint64, len(offsets))
	for i, o := range offsets {
		seqs[i] = tr.add(o)
	}
	steps := []struct {
		complete  int
		wantMarks []int64
	}{
		{2, nil},             // 13 done, 10 and 11 not: nothing committable
		{1, nil},             // 11 done, 10 not
		{0, []int64{14}},     // 10 done: 10, 11, 13 passed -> next 14
		{4, []int64{14}},     // 20 done, 14 not
		{4, []int64{14}},     // twice is ignored
		{3, []int64{14, 21}}, // 14 done: all passed -> 21
	}
	for i, st := range steps {
		tr.complete(seqs[st.complete])
		mu.Lock()
		got := slices.Clone(marks)
		mu.Unlock()
		if !slices.Equal(got, st.wantMarks) {
			t.Fatalf("step %d (complete offset %d): marks %v, want %v", i, offsets[st.complete], got, st.wantMarks)
		}
	}
	if n := tr.outstanding(); n != 0 {
		t.Fatalf("outstanding = %d, want 0", n)
	}
	if !tr.waitIdle(context.Background(), time.Second) {
		t.Fatal("waitIdle = false, want true")
	}
	s := tr.add(21)
	tr.forget(tr.add(22)) // never handed on
	if tr.waitIdle(context.Background(), 10*time.Millisecond) {
		t.Fatal("waitIdle with a record outstanding = true, want false")
	}
	tr.complete(s)
	if got := tr.pos(); got != 22 {
		t.Fatalf("position after 21 done = %d, want 22 (22 was forgotten)", got)
	}
	tr.close()
	tr.complete(tr.add(22))
	if len(marks) != 3 {
		t.Fatalf("marked after close: %v", marks)
	}
}

func TestPartTrackerConcurrent(t *testing.T) {
	var last int64
	var mu sync.Mutex
	tr := newPartTracker(func(next int64) {
		mu.Lock()
		defer mu.Unlock()
		if next < last {
			t.Errorf("mark went backwards: %d after %d", next, last)
		}
		last = max(last, next)
	})
	const n = 20000
	seqs := make(chan uint64, n)
	for i := range n {
		seqs <- tr.add(int64(i))
	}
	close(seqs)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range seqs {
				tr.complete(s)
			}
		}()
	}
	wg.Wait()
	if last != n {
		t.Fatalf("final mark %d, want %d", last, n)
	}
}

func TestExpiredIndices(t *testing.T) {
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	names := []string{
		"falconet-metrics-2026.11.25",
		"falconet-metrics-2026.10.26", // exactly 30 days: kept
		"falconet-metrics-2026.10.25", // 31 days: goes
		"falconet-metrics-2025.01.01",
		"falconet-metrics-2026.1.1",   // not zero padded: not ours, kept
		"falconet-metrics-2026.02.30", // not a date: kept
		"falconet-metrics-junk",
		"other-2020.01.01",
		"falconet-rollup-5m-2026.11",
		"falconet-rollup-5m-2026.08", // 3 months back: kept with 3 months
		"falconet-rollup-1h-2026.07", // goes
		"falconet-rollup-2026.07",    // no step: kept
	}
	tests := []struct {
		days, months int
		want         []string
	}{
		{30, 3, []string{"falconet-metrics-2025.01.01", "falconet-metrics-2026.10.25", "falconet-rollup-1h-2026.07"}},
		{0, 0, nil},
		{1, 0, []string{"falconet-metrics-2025.01.01", "falconet-metrics-2026.10.25", "falconet-metrics-2026.10.26"}},
	}
	for _, tt := range tests {
		got := ExpiredIndices(names, now, tt.days, tt.months)
		if !slices.Equal(got, tt.want) {
			t.Errorf("ExpiredIndices(days %d, months %d) = %v, want %v", tt.days, tt.months, got, tt.want)
		}
	}
}

func TestWindowsAndNames(t *testing.T) {
	ts := time.Date(2026, 11, 25, 10, 7, 31, 0, time.UTC).Unix()
	tests := []struct {
		step      time.Duration
		wantStart time.Time
		wantName  string
		wantIndex string
	}{
		{5 * time.Minute, time.Date(2026, 11, 25, 10, 5, 0, 0, time.UTC), "5m", "falconet-rollup-5m-2026.11"},
		{time.Hour, time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), "1h", "falconet-rollup-1h-2026.11"},
		{24 * time.Hour, time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), "1d", "falconet-rollup-1d-2026.11"},
		{90 * time.Minute, time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC), "90m", "falconet-rollup-90m-2026.11"},
	}
	for _, tt := range tests {
		ws := WindowStart(ts, tt.step)
		if ws != tt.wantStart.Unix() || StepName(tt.step) != tt.wantName || RollupIndex(tt.step, ws) != tt.wantIndex {
			t.Errorf("step %s: start %s name %s index %s, want %s %s %s", tt.step, time.Unix(ws, 0).UTC(),
				StepName(tt.step), RollupIndex(tt.step, ws), tt.wantStart, tt.wantName, tt.wantIndex)
		}
	}
	if a, b := RollupID(time.Hour, "h/m/", 0), RollupID(5*time.Minute, "h/m/", 0); a == b || len(a) != 32 {
		t.Errorf("RollupID not distinct per step or not 32 hex: %s %s", a, b)
	}
}

func TestAggregate(t *testing.T) {
	pts := []rawPoint{{Series: "h/m/", Endpoint: "h", Name: "m", Value: 3}, {Value: -1.5}, {Value: 10}, {Value: 0.5}}
	got := aggregate(5*time.Minute, 600, pts)
	want := Rollup{Endpoint: "h", Name: "m", Series: "h/m/", Window: "5m", WindowStart: 600,
		Min: -1.5, Max: 10, Sum: 12, Avg: 3, Count: 4}
	if got.Min != want.Min || got.Max != want.Max || got.Sum != want.Sum || got.Avg != want.Avg ||
		got.Count != want.Count || got.Series != want.Series || got.Window != want.Window {
		t.Fatalf("aggregate = %+v, want %+v", got, want)
	}
}

func TestRollupSchedulerDueAndLate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Rollup.Enabled = true
	cfg.Rollup.Steps = []confkit.Duration{confkit.Duration(5 * time.Minute)}
	cfg.Rollup.Lateness = confkit.Duration(10 * time.Minute)
	cfg.Rollup.Delay = confkit.Duration(30 * time.Second)
	cfg.Rollup.Lookback = confkit.Duration(10 * time.Minute)
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	now := base.Add(2 * time.Minute)
	r := newRollupScheduler(&cfg, nil, newMetrics(nil), nil, func() time.Time { return now })
	step := 5 * time.Minute
	at := func(h, m int) int64 { return time.Date(2026, 11, 25, h, m, 0, 0, time.UTC).Unix() }

	// Lookback 10m from 10:02 -> windows from 09:50; 09:50 and 09:55 are
	// closed past their delay.
	if got, want := r.due(true)[step], []int64{at(9, 50), at(9, 55)}; !slices.Equal(got, want) {
		t.Fatalf("due at 10:02 = %v, want %v", got, want)
	}
	if got := r.due(true)[step]; len(got) != 0 {
		t.Fatalf("due again = %v, want none", got)
	}
	now = base.Add(5*time.Minute + 29*time.Second)
	if got := r.due(true)[step]; len(got) != 0 {
		t.Fatalf("due at 10:05:29 = %v, want none (delay 30s)", got)
	}
	now = base.Add(5*time.Minute + 30*time.Second)
	if got, want := r.due(true)[step], []int64{at(10, 0)}; !slices.Equal(got, want) {
		t.Fatalf("due at 10:05:30 = %v, want %v", got, want)
	}
	// Late data: 09:57 (window 09:55, closed 10:00, lateness until 10:10)
	// re-triggers; 09:51 (window 09:50, lateness ended 10:05) does not;
	// 10:06 is in an open window.
	r.stored([]int64{at(9, 57), at(9, 58), at(9, 51), at(10, 6)})
	if got, want := r.due(true)[step], []int64{at(9, 55)}; !slices.Equal(got, want) {
		t.Fatalf("due after late data = %v, want %v", got, want)
	}
	r.redo(step, []int64{at(10, 0)})
	if got, want := r.due(true)[step], []int64{at(10, 0)}; !slices.Equal(got, want) {
		t.Fatalf("due after redo = %v, want %v", got, want)
	}
}

func TestBackoff(t *testing.T) {
	for attempt := 1; attempt < 40; attempt++ {
		d := backoff(100*time.Millisecond, 30*time.Second, attempt)
		want := min(100*time.Millisecond*time.Duration(math.Pow(2, float64(min(attempt-1, 20)))), 30*time.Second)
		if d < want/2 || d > want {
			t.Fatalf("backoff(attempt %d) = %s, want in [%s, %s]", attempt, d, want/2, want)
		}
	}
}

func TestRollupSchedulerLeader(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Rollup.Enabled = true
	cfg.Rollup.Steps = []confkit.Duration{confkit.Duration(5 * time.Minute)}
	cfg.Rollup.Lateness = confkit.Duration(10 * time.Minute)
	cfg.Rollup.Delay = confkit.Duration(0)
	cfg.Rollup.Lookback = confkit.Duration(10 * time.Minute)
	at := func(h, m int) int64 { return time.Date(2026, 11, 25, h, m, 0, 0, time.UTC).Unix() }
	now := time.Unix(at(10, 0), 0)
	r := newRollupScheduler(&cfg, nil, newMetrics(nil), nil, func() time.Time { return now })
	step := 5 * time.Minute

	// Not the leader: no scheduled windows, but the watermark moves, so
	// late data it stores is recognised.
	if got := r.due(false)[step]; len(got) != 0 {
		t.Fatalf("non-leader due = %v, want none", got)
	}
	r.stored([]int64{at(9, 57)})
	if got, want := r.due(false)[step], []int64{at(9, 55)}; !slices.Equal(got, want) {
		t.Fatalf("non-leader due after late data = %v, want %v", got, want)
	}
	// Becoming leader at 10:12: rewinds 10 minutes (10:02 -> window 10:00)
	// and computes the closed windows from there.
	now = time.Unix(at(10, 12), 0)
	if got, want := r.due(true)[step], []int64{at(10, 0), at(10, 5)}; !slices.Equal(got, want) {
		t.Fatalf("new leader due = %v, want %v", got, want)
	}
	now = time.Unix(at(10, 15), 0)
	if got, want := r.due(true)[step], []int64{at(10, 10)}; !slices.Equal(got, want) {
		t.Fatalf("leader due = %v, want %v", got, want)
	}
}

func TestRetentionCutoffUnixMatchesDayNames(t *testing.T) {
	for _, now := range []time.Time{time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2024, 3, 1, 12, 0, 0, 0, time.FixedZone("x", 5*3600))} {
		for _, days := range []int{1, 7, 30, 400} {
			cut := retentionCutoffUnix(now, days)
			for _, ts := range []int64{cut - 86400, cut - 1, cut, cut + 1, cut + 86399, cut + 86400} {
				m := metric.Metric{Timestamp: ts}
				if got, want := ts < cut, m.Day() < retentionCutoff(now, days); got != want {
					t.Errorf("now %v, %d days, ts %d (%s): older by seconds %v, by day names %v", now, days, ts, m.Day(), got, want)
				}
			}
		}
	}
}
