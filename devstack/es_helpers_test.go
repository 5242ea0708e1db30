package devstack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"
)

// The ES suite runs against dev-es, or against a real Elasticsearch 7.x
// cluster when FALCONET_TEST_ES_URL is set, so every difference can be found
// by anyone who has one. Tests name their indices with a per-test prefix and
// delete them at the end.

var indexSeq atomic.Int64

type esEnv struct {
	t      *testing.T
	url    string
	dev    *ES // nil against a real cluster
	prefix string
}

func newESEnv(t *testing.T) *esEnv {
	t.Helper()
	env := &esEnv{t: t}
	if u := os.Getenv("FALCONET_TEST_ES_URL"); u != "" {
		env.url = strings.TrimRight(u, "/")
	} else {
		env.dev = StartES(t)
		env.url = env.dev.URL()
	}
	name := strings.ToLower(regexp.MustCompile(`[^a-zA-Z0-9]+`).ReplaceAllString(t.Name(), "-"))
	if len(name) > 40 {
		name = name[:40]
	}
	env.prefix = fmt.Sprintf("fntest-%s-%d-", strings.Trim(name, "-"), indexSeq.Add(1))
	t.Cleanup(func() {
		env.do("DELETE", "/"+env.prefix+"*", "")
		env.do("DELETE", "/_index_template/"+env.prefix+"*", "")
		env.do("DELETE", "/_template/"+env.prefix+"*", "")
	})
	return env
}

// needDev skips a test that needs dev-es's own features (faults, restarts).
func (e *esEnv) needDev() *ES {
	e.t.Helper()
	if e.dev == nil {
		e.t.Skip("dev-es only: fault injection / restart")
	}
	return e.dev
}

func (e *esEnv) idx(name string) string { return e.prefix + name }

type resp struct {
	status int
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(r.body))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

func (e *esEnv) do(method, path, body string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatalf("request: %v", err)
	}
	if body != "" {
		ct := "application/json"
		if strings.Contains(path, "_bulk") {
			ct = "application/x-ndjson"
		}
		req.Header.Set("Content-Type", ct)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, body: b}
}

// must performs a request and fails the test unless the status matches.
func (e *esEnv) must(status int, method, path, body string) map[string]any {
	e.t.Helper()
	r := e.do(method, path, body)
	if r.status != status {
		e.t.Fatalf("%s %s: got status %d, want %d: %s", method, path, r.status, status, r.body)
	}
	if method == "HEAD" || len(r.body) == 0 {
		return nil
	}
	return r.json(e.t)
}

func (e *esEnv) client() *elastic.Client {
	e.t.Helper()
	c, err := elastic.NewClient(elastic.SetURL(e.url), elastic.SetSniff(false), elastic.SetHealthcheckTimeoutStartup(5*time.Second))
	if err != nil {
		e.t.Fatalf("elastic.NewClient: %v", err)
	}
	e.t.Cleanup(c.Stop)
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// get walks a decoded JSON value by path ("hits.total.value",
// "items.0.index.status"); a dot inside a key is written "\\." (see esc).
func get(v any, path string) any {
	parts := strings.Split(strings.ReplaceAll(path, `\.`, "\x00"), ".")
	for i := range parts {
		parts[i] = strings.ReplaceAll(parts[i], "\x00", ".")
	}
	for _, p := range parts {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	if n, ok := v.(json.Number); ok {
		if i, err := n.Int64(); err == nil {
			return i
		}
		f, _ := n.Float64()
		return f
	}
	return v
}

// esc escapes the dots of an index name ("falconet-metrics-2026.11.01")
// for use in a get path.
func esc(name string) string { return strings.ReplaceAll(name, ".", `\.`) }

func expect(t *testing.T, m any, path string, want any) {
	t.Helper()
	got := get(m, path)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		js, _ := json.Marshal(m)
		t.Fatalf("%s: got %v, want %v\nin %s", path, got, want, js)
	}
}
