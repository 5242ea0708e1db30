package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// esTemplate is the shape of the saver's template (keyword tags, 30 s
// refresh as the saver's default) for the ceiling run.
const esTemplate = `{"index_patterns":["falconet-metrics-*"],"template":{"settings":{"number_of_replicas":0,"refresh_interval":"30s"},
"mappings":{"dynamic_templates":[{"tags":{"path_match":"tags.*","match_mapping_type":"string","mapping":{"type":"keyword"}}}],
"properties":{"endpoint":{"type":"keyword"},"name":{"type":"keyword"},"value":{"type":"double"},"timestamp":{"type":"date","format":"epoch_second"},"step":{"type":"long"},"type":{"type":"keyword"}}}}}`

func esDo(method, url, body string) ([]byte, error) {
	req, err := http.NewRequest(method, url, bytes.NewBufferString(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		return out, fmt.Errorf("%s %s: %d %s", method, url, res.StatusCode, out[:min(len(out), 300)])
	}
	return out, nil
}

// bulkBodies builds _bulk bodies of per documents each, the saver's shape
// (create, _id = the metric's document id, index by the metric's day).
func bulkBodies(g gen, n, per int) [][]byte {
	var out [][]byte
	var b bytes.Buffer
	for k := 0; k < n; k++ {
		m := g.metric(k)
		fmt.Fprintf(&b, "{\"create\":{\"_index\":\"falconet-metrics-%s\",\"_id\":%q}}\n", m.Day(), m.DocID())
		js, _ := m.AppendJSON(nil)
		b.Write(js)
		b.WriteByte('\n')
		if (k+1)%per == 0 || k == n-1 {
			out = append(out, bytes.Clone(b.Bytes()))
			b.Reset()
		}
	}
	return out
}

// esCeiling posts prebuilt bulk bodies with 4 requests in flight (the
// saver's max_in_flight) and returns documents per second.
func esCeiling(url string, bodies [][]byte, docs int) (float64, error) {
	if _, err := esDo("PUT", url+"/_index_template/falconet-metrics", esTemplate); err != nil {
		return 0, err
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	start := time.Now()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bodies) {
					return
				}
				res, err := http.Post(url+"/_bulk", "application/x-ndjson", bytes.NewReader(bodies[i]))
				if err == nil {
					out, _ := io.ReadAll(res.Body)
					res.Body.Close()
					if res.StatusCode != 200 || bytes.Contains(out[:min(len(out), 64)], []byte(`"errors":true`)) {
						err = fmt.Errorf("bulk: %d %s", res.StatusCode, out[:min(len(out), 300)])
					}
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return 0, *e
	}
	return float64(docs) / time.Since(start).Seconds(), nil
}

var docsPerS = regexp.MustCompile(`([0-9.e+]+) docs/s`)

// encodeRate runs the saver's encode+batch benchmark (decode, validate, id,
// bulk lines, batching; no Kafka, no ES) and returns documents per second.
func encodeRate(root string) (float64, error) {
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", "^BenchmarkEncodeBatch$", "-benchtime", "2s", "-count", "1", "./saver/")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("go test -bench BenchmarkEncodeBatch: %v\n%s", err, out)
	}
	m := docsPerS.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no docs/s in: %s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

type saverResult struct {
	EncodeDocsPerS    float64 `json:"encode_batch_docs_per_s"`
	ESCeilingDocsPerS float64 `json:"es_bulk_ceiling_docs_per_s"`
	E2EMetrics        int     `json:"e2e_metrics"`
	E2EPerS           float64 `json:"e2e_metrics_per_s"`
	E2ESeconds        float64 `json:"e2e_seconds"`
	SaverCPUPer100k   float64 `json:"saver_cpu_ms_per_100k"`
	RelayCPUPer100k   float64 `json:"relay_cpu_ms_per_100k"`
	SaverRSSMB        float64 `json:"saver_rss_mb"`
}

// pipeline is a running relay → dev Kafka → saver → dev-es chain.
type pipeline struct {
	kafka, es *proc
	relay     *relayProc
	saver     *saverProc
	esURL     string
}

func startPipeline(b bins, dir, saverES string) (*pipeline, error) {
	p := &pipeline{}
	var err error
	var broker string
	if p.kafka, broker, err = startDevKafka(b); err != nil {
		return nil, err
	}
	if p.es, p.esURL, err = startDevES(b); err != nil {
		p.stop()
		return nil, err
	}
	if p.relay, err = startRelay(b, dir, broker, ""); err != nil {
		p.stop()
		return nil, err
	}
	if p.saver, err = startSaver(b, dir, broker, p.esURL, saverES); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func (p *pipeline) stop() {
	if p.saver != nil {
		p.saver.stop()
	}
	if p.relay != nil {
		p.relay.stop()
	}
	if p.es != nil {
		p.es.stop()
	}
	if p.kafka != nil {
		p.kafka.stop()
	}
}

func saverPhase(root string, b bins, dir string) (any, []figure, error) {
	res := &saverResult{}
	var err error
	logf("saver: encode+batch benchmark (go test)")
	if res.EncodeDocsPerS, err = encodeRate(root); err != nil {
		return res, nil, err
	}
	logf("saver: encode+batch %.0f docs/s", res.EncodeDocsPerS)

	const n = 300_000
	g := gen{series: 10_000, base: time.Now().Add(-2 * time.Hour).Unix()}
	es, url, err := startDevES(b)
	if err != nil {
		return res, nil, err
	}
	res.ESCeilingDocsPerS, err = esCeiling(url, bulkBodies(g, n, 5000), n)
	es.stop()
	if err != nil {
		return res, nil, err
	}
	logf("saver: dev-es bulk ceiling %.0f docs/s", res.ESCeilingDocsPerS)

	p, err := startPipeline(b, dir, "")
	if err != nil {
		return res, nil, err
	}
	defer p.stop()
	f, err := newFeeder(p.relay.addr, 4)
	if err != nil {
		return res, nil, err
	}
	defer f.close()
	payloads := g.payloads(n, 1000)
	if path := os.Getenv("PIPEBENCH_PROFILE_SAVER"); path != "" {
		profile(p.saver.http, path, 5)
	}
	rc0, sc0, start := p.relay.cpu(), p.saver.cpu(), time.Now()
	for i, pl := range payloads {
		f.add(pl, min(1000, n-i*1000))
	}
	if _, err := p.saver.waitStored(context.Background(), n, 5*time.Minute); err != nil {
		return res, nil, err
	}
	el := time.Since(start)
	res.E2EMetrics, res.E2ESeconds, res.E2EPerS = n, el.Seconds(), n/el.Seconds()
	res.SaverCPUPer100k = float64(p.saver.cpu()-sc0) / float64(time.Millisecond) / (n / 1e5)
	res.RelayCPUPer100k = float64(p.relay.cpu()-rc0) / float64(time.Millisecond) / (n / 1e5)
	res.SaverRSSMB = p.saver.rssMB()
	logf("saver: end to end %.0f metrics/s (saver %.0f CPU-ms/100k, relay %.0f)", res.E2EPerS, res.SaverCPUPer100k, res.RelayCPUPer100k)
	ratio := res.E2EPerS / res.ESCeilingDocsPerS
	encRatio := res.EncodeDocsPerS / res.ESCeilingDocsPerS
	figs := []figure{
		{Name: "saver encode+batch (one goroutine, no I/O)", Value: res.EncodeDocsPerS, Unit: "docs/s",
			Anchor: "dev-es bulk ceiling (4 in flight, 5000/req)", AnchorVal: res.ESCeilingDocsPerS, Ratio: encRatio,
			Goal: "none in issue 15", Note: "go test -bench BenchmarkEncodeBatch ./saver (decode, validate, id, bulk lines, batching)"},
		{Name: "end to end agents → relay → Kafka → saver → dev-es", Value: res.E2EPerS, Unit: "metrics/s",
			Anchor: "dev-es bulk ceiling", AnchorVal: res.ESCeilingDocsPerS, Ratio: ratio,
			Goal: "none in issue 15",
			Note: fmt.Sprintf("%d metrics from 4 agents' senders; the pipeline's four processes share the 2 cores the ceiling had for dev-es alone; saver %.0f CPU-ms/100k, relay %.0f CPU-ms/100k; saver RSS %.0f MB",
				n, res.SaverCPUPer100k, res.RelayCPUPer100k, res.SaverRSSMB)},
	}
	return res, figs, nil
}
