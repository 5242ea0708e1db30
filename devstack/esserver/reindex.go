package esserver

import (
	"strconv"
	"strings"
)

// handleReindex is the reindex API for local indices without scripts:
// documents matching source.query are written to dest.index with their
// _id (op_type index or create).
func (s *Server) handleReindex(rq *request) *esError {
	if e := rq.allow("refresh", "timeout", "wait_for_completion", "wait_for_active_shards", "requests_per_second", "slices", "max_docs", "scroll", "require_alias"); e != nil {
		return e
	}
	if v := rq.param("slices"); v != "" && v != "1" && v != "auto" {
		return errUnsupported("slices=%s (one slice only)", v)
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
	j := &byQuery{q: q, maxDocs: maxDocs, conflicts: conflicts, counts: []string{"created", "updated", "deleted"}}
	if refresh {
		j.policy = refreshTrue
	}
	s.mu.RLock()
	names, e := s.resolveIndices(strings.Join(srcIdx, ","), resolveOpts{})
	for _, n := range names {
		if n == destIdx {
			s.mu.RUnlock()
			return errValidation("reindex cannot write into an index its reading from [" + destIdx + "]")
		}
		j.list = append(j.list, s.indices[n])
	}
	s.mu.RUnlock()
	if e != nil {
		return e
	}
	var requireAlias *bool
	if _, ok := rq.q["require_alias"]; ok {
		b, e := rq.boolParam("require_alias", false)
		if e != nil {
			return e
		}
		requireAlias = &b
	}
	j.op = func(_ *index, d segDoc) *writeOp {
		return &writeOp{action: opType, index: destIdx, id: d.id, source: d.source, requireAlias: requireAlias}
	}
	return s.asTask(rq, "indices:data/write/reindex", func() (int, map[string]any, *esError) { return s.runByQuery(j) })
}
