package esserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// walkExamples gives every route pattern a concrete path against the
// fixture TestRouterWalk creates. A route without an example fails the
// test, so a new route cannot skip the walk.
var walkExamples = map[string]string{
	"/_cluster/health/{index}":                     "/_cluster/health/walk",
	"/_cluster/state/{metric}":                     "/_cluster/state/metadata",
	"/_cluster/state/{metric}/{index}":             "/_cluster/state/metadata/walk",
	"/_nodes/{nodes_or_metric}":                    "/_nodes/http",
	"/_nodes/{node}/{metric}":                      "/_nodes/_local/http",
	"/_nodes/stats/{metric}":                       "/_nodes/stats/fs",
	"/_nodes/stats/{metric}/{index_metric}":        "/_nodes/stats/indices/docs",
	"/_nodes/{node}/stats":                         "/_nodes/_local/stats",
	"/_nodes/{node}/stats/{metric}":                "/_nodes/_local/stats/fs",
	"/_nodes/{node}/stats/{metric}/{index_metric}": "/_nodes/_local/stats/indices/store",
	"/_cat/indices/{index}":                        "/_cat/indices/walk",
	"/_cat/count/{index}":                          "/_cat/count/walk",
	"/_cat/shards/{index}":                         "/_cat/shards/walk",
	"/_cat/aliases/{name}":                         "/_cat/aliases/walk-alias",
	"/_cat/templates/{name}":                       "/_cat/templates/walk-tpl",
	"/_stats/{metric}":                             "/_stats/docs",
	"/{index}/_stats/{metric}":                     "/walk/_stats/store,docs",
	"/_tasks/{task_id}":                            "/_tasks/" + nodeID + ":1",
	"/_search/scroll/{scroll_id}":                  "/_search/scroll/walk-scroll",
	"/{index}/_mapping/{type}":                     "/walk/_mapping/_all",
	"/_aliases/{name}":                             "/_aliases/walk-alias",
	"/_alias/{name}":                               "/_alias/walk-alias",
	"/{index}/_alias/{name}":                       "/walk/_alias/walk-alias",
	"/{index}/_aliases/{name}":                     "/walk/_aliases/walk-alias",
	"/_index_template/{name}":                      "/_index_template/walk-tpl",
	"/_template/{name}":                            "/_template/walk-tpl",
	"/{index}/_doc/{id}":                           "/walk/_doc/1",
	"/{index}/_create/{id}":                        "/walk/_create/2",
	"/{index}/_update/{id}":                        "/walk/_update/1",
	"/{index}/_source/{id}":                        "/walk/_source/1",
}

func examplePath(t *testing.T, pattern string) string {
	if p, ok := walkExamples[pattern]; ok {
		return p
	}
	if strings.Contains(pattern, "{") && strings.Count(pattern, "{") == 1 && strings.Contains(pattern, "{index}") {
		return strings.Replace(pattern, "{index}", "walk", 1)
	}
	if strings.Contains(pattern, "{") {
		t.Fatalf("route %s has no example path in walkExamples", pattern)
	}
	return pattern
}

type walkResp struct {
	status int
	reason string
	body   string
}

func walkDo(s *Server, method, path, body string) walkResp {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		ct := "application/json"
		if strings.Contains(path, "_bulk") || strings.Contains(path, "_msearch") {
			ct = "application/x-ndjson"
		}
		req.Header.Set("Content-Type", ct)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	r := walkResp{status: w.Code, body: w.Body.String()}
	var m map[string]any
	if json.Unmarshal(w.Body.Bytes(), &m) == nil {
		switch e := m["error"].(type) {
		case string:
			r.reason = e
		case map[string]any:
			r.reason, _ = e["reason"].(string)
			if rc, ok := e["root_cause"].([]any); ok && len(rc) > 0 {
				if m0, ok := rc[0].(map[string]any); ok {
					if rs, _ := m0["reason"].(string); rs != "" {
						r.reason += " / " + rs
					}
				}
			}
		}
	}
	return r
}

// documentBodies are routes whose body is a user document (any field is
// valid) or NDJSON: the unknown-body-field check does not apply.
var documentBodies = map[string]bool{"/{index}/_doc": true, "/{index}/_doc/{id}": true, "/{index}/_create/{id}": true,
	"/_bulk": true, "/{index}/_bulk": true}

// TestRouterWalk walks the route table: no route answers a sub-path it does
// not implement; every route refuses an unknown URL parameter with a 400
// naming it; routes without a body refuse one ("request [...] does not
// support having a body"), and routes with a JSON body refuse an unknown
// field with a 400 naming it.
func TestRouterWalk(t *testing.T) {
	s, err := Start(Config{Listen: "127.0.0.1:0", Memory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	setup := func() {
		for _, c := range []struct{ m, p, b string }{
			{"PUT", "/walk", `{"mappings":{"properties":{"k":{"type":"keyword"}}},"aliases":{"walk-alias":{}}}`},
			{"PUT", "/walk/_doc/1?refresh=true", `{"k":"a"}`},
			{"PUT", "/_index_template/walk-tpl", `{"index_patterns":["walkt-*"]}`},
			{"PUT", "/_template/walk-tpl", `{"index_patterns":["walkl-*"]}`},
		} {
			walkDo(s, c.m, c.p, c.b)
		}
	}
	setup()
	for _, rt := range routes {
		path := examplePath(t, rt.path)
		for _, m := range strings.Fields(rt.methods) {
			name := m + " " + rt.path
			// a sub-path the route does not implement
			// (unless the longer path is a route of its own, walked in its turn)
			sub := strings.TrimRight(path, "/") + "/walkextra"
			if other := matchRoute(strings.Split(strings.Trim(sub, "/"), "/")); len(other) > 0 {
				// walked in its own turn
			} else if r := walkDo(s, m, sub, ""); r.status < 400 {
				t.Errorf("%s: sub-path %s answered %d, want a 4xx: %.200s", name, sub, r.status, r.body)
			}
			// an unknown URL parameter
			sep := "?"
			if strings.Contains(path, "?") {
				sep = "&"
			}
			r := walkDo(s, m, path+sep+"walk_bogus_param=1", "")
			if r.status != http.StatusBadRequest || (m != "HEAD" && !strings.Contains(r.reason, "walk_bogus_param")) {
				t.Errorf("%s: unknown parameter: got %d %q, want 400 naming walk_bogus_param", name, r.status, r.reason)
			}
			if m == "HEAD" {
				continue
			}
			// a body where none is read, or an unknown body field
			if documentBodies[rt.path] {
				continue
			}
			body := `{"walk_bogus_field":1}`
			r = walkDo(s, m, path, body)
			switch {
			case !rt.body:
				if r.status != 400 || !strings.Contains(r.reason, "does not support having a body") {
					t.Errorf("%s: body where none is read: got %d %q, want 400 does not support having a body", name, r.status, r.reason)
				}
			case rt.path == "/_msearch" || rt.path == "/{index}/_msearch":
				if r.status != 400 {
					t.Errorf("%s: bogus msearch: got %d %q, want 400", name, r.status, r.reason)
				}
			default:
				if r.status != 400 || !strings.Contains(r.reason, "walk_bogus_field") {
					t.Errorf("%s: unknown body field: got %d %q, want 400 naming walk_bogus_field", name, r.status, r.reason)
				}
			}
			// put back whatever a failing check may have changed
			setup()
		}
	}
}
