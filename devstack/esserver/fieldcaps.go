package esserver

import (
	"sort"
	"strings"
)

// metaFieldCaps are the metadata fields field_caps lists ("Field
// capabilities API"): name -> searchable, aggregatable.
var metaFieldCaps = map[string][2]bool{"_id": {true, true}, "_index": {true, true}, "_source": {false, false}, "_seq_no": {true, true},
	"_version": {false, false}, "_routing": {true, false}, "_ignored": {true, false}, "_field_names": {true, false}}

// allFieldPaths lists every mapped path (objects and multi-fields included).
func allFieldPaths(prefix string, f *fieldMapping, out map[string]*fieldMapping) {
	for name, p := range f.Properties {
		full := prefix + name
		out[full] = p
		if p.Type == "object" {
			allFieldPaths(full+".", p, out)
		}
		for sub, sf := range p.Fields {
			out[full+"."+sub] = sf
		}
	}
}

// handleFieldCaps is GET|POST [/{index}]/_field_caps?fields=... ("Field
// capabilities API"), with include_unmapped.
func (s *Server) handleFieldCaps(rq *request) *esError {
	if e := rq.allow("fields", "ignore_unavailable", "allow_no_indices", "expand_wildcards", "include_unmapped", "filters", "types"); e != nil {
		return e
	}
	for _, p := range []string{"filters", "types"} {
		if rq.param(p) != "" {
			return errUnsupported("the field_caps parameter [%s]", p)
		}
	}
	unmapped, e := rq.boolParam("include_unmapped", false)
	if e != nil {
		return e
	}
	var patterns []string
	if v := rq.param("fields"); v != "" {
		patterns = strings.Split(v, ",")
	}
	body, e := decodeBody(rq.body, "field_caps")
	if e != nil {
		return e
	}
	for k, v := range body {
		switch k {
		case "fields":
			ps, ok := toPatterns(v)
			if !ok {
				return errParsing("[field_caps] fields must be a string or an array of strings")
			}
			patterns = append(patterns, ps...)
		case "index_filter", "runtime_mappings":
			return errUnsupported("[%s] in field_caps", k)
		default:
			return errParsing("[field_caps] unknown field [%s]", k)
		}
	}
	if len(patterns) == 0 {
		return errValidation("specified fields can't be null or empty")
	}
	expr := ""
	if rq.parts[0] != "_field_caps" {
		expr = rq.parts[0]
	}
	list, e := s.indexList(rq, expr, resolveOpts{allowNoIndices: true})
	if e != nil {
		return e
	}
	type caps struct {
		searchable, aggregatable bool
		indices                  []string
	}
	byField := map[string]map[string]*caps{} // field -> type -> caps
	names := []string{}
	seenIn := map[string]map[string]bool{}
	add := func(field, typ, ixName string, srch, agg bool) {
		if byField[field] == nil {
			byField[field] = map[string]*caps{}
			seenIn[field] = map[string]bool{}
		}
		c := byField[field][typ]
		if c == nil {
			c = &caps{searchable: srch, aggregatable: agg}
			byField[field][typ] = c
		}
		c.indices = append(c.indices, ixName)
		seenIn[field][ixName] = true
	}
	for _, ix := range list {
		names = append(names, ix.name)
		ix.mu.RLock()
		paths := map[string]*fieldMapping{}
		allFieldPaths("", ix.m.Root, paths)
		ix.mu.RUnlock()
		for p, f := range paths {
			if !matchAny(patterns, p) {
				continue
			}
			switch f.Type {
			case "object":
				add(p, "object", ix.name, false, false)
			case "text":
				add(p, "text", ix.name, f.index, false)
			default:
				add(p, f.Type, ix.name, f.index, true)
			}
		}
		for p, c := range metaFieldCaps {
			if matchAny(patterns, p) {
				add(p, p, ix.name, c[0], c[1])
			}
		}
	}
	fields := map[string]any{}
	for field, types := range byField {
		o := map[string]any{}
		for typ, c := range types {
			_, meta := metaFieldCaps[field]
			tc := map[string]any{"type": typ, "metadata_field": meta, "searchable": c.searchable, "aggregatable": c.aggregatable}
			if len(types) > 1 || (unmapped && len(seenIn[field]) < len(names)) {
				sort.Strings(c.indices)
				tc["indices"] = c.indices
			}
			o[typ] = tc
		}
		if unmapped && len(seenIn[field]) < len(names) {
			var missing []string
			for _, n := range names {
				if !seenIn[field][n] {
					missing = append(missing, n)
				}
			}
			o["unmapped"] = map[string]any{"type": "unmapped", "searchable": false, "aggregatable": false, "indices": missing}
		}
		fields[field] = o
	}
	return s.ok(rq, 200, map[string]any{"indices": names, "fields": fields})
}
