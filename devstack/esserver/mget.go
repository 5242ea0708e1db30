package esserver

import (
	"encoding/json"
	"strconv"
)

// handleMget is the multi get API: GET|POST [/{index}]/_mget with
// {"docs":[{"_index","_id","_source"}]} or {"ids":[...]}; real time, like GET.
func (s *Server) handleMget(rq *request) *esError {
	if e := rq.allow("realtime", "refresh", "routing", "preference", "_source", "_source_includes", "_source_excludes"); e != nil {
		return e
	}
	if rq.param("stored_fields") != "" {
		return errUnsupported("stored_fields")
	}
	defIndex := ""
	if rq.parts[0] != "_mget" {
		defIndex = rq.parts[0]
	}
	body, e := decodeBody(rq.body, "mget")
	if e != nil {
		return e
	}
	defSF, _ := sourceFilterFromParams(rq)
	type item struct {
		index, id string
		sf        *sourceFilter
	}
	var items []item
	for k, v := range body {
		arr, ok := v.([]any)
		if !ok {
			return errParsing("[mget] %s must be an array", k)
		}
		switch k {
		case "docs":
			for _, d := range arr {
				o, ok := d.(map[string]any)
				if !ok {
					return errParsing("[mget] docs must be objects")
				}
				it := item{index: defIndex, sf: defSF}
				for dk, dv := range o {
					switch dk {
					case "_index":
						it.index, _ = dv.(string)
					case "_id":
						it.id, _ = scalarString(dv)
					case "_source":
						sf, e := parseSourceFilter(dv)
						if e != nil {
							return e
						}
						it.sf = sf
					case "_type", "routing":
					case "stored_fields":
						return errUnsupported("stored_fields")
					default:
						return errParsing("[mget] unknown field [%s]", dk)
					}
				}
				items = append(items, it)
			}
		case "ids":
			for _, d := range arr {
				id, _ := scalarString(d)
				items = append(items, item{index: defIndex, id: id, sf: defSF})
			}
		default:
			return errParsing("[mget] unknown field [%s]", k)
		}
	}
	var problems []string
	for i, it := range items {
		if it.index == "" {
			problems = append(problems, "index is missing for doc "+strconv.Itoa(i))
		}
		if it.id == "" {
			problems = append(problems, "id is missing for doc "+strconv.Itoa(i))
		}
	}
	if len(items) == 0 {
		problems = append(problems, "no documents to get")
	}
	if len(problems) > 0 {
		return errValidation(problems...)
	}
	realtime, e := rq.boolParam("realtime", true)
	if e != nil {
		return e
	}
	docs := make([]any, 0, len(items))
	for _, it := range items {
		ix, e := s.docIndex(it.index)
		if e != nil {
			docs = append(docs, map[string]any{"_index": it.index, "_type": "_doc", "_id": it.id, "error": e.object()})
			continue
		}
		ix.mu.RLock()
		var src []byte
		var version, seq int64
		var found bool
		if realtime {
			src, version, seq, found = ix.getDoc(it.id)
		} else if ord, ok := ix.segIDs[it.id]; ok {
			d := ix.segDocs[ord]
			src, version, seq, found = d.source, d.version, d.seqNo, true
		}
		ix.mu.RUnlock()
		if !found {
			docs = append(docs, map[string]any{"_index": ix.name, "_type": "_doc", "_id": it.id, "found": false})
			continue
		}
		o := map[string]any{"_index": ix.name, "_type": "_doc", "_id": it.id, "_version": version, "_seq_no": seq, "_primary_term": 1, "found": true}
		filtered, e := it.sf.apply(src)
		if e != nil {
			return e
		}
		if filtered != nil {
			o["_source"] = json.RawMessage(filtered)
		}
		docs = append(docs, o)
	}
	return s.ok(rq, 200, map[string]any{"docs": docs})
}
