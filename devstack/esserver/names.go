package esserver

import (
	"net/http"
	"sort"
	"strings"
)

// validateIndexName applies Elasticsearch 7.x's index name rules
// (MetadataCreateIndexService.validateIndexOrAliasName).
func validateIndexName(name string) *esError {
	bad := func(why string) *esError {
		return newErr(http.StatusBadRequest, "invalid_index_name_exception", "Invalid index name [%s], %s", name, why).
			with("index_uuid", "_na_").with("index", name)
	}
	switch {
	// the order of Elasticsearch's checks: characters, empty, '#', ':',
	// leading character, length, dots, then case
	case strings.ContainsAny(name, `\/*?"<>| ,`):
		return bad(`must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?]`)
	case name == "":
		return bad("must not be empty")
	case strings.Contains(name, "#"):
		return bad("must not contain '#'")
	case strings.Contains(name, ":"):
		return bad("must not contain ':'")
	case name[0] == '_' || name[0] == '-' || name[0] == '+':
		return bad("must not start with '_', '-', or '+'")
	case len(name) > 255:
		return newErr(http.StatusBadRequest, "invalid_index_name_exception",
			"Invalid index name [%s], index name is too long, (%d > 255)", name, len(name)).
			with("index_uuid", "_na_").with("index", name)
	case name == "." || name == "..":
		return bad("must not be '.' or '..'")
	case strings.ToLower(name) != name:
		return bad("must be lowercase")
	}
	return nil
}

// globMatch matches Elasticsearch's simple wildcard patterns, where '*' is
// the only special character (Regex.simpleMatch).
func globMatch(pattern, s string) bool {
	// greedy matching with backtracking to the last '*': O(len(p)*len(s))
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

type resolveOpts struct {
	ignoreUnavailable bool // missing concrete names are skipped
	allowNoIndices    bool // a wildcard matching nothing is fine
	noAliases         bool // names must be indices (delete index, alias actions)
	// expand is expand_wildcards: which indices wildcards and _all reach
	// ("open" when empty); closed names a concrete closed index may be
	// named (metadata APIs), otherwise it answers index_closed_exception.
	expand map[string]bool
	closed bool
}

// fromParams reads ignore_unavailable, allow_no_indices and
// expand_wildcards when the request has them.
func (o *resolveOpts) fromParams(rq *request) *esError {
	var e *esError
	if _, ok := rq.q["ignore_unavailable"]; ok {
		if o.ignoreUnavailable, e = rq.boolParam("ignore_unavailable", false); e != nil {
			return e
		}
	}
	if _, ok := rq.q["allow_no_indices"]; ok {
		if o.allowNoIndices, e = rq.boolParam("allow_no_indices", true); e != nil {
			return e
		}
	}
	if v, ok := rq.q["expand_wildcards"]; ok {
		o.expand = map[string]bool{}
		for _, w := range strings.Split(v[0], ",") {
			switch w {
			case "open", "closed", "hidden", "none":
				o.expand[w] = true
			case "all":
				o.expand["open"], o.expand["closed"], o.expand["hidden"] = true, true, true
			default:
				return errIllegalArgument("No enum constant org.elasticsearch.action.support.IndicesOptions.WildcardStates.%s", strings.ToUpper(w))
			}
		}
	}
	return nil
}

// wildcardReaches says whether a wildcard (or _all) expands to ix.
func (o resolveOpts) wildcardReaches(ix *index) bool {
	ex := o.expand
	if ex == nil {
		ex = map[string]bool{"open": true}
	}
	if ix.settings["index.hidden"] == "true" && !ex["hidden"] {
		return false
	}
	if ix.closed.Load() {
		return ex["closed"]
	}
	return ex["open"]
}

func errIndexClosed(ix *index) *esError {
	return newErr(400, "index_closed_exception", "closed").with("index_uuid", ix.uuid).with("index", ix.name)
}

// resolveIndices expands an index expression (comma list, wildcards,
// "_all", "-exclusions") into existing index names, sorted. The caller holds
// s.mu.
func (s *Server) resolveIndices(expr string, o resolveOpts) ([]string, *esError) {
	if expr == "" {
		expr = "_all"
	}
	set := map[string]bool{}
	var order []string
	add := func(n string) {
		if !set[n] {
			set[n] = true
			order = append(order, n)
		}
	}
	sawWildcard := false
	for i, part := range strings.Split(expr, ",") {
		if part == "" {
			continue
		}
		if part[0] == '-' && i > 0 && sawWildcard {
			pat := part[1:]
			for n := range set {
				if globMatch(pat, n) {
					delete(set, n)
				}
			}
			continue
		}
		if strings.Contains(part, "*") {
			sawWildcard = true
			matched := false
			for _, n := range s.sortedIndexNames() {
				if globMatch(part, n) && o.wildcardReaches(s.indices[n]) {
					add(n)
					matched = true
				}
			}
			if !o.noAliases {
				for _, a := range s.aliasNames() {
					if globMatch(part, a) {
						for _, n := range s.aliasIndices(a) {
							if !s.indices[n].closed.Load() || o.closed {
								add(n)
							}
						}
						matched = true
					}
				}
			}
			if !matched && !o.allowNoIndices {
				return nil, errIndexNotFound(part)
			}
			continue
		}
		if part == "_all" {
			sawWildcard = true
			for _, n := range s.sortedIndexNames() {
				if o.wildcardReaches(s.indices[n]) {
					add(n)
				}
			}
			continue
		}
		if _, ok := s.indices[part]; !ok {
			if targets := s.aliasIndices(part); len(targets) > 0 {
				if o.noAliases {
					return nil, errIllegalArgument("The provided expression [%s] matches an alias, specify the corresponding concrete indices instead.", part)
				}
				for _, n := range targets {
					if ix := s.indices[n]; ix.closed.Load() && !o.closed && !o.ignoreUnavailable {
						return nil, errIndexClosed(ix)
					} else if !ix.closed.Load() || o.closed {
						add(n)
					}
				}
				continue
			}
			if o.ignoreUnavailable {
				continue
			}
			return nil, errIndexNotFound(part)
		}
		if ix := s.indices[part]; ix.closed.Load() && !o.closed {
			if o.ignoreUnavailable {
				continue
			}
			return nil, errIndexClosed(ix)
		}
		add(part)
	}
	out := make([]string, 0, len(set))
	for _, n := range order {
		if set[n] {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (s *Server) sortedIndexNames() []string {
	names := make([]string, 0, len(s.indices))
	for n := range s.indices {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
