package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/falconet/falconet/metric"
)

type latencyResult struct {
	RatePerS        float64 `json:"rate_metrics_per_s"`
	Seconds         float64 `json:"seconds"`
	Probes          int     `json:"probes"`
	Seen            int     `json:"probes_seen"`
	P50ms           float64 `json:"p50_ms"`
	P90ms           float64 `json:"p90_ms"`
	P99ms           float64 `json:"p99_ms"`
	MaxMs           float64 `json:"max_ms"`
	RefreshInterval string  `json:"refresh_interval"`
	PollMs          float64 `json:"poll_interval_ms"`
}

// probeTracker remembers the probes sent (their value is the generation
// time in unix milliseconds) and when each became searchable.
type probeTracker struct {
	mu      sync.Mutex
	sent    []float64 // ascending
	latency map[float64]float64
}

func (t *probeTracker) add(v float64) {
	t.mu.Lock()
	t.sent = append(t.sent, v)
	t.mu.Unlock()
}

// oldestUnseen is the lowest probe value not yet found, or -1.
func (t *probeTracker) oldestUnseen() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, v := range t.sent {
		if _, ok := t.latency[v]; !ok {
			return v
		}
	}
	return -1
}

// poll searches ES for probes at or after the oldest unseen one.
func (t *probeTracker) poll(esURL string) error {
	from := t.oldestUnseen()
	if from < 0 {
		return nil
	}
	q := fmt.Sprintf(`{"size":5000,"_source":["value"],"sort":[{"value":"asc"}],"query":{"bool":{"filter":[{"term":{"name":"bench.latency"}},{"range":{"value":{"gte":%.0f}}}]}}}`, from)
	out, err := esDo("POST", esURL+"/falconet-metrics-*/_search", q)
	now := float64(time.Now().UnixMilli())
	if err != nil {
		return err
	}
	var r struct {
		Hits struct {
			Hits []struct {
				Source struct {
					Value float64 `json:"value"`
				} `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, h := range r.Hits.Hits {
		v := h.Source.Value
		if _, ok := t.latency[v]; !ok {
			t.latency[v] = now - v
		}
	}
	return nil
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// latencyPhase feeds a steady rate through relay → Kafka → saver → dev-es;
// one metric per batch is a probe whose value is its generation time, and
// ES is polled every 50 ms until each probe is searchable.
func latencyPhase(b bins, dir string) (any, []figure, error) {
	const rate, dur, per = 2000.0, 30 * time.Second, 100
	const refresh = "1s"
	res := &latencyResult{RatePerS: rate, Seconds: dur.Seconds(), RefreshInterval: refresh, PollMs: 50}
	p, err := startPipeline(b, dir, fmt.Sprintf("refresh_interval = %q\n", refresh))
	if err != nil {
		return res, nil, err
	}
	defer p.stop()
	f, err := newFeeder(p.relay.addr, 2)
	if err != nil {
		return res, nil, err
	}
	defer f.close()
	tr := &probeTracker{latency: map[float64]float64{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pollErr := make(chan error, 1)
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		var last error
		for {
			select {
			case <-ctx.Done():
				pollErr <- last
				return
			case <-t.C:
				if err := tr.poll(p.esURL); err != nil {
					last = err
				}
			}
		}
	}()
	g := gen{series: 5000, base: time.Now().Unix()}
	k := 0
	lastProbe := 0.0
	logf("latency: %.0f metrics/s for %v, ES refresh_interval %s", rate, dur, refresh)
	f.paced(ctx, rate, dur, per, func(n int) ([]byte, int) {
		now := time.Now()
		ms := make([]metric.Metric, n)
		for i := range ms {
			ms[i] = g.metric(k)
			ms[i].Timestamp = now.Unix()
			k++
		}
		v := float64(now.UnixMilli())
		if v <= lastProbe {
			v = lastProbe + 1
		}
		lastProbe = v
		ms[0] = metric.Metric{Endpoint: "latency-probe", Name: "bench.latency", Value: v, Timestamp: now.Unix(), Step: 10,
			Type: metric.Gauge, Tags: map[string]string{"seq": strconv.Itoa(k)}}
		tr.add(v)
		pl, err := metric.EncodeBatch(nil, ms)
		if err != nil {
			panic(err)
		}
		return pl, n
	})
	_ = waitFor(60*time.Second, "every probe searchable", func() bool { return tr.oldestUnseen() < 0 })
	cancel()
	if err := <-pollErr; err != nil {
		logf("latency: last poll error: %v", err)
	}
	tr.mu.Lock()
	lat := make([]float64, 0, len(tr.latency))
	for _, v := range tr.latency {
		lat = append(lat, v)
	}
	res.Probes = len(tr.sent)
	tr.mu.Unlock()
	slices.Sort(lat)
	res.Seen = len(lat)
	res.P50ms, res.P90ms, res.P99ms = percentile(lat, 0.5), percentile(lat, 0.9), percentile(lat, 0.99)
	if len(lat) > 0 {
		res.MaxMs = lat[len(lat)-1]
	}
	logf("latency: %d/%d probes seen, p50 %.0f ms, p99 %.0f ms", res.Seen, res.Probes, res.P50ms, res.P99ms)
	var err2 error
	if res.Seen < res.Probes {
		err2 = fmt.Errorf("only %d of %d probes became searchable", res.Seen, res.Probes)
	}
	note := fmt.Sprintf("%.0f metrics/s steady for %.0f s, %d probes; saver refresh_interval %s (ES's own default; the saver's default 30s adds up to 30 s), flush_interval 500ms; ES polled every 50 ms",
		rate, dur.Seconds(), res.Probes, refresh)
	figs := []figure{
		{Name: "latency generation → searchable, p50", Value: res.P50ms, Unit: "ms", Anchor: "index refresh interval (floor of a search)", AnchorVal: 1000,
			Ratio: res.P50ms / 1000, Goal: "none in issue 15", Note: note},
		{Name: "latency generation → searchable, p99", Value: res.P99ms, Unit: "ms", Anchor: "index refresh interval", AnchorVal: 1000,
			Ratio: res.P99ms / 1000, Goal: "none in issue 15"},
	}
	return res, figs, err2
}
