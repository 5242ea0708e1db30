package esserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ---- settings ----

// knownSettings are the index settings dev-es accepts (after "index.").
// Others answer Elasticsearch's "unknown setting" error; a few real but
// unimplemented ones answer unsupported.
var knownSettings = map[string]string{
	"number_of_shards": "int>=1", "number_of_replicas": "int>=0", "refresh_interval": "time",
	"max_result_window": "int>=1", "mapping.total_fields.limit": "int>=0", "codec": "", "auto_expand_replicas": "",
	"translog.durability": "", "translog.sync_interval": "time", "lifecycle.name": "", "lifecycle.rollover_alias": "",
	"hidden": "bool", "query.default_field": "", "max_inner_result_window": "int>=1", "priority": "int>=0",
	"number_of_routing_shards": "int>=1", "mapping.depth.limit": "int>=1", "mapping.nested_fields.limit": "int>=0",
	"max_terms_count": "int>=1", "max_docvalue_fields_search": "int>=0", "blocks.read_only": "bool",
	"blocks.read_only_allow_delete": "bool", "blocks.write": "bool", "blocks.read": "bool", "blocks.metadata": "bool",
	"routing.allocation.include._tier_preference": "", "write.wait_for_active_shards": "",
}

var unsupportedSettings = map[string]bool{"sort.field": true, "sort.order": true, "analysis": true, "default_pipeline": true, "final_pipeline": true}

// normalizeSettings flattens {"index":{"number_of_shards":1}}, {"number_of_shards":"1"} and
// {"index.number_of_shards":1} into "index.number_of_shards" -> "1".
func normalizeSettings(in map[string]any) (map[string]string, *esError) {
	out := map[string]string{}
	var walk func(prefix string, v any) *esError
	walk = func(prefix string, v any) *esError {
		switch x := v.(type) {
		case map[string]any:
			for k, sv := range x {
				if err := walk(prefix+k+".", sv); err != nil {
					return err
				}
			}
			return nil
		case []any:
			parts := make([]string, len(x))
			for i, e := range x {
				parts[i] = fmt.Sprint(e)
			}
			out[strings.TrimSuffix(prefix, ".")] = strings.Join(parts, ",")
		case nil:
			out[strings.TrimSuffix(prefix, ".")] = ""
		default:
			out[strings.TrimSuffix(prefix, ".")] = fmt.Sprint(x)
		}
		return nil
	}
	if err := walk("", in); err != nil {
		return nil, err
	}
	norm := map[string]string{}
	for k, v := range out {
		if !strings.HasPrefix(k, "index.") {
			k = "index." + k
		}
		short := strings.TrimPrefix(k, "index.")
		for u := range unsupportedSettings {
			if short == u || strings.HasPrefix(short, u+".") {
				return nil, errUnsupported("the index setting [%s]", k)
			}
		}
		kind, ok := knownSettings[short]
		if !ok {
			return nil, errIllegalArgument("unknown setting [%s] please check that any required plugins are installed, or check the breaking changes documentation for removed settings", k)
		}
		switch {
		case v == "": // null: back to the default (update settings API)
		case strings.HasPrefix(kind, "int>="):
			min, _ := strconv.Atoi(kind[5:])
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, errIllegalArgument("Failed to parse value [%s] for setting [%s]", v, k)
			}
			if n < min {
				return nil, errIllegalArgument("Failed to parse value [%s] for setting [%s] must be >= %d", v, k, min)
			}
		case kind == "time":
			if _, err := parseTimeValue(v); err != nil {
				return nil, errIllegalArgument("failed to parse setting [%s] with value [%s] as a time value: unit is missing or unrecognized", k, v)
			}
		case kind == "bool":
			if v != "true" && v != "false" {
				return nil, errIllegalArgument("Failed to parse value [%s] as only [true] or [false] are allowed.", v)
			}
		}
		norm[k] = v
	}
	return norm, nil
}

func nestSettings(flat map[string]string) map[string]any {
	out := map[string]any{}
	keys := make([]string, 0, len(flat))
	for k := range flat {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts := strings.Split(k, ".")
		cur := out
		for _, p := range parts[:len(parts)-1] {
			next, ok := cur[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				cur[p] = next
			}
			cur = next
		}
		cur[parts[len(parts)-1]] = flat[k]
	}
	return out
}

// ---- templates ----

type indexTemplate struct {
	Name     string
	Patterns []string
	Priority int64
	Settings map[string]string
	Mappings map[string]any
	Aliases  map[string]aliasDef
	Raw      map[string]any
}

type legacyTemplate struct {
	Name     string
	Patterns []string
	Order    int64
	Settings map[string]string
	Mappings map[string]any
	Aliases  map[string]aliasDef
	Version  any
}

func decodeBody(body []byte, what string) (map[string]any, *esError) {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, nil
	}
	var m map[string]any
	if err := unmarshalUseNumber(body, &m); err != nil {
		return nil, newErr(http.StatusBadRequest, "x_content_parse_exception", "[1:1] %s: failed to parse: %v", what, err).
			cause(newErr(400, "json_parse_exception", "%v", err))
	}
	if m == nil {
		return nil, newErr(http.StatusBadRequest, "parse_exception", "request body is required")
	}
	return m, nil
}

func toPatterns(v any) ([]string, bool) {
	switch x := v.(type) {
	case string:
		return strings.Split(x, ","), true
	case []any:
		var out []string
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, len(out) > 0
	}
	return nil, false
}

func toInt(v any) (int64, bool) {
	switch x := v.(type) {
	case jsonNumber:
		n, err := x.Int64()
		return n, err == nil
	case float64:
		return int64(x), x == float64(int64(x))
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	}
	return 0, false
}

func (s *Server) handlePutIndexTemplate(rq *request) *esError {
	if e := rq.allow("create", "master_timeout", "cause"); e != nil {
		return e
	}
	name := rq.parts[1]
	body, e := decodeBody(rq.body, "index_template")
	if e != nil {
		return e
	}
	if body == nil {
		return errValidation("index template is missing")
	}
	t := &indexTemplate{Name: name, Raw: body}
	for k, v := range body {
		switch k {
		case "index_patterns":
			ps, ok := toPatterns(v)
			if !ok {
				return errParsing("[index_template] index_patterns must be a string or an array of strings")
			}
			t.Patterns = ps
		case "priority":
			n, ok := toInt(v)
			if !ok || n < 0 {
				return errValidation("priority must be a non-negative integer")
			}
			t.Priority = n
		case "template":
			tm, ok := v.(map[string]any)
			if !ok {
				return errParsing("[index_template] template must be an object")
			}
			for tk, tv := range tm {
				switch tk {
				case "settings":
					sm, _ := tv.(map[string]any)
					st, e := normalizeSettings(sm)
					if e != nil {
						return e
					}
					t.Settings = st
				case "mappings":
					mm, _ := tv.(map[string]any)
					if e := newMapping().merge(mm); e != nil {
						return e
					}
					t.Mappings = mm
				case "aliases":
					al, e := parseAliases(tv)
					if e != nil {
						return e
					}
					t.Aliases = al
				default:
					return errParsing("[template] unknown field [%s]", tk)
				}
			}
		case "composed_of":
			if arr, _ := v.([]any); len(arr) > 0 {
				return errUnsupported("component templates (composed_of)")
			}
		case "version", "_meta":
		case "data_stream":
			return errUnsupported("data streams")
		case "allow_auto_create":
		default:
			return errParsing("[index_template] unknown field [%s]", k)
		}
	}
	if len(t.Patterns) == 0 {
		return errValidation("index patterns are missing")
	}
	create, _ := rq.boolParam("create", false)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.templates[name]; exists && create {
		return errIllegalArgument("index template [%s] already exists", name)
	}
	for _, o := range s.templates {
		if o.Name == name || o.Priority != t.Priority {
			continue
		}
		for _, p := range t.Patterns {
			for _, op := range o.Patterns {
				if patternsOverlap(p, op) {
					return errIllegalArgument("index template [%s] has index patterns %s matching patterns from existing templates [%s] with patterns (%s => %s) that have the same priority [%d], multiple index templates may not match during index creation, please use a different priority",
						name, fmtList(t.Patterns), o.Name, o.Name, fmtList(o.Patterns), t.Priority)
				}
			}
		}
	}
	raw, _ := json.Marshal(body)
	if err := s.st.apply(&writeBatch{templates: map[string][]byte{"t:" + name: raw}}); err != nil {
		return storeErr(err)
	}
	s.templates[name] = t
	return s.ok(rq, 200, map[string]any{"acknowledged": true})
}

func fmtList(ss []string) string { return "[" + strings.Join(ss, ", ") + "]" }

// patternsOverlap approximates Elasticsearch's automaton intersection for
// simple patterns: two patterns overlap when one matches the other or they
// share a literal prefix up to the first '*'.
func patternsOverlap(a, b string) bool {
	if globMatch(a, b) || globMatch(b, a) {
		return true
	}
	pa, pb := a, b
	if i := strings.IndexByte(pa, '*'); i >= 0 {
		pa = pa[:i]
	}
	if i := strings.IndexByte(pb, '*'); i >= 0 {
		pb = pb[:i]
	}
	if !strings.Contains(a, "*") || !strings.Contains(b, "*") {
		return false
	}
	return strings.HasPrefix(pa, pb) || strings.HasPrefix(pb, pa)
}

func storeErr(err error) *esError {
	return newErr(http.StatusInternalServerError, "exception", "dev-es store: %v", err)
}

func (s *Server) templateNames(expr string, legacy bool) []string {
	var names []string
	if legacy {
		for n := range s.legacy {
			names = append(names, n)
		}
	} else {
		for n := range s.templates {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if expr == "" || expr == "*" {
		return names
	}
	var out []string
	for _, n := range names {
		for _, p := range strings.Split(expr, ",") {
			if globMatch(p, n) {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

// handleGetIndexTemplate renders composable templates as ES 7.17 does:
// the body as stored, except settings, which come back normalised
// ({"index":{"number_of_replicas":"0"}}, or flat with flat_settings=true).
func (s *Server) handleGetIndexTemplate(rq *request) *esError {
	if e := rq.allow("local", "master_timeout", "flat_settings"); e != nil {
		return e
	}
	flat, e := rq.boolParam("flat_settings", false)
	if e != nil {
		return e
	}
	expr := ""
	if len(rq.parts) == 2 {
		expr = rq.parts[1]
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := s.templateNames(expr, false)
	if len(names) == 0 && expr != "" && !strings.Contains(expr, "*") {
		return newErr(404, "resource_not_found_exception", "index template matching [%s] not found", expr)
	}
	list := []any{}
	for _, n := range names {
		list = append(list, map[string]any{"name": n, "index_template": s.templates[n].render(flat)})
	}
	return s.ok(rq, 200, map[string]any{"index_templates": list})
}

// render is a composable template as ES 7.17 returns it: the body as
// stored, settings normalised.
func (t *indexTemplate) render(flat bool) map[string]any {
	it := map[string]any{"composed_of": []any{}}
	for k, v := range t.Raw {
		it[k] = v
	}
	if tm, ok := t.Raw["template"].(map[string]any); ok {
		c := map[string]any{}
		for k, v := range tm {
			c[k] = v
		}
		if _, has := c["settings"]; has {
			c["settings"] = renderSettings(t.Settings, flat)
		}
		it["template"] = c
	}
	return it
}

func (s *Server) handleHeadIndexTemplate(rq *request) *esError {
	if e := rq.allow("local", "master_timeout", "flat_settings"); e != nil {
		return e
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.head(rq, len(s.templateNames(rq.parts[1], false)) > 0)
}

func (s *Server) handleDeleteIndexTemplate(rq *request) *esError {
	return s.deleteTemplates(rq, false)
}

func parseLegacyTemplate(name string, body map[string]any) (*legacyTemplate, *esError) {
	t := &legacyTemplate{Name: name}
	for k, v := range body {
		switch k {
		case "index_patterns":
			ps, ok := toPatterns(v)
			if !ok {
				return nil, errIllegalArgument("Malformed [index_patterns] value, should be a list of strings")
			}
			t.Patterns = ps
		case "order":
			n, ok := toInt(v)
			if !ok {
				return nil, errIllegalArgument("Malformed [order] value")
			}
			t.Order = n
		case "settings":
			sm, _ := v.(map[string]any)
			st, e := normalizeSettings(sm)
			if e != nil {
				return nil, e
			}
			t.Settings = st
		case "mappings":
			mm, _ := v.(map[string]any)
			if e := newMapping().merge(mm); e != nil {
				return nil, e
			}
			t.Mappings = mm
		case "aliases":
			al, e := parseAliases(v)
			if e != nil {
				return nil, e
			}
			t.Aliases = al
		case "version":
			t.Version = v
		default:
			return nil, errIllegalArgument("unknown key [%s] in the template ", k)
		}
	}
	if len(t.Patterns) == 0 {
		return nil, errValidation("index patterns are missing")
	}
	return t, nil
}

func (s *Server) handlePutLegacyTemplate(rq *request) *esError {
	if e := rq.allow("create", "order", "master_timeout", "include_type_name"); e != nil {
		return e
	}
	if e := refuseTypedBodies(rq); e != nil {
		return e
	}
	body, e := decodeBody(rq.body, "template")
	if e != nil {
		return e
	}
	if body == nil {
		return errValidation("template is missing")
	}
	if v := rq.param("order"); v != "" {
		// the URL's order applies unless the body has one
		if _, has := body["order"]; !has {
			n, err := strconv.Atoi(v)
			if err != nil {
				return errIllegalArgument("Failed to parse int parameter [order] with value [%s]", v)
			}
			body["order"] = jsonNumber(strconv.Itoa(n))
		}
	}
	t, e := parseLegacyTemplate(rq.parts[1], body)
	if e != nil {
		return e
	}
	create, _ := rq.boolParam("create", false)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.legacy[t.Name]; exists && create {
		return errIllegalArgument("index_template [%s] already exists", t.Name)
	}
	raw, _ := json.Marshal(body)
	if err := s.st.apply(&writeBatch{templates: map[string][]byte{"l:" + t.Name: raw}}); err != nil {
		return storeErr(err)
	}
	s.legacy[t.Name] = t
	return s.ok(rq, 200, map[string]any{"acknowledged": true})
}

func (t *legacyTemplate) render(flat bool) map[string]any {
	mappings := map[string]any{}
	if t.Mappings != nil {
		mm := newMapping()
		_ = mm.merge(t.Mappings)
		mappings = mm.render()
	}
	aliases := map[string]any{}
	for a, d := range t.Aliases {
		aliases[a] = d.render()
	}
	o := map[string]any{"order": t.Order, "index_patterns": t.Patterns, "settings": renderSettings(t.Settings, flat), "mappings": mappings, "aliases": aliases}
	if t.Version != nil {
		o["version"] = t.Version
	}
	return o
}

func (s *Server) handleGetLegacyTemplate(rq *request) *esError {
	if e := rq.allow("local", "master_timeout", "flat_settings", "include_type_name"); e != nil {
		return e
	}
	if e := refuseTypedBodies(rq); e != nil {
		return e
	}
	expr := ""
	if len(rq.parts) == 2 {
		expr = rq.parts[1]
	}
	flat, e := rq.boolParam("flat_settings", false)
	if e != nil {
		return e
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := s.templateNames(expr, true)
	out := map[string]any{}
	for _, n := range names {
		out[n] = s.legacy[n].render(flat)
	}
	if len(names) == 0 && expr != "" && !strings.Contains(expr, "*") {
		return s.ok(rq, 404, out)
	}
	return s.ok(rq, 200, out)
}

func (s *Server) handleHeadLegacyTemplate(rq *request) *esError {
	if e := rq.allow("local", "master_timeout", "flat_settings"); e != nil {
		return e
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.head(rq, len(s.templateNames(rq.parts[1], true)) > 0)
}

func (s *Server) handleDeleteLegacyTemplate(rq *request) *esError {
	return s.deleteTemplates(rq, true)
}

// deleteTemplates deletes the composable (or, with legacy, the legacy)
// templates rq.parts[1] names; the two kinds differ only in their store key
// prefix, their map and the type of their 404.
func (s *Server) deleteTemplates(rq *request, legacy bool) *esError {
	if e := rq.allow("master_timeout", "timeout"); e != nil {
		return e
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	names := s.templateNames(rq.parts[1], legacy)
	if len(names) == 0 {
		if legacy {
			return newErr(404, "index_template_missing_exception", "index_template [%s] missing", rq.parts[1])
		}
		return newErr(404, "resource_not_found_exception", "index_template [%s] missing", rq.parts[1])
	}
	prefix := "t:"
	if legacy {
		prefix = "l:"
	}
	wb := &writeBatch{templates: map[string][]byte{}}
	for _, n := range names {
		wb.templates[prefix+n] = nil
	}
	if err := s.st.apply(wb); err != nil {
		return storeErr(err)
	}
	for _, n := range names {
		if legacy {
			delete(s.legacy, n)
		} else {
			delete(s.templates, n)
		}
	}
	return s.ok(rq, 200, map[string]any{"acknowledged": true})
}

// ---- index lifecycle ----

// createIndexLocked creates an index from the matching templates and the
// request's own settings and mappings. Caller holds s.writeMu and s.mu.
func (s *Server) createIndexLocked(name string, reqSettings, reqMappings map[string]any, reqAliases map[string]aliasDef, wb *writeBatch) (*index, *esError) {
	if e := validateIndexName(name); e != nil {
		return nil, e
	}
	if len(s.aliasIndices(name)) > 0 {
		return nil, newErr(http.StatusBadRequest, "invalid_index_name_exception", "Invalid index name [%s], already exists as alias", name).
			with("index_uuid", "_na_").with("index", name)
	}
	aliases := map[string]aliasDef{}
	if ix, ok := s.indices[name]; ok {
		return nil, newErr(400, "resource_already_exists_exception", "index [%s/%s] already exists", name, ix.uuid).
			with("index_uuid", ix.uuid).with("index", name)
	}
	settings := map[string]string{}
	m := newMapping()
	var best *indexTemplate
	for _, t := range s.templates {
		for _, p := range t.Patterns {
			if globMatch(p, name) {
				if best == nil || t.Priority > best.Priority {
					best = t
				}
				break
			}
		}
	}
	if best != nil {
		for k, v := range best.Settings {
			settings[k] = v
		}
		for a, d := range best.Aliases {
			aliases[a] = d
		}
		if best.Mappings != nil {
			if e := m.merge(best.Mappings); e != nil {
				return nil, e
			}
		}
	} else {
		var ls []*legacyTemplate
		for _, t := range s.legacy {
			for _, p := range t.Patterns {
				if globMatch(p, name) {
					ls = append(ls, t)
					break
				}
			}
		}
		sort.Slice(ls, func(i, j int) bool {
			if ls[i].Order != ls[j].Order {
				return ls[i].Order < ls[j].Order
			}
			return ls[i].Name < ls[j].Name
		})
		for _, t := range ls {
			for k, v := range t.Settings {
				settings[k] = v
			}
			for a, d := range t.Aliases {
				aliases[a] = d
			}
			if t.Mappings != nil {
				if e := m.merge(t.Mappings); e != nil {
					return nil, e
				}
			}
		}
	}
	if reqSettings != nil {
		st, e := normalizeSettings(reqSettings)
		if e != nil {
			return nil, e
		}
		for k, v := range st {
			settings[k] = v
		}
	}
	if reqMappings != nil {
		if e := m.merge(reqMappings); e != nil {
			return nil, e
		}
	}
	if _, ok := settings["index.number_of_shards"]; !ok {
		settings["index.number_of_shards"] = "1"
	}
	if _, ok := settings["index.number_of_replicas"]; !ok {
		settings["index.number_of_replicas"] = "1"
	}
	for a, d := range reqAliases {
		aliases[a] = d
	}
	if e := s.checkAliases(name, aliases); e != nil {
		return nil, e
	}
	ix := newIndex(name, newUUID(), s.now().UnixMilli(), settings, m)
	ix.aliases = aliases
	if limit := ix.setting("mapping.total_fields.limit", 1000); m.Root.countFields() > limit {
		return nil, errIllegalArgument("Limit of total fields [%d] has been exceeded", limit)
	}
	s.indices[name] = ix
	wb.meta(ix)
	s.log.Info("dev-es index created", "index", name, "template", templateName(best))
	return ix, nil
}

func templateName(t *indexTemplate) string {
	if t == nil {
		return ""
	}
	return t.Name
}

func (s *Server) handleCreateIndex(rq *request) *esError {
	if e := rq.allow("wait_for_active_shards", "timeout", "master_timeout", "include_type_name"); e != nil {
		return e
	}
	if e := refuseTypedBodies(rq); e != nil {
		return e
	}
	name := rq.parts[0]
	if e := validateIndexName(name); e != nil {
		return e
	}
	body, e := decodeBody(rq.body, "create index")
	if e != nil {
		return e
	}
	var settings, mappings map[string]any
	var aliases map[string]aliasDef
	for k, v := range body {
		switch k {
		case "settings":
			settings, _ = v.(map[string]any)
		case "mappings":
			mappings, _ = v.(map[string]any)
		case "aliases":
			if aliases, e = parseAliases(v); e != nil {
				return e
			}
		default:
			// 7.x refuses top-level keys other than settings, mappings and aliases
			return newErr(http.StatusBadRequest, "parse_exception", "unknown key [%s] for create index", k)
		}
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	wb := &writeBatch{}
	if _, e := s.createIndexLocked(name, settings, mappings, aliases, wb); e != nil {
		return e
	}
	if err := s.st.apply(wb); err != nil {
		delete(s.indices, name)
		return storeErr(err)
	}
	return s.ok(rq, 200, map[string]any{"acknowledged": true, "shards_acknowledged": true, "index": name})
}

func (s *Server) handleDeleteIndex(rq *request) *esError {
	if e := rq.allow("timeout", "master_timeout", "ignore_unavailable", "allow_no_indices", "expand_wildcards"); e != nil {
		return e
	}
	// delete index expands wildcards to open and closed indices
	o := resolveOpts{allowNoIndices: true, noAliases: true, closed: true, expand: map[string]bool{"open": true, "closed": true}}
	if e := o.fromParams(rq); e != nil {
		return e
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	names, e := s.resolveIndices(rq.parts[0], o)
	if e != nil {
		return e
	}
	wb := &writeBatch{dropIndex: names}
	if err := s.st.apply(wb); err != nil {
		return storeErr(err)
	}
	for _, n := range names {
		delete(s.indices, n)
		s.log.Info("dev-es index deleted", "index", n)
	}
	return s.ok(rq, 200, map[string]any{"acknowledged": true})
}

func (s *Server) handleHeadIndex(rq *request) *esError {
	if e := rq.allow("include_type_name", "local", "ignore_unavailable", "allow_no_indices", "expand_wildcards", "flat_settings", "include_defaults"); e != nil {
		return e
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	names, e := s.resolveIndices(rq.parts[0], resolveOpts{closed: true, expand: map[string]bool{"open": true, "closed": true}})
	return s.head(rq, e == nil && len(names) > 0)
}

// settingsJSON renders an index's settings nested ({"index":{...}}) or,
// with flat_settings=true, flat ({"index.number_of_shards":"1"}).
func (ix *index) settingsJSON(flatOut bool) map[string]any {
	flat := map[string]string{}
	for k, v := range ix.settings {
		flat[k] = v
	}
	flat["index.creation_date"] = strconv.FormatInt(ix.created, 10)
	flat["index.uuid"] = ix.uuid
	flat["index.provided_name"] = ix.name
	flat["index.version.created"] = "7170099"
	return renderSettings(flat, flatOut)
}

func renderSettings(settings map[string]string, flat bool) map[string]any {
	if !flat {
		return nestSettings(settings)
	}
	out := make(map[string]any, len(settings))
	for k, v := range settings {
		out[k] = v
	}
	return out
}

func (s *Server) handleGetIndex(rq *request) *esError {
	if e := rq.allow("include_type_name", "local", "ignore_unavailable", "allow_no_indices", "expand_wildcards", "flat_settings", "include_defaults", "master_timeout"); e != nil {
		return e
	}
	v, e := s.metadataView(rq)
	if e != nil {
		return e
	}
	list, e := s.indexList(rq, rq.parts[0], resolveOpts{closed: true})
	if e != nil {
		return e
	}
	out := map[string]any{}
	for _, ix := range list {
		s.mu.RLock()
		aliases := map[string]any{}
		for a, d := range ix.aliases {
			aliases[a] = d.render()
		}
		s.mu.RUnlock()
		ix.mu.RLock()
		out[ix.name] = map[string]any{"aliases": aliases, "mappings": v.mappings(ix), "settings": ix.settingsJSON(v.flat)}
		ix.mu.RUnlock()
	}
	return s.ok(rq, 200, out)
}

// metadataView holds the rendering options of the metadata read APIs
// (flat_settings, include_type_name); include_defaults is refused.
type metadataView struct{ flat, typed bool }

func (s *Server) metadataView(rq *request) (metadataView, *esError) {
	var v metadataView
	var e *esError
	if v.flat, e = rq.boolParam("flat_settings", false); e != nil {
		return v, e
	}
	if v.typed, e = rq.boolParam("include_type_name", false); e != nil {
		return v, e
	}
	if d, e := rq.boolParam("include_defaults", false); e != nil {
		return v, e
	} else if d {
		return v, errUnsupported("include_defaults")
	}
	return v, nil
}

// mappings renders an index's mappings, under "_doc" with include_type_name=true.
func (v metadataView) mappings(ix *index) map[string]any {
	m := ix.m.render()
	if v.typed && len(m) > 0 {
		return map[string]any{"_doc": m}
	}
	return m
}

func (s *Server) handleGetSettings(rq *request) *esError {
	if e := rq.allow("local", "ignore_unavailable", "allow_no_indices", "expand_wildcards", "flat_settings", "include_defaults", "master_timeout"); e != nil {
		return e
	}
	v, e := s.metadataView(rq)
	if e != nil {
		return e
	}
	list, e := s.indexList(rq, rq.parts[0], resolveOpts{allowNoIndices: true, closed: true})
	if e != nil {
		return e
	}
	out := map[string]any{}
	for _, ix := range list {
		out[ix.name] = map[string]any{"settings": ix.settingsJSON(v.flat)}
	}
	return s.ok(rq, 200, out)
}

// handleGetMapping serves GET [/{index}]/_mapping[/{type}]. A type of
// "_all" or "*" is no type at all (ES 7 reads it so, which is what olivere's
// GetMappingService sends); any other type needs include_type_name.
func (s *Server) handleGetMapping(rq *request) *esError {
	if e := rq.allow("include_type_name", "local", "ignore_unavailable", "allow_no_indices", "expand_wildcards", "master_timeout"); e != nil {
		return e
	}
	v, e := s.metadataView(rq)
	if e != nil {
		return e
	}
	if len(rq.parts) == 3 && rq.parts[2] != "_all" && rq.parts[2] != "*" {
		if !v.typed {
			return errIllegalArgument("Types cannot be provided in get mapping requests, unless include_type_name is set to true.")
		}
		return errUnsupported("typed get mapping requests ([%s])", rq.parts[2])
	}
	expr := ""
	if rq.parts[0] != "_mapping" {
		expr = rq.parts[0]
	}
	list, e := s.indexList(rq, expr, resolveOpts{allowNoIndices: true, closed: true})
	if e != nil {
		return e
	}
	out := map[string]any{}
	for _, ix := range list {
		ix.mu.RLock()
		out[ix.name] = map[string]any{"mappings": v.mappings(ix)}
		ix.mu.RUnlock()
	}
	return s.ok(rq, 200, out)
}

func (s *Server) handlePutMapping(rq *request) *esError {
	if e := rq.allow("timeout", "master_timeout", "ignore_unavailable", "allow_no_indices", "expand_wildcards", "write_index_only", "include_type_name"); e != nil {
		return e
	}
	if e := refuseTypedBodies(rq); e != nil {
		return e
	}
	body, e := decodeBody(rq.body, "put mapping")
	if e != nil {
		return e
	}
	if body == nil {
		return errValidation("mapping source is missing")
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	o := resolveOpts{closed: true}
	if e := o.fromParams(rq); e != nil {
		return e
	}
	names, e := s.resolveIndices(rq.parts[0], o)
	if e != nil {
		return e
	}
	wb := &writeBatch{}
	updated := map[string]*mapping{}
	for _, n := range names {
		ix := s.indices[n]
		ix.mu.RLock()
		nm := ix.m.clone()
		ix.mu.RUnlock()
		if e := nm.merge(body); e != nil {
			return e
		}
		if limit := ix.setting("mapping.total_fields.limit", 1000); nm.Root.countFields() > limit {
			return errIllegalArgument("Limit of total fields [%d] has been exceeded", limit)
		}
		updated[n] = nm
	}
	for n, nm := range updated {
		ix := s.indices[n]
		ix.mu.Lock()
		ix.m = nm
		ix.mu.Unlock()
		wb.meta(ix)
	}
	if err := s.st.apply(wb); err != nil {
		return storeErr(err)
	}
	return s.ok(rq, 200, map[string]any{"acknowledged": true})
}

// staticSettings cannot change on an open index.
var staticSettings = map[string]bool{"index.number_of_shards": true, "index.codec": true, "index.number_of_routing_shards": true,
	"index.hidden": false}

// handlePutSettings updates dynamic index settings ("Update index settings
// API"); null resets a setting to its default.
func (s *Server) handlePutSettings(rq *request) *esError {
	if e := rq.allow("timeout", "master_timeout", "ignore_unavailable", "allow_no_indices", "expand_wildcards", "preserve_existing", "flat_settings"); e != nil {
		return e
	}
	body, e := decodeBody(rq.body, "update settings")
	if e != nil {
		return e
	}
	if body == nil {
		return errValidation("no settings to update")
	}
	if inner, ok := body["settings"].(map[string]any); ok && len(body) == 1 {
		body = inner
	}
	upd, e := normalizeSettings(body)
	if e != nil {
		return e
	}
	preserve, _ := rq.boolParam("preserve_existing", false)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	o := resolveOpts{closed: true}
	if e := o.fromParams(rq); e != nil {
		return e
	}
	names, e := s.resolveIndices(rq.parts[0], o)
	if e != nil {
		return e
	}
	var static []string
	for k := range upd {
		if staticSettings[k] {
			static = append(static, k)
		}
	}
	for _, k := range []string{"index.number_of_shards", "index.number_of_routing_shards"} {
		if _, ok := upd[k]; ok {
			return errIllegalArgument("final index setting [%s], not updateable", k)
		}
	}
	var open []string
	for _, n := range names {
		if !s.indices[n].closed.Load() {
			open = append(open, n)
		}
	}
	if len(static) > 0 && len(open) > 0 {
		// static settings change only on closed indices
		sort.Strings(static)
		return errIllegalArgument("Can't update non dynamic settings [[%s]] for open indices [[%s]]", strings.Join(static, ", "), strings.Join(open, ", "))
	}
	wb := &writeBatch{}
	for _, n := range names {
		ix := s.indices[n]
		ix.mu.Lock()
		for k, v := range upd {
			if _, exists := ix.settings[k]; exists && preserve {
				continue
			}
			if v == "" {
				delete(ix.settings, k)
			} else {
				ix.settings[k] = v
			}
		}
		ix.refreshEvery = time.Second
		if ri, ok := ix.settings["index.refresh_interval"]; ok {
			if d, err := parseTimeValue(ri); err == nil {
				ix.refreshEvery = d
			}
		}
		ix.mu.Unlock()
		wb.meta(ix)
	}
	if err := s.st.apply(wb); err != nil {
		return storeErr(err)
	}
	return s.ok(rq, 200, map[string]any{"acknowledged": true})
}

// writeBlock returns the exception for a write to an index with a block
// ("Index blocks"), or nil.
func (ix *index) writeBlock(isDelete bool) *esError {
	switch {
	case ix.settings["index.blocks.read_only"] == "true":
		return newErr(http.StatusForbidden, "cluster_block_exception", "index [%s] blocked by: [FORBIDDEN/5/index read-only (api)];", ix.name)
	case ix.settings["index.blocks.write"] == "true":
		return newErr(http.StatusForbidden, "cluster_block_exception", "index [%s] blocked by: [FORBIDDEN/8/index write (api)];", ix.name)
	case ix.settings["index.blocks.read_only_allow_delete"] == "true" && !isDelete:
		return newErr(http.StatusTooManyRequests, "cluster_block_exception", "index [%s] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block];", ix.name)
	}
	return nil
}
