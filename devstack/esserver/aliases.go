package esserver

import (
	"net/http"
	"sort"
	"strings"
)

// aliasDef is one alias of one index ("Aliases"). Filters and routing are
// not implemented (400).
type aliasDef struct {
	IsWriteIndex *bool `json:"is_write_index,omitempty"`
}

func (a aliasDef) render() map[string]any {
	o := map[string]any{}
	if a.IsWriteIndex != nil {
		o["is_write_index"] = *a.IsWriteIndex
	}
	return o
}

func validateAliasName(name string) *esError {
	e := validateIndexName(name)
	if e == nil || strings.HasSuffix(e.Reason, "must be lowercase") {
		return nil // alias names may contain upper case
	}
	return newErr(http.StatusBadRequest, "invalid_alias_name_exception", "%s", strings.Replace(e.Reason, "Invalid index name", "Invalid alias name", 1)).
		with("index_uuid", "_na_").with("index", name)
}

// parseAliases reads {"name":{}, "other":{"is_write_index":true}}.
func parseAliases(v any) (map[string]aliasDef, *esError) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errParsing("[aliases] must be an object")
	}
	out := map[string]aliasDef{}
	for name, def := range obj {
		if e := validateAliasName(name); e != nil {
			return nil, e
		}
		d, ok := def.(map[string]any)
		if !ok {
			return nil, errParsing("[aliases] alias [%s] must be an object", name)
		}
		var a aliasDef
		for k, val := range d {
			switch k {
			case "is_write_index":
				b, ok := val.(bool)
				if !ok {
					return nil, errParsing("[is_write_index] must be a boolean")
				}
				a.IsWriteIndex = &b
			case "filter", "routing", "index_routing", "search_routing", "is_hidden":
				return nil, errUnsupported("[%s] on aliases", k)
			default:
				return nil, errParsing("[aliases] unknown field [%s]", k)
			}
		}
		out[name] = a
	}
	return out, nil
}

// aliasIndices lists the indices an alias points to. Caller holds s.mu.
func (s *Server) aliasIndices(alias string) []string {
	var out []string
	for n, ix := range s.indices {
		if _, ok := ix.aliases[alias]; ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func (s *Server) aliasNames() []string {
	set := map[string]bool{}
	for _, ix := range s.indices {
		for a := range ix.aliases {
			set[a] = true
		}
	}
	out := make([]string, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// writeIndex resolves a write through an alias: its only index, or the one
// with is_write_index. Caller holds s.mu.
func (s *Server) writeIndex(alias string) (*index, *esError) {
	names := s.aliasIndices(alias)
	var w []string
	for _, n := range names {
		d := s.indices[n].aliases[alias]
		if d.IsWriteIndex != nil && *d.IsWriteIndex {
			w = append(w, n)
		}
		if len(names) == 1 && (d.IsWriteIndex == nil || *d.IsWriteIndex) {
			w = append(w, n)
		}
	}
	if len(w) == 0 {
		return nil, errIllegalArgument("no write index is defined for alias [%s]. The write index may be explicitly disabled using is_write_index=false or the alias points to multiple indices without one being designated as a write index", alias)
	}
	return s.indices[w[0]], nil
}

// checkAliases validates a proposed alias set for index name (no alias named
// like an index, at most one write index per alias). Caller holds s.mu.
func (s *Server) checkAliases(indexName string, aliases map[string]aliasDef) *esError {
	for a, d := range aliases {
		if _, isIndex := s.indices[a]; isIndex || a == indexName {
			return newErr(http.StatusBadRequest, "invalid_alias_name_exception", "Invalid alias name [%s]: an index or data stream exists with the same name as the alias", a).
				with("index_uuid", "_na_").with("index", a)
		}
		if d.IsWriteIndex != nil && *d.IsWriteIndex {
			for _, n := range s.aliasIndices(a) {
				if n == indexName {
					continue
				}
				if o := s.indices[n].aliases[a]; o.IsWriteIndex != nil && *o.IsWriteIndex {
					return errIllegalArgument("alias [%s] has more than one write index [%s,%s]", a, n, indexName)
				}
			}
		}
	}
	return nil
}

// handleAliasActions is POST /_aliases: add, remove, remove_index, applied
// atomically.
func (s *Server) handleAliasActions(rq *request) *esError {
	if e := rq.allow("timeout", "master_timeout"); e != nil {
		return e
	}
	body, e := decodeBody(rq.body, "aliases")
	if e != nil {
		return e
	}
	for k := range body {
		if k != "actions" {
			return errParsing("[aliases] unknown field [%s]", k)
		}
	}
	acts, _ := body["actions"].([]any)
	if len(acts) == 0 {
		return errValidation("no actions specified")
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	// work on copies, commit at the end
	next := map[string]map[string]aliasDef{}
	for n, ix := range s.indices {
		m := map[string]aliasDef{}
		for a, d := range ix.aliases {
			m[a] = d
		}
		next[n] = m
	}
	var drop []string
	strs := func(o map[string]any, one, many string) []string {
		var out []string
		if v, ok := o[one].(string); ok {
			out = append(out, v)
		}
		if arr, ok := o[many].([]any); ok {
			for _, e := range arr {
				if v, ok := e.(string); ok {
					out = append(out, v)
				}
			}
		}
		return out
	}
	for _, raw := range acts {
		am, ok := raw.(map[string]any)
		if !ok || len(am) != 1 {
			return errParsing("[aliases] each action must be an object with one of add, remove, remove_index")
		}
		for kind, v := range am {
			o, ok := v.(map[string]any)
			if !ok {
				return errParsing("[%s] must be an object", kind)
			}
			idxExprs := strs(o, "index", "indices")
			if len(idxExprs) == 0 {
				return errValidation("One of [index] or [indices] is required")
			}
			names, e := s.resolveIndices(strings.Join(idxExprs, ","), resolveOpts{noAliases: true, closed: true})
			if e != nil {
				return e
			}
			switch kind {
			case "add", "remove":
				aliases := strs(o, "alias", "aliases")
				if len(aliases) == 0 {
					return errValidation("One of [alias] or [aliases] is required")
				}
				for k, val := range o {
					switch k {
					case "index", "indices", "alias", "aliases":
					case "is_write_index":
						if kind == "remove" {
							return errParsing("[remove] unknown field [%s]", k)
						}
						if _, ok := val.(bool); !ok {
							return errParsing("[is_write_index] must be a boolean")
						}
					case "must_exist":
					case "filter", "routing", "index_routing", "search_routing", "is_hidden":
						return errUnsupported("[%s] on aliases", k)
					default:
						return errParsing("[%s] unknown field [%s]", kind, k)
					}
				}
				for _, n := range names {
					for _, a := range aliases {
						if kind == "add" {
							if e := validateAliasName(a); e != nil {
								return e
							}
							var d aliasDef
							if b, ok := o["is_write_index"].(bool); ok {
								d.IsWriteIndex = &b
							}
							next[n][a] = d
							continue
						}
						found := false
						for existing := range next[n] {
							if globMatch(a, existing) {
								delete(next[n], existing)
								found = true
							}
						}
						if !found {
							return newErr(http.StatusNotFound, "aliases_not_found_exception", "aliases [%s] missing", a).
								with("resource.type", "aliases").with("resource.id", a)
						}
					}
				}
			case "remove_index":
				drop = append(drop, names...)
			default:
				return errParsing("Unknown alias action [%s]", kind)
			}
		}
	}
	for _, n := range drop {
		delete(next, n)
	}
	// validate the end state
	saved := map[string]map[string]aliasDef{}
	for n, ix := range s.indices {
		saved[n] = ix.aliases
	}
	restore := func() {
		for n, a := range saved {
			s.indices[n].aliases = a
		}
	}
	for n, a := range next {
		s.indices[n].aliases = a
	}
	for n, a := range next {
		if e := s.checkAliases(n, a); e != nil {
			restore()
			return e
		}
	}
	wb := &writeBatch{dropIndex: drop}
	for n := range next {
		wb.meta(s.indices[n])
	}
	if err := s.st.apply(wb); err != nil {
		restore()
		return storeErr(err)
	}
	for _, n := range drop {
		delete(s.indices, n)
	}
	return s.ok(rq, 200, map[string]any{"acknowledged": true})
}

// handleIndexAlias serves /{index}/_alias[es]/{name}: PUT/POST add,
// DELETE remove, GET/HEAD read.
func (s *Server) handleIndexAlias(rq *request) *esError {
	switch rq.r.Method {
	case "GET", "HEAD":
		return s.handleGetAlias(rq)
	case "PUT", "POST":
		if len(rq.parts) != 3 {
			return methodNotAllowed(rq, "GET", "HEAD")
		}
		body := map[string]any{"index": rq.parts[0], "alias": rq.parts[2]}
		if b, e := decodeBody(rq.body, "alias"); e != nil {
			return e
		} else {
			for k, v := range b {
				body[k] = v
			}
		}
		rq.body = mustJSON(map[string]any{"actions": []any{map[string]any{"add": body}}})
		rq.q.Del("master_timeout")
		return s.handleAliasActions(rq)
	case "DELETE":
		if len(rq.parts) != 3 {
			return methodNotAllowed(rq, "GET", "HEAD")
		}
		rq.body = mustJSON(map[string]any{"actions": []any{map[string]any{"remove": map[string]any{"index": rq.parts[0], "aliases": strings.Split(rq.parts[2], ",")}}}})
		return s.handleAliasActions(rq)
	}
	return methodNotAllowed(rq, "GET", "HEAD", "PUT", "POST", "DELETE")
}

// handleGetAlias serves GET|HEAD /_alias[/{name}] and /{index}/_alias[/{name}].
func (s *Server) handleGetAlias(rq *request) *esError {
	if e := rq.allow("local", "ignore_unavailable", "allow_no_indices", "expand_wildcards"); e != nil {
		return e
	}
	indexExpr, aliasExpr := "", ""
	switch {
	case rq.parts[0] == "_alias" || rq.parts[0] == "_aliases":
		if len(rq.parts) == 2 {
			aliasExpr = rq.parts[1]
		}
	default:
		indexExpr = rq.parts[0]
		if len(rq.parts) == 3 {
			aliasExpr = rq.parts[2]
		}
	}
	o := resolveOpts{allowNoIndices: true, noAliases: true, closed: true, expand: map[string]bool{"open": true, "closed": true}}
	if e := o.fromParams(rq); e != nil {
		return e
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	names, e := s.resolveIndices(indexExpr, o)
	if e != nil {
		return e
	}
	out := map[string]any{}
	matchedAny := map[string]bool{}
	for _, n := range names {
		as := map[string]any{}
		for a, d := range s.indices[n].aliases {
			if aliasExpr == "" || matchAny(strings.Split(aliasExpr, ","), a) {
				as[a] = d.render()
				matchedAny[a] = true
			}
		}
		if len(as) > 0 || aliasExpr == "" {
			out[n] = map[string]any{"aliases": as}
		}
	}
	var missing []string
	if aliasExpr != "" {
		for _, a := range strings.Split(aliasExpr, ",") {
			if !strings.Contains(a, "*") && !matchedAny[a] {
				missing = append(missing, a)
			}
		}
	}
	if rq.r.Method == http.MethodHead {
		return s.head(rq, len(missing) == 0 && (aliasExpr == "" || len(matchedAny) > 0))
	}
	if len(missing) > 0 {
		out["error"] = "alias [" + strings.Join(missing, ",") + "] missing"
		out["status"] = 404
		return s.ok(rq, 404, out)
	}
	return s.ok(rq, 200, out)
}
