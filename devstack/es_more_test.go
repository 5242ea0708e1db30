package devstack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"
)

// Reference: "Index templates" (composable, priority) and "Create or update
// index template API (legacy)" (order): the matching template's settings and
// mappings apply to new indices, including indices auto-created by _bulk.
func TestESTemplates(t *testing.T) {
	env := newESEnv(t)
	p := env.prefix
	env.must(200, "PUT", "/_template/"+p+"legacy", `{"index_patterns":["`+p+`legacy-*"],"order":1,"settings":{"number_of_replicas":0},"mappings":{"properties":{"v":{"type":"keyword"}}}}`)
	env.must(200, "PUT", "/_index_template/"+p+"low", `{"index_patterns":["`+p+`c-*"],"priority":1,"template":{"mappings":{"properties":{"v":{"type":"long"}}}}}`)
	env.must(200, "PUT", "/_index_template/"+p+"high", `{"index_patterns":["`+p+`c-x*"],"priority":5,"template":{"settings":{"number_of_replicas":0},"mappings":{"properties":{"v":{"type":"double"},"ts":{"type":"date","format":"epoch_second"}}}}}`)
	r := env.must(400, "PUT", "/_index_template/"+p+"same", `{"index_patterns":["`+p+`c-*"],"priority":1}`)
	expect(t, r, "error.type", "illegal_argument_exception")
	g := env.must(200, "GET", "/_index_template/"+p+"high", "")
	expect(t, g, "index_templates.0.name", p+"high")
	env.must(404, "GET", "/_index_template/"+p+"nope", "")
	lg := env.must(200, "GET", "/_template/"+p+"legacy", "")
	expect(t, lg, p+"legacy.order", 1)
	env.must(200, "HEAD", "/_template/"+p+"legacy", "")

	bulk := fmt.Sprintf("{\"index\":{\"_index\":\"%[1]slegacy-1\"}}\n{\"v\":5}\n{\"index\":{\"_index\":\"%[1]sc-1\"}}\n{\"v\":5}\n{\"index\":{\"_index\":\"%[1]sc-x1\"}}\n{\"v\":5,\"ts\":1700000000}\n", p)
	r = env.must(200, "POST", "/_bulk", bulk)
	expect(t, r, "errors", false)
	for ixName, want := range map[string]string{p + "legacy-1": "keyword", p + "c-1": "long", p + "c-x1": "double"} {
		m := env.must(200, "GET", "/"+ixName+"/_mapping", "")
		expect(t, m, ixName+".mappings.properties.v.type", want)
	}
	m := env.must(200, "GET", "/"+p+"c-x1/_mapping", "")
	expect(t, m, p+"c-x1.mappings.properties.ts.format", "epoch_second")
	s := env.must(200, "GET", "/"+p+"c-x1/_settings", "")
	expect(t, s, p+"c-x1.settings.index.number_of_replicas", "0")
	// the mapping conflicts with a keyword value: rejected per item
	r = env.must(200, "POST", "/_bulk", fmt.Sprintf("{\"index\":{\"_index\":\"%sc-1\"}}\n{\"v\":\"abc\"}\n", p))
	expect(t, r, "items.0.index.error.type", "mapper_parsing_exception")
	// olivere's template services
	c := env.client()
	if _, err := c.IndexPutIndexTemplate(p + "oli").BodyString(`{"index_patterns":["` + p + `oli-*"],"priority":3,"template":{"mappings":{"properties":{"x":{"type":"keyword"}}}}}`).Do(ctx(t)); err != nil {
		t.Fatalf("IndexPutIndexTemplate: %v", err)
	}
	//nolint:staticcheck // the legacy _template API is in scope on purpose
	//lint:ignore SA1019 the legacy _template API is in scope on purpose
	if _, err := c.IndexPutTemplate(p + "olil").BodyString(`{"index_patterns":["` + p + `olil-*"],"mappings":{"properties":{"x":{"type":"keyword"}}}}`).Do(ctx(t)); err != nil {
		t.Fatalf("IndexPutTemplate: %v", err)
	}
	//nolint:staticcheck // the legacy _template API is in scope on purpose
	//lint:ignore SA1019 the legacy _template API is in scope on purpose
	if ok, err := c.IndexTemplateExists(p + "olil").Do(ctx(t)); err != nil || !ok {
		t.Fatalf("IndexTemplateExists: %v %v", ok, err)
	}
	env.must(200, "DELETE", "/_index_template/"+p+"oli", "")
	env.must(404, "DELETE", "/_index_template/"+p+"oli", "")
}

// Reference: "Mapping > Dynamic mapping > Dynamic field mapping" (long,
// float, text+keyword, date detection, object, boolean), "dynamic: strict",
// explicit mappings and "Put mapping API" (type changes are rejected).
func TestESMappings(t *testing.T) {
	env := newESEnv(t)
	ix := env.idx("dyn")
	env.must(201, "PUT", "/"+ix+"/_doc/1", `{"l":1,"f":1.5,"s":"hello","d":"2026-11-25T10:00:00Z","o":{"a":"x"},"b":true,"dotted.name":2}`)
	m := env.must(200, "GET", "/"+ix+"/_mapping", "")
	p := ix + ".mappings.properties."
	expect(t, m, p+"l.type", "long")
	expect(t, m, p+"f.type", "float")
	expect(t, m, p+"s.type", "text")
	expect(t, m, p+"s.fields.keyword.type", "keyword")
	expect(t, m, p+"s.fields.keyword.ignore_above", 256)
	expect(t, m, p+"d.type", "date")
	expect(t, m, p+"o.properties.a.type", "text")
	expect(t, m, p+"b.type", "boolean")
	expect(t, m, p+"dotted.properties.name.type", "long")
	cases := []struct {
		doc     string
		errType string
	}{
		{`{"l":"abc"}`, "mapper_parsing_exception"},
		{`{"d":"not a date"}`, "mapper_parsing_exception"},
		{`{"o":"concrete"}`, "mapper_parsing_exception"},
		{`{"l":{"x":1}}`, "mapper_parsing_exception"},
		{`{"b":"maybe"}`, "mapper_parsing_exception"},
		{`{"_id":"x"}`, "mapper_parsing_exception"},
		{`[1,2]`, "mapper_parsing_exception"},
		{`{"l":1,"l":2}`, "mapper_parsing_exception"}, // strict duplicate detection
	}
	for _, tc := range cases {
		r := env.do("PUT", "/"+ix+"/_doc/bad", tc.doc)
		if r.status != 400 {
			t.Fatalf("%s: got status %d, want 400: %s", tc.doc, r.status, r.body)
		}
		expect(t, r.json(t), "error.type", tc.errType)
	}
	// coercion as Elasticsearch does it: "12" into a long, 1.9 into a long
	env.must(201, "PUT", "/"+ix+"/_doc/c", `{"l":"12","f":"2.5"}`)
	env.must(201, "PUT", "/"+ix+"/_doc/c2", `{"l":1.9}`)
	// a rejected document leaves no mapping behind
	env.must(400, "PUT", "/"+ix+"/_doc/bad2", `{"newfield":1,"l":"abc"}`)
	m = env.must(200, "GET", "/"+ix+"/_mapping", "")
	if get(m, p+"newfield") != nil {
		t.Fatalf("rejected document added a mapping")
	}
	// date detection runs before dynamic templates: a date-looking string
	// does not match match_mapping_type "string" (a real Elasticsearch trap)
	dt := env.idx("dt")
	env.must(200, "PUT", "/"+dt, `{"mappings":{"dynamic_templates":[{"s":{"match_mapping_type":"string","mapping":{"type":"keyword"}}}]}}`)
	env.must(201, "PUT", "/"+dt+"/_doc/1", `{"a":"2026-01-02","b":"web-1","c":"2026/01/02 10:00:00 +0000"}`)
	m = env.must(200, "GET", "/"+dt+"/_mapping", "")
	expect(t, m, dt+".mappings.properties.a.type", "date")
	expect(t, m, dt+".mappings.properties.b.type", "keyword")
	expect(t, m, dt+".mappings.properties.c.format", "yyyy/MM/dd HH:mm:ss Z||yyyy/MM/dd Z")
	r0 := env.must(400, "PUT", "/"+dt+"/_doc/2", `{"a":"not-a-date"}`)
	expect(t, r0, "error.type", "mapper_parsing_exception")
	// strict
	strict := env.idx("strict")
	env.must(200, "PUT", "/"+strict, `{"mappings":{"dynamic":"strict","properties":{"a":{"type":"keyword"}}}}`)
	r := env.must(400, "PUT", "/"+strict+"/_doc/1", `{"b":1}`)
	expect(t, r, "error.type", "strict_dynamic_mapping_exception")
	// put mapping: add ok, change type rejected
	env.must(200, "PUT", "/"+strict+"/_mapping", `{"properties":{"c":{"type":"long"}}}`)
	r = env.must(400, "PUT", "/"+strict+"/_mapping", `{"properties":{"a":{"type":"long"}}}`)
	expect(t, r, "error.type", "illegal_argument_exception")
	r = env.must(400, "PUT", "/"+env.idx("badtype"), `{"mappings":{"properties":{"a":{"type":"nosuchtype"}}}}`)
	expect(t, r, "error.type", "mapper_parsing_exception")
	r = env.must(400, "PUT", "/"+env.idx("badparam"), `{"mappings":{"properties":{"a":{"type":"long","bogus":1}}}}`)
	expect(t, r, "error.type", "mapper_parsing_exception")
	r = env.must(400, "PUT", "/"+env.idx("badsetting"), `{"settings":{"index":{"bogus":1}}}`)
	expect(t, r, "error.type", "illegal_argument_exception")
}

// Reference: "Near real-time search" and the "refresh" parameter: a write is
// searchable after refresh=true|wait_for or _refresh, and within the refresh
// interval (1 s) otherwise; GET by id is real time.
func TestESRefreshSemantics(t *testing.T) {
	env := newESEnv(t)
	ix := env.idx("nrt")
	env.must(200, "PUT", "/"+ix, `{"settings":{"refresh_interval":"-1"}}`)
	env.must(201, "PUT", "/"+ix+"/_doc/1", `{"a":1}`)
	expect(t, env.must(200, "GET", "/"+ix+"/_count", ""), "count", 0)
	expect(t, env.must(200, "GET", "/"+ix+"/_doc/1", ""), "found", true)
	env.must(200, "POST", "/"+ix+"/_refresh", "")
	expect(t, env.must(200, "GET", "/"+ix+"/_count", ""), "count", 1)
	env.must(201, "PUT", "/"+ix+"/_doc/2?refresh=wait_for", `{"a":1}`)
	expect(t, env.must(200, "GET", "/"+ix+"/_count", ""), "count", 2)
	r := env.must(201, "PUT", "/"+ix+"/_doc/3?refresh=true", `{"a":1}`)
	expect(t, r, "forced_refresh", true)
	expect(t, env.must(200, "GET", "/"+ix+"/_count", ""), "count", 3)
	// default interval: visible within about a second, no explicit refresh
	auto := env.idx("auto")
	env.must(201, "PUT", "/"+auto+"/_doc/1", `{"a":1}`)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c := get(env.must(200, "GET", "/"+auto+"/_count", ""), "count"); c == int64(1) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("document not searchable 5 s after indexing without refresh")
		}
		<-time.After(20 * time.Millisecond) // poll the condition again
	}
}

// Reference: "Delete by query API": response fields, refresh, conflicts.
func TestESDeleteByQuery(t *testing.T) {
	env := newESEnv(t)
	ix := env.idx("dbq")
	var b strings.Builder
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&b, "{\"index\":{\"_index\":%q,\"_id\":\"%d\"}}\n{\"n\":%d}\n", ix, i, i)
	}
	env.must(200, "POST", "/_bulk?refresh=true", b.String())
	r := env.must(200, "POST", "/"+ix+"/_delete_by_query?refresh=true", `{"query":{"range":{"n":{"lt":4}}}}`)
	expect(t, r, "deleted", 4)
	expect(t, r, "total", 4)
	expect(t, r, "version_conflicts", 0)
	expect(t, env.must(200, "GET", "/"+ix+"/_count", ""), "count", 6)
	env.must(400, "POST", "/"+ix+"/_delete_by_query", `{}`)
	c := env.client()
	res, err := c.DeleteByQuery(ix).Query(elastic.NewTermQuery("n", 5)).Refresh("true").Do(ctx(t))
	if err != nil || res.Deleted != 1 {
		t.Fatalf("olivere DeleteByQuery: got %+v, %v", res, err)
	}
	cat := env.do("GET", "/_cat/indices/"+ix+"?format=json", "")
	if cat.status != 200 || !strings.Contains(string(cat.body), `"docs.count":"5"`) {
		t.Fatalf("_cat/indices: got %d %s", cat.status, cat.body)
	}
}

// dev-es only: data survives a restart from the data directory.
func TestESPersistence(t *testing.T) {
	dir := t.TempDir()
	start := func() *ES {
		e, err := StartESServer(ESConfig{Listen: "127.0.0.1:0", DataDir: dir})
		if err != nil {
			t.Fatalf("start: %v", err)
		}
		return e
	}
	e := start()
	env := &esEnv{t: t, url: e.URL(), dev: e, prefix: "p-"}
	env.must(200, "PUT", "/_index_template/t", `{"index_patterns":["p-*"],"template":{"mappings":{"properties":{"v":{"type":"keyword"}}}}}`)
	env.must(200, "POST", "/_bulk", "{\"index\":{\"_index\":\"p-1\",\"_id\":\"a\"}}\n{\"v\":\"x\"}\n{\"index\":{\"_index\":\"p-1\",\"_id\":\"b\"}}\n{\"v\":\"y\"}\n{\"delete\":{\"_index\":\"p-1\",\"_id\":\"b\"}}\n")
	env.must(200, "PUT", "/p-1/_doc/a", `{"v":"z"}`)
	env.must(200, "POST", "/_aliases", `{"actions":[{"add":{"index":"p-1","alias":"p-alias"}}]}`)
	env.must(200, "PUT", "/p-closed", `{}`)
	env.must(200, "POST", "/p-closed/_close", "") // "Close index API": the closed state is metadata, kept
	if err := e.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	e = start()
	defer e.Close()
	env.url = e.URL()
	g := env.must(200, "GET", "/p-1/_doc/a", "")
	expect(t, g, "_source.v", "z")
	expect(t, g, "_version", 2)
	env.must(404, "GET", "/p-1/_doc/b", "")
	expect(t, env.must(200, "GET", "/p-alias/_doc/a", ""), "_index", "p-1")
	expect(t, env.must(200, "GET", "/p-1/_count", `{"query":{"term":{"v":"z"}}}`), "count", 1)
	expect(t, env.must(400, "POST", "/p-closed/_search", `{}`), "error.type", "index_closed_exception")
	env.must(200, "GET", "/_index_template/t", "")
	env.must(200, "POST", "/_bulk", "{\"index\":{\"_index\":\"p-2\",\"_id\":\"a\"}}\n{\"v\":1}\n") // template still applies
	expect(t, env.must(200, "GET", "/p-2/_mapping", ""), "p-2.mappings.properties.v.type", "keyword")
}

// dev-es only: injected faults, through the Go API and the admin endpoint.
func TestESFaults(t *testing.T) {
	env := newESEnv(t)
	es := env.needDev()
	ix := env.idx("f")
	var b strings.Builder
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&b, "{\"index\":{\"_index\":%q,\"_id\":\"%d\"}}\n{\"n\":%d}\n", ix, i, i)
	}
	es.SetFaults(ESFaults{RejectFraction: 0.5})
	r := env.must(200, "POST", "/_bulk", b.String())
	expect(t, r, "errors", true)
	rejected := 0
	for _, it := range get(r, "items").([]any) {
		if get(it, "index.status") == int64(429) {
			rejected++
			expect(t, it, "index.error.type", "es_rejected_execution_exception")
		}
	}
	if rejected < 50 || rejected > 150 {
		t.Fatalf("rejected %d of 200 items at fraction 0.5", rejected)
	}
	// admin endpoint: 503 for everything but itself
	env.must(200, "PUT", "/_falconet/faults", `{"unavailable":true}`)
	r = env.must(503, "GET", "/", "")
	expect(t, r, "status", 503)
	env.must(400, "PUT", "/_falconet/faults", `{"bogus":1}`)
	env.must(200, "PUT", "/_falconet/faults", `{"latency":"150ms"}`)
	t0 := time.Now()
	env.must(200, "GET", "/", "")
	if d := time.Since(t0); d < 150*time.Millisecond {
		t.Fatalf("latency fault: request took %v", d)
	}
	env.must(200, "PUT", "/_falconet/faults", `{"close_conns":true}`)
	if _, err := http.Get(env.url + "/"); err == nil {
		t.Fatalf("close_conns: request succeeded")
	}
	env.must(200, "PUT", "/_falconet/faults", `{}`)
	// go away and come back on the same port
	if err := es.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := http.Get(env.url + "/"); err == nil {
		t.Fatalf("stopped server answered")
	}
	if err := es.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	env.must(200, "GET", "/", "")
	env.must(200, "POST", "/_falconet/go_away?duration=300ms", "")
	deadline := time.Now().Add(5 * time.Second)
	for {
		res, err := http.Get(env.url + "/")
		if err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not come back after go_away: %v", err)
		}
		<-time.After(20 * time.Millisecond) // poll the condition again
	}
	// whole-request rejection: HTTP 429
	env.must(200, "PUT", "/_falconet/faults", `{"reject_request_fraction":1}`)
	r = env.must(429, "POST", "/_bulk", b.String())
	expect(t, r, "error.type", "es_rejected_execution_exception")
	env.must(200, "PUT", "/_falconet/faults", `{}`)
	// olivere sees 429 items as failed items it may retry
	es.SetFaults(ESFaults{RejectFraction: 1})
	c := env.client()
	br, err := c.Bulk().Add(elastic.NewBulkIndexRequest().Index(ix).Id("x").Doc(map[string]int{"n": 1})).Do(ctx(t))
	if err != nil || !br.Errors || br.Failed()[0].Status != 429 {
		t.Fatalf("olivere bulk under rejection: got %+v, %v", br, err)
	}
	es.SetFaults(ESFaults{})
}

// Concurrent writers and readers under -race; every acknowledged document
// is found afterwards.
func TestESConcurrentBulk(t *testing.T) {
	env := newESEnv(t)
	ix := env.idx("conc")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for round := 0; round < 10; round++ {
				var b strings.Builder
				for i := 0; i < 50; i++ {
					fmt.Fprintf(&b, "{\"index\":{\"_index\":%q,\"_id\":\"%d-%d-%d\"}}\n{\"w\":%d}\n", ix, w, round, i, w)
				}
				req, _ := http.NewRequestWithContext(context.Background(), "POST", env.url+"/_bulk", strings.NewReader(b.String()))
				req.Header.Set("Content-Type", "application/x-ndjson")
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					return
				}
				res.Body.Close()
				if res.StatusCode != 200 {
					errs <- errors.New(res.Status)
					return
				}
				if r := env.do("POST", "/"+ix+"/_search", `{"size":1,"aggs":{"w":{"terms":{"field":"w"}}}}`); r.status != 200 {
					errs <- fmt.Errorf("search: %d %s", r.status, r.body)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	env.must(200, "POST", "/"+ix+"/_refresh", "")
	expect(t, env.must(200, "GET", "/"+ix+"/_count", ""), "count", 2000)
}

// Reference: "Common options > Response filtering" (filter_path), "Flush
// API", "cat indices API"; and dev-es's 400 for APIs it does not implement.
func TestESFilterPathFlushCat(t *testing.T) {
	env := newESEnv(t)
	ix := env.idx("fp")
	r := env.must(200, "POST", "/_bulk?filter_path=errors,items.*.status", "{\"index\":{\"_index\":\""+ix+"\",\"_id\":\"1\"}}\n{\"a\":1}\n")
	expect(t, r, "errors", false)
	expect(t, r, "items.0.index.status", 201)
	if get(r, "took") != nil || get(r, "items.0.index._id") != nil {
		t.Fatalf("filter_path kept unrequested fields: %v", r)
	}
	r = env.must(200, "GET", "/"+ix+"/_doc/1?filter_path=**.a", "")
	expect(t, r, "_source.a", 1)
	env.must(200, "POST", "/"+ix+"/_flush", "")
	env.must(200, "POST", "/_flush", "")
	env.must(200, "POST", "/"+ix+"/_refresh", "")
	txt := env.do("GET", "/_cat/indices/"+ix+"?v", "")
	if txt.status != 200 || !strings.HasPrefix(string(txt.body), "health") || !strings.Contains(string(txt.body), ix) {
		t.Fatalf("_cat/indices?v: got %d %q", txt.status, txt.body)
	}
	if env.dev != nil {
		r = env.must(400, "POST", "/"+ix+"/_rollover", `{}`)
		if reason, _ := get(r, "error.reason").(string); !strings.HasPrefix(reason, "dev-es does not support") {
			t.Fatalf("unimplemented API: got reason %q", reason)
		}
	}
	r = env.must(405, "GET", "/_bulk", "")
	expect(t, r, "status", 405)
	// Reference: "REST API compatibility / Content-Type": a body needs a supported content type
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded"} {
		req, _ := http.NewRequest("POST", env.url+"/"+ix+"/_search", strings.NewReader(`{}`))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotAcceptable {
			t.Fatalf("Content-Type %q: got status %d, want 406", ct, res.StatusCode)
		}
	}
}

// TestESHelperProcess is not a test: TestESKill9 runs it as a child process
// that serves dev-es on a data directory until it is killed.
func TestESHelperProcess(t *testing.T) {
	dir := os.Getenv("FALCONET_ES_HELPER_DIR")
	if dir == "" {
		return // only meaningful as TestESKill9's child process
	}
	es, err := StartESServer(ESConfig{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Println(es.URL())
	select {} // until SIGKILL
}

// dev-es only: every acknowledged write survives kill -9 of the server
// (one fsynced bbolt transaction per request, before the answer).
func TestESKill9(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestESHelperProcess$")
	cmd.Env = append(os.Environ(), "FALCONET_ES_HELPER_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "http://") {
		t.Fatalf("helper: got %q, %v", line, err)
	}
	env := &esEnv{t: t, url: strings.TrimSpace(line), prefix: "k-"}
	acked := 0
	for round := 0; round < 20; round++ {
		var b strings.Builder
		for i := 0; i < 100; i++ {
			fmt.Fprintf(&b, "{\"index\":{\"_index\":\"k-1\",\"_id\":\"%d-%d\"}}\n{\"n\":%d}\n", round, i, i)
		}
		r := env.must(200, "POST", "/_bulk", b.String())
		expect(t, r, "errors", false)
		acked += 100
	}
	env.must(201, "PUT", "/k-1/_doc/last", `{"n":-1}`) // acknowledged, not refreshed
	acked++
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	es, err := StartESServer(ESConfig{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatalf("restart after kill -9: %v", err)
	}
	defer es.Close()
	env.url = es.URL()
	expect(t, env.must(200, "GET", "/k-1/_count", ""), "count", acked)
	expect(t, env.must(200, "GET", "/k-1/_doc/last", ""), "_source.n", -1)
}

// Reference: "Update index settings API" (dynamic settings, null resets,
// static settings rejected) and "Index blocks" (write, read_only_allow_delete:
// the flood-stage disk block, 429 per bulk item, deletes still allowed).
func TestESUpdateSettingsAndBlocks(t *testing.T) {
	env := newESEnv(t)
	ix := env.idx("blk")
	env.must(200, "PUT", "/"+ix, "")
	env.must(200, "PUT", "/"+ix+"/_settings", `{"index":{"number_of_replicas":0}}`)
	h := env.must(200, "GET", "/_cluster/health/"+ix, "")
	expect(t, h, "status", "green")
	r := env.must(400, "PUT", "/"+ix+"/_settings", `{"index":{"number_of_shards":3}}`)
	expect(t, r, "error.type", "illegal_argument_exception")
	env.must(201, "PUT", "/"+ix+"/_doc/1?refresh=true", `{"a":1}`)
	env.must(200, "PUT", "/"+ix+"/_settings", `{"index.blocks.read_only_allow_delete":true}`)
	r = env.must(200, "POST", "/_bulk", "{\"index\":{\"_index\":\""+ix+"\",\"_id\":\"2\"}}\n{\"a\":2}\n{\"delete\":{\"_index\":\""+ix+"\",\"_id\":\"1\"}}\n")
	expect(t, r, "errors", true)
	expect(t, r, "items.0.index.status", 429)
	expect(t, r, "items.0.index.error.type", "cluster_block_exception")
	expect(t, r, "items.1.delete.status", 200)
	env.must(200, "PUT", "/"+ix+"/_settings", `{"index.blocks.read_only_allow_delete":null,"index.blocks.write":true}`)
	r = env.must(403, "PUT", "/"+ix+"/_doc/3", `{"a":3}`)
	expect(t, r, "error.type", "cluster_block_exception")
	env.must(200, "PUT", "/"+ix+"/_settings", `{"index":{"blocks":{"write":null}}}`)
	env.must(201, "PUT", "/"+ix+"/_doc/3", `{"a":3}`)
	s := env.must(200, "GET", "/"+ix+"/_settings", "")
	if get(s, ix+".settings.index.blocks") != nil {
		t.Fatalf("blocks not reset: %v", get(s, ix+".settings.index"))
	}
}

// Reference: "Aliases" / "Aliases API" (_aliases add, remove, is_write_index),
// "Get alias API", aliases in create index and index templates; searching and
// writing through an alias.
func TestESAliases(t *testing.T) {
	env := newESEnv(t)
	a, b, al := env.idx("a"), env.idx("b"), env.idx("al")
	env.must(200, "PUT", "/"+a, `{"aliases":{"`+al+`":{"is_write_index":true}}}`)
	env.must(200, "PUT", "/"+b, "")
	env.must(200, "POST", "/_aliases", `{"actions":[{"add":{"index":"`+b+`","alias":"`+al+`"}}]}`)
	g := env.must(200, "GET", "/_alias/"+al, "")
	expect(t, g, a+".aliases."+al+".is_write_index", true)
	if get(g, b+".aliases."+al) == nil {
		t.Fatalf("GET _alias: %v", g)
	}
	env.must(200, "HEAD", "/_alias/"+al, "")
	env.must(404, "HEAD", "/_alias/"+env.idx("nope"), "")
	// writes go to the write index, searches see both
	r := env.must(201, "PUT", "/"+al+"/_doc/1?refresh=true", `{"v":1}`)
	expect(t, r, "_index", a)
	env.must(201, "PUT", "/"+b+"/_doc/2?refresh=true", `{"v":2}`)
	expect(t, env.must(200, "GET", "/"+al+"/_count", ""), "count", 2)
	r = env.must(200, "POST", "/_bulk?refresh=true", "{\"index\":{\"_index\":\""+al+"\",\"_id\":\"3\"}}\n{\"v\":3}\n")
	expect(t, r, "items.0.index._index", a)
	// a single-document read through an alias of two indices is ambiguous
	r = env.must(400, "GET", "/"+al+"/_doc/1", "")
	expect(t, r, "error.type", "illegal_argument_exception")
	// a second write index is rejected; an alias cannot be deleted as an index
	r = env.must(400, "POST", "/_aliases", `{"actions":[{"add":{"index":"`+b+`","alias":"`+al+`","is_write_index":true}}]}`)
	expect(t, r, "error.type", "illegal_argument_exception")
	env.must(400, "DELETE", "/"+al, "")
	r = env.must(400, "PUT", "/"+al, "")
	expect(t, r, "error.type", "invalid_index_name_exception")
	// remove a: the alias has one index left, which takes the writes
	env.must(200, "DELETE", "/"+a+"/_alias/"+al, "")
	r = env.must(200, "POST", "/_bulk", "{\"index\":{\"_index\":\""+al+"\",\"_id\":\"4\"}}\n{\"v\":4}\n")
	expect(t, r, "items.0.index._index", b)
	expect(t, r, "items.0.index.status", 201)
	// two indices, no write index: the write fails
	env.must(200, "POST", "/_aliases", `{"actions":[{"add":{"index":"`+a+`","alias":"`+al+`"}}]}`)
	r = env.must(200, "POST", "/_bulk", "{\"index\":{\"_index\":\""+al+"\",\"_id\":\"5\"}}\n{\"v\":5}\n")
	expect(t, r, "items.0.index.error.type", "illegal_argument_exception")
	env.must(200, "POST", "/_aliases", `{"actions":[{"remove":{"index":"`+a+`","alias":"`+al+`"}}]}`)
	expect(t, env.must(200, "GET", "/"+al+"/_doc/2", ""), "found", true)
	r = env.must(404, "POST", "/_aliases", `{"actions":[{"remove":{"index":"`+a+`","alias":"`+al+`"}}]}`)
	expect(t, r, "error.type", "aliases_not_found_exception")
	// aliases from a template
	env.must(200, "PUT", "/_index_template/"+env.prefix+"t", `{"index_patterns":["`+env.prefix+`t-*"],"template":{"aliases":{"`+env.prefix+`all-t":{}}}}`)
	env.must(201, "PUT", "/"+env.prefix+"t-1/_doc/1?refresh=true", `{"v":1}`)
	expect(t, env.must(200, "GET", "/"+env.prefix+"all-t/_count", ""), "count", 1)
	// olivere
	c := env.client()
	if _, err := c.Alias().Add(b, env.idx("oli")).Do(ctx(t)); err != nil {
		t.Fatalf("olivere Alias().Add: %v", err)
	}
	res, err := c.Aliases().Index(b).Do(ctx(t))
	if err != nil || !res.Indices[b].HasAlias(env.idx("oli")) {
		t.Fatalf("olivere Aliases: %+v %v", res, err)
	}
}

// Reference: "Multi get (mget) API" (docs and ids forms, found/error per
// doc) and "cat count API".
func TestESMgetCatCount(t *testing.T) {
	env := newESEnv(t)
	ix := env.idx("mg")
	env.must(201, "PUT", "/"+ix+"/_doc/1", `{"a":1,"b":2}`)
	env.must(201, "PUT", "/"+ix+"/_doc/2?refresh=true", `{"a":2}`)
	r := env.must(200, "POST", "/_mget", `{"docs":[{"_index":"`+ix+`","_id":"1","_source":["b"]},{"_index":"`+ix+`","_id":"9"},{"_index":"`+env.idx("none")+`","_id":"1"}]}`)
	expect(t, r, "docs.0.found", true)
	expect(t, r, "docs.0._source.b", 2)
	if get(r, "docs.0._source.a") != nil {
		t.Fatalf("_source filter in mget: %v", get(r, "docs.0._source"))
	}
	expect(t, r, "docs.1.found", false)
	expect(t, r, "docs.2.error.type", "index_not_found_exception")
	r = env.must(200, "POST", "/"+ix+"/_mget", `{"ids":["2","1"]}`)
	expect(t, r, "docs.0._source.a", 2)
	expect(t, r, "docs.1._id", "1")
	env.must(400, "POST", "/_mget", `{"ids":["1"]}`)
	c := env.client()
	res, err := c.Mget().Add(elastic.NewMultiGetItem().Index(ix).Id("1")).Do(ctx(t))
	if err != nil || len(res.Docs) != 1 || !res.Docs[0].Found {
		t.Fatalf("olivere Mget: %+v %v", res, err)
	}
	cc := env.do("GET", "/_cat/count/"+ix+"?format=json", "")
	if cc.status != 200 || !strings.Contains(string(cc.body), `"count":"2"`) {
		t.Fatalf("_cat/count: %d %s", cc.status, cc.body)
	}
}

// Reference: "Multi search API": header/body NDJSON pairs, one response per
// search with its own status; errors stay per search.
func TestESMsearch(t *testing.T) {
	env := newESEnv(t)
	ix := env.idx("ms")
	env.must(201, "PUT", "/"+ix+"/_doc/1?refresh=true", `{"a":1}`)
	body := "{\"index\":\"" + ix + "\"}\n{\"query\":{\"term\":{\"a\":1}}}\n{\"index\":\"" + env.idx("none") + "\"}\n{}\n{}\n{\"size\":0}\n"
	r := env.must(200, "POST", "/_msearch", body)
	expect(t, r, "responses.0.status", 200)
	expect(t, r, "responses.0.hits.total.value", 1)
	expect(t, r, "responses.1.status", 404)
	expect(t, r, "responses.1.error.type", "index_not_found_exception")
	expect(t, r, "responses.2.status", 200)
	env.must(400, "POST", "/_msearch", "{}\n{}")
	r = env.must(200, "POST", "/"+ix+"/_msearch", "{}\n{\"query\":{\"match_all\":{}}}\n")
	expect(t, r, "responses.0.hits.total.value", 1)
	c := env.client()
	res, err := c.MultiSearch().Add(elastic.NewSearchRequest().Index(ix).Query(elastic.NewTermQuery("a", 1))).Do(ctx(t))
	if err != nil || len(res.Responses) != 1 || res.Responses[0].TotalHits() != 1 {
		t.Fatalf("olivere MultiSearch: %+v %v", res, err)
	}
}

// Reference: "Reindex API" (local source with a query, op_type create,
// conflicts, response counters).
func TestESReindex(t *testing.T) {
	env := newESEnv(t)
	src, dst := env.idx("src"), env.idx("dst")
	var b strings.Builder
	for i := 0; i < 6; i++ {
		fmt.Fprintf(&b, "{\"index\":{\"_index\":%q,\"_id\":\"%d\"}}\n{\"n\":%d}\n", src, i, i)
	}
	env.must(200, "POST", "/_bulk?refresh=true", b.String())
	r := env.must(200, "POST", "/_reindex?refresh=true", `{"source":{"index":"`+src+`","query":{"range":{"n":{"gte":2}}}},"dest":{"index":"`+dst+`"}}`)
	expect(t, r, "created", 4)
	expect(t, r, "total", 4)
	expect(t, env.must(200, "GET", "/"+dst+"/_count", ""), "count", 4)
	r = env.must(409, "POST", "/_reindex", `{"source":{"index":"`+src+`"},"dest":{"index":"`+dst+`","op_type":"create"}}`)
	expect(t, r, "version_conflicts", 4)
	expect(t, r, "created", 2)
	r = env.must(200, "POST", "/_reindex", `{"conflicts":"proceed","source":{"index":"`+src+`"},"dest":{"index":"`+dst+`","op_type":"create"}}`)
	expect(t, r, "version_conflicts", 6)
	env.must(400, "POST", "/_reindex", `{"source":{"index":"`+src+`"},"dest":{"index":"`+src+`"}}`)
}
