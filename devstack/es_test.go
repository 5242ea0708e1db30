package devstack

import (
	"fmt"
	"strings"
	"testing"

	"github.com/olivere/elastic/v7"
)

// Reference: "Root API" / "Ping" and the olivere client's startup
// healthcheck (HEAD /) and sniffing (GET /_nodes/http, "Nodes info API").
func TestESRootAndClient(t *testing.T) {
	env := newESEnv(t)
	root := env.must(200, "GET", "/", "")
	if v, _ := get(root, "version.number").(string); !strings.HasPrefix(v, "7.") {
		t.Fatalf("version.number: got %q, want 7.x", v)
	}
	expect(t, root, "tagline", "You Know, for Search")
	env.must(200, "HEAD", "/", "")
	c := env.client()
	v, err := c.ElasticsearchVersion(env.url)
	if err != nil || !strings.HasPrefix(v, "7.") {
		t.Fatalf("ElasticsearchVersion: got %q, %v", v, err)
	}
	if env.dev != nil {
		// sniffing only works when the published address is reachable
		sc, err := elastic.NewClient(elastic.SetURL(env.url), elastic.SetSniff(true))
		if err != nil {
			t.Fatalf("sniffing client: %v", err)
		}
		sc.Stop()
	}
}

// Reference: "Cluster health API": status, wait_for_status, timeout (408).
func TestESClusterHealth(t *testing.T) {
	env := newESEnv(t)
	h := env.must(200, "GET", "/_cluster/health?wait_for_status=yellow&timeout=5s", "")
	if s := get(h, "status"); s != "green" && s != "yellow" {
		t.Fatalf("status: got %v", s)
	}
	expect(t, h, "timed_out", false)
	env.must(400, "GET", "/_cluster/health?wait_for_status=purple", "")
	env.must(200, "PUT", "/"+env.idx("reps"), `{"settings":{"number_of_replicas":0}}`)
	res, err := env.client().ClusterHealth().Index(env.idx("reps")).WaitForGreenStatus().Timeout("5s").Do(ctx(t))
	if err != nil || res.Status != "green" {
		t.Fatalf("ClusterHealth: got %+v, %v", res, err)
	}
}

// Reference: "Create index API", "Delete index API", "Index exists API",
// and "Create index API > Path parameters > <index>" for the name rules.
func TestESIndexLifecycle(t *testing.T) {
	env := newESEnv(t)
	a, b := env.idx("a"), env.idx("b")
	r := env.must(200, "PUT", "/"+a, `{"settings":{"number_of_shards":1}}`)
	expect(t, r, "acknowledged", true)
	expect(t, r, "index", a)
	r = env.must(400, "PUT", "/"+a, "")
	expect(t, r, "error.type", "resource_already_exists_exception")
	env.must(200, "HEAD", "/"+a, "")
	env.must(404, "HEAD", "/"+b, "")
	env.must(200, "PUT", "/"+b, "")
	env.must(200, "HEAD", "/"+env.prefix+"*", "")
	g := env.must(200, "GET", "/"+a+","+b, "")
	if _, ok := g[a]; !ok {
		t.Fatalf("GET %s,%s: missing %s", a, b, a)
	}
	r = env.must(404, "DELETE", "/"+env.idx("nope"), "")
	expect(t, r, "error.type", "index_not_found_exception")
	expect(t, r, "status", 404)
	env.must(200, "DELETE", "/"+a+","+b, "")
	env.must(404, "HEAD", "/"+a, "")
	env.must(200, "DELETE", "/"+env.prefix+"nothing-*", "") // a wildcard matching nothing is fine
	// through olivere
	c := env.client()
	if _, err := c.CreateIndex(env.idx("c")).Do(ctx(t)); err != nil {
		t.Fatalf("CreateIndex: %v", err)
	}
	ok, err := c.IndexExists(env.idx("c")).Do(ctx(t))
	if err != nil || !ok {
		t.Fatalf("IndexExists: got %v, %v", ok, err)
	}
	if _, err := c.DeleteIndex(env.idx("c")).Do(ctx(t)); err != nil {
		t.Fatalf("DeleteIndex: %v", err)
	}
}

// Reference: "Create index API > Path parameters": lowercase only; cannot
// include \ / * ? " < > | space , #; cannot start with - _ +; cannot be . or
// ..; no longer than 255 bytes. Error: invalid_index_name_exception, 400.
func TestESIndexNameRules(t *testing.T) {
	env := newESEnv(t)
	cases := []struct{ name, reason string }{
		{env.prefix + "UPPER", "must be lowercase"},
		{env.prefix + "a*b", "must not contain the following characters"},
		{env.prefix + "a%3Fb", "must not contain the following characters"},
		{env.prefix + "a%22b", "must not contain the following characters"},
		{env.prefix + "a%3Cb", "must not contain the following characters"},
		{env.prefix + "a%7Cb", "must not contain the following characters"},
		{env.prefix + "a%20b", "must not contain the following characters"},
		{env.prefix + "a%23b", "must not contain '#'"},
		{env.prefix + "a:b", "must not contain ':'"},
		{"-" + env.prefix, "must not start with '_', '-', or '+'"},
		{"+" + env.prefix, "must not start with '_', '-', or '+'"},
		{"..", "must not be '.' or '..'"},
		{env.prefix + strings.Repeat("x", 256), "index name is too long"},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			r := env.do("PUT", "/"+tc.name, "")
			if r.status != 400 {
				t.Fatalf("PUT /%s: got status %d, want 400: %s", tc.name, r.status, r.body)
			}
			m := r.json(t)
			expect(t, m, "error.type", "invalid_index_name_exception")
			expect(t, m, "error.root_cause.0.type", "invalid_index_name_exception")
			if reason, _ := get(m, "error.reason").(string); !strings.Contains(reason, tc.reason) {
				t.Fatalf("reason: got %q, want it to contain %q", reason, tc.reason)
			}
		})
	}
}

// Reference: "Bulk API > Response body" (items with status, result, error;
// errors: true), "Optimistic concurrency control" / op_type create (409
// version_conflict_engine_exception), "Mapping > mapper_parsing_exception".
func TestESBulkItems(t *testing.T) {
	env := newESEnv(t)
	ix := env.idx("bulk")
	body := fmt.Sprintf(`{"index":{"_index":"%[1]s","_id":"1"}}
{"endpoint":"web-1","value":1.5,"step":10}
{"create":{"_index":"%[1]s","_id":"2"}}
{"endpoint":"web-2","value":2,"step":10}
{"create":{"_index":"%[1]s","_id":"1"}}
{"endpoint":"web-1","value":9,"step":10}
{"index":{"_index":"%[1]s","_id":"3"}}
{"endpoint":"web-3","value":"not a number","step":10}
{"index":{"_index":"%[1]s","_id":"1"}}
{"endpoint":"web-1","value":3.5,"step":10}
{"delete":{"_index":"%[1]s","_id":"2"}}
{"delete":{"_index":"%[1]s","_id":"404"}}
`, ix)
	r := env.must(200, "POST", "/_bulk?refresh=true", body)
	expect(t, r, "errors", true)
	wants := []struct {
		action string
		status int
		result string
		errTyp string
		ver    int
	}{
		{"index", 201, "created", "", 1},
		{"create", 201, "created", "", 1},
		{"create", 409, "", "version_conflict_engine_exception", 0},
		{"index", 400, "", "mapper_parsing_exception", 0},
		{"index", 200, "updated", "", 2},
		{"delete", 200, "deleted", "", 2},
		{"delete", 404, "not_found", "", 0},
	}
	for i, w := range wants {
		p := fmt.Sprintf("items.%d.%s.", i, w.action)
		expect(t, r, p+"status", w.status)
		expect(t, r, p+"_index", ix)
		if w.result != "" {
			expect(t, r, p+"result", w.result)
		}
		if w.errTyp != "" {
			expect(t, r, p+"error.type", w.errTyp)
		}
		if w.ver > 0 {
			expect(t, r, p+"_version", w.ver)
		}
	}
	c := env.must(200, "GET", "/"+ix+"/_count", "")
	expect(t, c, "count", 1)
	// all items fine: errors false
	r = env.must(200, "POST", "/"+ix+"/_bulk", "{\"index\":{\"_id\":\"9\"}}\n{\"value\":1}\n")
	expect(t, r, "errors", false)
}

// Reference: "Bulk API > Request body": newline delimited JSON, the final
// line must end with a newline; malformed action lines fail the request.
func TestESBulkStrictNDJSON(t *testing.T) {
	env := newESEnv(t)
	ix := env.idx("nd")
	cases := []struct {
		name, body, errType string
	}{
		{"no final newline", `{"index":{"_index":"` + ix + `"}}` + "\n" + `{"a":1}`, "illegal_argument_exception"},
		{"unknown action", `{"upsert":{"_index":"` + ix + `"}}` + "\n" + `{"a":1}` + "\n", "illegal_argument_exception"},
		{"unknown metadata", `{"index":{"_index":"` + ix + `","bogus":1}}` + "\n" + `{"a":1}` + "\n", "illegal_argument_exception"},
		{"malformed action", `{"index":` + "\n" + `{"a":1}` + "\n", ""},
		{"action not an object", `"index"` + "\n", "illegal_argument_exception"},
		{"empty body", "\n", "action_request_validation_exception"},
		{"no index", `{"index":{}}` + "\n" + `{"a":1}` + "\n", "action_request_validation_exception"},
		{"delete without id", `{"delete":{"_index":"` + ix + `"}}` + "\n", "action_request_validation_exception"},
		{"empty id", `{"index":{"_index":"` + ix + `","_id":""}}` + "\n" + `{"a":1}` + "\n", "action_request_validation_exception"},
		{"duplicate key in action", `{"index":{"_index":"` + ix + `","_index":"x"}}` + "\n" + `{"a":1}` + "\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := env.do("POST", "/_bulk", tc.body)
			if r.status != 400 {
				t.Fatalf("got status %d, want 400: %s", r.status, r.body)
			}
			if tc.errType != "" {
				expect(t, r.json(t), "error.type", tc.errType)
			}
		})
	}
	// a malformed source line fails only its item
	r := env.must(200, "POST", "/_bulk", `{"index":{"_index":"`+ix+`","_id":"1"}}`+"\n"+`{"a":`+"\n"+`{"index":{"_index":"`+ix+`","_id":"2"}}`+"\n"+`{"a":1}`+"\n")
	expect(t, r, "errors", true)
	expect(t, r, "items.0.index.status", 400)
	expect(t, r, "items.0.index.error.type", "mapper_parsing_exception")
	expect(t, r, "items.1.index.status", 201)
}

// Reference: "Index API", "Get API", "Delete API", "Update API": _version,
// result, found, op_type=create conflict, 404 shapes.
func TestESDocumentAPIs(t *testing.T) {
	env := newESEnv(t)
	ix := env.idx("docs")
	r := env.must(201, "PUT", "/"+ix+"/_doc/1", `{"a":1,"b":"x"}`)
	expect(t, r, "result", "created")
	expect(t, r, "_version", 1)
	r = env.must(200, "PUT", "/"+ix+"/_doc/1", `{"a":2,"b":"x"}`)
	expect(t, r, "result", "updated")
	expect(t, r, "_version", 2)
	r = env.must(409, "PUT", "/"+ix+"/_create/1", `{"a":3}`)
	expect(t, r, "error.type", "version_conflict_engine_exception")
	// realtime get sees the write before any refresh
	g := env.must(200, "GET", "/"+ix+"/_doc/1", "")
	expect(t, g, "found", true)
	expect(t, g, "_source.a", 2)
	expect(t, g, "_version", 2)
	g = env.must(200, "GET", "/"+ix+"/_doc/1?_source_includes=b", "")
	if get(g, "_source.a") != nil || get(g, "_source.b") != "x" {
		t.Fatalf("_source_includes=b: got %v", get(g, "_source"))
	}
	g = env.must(404, "GET", "/"+ix+"/_doc/2", "")
	expect(t, g, "found", false)
	env.must(200, "HEAD", "/"+ix+"/_doc/1", "")
	env.must(404, "HEAD", "/"+ix+"/_doc/2", "")
	r = env.must(200, "POST", "/"+ix+"/_update/1", `{"doc":{"c":true}}`)
	expect(t, r, "result", "updated")
	expect(t, r, "_version", 3)
	r = env.must(200, "POST", "/"+ix+"/_update/1", `{"doc":{"c":true}}`)
	expect(t, r, "result", "noop")
	r = env.must(404, "POST", "/"+ix+"/_update/9", `{"doc":{"c":true}}`)
	expect(t, r, "error.type", "document_missing_exception")
	r = env.must(200, "DELETE", "/"+ix+"/_doc/1", "")
	expect(t, r, "result", "deleted")
	r = env.must(404, "DELETE", "/"+ix+"/_doc/1", "")
	expect(t, r, "result", "not_found")
	r = env.must(404, "GET", "/"+env.idx("missing")+"/_doc/1", "")
	expect(t, r, "error.type", "index_not_found_exception")
	r = env.must(201, "POST", "/"+ix+"/_doc", `{"auto":1}`)
	if id, _ := get(r, "_id").(string); len(id) != 20 {
		t.Fatalf("auto _id: got %q, want 20 chars", id)
	}
	// through olivere
	c := env.client()
	ir, err := c.Index().Index(ix).Id("o1").BodyJson(map[string]any{"v": 1}).Refresh("true").Do(ctx(t))
	if err != nil || ir.Result != "created" {
		t.Fatalf("Index: got %+v, %v", ir, err)
	}
	gr, err := c.Get().Index(ix).Id("o1").Do(ctx(t))
	if err != nil || !gr.Found || string(gr.Source) != `{"v":1}` {
		t.Fatalf("Get: got %+v, %v", gr, err)
	}
	_, err = c.Get().Index(ix).Id("nope").Do(ctx(t))
	if !elastic.IsNotFound(err) {
		t.Fatalf("Get missing: got %v, want not found", err)
	}
	_, err = c.Index().Index(ix).Id("o1").OpType("create").BodyJson(map[string]any{"v": 2}).Do(ctx(t))
	if !elastic.IsConflict(err) {
		t.Fatalf("create existing: got %v, want 409", err)
	}
}
