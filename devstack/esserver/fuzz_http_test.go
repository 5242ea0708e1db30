package esserver

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

var (
	fuzzSrvOnce sync.Once
	fuzzSrv     *Server
)

func fuzzServer(t testing.TB) *Server {
	fuzzSrvOnce.Do(func() {
		s, err := Start(Config{Listen: "127.0.0.1:0", Memory: true})
		if err != nil {
			t.Fatal(err)
		}
		fuzzSrv = s
		do := func(method, path, body string) {
			req := httptest.NewRequest(method, path, bytes.NewBufferString(body))
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			s.ServeHTTP(w, req)
			if w.Code >= 300 {
				t.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
			}
		}
		do("PUT", "/f", `{"mappings":{"properties":{"k":{"type":"keyword"},"d":{"type":"date"},"n":{"type":"long"},"x":{"type":"double"},"t":{"type":"text"},"b":{"type":"boolean"}}}}`)
		do("POST", "/_bulk?refresh=true", "{\"index\":{\"_index\":\"f\",\"_id\":\"1\"}}\n{\"k\":\"a\",\"d\":\"2026-01-01\",\"n\":1,\"x\":1.5,\"t\":\"Hello World\",\"b\":true,\"o\":{\"p\":[1,2]}}\n{\"index\":{\"_index\":\"f\",\"_id\":\"2\"}}\n{\"k\":[\"b\",\"c\"],\"d\":1700000000000,\"n\":[2,3],\"x\":-1}\n")
	})
	return fuzzSrv
}

// FuzzSearchBody sends arbitrary bodies to _search, _count and
// _delete_by_query: every answer is a 2xx or a 4xx Elasticsearch error,
// never a 500 (a recovered panic).
func FuzzSearchBody(f *testing.F) {
	seeds := []string{
		`{"query":{"bool":{"must":[{"term":{"k":"a"}}],"filter":{"range":{"d":{"gte":"now-10y/y","lt":"now"}}},"should":[{"exists":{"field":"o"}}],"must_not":[{"ids":{"values":["9"]}}]}}}`,
		`{"size":1,"from":1,"sort":[{"n":{"order":"desc","missing":"_first"}},"_doc"],"_source":{"includes":["k","o.*"]},"track_total_hits":1}`,
		`{"aggs":{"t":{"terms":{"field":"k","order":{"m":"asc"}},"aggs":{"m":{"max":{"field":"x"}},"h":{"date_histogram":{"field":"d","calendar_interval":"month","time_zone":"+02:00","min_doc_count":0}}}}}}`,
		`{"query":{"terms":{"n":[1,"2",3.5]}},"aggs":{"c":{"cardinality":{"field":"k"}},"v":{"value_count":{"field":"n"}},"a":{"avg":{"field":"d"}}}}`,
		`{"sort":["k"],"search_after":["b"],"query":{"prefix":{"k":"b"}}}`,
		`{"query":{"term":{"t":"hello"}}}`,
		`{"query":{"range":{"x":{"from":0,"to":2,"include_upper":false}}}}`,
		`{"query":{"match":{"t":{"query":"hello world","operator":"and"}}},"stored_fields":["*"],"docvalue_fields":["k",{"field":"d","format":"epoch_millis"}],"fields":["n"]}`,
		`{"query":{"query_string":{"query":"k:a OR (n:[1 TO 3} AND -x:>0) OR _exists_:o"}}}`,
		`{"query":{"multi_match":{"query":"a 2","fields":["k","n^2"],"lenient":true}}}`,
		`{"size":0,"aggs":{"s":{"stats":{"field":"n"}},"e":{"extended_stats":{"field":"x","sigma":1}},"p":{"percentiles":{"field":"d","keyed":false}},"h":{"top_hits":{"size":1,"sort":["n"]}}}}`,
		`{"size":0,"aggs":{"c":{"composite":{"size":1,"sources":[{"k":{"terms":{"field":"k","missing_bucket":true}}},{"d":{"date_histogram":{"field":"d","calendar_interval":"1d"}}},{"n":{"histogram":{"field":"n","interval":2}}}],"after":{"k":"a","d":0,"n":0}},"aggs":{"m":{"min":{"field":"x"}}}}}}`,
		`{"size":0,"aggs":{"t":{"terms":{"field":"k","min_doc_count":0,"show_term_doc_count_error":true}}}}`,
	}
	for _, s := range seeds {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, body string, endpoint uint8) {
		s := fuzzServer(t)
		path := []string{"/f/_search", "/f/_count", "/f*/_search?size=3", "/f/_delete_by_query", "/f/_search?scroll=1m&size=1", "/_msearch"}[int(endpoint)%6]
		if path == "/f/_delete_by_query" && len(body) > 0 && body[0] == '{' {
			path = "/nonexistent-*/_delete_by_query" // keep the corpus index intact
		}
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewBufferString(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %q: status %d: %s", path, body, w.Code, w.Body)
		}
	})
}
