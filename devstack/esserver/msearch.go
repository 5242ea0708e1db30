package esserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// bufWriter captures one inner response of a multi search.
type bufWriter struct {
	h      http.Header
	status int
	buf    bytes.Buffer
}

func (b *bufWriter) Header() http.Header         { return b.h }
func (b *bufWriter) WriteHeader(status int)      { b.status = status }
func (b *bufWriter) Write(p []byte) (int, error) { return b.buf.Write(p) }

var msearchHeaderKeys = map[string]bool{"index": true, "indices": true, "ignore_unavailable": true, "allow_no_indices": true,
	"expand_wildcards": true, "preference": true, "routing": true, "search_type": true, "request_cache": true,
	"allow_partial_search_results": true, "ccs_minimize_roundtrips": true}

// handleMsearch is the multi search API: NDJSON header/body pairs, one
// response per search ("responses", each with its "status").
func (s *Server) handleMsearch(rq *request) *esError {
	if e := rq.allow("max_concurrent_searches", "max_concurrent_shard_requests", "pre_filter_shard_size", "search_type",
		"rest_total_hits_as_int", "typed_keys", "ccs_minimize_roundtrips"); e != nil {
		return e
	}
	if tk, _ := rq.boolParam("typed_keys", false); tk {
		return errUnsupported("typed_keys")
	}
	start := time.Now()
	body := rq.body
	if len(bytes.TrimSpace(body)) == 0 {
		return errValidation("no requests added")
	}
	if body[len(body)-1] != '\n' {
		return errIllegalArgument("The msearch request must be terminated by a newline [\\n]")
	}
	defIndex := ""
	if rq.parts[0] != "_msearch" {
		defIndex = rq.parts[0]
	}
	lines := bytes.Split(body[:len(body)-1], []byte{'\n'})
	var responses []json.RawMessage
	for i := 0; i < len(lines); i += 2 {
		header := bytes.TrimSpace(lines[i])
		q := url.Values{}
		if v, ok := rq.q["rest_total_hits_as_int"]; ok {
			q["rest_total_hits_as_int"] = v
		}
		index := defIndex
		if len(header) > 0 {
			hv, err := parseJSON(header)
			hm, ok := hv.(map[string]any)
			if err != nil || !ok {
				return errIllegalArgument("Malformed msearch header line [%d]: %v", i+1, err)
			}
			for k, v := range hm {
				if !msearchHeaderKeys[k] {
					return errIllegalArgument("key [%s] is not supported in the metadata section", k)
				}
				switch k {
				case "index", "indices":
					switch x := v.(type) {
					case string:
						index = x
					case []any:
						var parts []string
						for _, e := range x {
							if s, ok := e.(string); ok {
								parts = append(parts, s)
							}
						}
						index = strings.Join(parts, ",")
					}
				case "ignore_unavailable", "allow_no_indices":
					q.Set(k, fmt.Sprint(v))
				}
			}
		}
		if i+1 >= len(lines) {
			return errValidation("no search body for msearch header line " + fmt.Sprint(i+1))
		}
		inner := &request{r: rq.r, q: q, body: lines[i+1], path: rq.path}
		if index == "" {
			inner.parts = []string{"_search"}
		} else {
			inner.parts = []string{index, "_search"}
		}
		bw := &bufWriter{h: http.Header{}, status: 200}
		inner.w = bw
		if e := s.handleSearch(inner); e != nil {
			b := e.body()
			responses = append(responses, mustJSON(b))
			continue
		}
		// append "status" to the inner response object
		out := bytes.TrimSpace(bw.buf.Bytes())
		if len(out) > 1 && out[len(out)-1] == '}' {
			out = append(append(out[:len(out)-1:len(out)-1], []byte(fmt.Sprintf(`,"status":%d`, bw.status))...), '}')
		}
		responses = append(responses, out)
	}
	return s.ok(rq, 200, map[string]any{"took": time.Since(start).Milliseconds(), "responses": responses})
}
