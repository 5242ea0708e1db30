package esserver

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxScrolls is search.max_open_scroll_context.
const maxScrolls = 500

// scrollCtx is an open scroll: the hits of the initial search, captured
// with their sources (a point-in-time view, as in Elasticsearch).
type scrollCtx struct {
	hits    []hitOut
	pos     int
	sr      *searchReq
	total   int
	shards  int
	score   float64
	expires time.Time
}

func (s *Server) newScroll(c *scrollCtx) (string, *esError) {
	s.scrollMu.Lock()
	defer s.scrollMu.Unlock()
	if s.scrolls == nil {
		s.scrolls = map[string]*scrollCtx{}
	}
	s.expireScrollsLocked()
	if len(s.scrolls) >= maxScrolls {
		return "", errIllegalArgument("Trying to create too many scroll contexts. Must be less than or equal to: [%d]. This limit can be set by changing the [search.max_open_scroll_context] setting.", maxScrolls)
	}
	id := newUUID() + newUUID()
	c.expires = time.Now().Add(c.sr.scroll)
	s.scrolls[id] = c
	return id, nil
}

func (s *Server) expireScrollsLocked() {
	now := time.Now()
	for id, c := range s.scrolls {
		if now.After(c.expires) {
			delete(s.scrolls, id)
		}
	}
}

// handleScroll serves GET|POST /_search/scroll[/{id}] (next page) and
// DELETE /_search/scroll[/{id}|/_all] (clear).
func (s *Server) handleScroll(rq *request) *esError {
	if e := rq.allow("scroll", "scroll_id", "rest_total_hits_as_int"); e != nil {
		return e
	}
	body, e := decodeBody(rq.body, "scroll")
	if e != nil {
		return e
	}
	var ids []string
	keep := rq.param("scroll")
	if v := rq.param("scroll_id"); v != "" {
		ids = strings.Split(v, ",")
	}
	if len(rq.parts) == 3 {
		ids = strings.Split(rq.parts[2], ",")
	}
	for k, v := range body {
		switch k {
		case "scroll_id":
			switch x := v.(type) {
			case string:
				ids = []string{x}
			case []any:
				ids = nil
				for _, e := range x {
					if s, ok := e.(string); ok {
						ids = append(ids, s)
					}
				}
			}
		case "scroll":
			keep, _ = v.(string)
		default:
			return errParsing("Unknown parameter [%s] in request body or parameter is of the wrong type[%T] ", k, v)
		}
	}
	s.scrollMu.Lock()
	defer s.scrollMu.Unlock()
	s.expireScrollsLocked()
	if rq.r.Method == http.MethodDelete {
		freed := 0
		if len(ids) == 1 && ids[0] == "_all" {
			freed = len(s.scrolls)
			s.scrolls = map[string]*scrollCtx{}
		} else {
			if len(ids) == 0 {
				return errValidation("no scroll ids specified")
			}
			for _, id := range ids {
				if _, ok := s.scrolls[id]; ok {
					delete(s.scrolls, id)
					freed++
				}
			}
		}
		status := 200
		if freed == 0 && !(len(ids) == 1 && ids[0] == "_all") {
			status = 404
		}
		return s.ok(rq, status, map[string]any{"succeeded": true, "num_freed": freed})
	}
	if len(ids) != 1 {
		return errValidation("scrollId is missing")
	}
	c, ok := s.scrolls[ids[0]]
	if !ok {
		return newErr(http.StatusNotFound, "search_phase_execution_exception", "all shards failed").
			cause(newErr(http.StatusNotFound, "search_context_missing_exception", "No search context found for id [%s]", ids[0]))
	}
	if keep != "" {
		d, e := parseTimeValue(keep)
		if e != nil || d <= 0 {
			return errIllegalArgument("failed to parse setting [scroll] with value [%s] as a time value", keep)
		}
		c.sr.scroll = d
	}
	c.expires = time.Now().Add(c.sr.scroll)
	end := min(c.pos+c.sr.size, len(c.hits))
	page := c.hits[c.pos:end]
	c.pos = end
	var b bytes.Buffer
	b.WriteString(`{"_scroll_id":"` + ids[0] + `","took":0,"timed_out":false,"_shards":`)
	sj, _ := json.Marshal(shardsJSON(c.shards))
	b.Write(sj)
	b.WriteString(`,"hits":{`)
	if asInt, _ := rq.boolParam("rest_total_hits_as_int", c.sr.restTotalAsInt); asInt {
		b.WriteString(`"total":` + strconv.Itoa(c.total) + ",")
	} else {
		b.WriteString(`"total":{"value":` + strconv.Itoa(c.total) + `,"relation":"eq"},`)
	}
	scored := len(c.sr.sort) == 0 || c.sr.trackScores
	if scored && c.total > 0 {
		b.WriteString(`"max_score":` + strconv.FormatFloat(c.score, 'f', -1, 64))
	} else {
		b.WriteString(`"max_score":null`)
	}
	if e := renderHits(&b, page, c.sr, scored, c.score); e != nil {
		return e
	}
	b.WriteByte('}')
	return s.ok(rq, 200, json.RawMessage(b.Bytes()))
}
