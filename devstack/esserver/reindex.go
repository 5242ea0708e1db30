package esserver

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// handleReindex is the reindex API for local indices without scripts:
// documents matching source.query are written to dest.index with their
// _id (op_type index or create).
func (s *Server) handleReindex(rq *request) *esError {
	if e := rq.allow("refresh", "timeout", "wait_for_completion", "wait_for_active_shards", "requests_per_second", "slices", "max_docs", "scroll", "require_alias"); e != nil {
		return e
	}
	if wfc, _ := rq.boolParam("wait_for_completion", true); !wfc {
		return errUnsupported("wait_for_completion=false (tasks)")
	}
	body, e := decodeBody(rq.body, "reindex")
	if e != nil {
		return e
	}
	if body == nil {
		return errValidation("source is missing", "destination is missing")
	}
	var srcIdx []string
	var qv any = map[string]any{"match_all": map[string]any{}}
	destIdx, opType, conflicts := "", "index", "abort"
	maxDocs := -1
	for k, v := range body {
		switch k {
		case "source":
			o, _ := v.(map[string]any)
			for sk, sv := range o {
				switch sk {
				case "index":
					switch x := sv.(type) {
					case string:
						srcIdx = strings.Split(x, ",")
					case []any:
						for _, e := range x {
							if s, ok := e.(string); ok {
								srcIdx = append(srcIdx, s)
							}
						}
					}
				case "query":
					qv = sv
				case "size":
				case "remote", "_source", "sort", "slice":
					return errUnsupported("source.%s in reindex", sk)
				default:
					return errParsing("[reindex] unknown field [%s]", sk)
				}
			}
		case "dest":
			o, _ := v.(map[string]any)
			for dk, dv := range o {
				switch dk {
				case "index":
					destIdx, _ = dv.(string)
				case "op_type":
					opType, _ = dv.(string)
					if opType != "index" && opType != "create" {
						return errIllegalArgument("opType must be 'create' or 'index', found: [%v]", dv)
					}
				case "version_type", "pipeline", "routing":
					return errUnsupported("dest.%s in reindex", dk)
				default:
					return errParsing("[reindex] unknown field [%s]", dk)
				}
			}
		case "conflicts":
			conflicts, _ = v.(string)
			if conflicts != "abort" && conflicts != "proceed" {
				return errIllegalArgument("conflicts may only be \"proceed\" or \"abort\" but was [%v]", v)
			}
		case "max_docs", "size":
			n, ok := toInt(v)
			if !ok || n <= 0 {
				return errValidation("maxDocs must be greater than 0")
			}
			maxDocs = int(n)
		case "script":
			return errUnsupported("scripts in reindex")
		default:
			return errParsing("[reindex] unknown field [%s]", k)
		}
	}
	if v := rq.param("max_docs"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return errValidation("maxDocs must be greater than 0")
		}
		maxDocs = n
	}
	var problems []string
	if len(srcIdx) == 0 {
		problems = append(problems, "use _all if you really want to copy from all existing indexes")
	}
	if destIdx == "" {
		problems = append(problems, "index must be specified")
	}
	if len(problems) > 0 {
		return errValidation(problems...)
	}
	q, e := parseQuery(qv)
	if e != nil {
		return e
	}
	refresh, e := rq.boolParam("refresh", false)
	if e != nil {
		return e
	}
	start := time.Now()
	s.mu.RLock()
	names, e := s.resolveIndices(strings.Join(srcIdx, ","), resolveOpts{})
	var list []*index
	for _, n := range names {
		if n == destIdx {
			s.mu.RUnlock()
			return errValidation("reindex cannot write into an index its reading from [" + destIdx + "]")
		}
		list = append(list, s.indices[n])
	}
	s.mu.RUnlock()
	if e != nil {
		return e
	}
	for _, ix := range list {
		ix.mu.RLock()
	}
	matches, e := s.runQuery(list, q)
	var ops []*writeOp
	if e == nil {
		for i, ix := range list {
			matches[i].forEach(func(o int32) {
				if maxDocs < 0 || len(ops) < maxDocs {
					d := ix.segDocs[o]
					ops = append(ops, &writeOp{action: opType, index: destIdx, id: d.id, source: d.source, detectNoop: true})
				}
			})
		}
	}
	for _, ix := range list {
		ix.mu.RUnlock()
	}
	if e != nil {
		return e
	}
	policy := refreshNone
	if refresh {
		policy = refreshTrue
	}
	results, e := s.executeWrites(ops, policy, false)
	if e != nil {
		return e
	}
	created, updated, conflictsN := 0, 0, 0
	failures := []any{}
	for i, r := range results {
		switch {
		case r.err == nil && r.Result == "created":
			created++
		case r.err == nil:
			updated++
		case r.Status == http.StatusConflict:
			conflictsN++
			if conflicts != "proceed" {
				failures = append(failures, map[string]any{"index": destIdx, "type": "_doc", "id": ops[i].id, "cause": r.Error, "status": r.Status})
			}
		default:
			failures = append(failures, map[string]any{"index": destIdx, "type": "_doc", "id": ops[i].id, "cause": r.Error, "status": r.Status})
		}
	}
	out := map[string]any{"took": time.Since(start).Milliseconds(), "timed_out": false, "total": len(ops), "updated": updated,
		"created": created, "deleted": 0, "batches": (len(ops) + 999) / 1000, "version_conflicts": conflictsN, "noops": 0,
		"retries": map[string]any{"bulk": 0, "search": 0}, "throttled_millis": 0, "requests_per_second": -1.0,
		"throttled_until_millis": 0, "failures": failures}
	status := 200
	if len(failures) > 0 {
		status = failures[0].(map[string]any)["status"].(int)
	}
	return s.ok(rq, status, out)
}
