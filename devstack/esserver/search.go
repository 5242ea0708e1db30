package esserver

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ---- _source filtering ----

type sourceFilter struct {
	disabled bool
	includes []string
	excludes []string
}

func parseSourceFilter(v any) (*sourceFilter, *esError) {
	sf := &sourceFilter{}
	switch x := v.(type) {
	case bool:
		sf.disabled = !x
	case string:
		sf.includes = []string{x}
	case []any:
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, errParsing("[_source] array elements must be strings")
			}
			sf.includes = append(sf.includes, s)
		}
	case map[string]any:
		for k, val := range x {
			var list []string
			switch y := val.(type) {
			case string:
				list = []string{y}
			case []any:
				for _, e := range y {
					s, _ := e.(string)
					list = append(list, s)
				}
			default:
				return nil, errParsing("[_source] %s must be a string or an array", k)
			}
			switch k {
			case "includes", "include":
				sf.includes = list
			case "excludes", "exclude":
				sf.excludes = list
			default:
				return nil, errParsing("Unknown key for a START_ARRAY in [%s].", k)
			}
		}
	default:
		return nil, errParsing("[_source] must be a boolean, string, array or object")
	}
	return sf, nil
}

// apply returns the filtered source (nil when disabled).
func (sf *sourceFilter) apply(src []byte) ([]byte, *esError) {
	if sf == nil || (len(sf.includes) == 0 && len(sf.excludes) == 0) {
		if sf != nil && sf.disabled {
			return nil, nil
		}
		return src, nil
	}
	if sf.disabled {
		return nil, nil
	}
	var doc map[string]any
	if err := unmarshalUseNumber(src, &doc); err != nil {
		return src, nil
	}
	out := sf.filterObj(doc, "")
	b, _ := json.Marshal(out)
	return b, nil
}

func (sf *sourceFilter) filterObj(obj map[string]any, prefix string) map[string]any {
	out := map[string]any{}
	for k, v := range obj {
		path := prefix + k
		if matchAny(sf.excludes, path) {
			continue
		}
		included := len(sf.includes) == 0 || matchAny(sf.includes, path)
		if sub, ok := v.(map[string]any); ok {
			if included {
				if len(sf.excludes) > 0 {
					out[k] = (&sourceFilter{excludes: sf.excludes}).filterObj(sub, path+".")
				} else {
					out[k] = sub
				}
				continue
			}
			if sf.couldMatchBelow(path) {
				if r := sf.filterObj(sub, path+"."); len(r) > 0 {
					out[k] = r
				}
			}
			continue
		}
		if included {
			out[k] = v
		}
	}
	return out
}

func (sf *sourceFilter) couldMatchBelow(path string) bool {
	for _, p := range sf.includes {
		if strings.HasPrefix(p, path+".") || strings.Contains(p, "*") {
			return true
		}
	}
	return false
}

func matchAny(patterns []string, path string) bool {
	for _, p := range patterns {
		if globMatch(p, path) {
			return true
		}
	}
	return false
}

// ---- sort ----

type sortSpec struct {
	field        string // "_score", "_doc" or a field
	desc         bool
	missingFirst bool
	unmappedType string
	mode         string // "min", "max" or "" (min ascending, max descending)
}

func parseSort(v any) ([]sortSpec, *esError) {
	var list []any
	switch x := v.(type) {
	case []any:
		list = x
	default:
		list = []any{x}
	}
	var out []sortSpec
	for _, e := range list {
		switch x := e.(type) {
		case string:
			sp := sortSpec{field: x}
			if x == "_score" {
				sp.desc = true
			}
			out = append(out, sp)
		case map[string]any:
			if len(x) != 1 {
				return nil, errParsing("[sort] each sort element must have exactly one field")
			}
			for f, o := range x {
				sp := sortSpec{field: f, desc: f == "_score"}
				switch y := o.(type) {
				case string:
					switch y {
					case "asc":
						sp.desc = false
					case "desc":
						sp.desc = true
					default:
						return nil, errIllegalArgument("Unknown SortOrder [%s]", y)
					}
				case map[string]any:
					for k, val := range y {
						s, _ := val.(string)
						switch k {
						case "order":
							switch s {
							case "asc":
								sp.desc = false
							case "desc":
								sp.desc = true
							default:
								return nil, errIllegalArgument("Unknown SortOrder [%s]", s)
							}
						case "missing":
							switch s {
							case "_last":
							case "_first":
								sp.missingFirst = true
							default:
								return nil, errUnsupported("sort missing values other than _first/_last")
							}
						case "unmapped_type":
							sp.unmappedType = s
						case "mode":
							if s != "min" && s != "max" {
								return nil, errUnsupported("sort mode [%s]", s)
							}
							sp.mode = s
						case "format", "numeric_type", "nested", "script":
							return nil, errUnsupported("[%s] in sort", k)
						default:
							return nil, errParsing("[field_sort] unknown field [%s]", k)
						}
					}
				default:
					return nil, errParsing("[sort] malformed sort element")
				}
				out = append(out, sp)
			}
		default:
			return nil, errParsing("[sort] malformed sort element")
		}
	}
	return out, nil
}

func parseSortParam(s string) []sortSpec {
	var out []sortSpec
	for _, p := range strings.Split(s, ",") {
		sp := sortSpec{field: p}
		if i := strings.LastIndexByte(p, ':'); i >= 0 {
			sp.field = p[:i]
			sp.desc = p[i+1:] == "desc"
		}
		out = append(out, sp)
	}
	return out
}

type sortVal struct {
	present bool
	isStr   bool
	isInt   bool
	i       int64
	f       float64
	s       string
}

func (v sortVal) json() any {
	if !v.present {
		return nil
	}
	if v.isStr {
		return v.s
	}
	if v.isInt {
		return v.i
	}
	return v.f
}

func cmpSortVal(a, b sortVal) int {
	switch {
	case a.isStr && b.isStr:
		return strings.Compare(a.s, b.s)
	case a.isInt && b.isInt:
		switch {
		case a.i < b.i:
			return -1
		case a.i > b.i:
			return 1
		}
		return 0
	}
	af, bf := a.f, b.f
	if a.isInt {
		af = float64(a.i)
	}
	if b.isInt {
		bf = float64(b.i)
	}
	switch {
	case af < bf:
		return -1
	case af > bf:
		return 1
	}
	return 0
}

// sortValue reads a document's sort value: min value ascending, max descending.
func sortValue(ix *index, ord int32, sp sortSpec) sortVal {
	c := ix.cols[sp.field]
	if c == nil || !c.has.has(ord) {
		return sortVal{}
	}
	v := sortVal{present: true}
	first := true
	wantMax := sp.desc
	switch sp.mode {
	case "min":
		wantMax = false
	case "max":
		wantMax = true
	}
	better := func(cmp int) bool { return first || (wantMax && cmp > 0) || (!wantMax && cmp < 0) }
	switch c.kind {
	case colInt:
		v.isInt = true
		c.eachInt(ord, func(x int64) {
			if better(cmpSortVal(sortVal{isInt: true, i: x}, v)) {
				v.i = x
			}
			first = false
		})
	case colFloat:
		c.eachFloat(ord, func(x float64) {
			if better(cmpSortVal(sortVal{f: x}, v)) {
				v.f = x
			}
			first = false
		})
	case colStr:
		v.isStr = true
		c.eachTerm(ord, func(t uint32) {
			if better(strings.Compare(c.dict[t], v.s)) {
				v.s = c.dict[t]
			}
			first = false
		})
	}
	return v
}

// ---- search ----

type searchReq struct {
	q              query
	postFilter     query
	size, from     int
	sort           []sortSpec
	source         *sourceFilter
	trackTotal     int // -1: exact, 0: none
	aggs           []*aggSpec
	version        bool
	seqNo          bool
	trackScores    bool
	restTotalAsInt bool
	searchAfter    []any
	scroll         time.Duration // keep-alive of a scroll search (0: none)
	// stored_fields (nil: not given), "_none_", "_source" in the list;
	// docvalue_fields and the fields option
	storedFields   []string
	storedNone     bool
	storedSource   bool
	docvalueFields []fieldReq
	fields         []fieldReq
}

var unsupportedSearchKeys = map[string]bool{
	"highlight": true, "explain": true, "min_score": true, "terminate_after": true,
	"collapse": true, "suggest": true, "script_fields": true, "runtime_mappings": true, "pit": true,
	"indices_boost": true, "rescore": true,
	"slice": true, "stats": true, "profile": true, "ext": true,
}

func parseSearchBody(body map[string]any, count bool) (*searchReq, *esError) {
	sr := &searchReq{q: matchAllQ{boost: 1}, size: 10, trackTotal: 10000}
	for k, v := range body {
		if count && k != "query" {
			return nil, errParsing("request does not support [%s]", k)
		}
		var e *esError
		switch k {
		case "query":
			sr.q, e = parseQuery(v)
		case "post_filter":
			sr.postFilter, e = parseQuery(v)
		case "size", "from":
			n, ok := toInt(v)
			if !ok {
				return nil, errParsing("[%s] must be an integer", k)
			}
			if n < 0 {
				if k == "size" {
					return nil, errIllegalArgument("[size] parameter cannot be negative, found [%d]", n)
				}
				return nil, errIllegalArgument("[from] parameter cannot be negative, found [%d]", n)
			}
			if k == "size" {
				sr.size = int(n)
			} else {
				sr.from = int(n)
			}
		case "sort":
			sr.sort, e = parseSort(v)
		case "_source":
			sr.source, e = parseSourceFilter(v)
		case "track_total_hits":
			switch x := v.(type) {
			case bool:
				if x {
					sr.trackTotal = -1
				} else {
					sr.trackTotal = 0
				}
			default:
				n, ok := toInt(v)
				if !ok || n < -1 {
					return nil, errIllegalArgument("[track_total_hits] parameter must be positive or equals to -1, got %v", v)
				}
				sr.trackTotal = int(n)
				if n == -1 {
					sr.trackTotal = -1
				}
			}
		case "aggs", "aggregations":
			obj, ok := v.(map[string]any)
			if !ok {
				return nil, errParsing("[aggs] must be an object")
			}
			sr.aggs, e = parseAggs(obj)
		case "version", "seq_no_primary_term", "track_scores":
			b, ok := v.(bool)
			if !ok {
				return nil, errParsing("[%s] must be a boolean, got [%v]", k, v)
			}
			switch k {
			case "version":
				sr.version = b
			case "seq_no_primary_term":
				sr.seqNo = b
			default:
				sr.trackScores = b
			}
		case "search_after":
			arr, ok := v.([]any)
			if !ok || len(arr) == 0 {
				return nil, errParsing("[search_after] must be a non-empty array")
			}
			sr.searchAfter = arr
		case "stored_fields":
			e = sr.setStoredFields(v)
		case "docvalue_fields":
			sr.docvalueFields, e = parseFieldReqs(k, v)
		case "fields":
			sr.fields, e = parseFieldReqs(k, v)
		case "timeout":
		default:
			if unsupportedSearchKeys[k] {
				return nil, errUnsupported("[%s] in search requests", k)
			}
			tok := "START_OBJECT"
			switch v.(type) {
			case []any:
				tok = "START_ARRAY"
			case string:
				tok = "VALUE_STRING"
			case jsonNumber:
				tok = "VALUE_NUMBER"
			case bool:
				tok = "VALUE_BOOLEAN"
			}
			return nil, errParsing("Unknown key for a %s in [%s].", tok, k)
		}
		if e != nil {
			return nil, e
		}
	}
	return sr, nil
}

var searchParams = []string{"size", "from", "sort", "_source", "_source_includes", "_source_excludes", "track_total_hits",
	"rest_total_hits_as_int", "ignore_unavailable", "allow_no_indices", "expand_wildcards", "preference", "routing",
	"timeout", "request_cache", "search_type", "batched_reduce_size", "ccs_minimize_roundtrips", "track_scores",
	"version", "seq_no_primary_term", "pre_filter_shard_size", "max_concurrent_shard_requests",
	"allow_partial_search_results", "ignore_throttled", "typed_keys", "q", "df", "default_operator", "lenient", "analyzer", "analyze_wildcard",
	"stored_fields", "docvalue_fields"}

func (s *Server) parseSearchRequest(rq *request, count bool) (*searchReq, *esError) {
	body, e := decodeBody(rq.body, "search")
	if e != nil {
		return nil, e
	}
	var scroll time.Duration
	if v := rq.param("scroll"); v != "" {
		d, e := parseTimeValue(v)
		if e != nil || d <= 0 {
			return nil, errIllegalArgument("failed to parse setting [scroll] with value [%s] as a time value", v)
		}
		scroll = d
	}
	if tk, _ := rq.boolParam("typed_keys", false); tk {
		return nil, errUnsupported("typed_keys")
	}
	sr, e := parseSearchBody(body, count)
	if e != nil {
		return nil, e
	}
	// URI search ("Search API > Query parameters > q"): a Lucene query
	// string that replaces the body's query
	if q, ok := rq.q["q"]; ok {
		if v := rq.param("analyzer"); v != "" && v != "standard" {
			return nil, errUnsupported("the analyzer [%s] (only standard)", v)
		}
		if _, e := rq.boolParam("analyze_wildcard", false); e != nil {
			return nil, e
		}
		lenient, e := rq.boolParam("lenient", false)
		if e != nil {
			return nil, e
		}
		var fields []string
		if df := rq.param("df"); df != "" {
			fields = []string{df}
		}
		if sr.q, e = parseQueryString(q[0], fields, rq.param("default_operator")); e != nil {
			return nil, e
		}
		if lenient {
			sr.q = lenientQ{sr.q}
		}
	}
	if v := rq.param("size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, errIllegalArgument("Failed to parse int parameter [size] with value [%s]", v)
		}
		sr.size = n
	}
	if v := rq.param("from"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, errIllegalArgument("Failed to parse int parameter [from] with value [%s]", v)
		}
		sr.from = n
	}
	if sr.size < 0 {
		return nil, errIllegalArgument("[size] parameter cannot be negative, found [%d]", sr.size)
	}
	if sr.from < 0 {
		return nil, errIllegalArgument("[from] parameter cannot be negative, found [%d]", sr.from)
	}
	if v := rq.param("sort"); v != "" {
		sr.sort = parseSortParam(v)
	}
	if _, ok := rq.q["_source"]; ok || rq.param("_source_includes") != "" || rq.param("_source_excludes") != "" {
		if sr.source, e = sourceFilterFromParams(rq); e != nil {
			return nil, e
		}
	}
	if v := rq.param("track_total_hits"); v != "" {
		switch v {
		case "true":
			sr.trackTotal = -1
		case "false":
			sr.trackTotal = 0
		default:
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, errIllegalArgument("Failed to parse int parameter [track_total_hits] with value [%s]", v)
			}
			sr.trackTotal = n
		}
	}
	sr.restTotalAsInt, _ = rq.boolParam("rest_total_hits_as_int", false)
	if sr.restTotalAsInt {
		sr.trackTotal = -1
	}
	if v, _ := rq.boolParam("version", false); v {
		sr.version = true
	}
	if scroll > 0 {
		if sr.from > 0 {
			return nil, errValidation("using [from] is not allowed in a scroll context")
		}
		if sr.trackTotal == 0 {
			return nil, errValidation("disabling [track_total_hits] is not allowed in a scroll context")
		}
		if sr.searchAfter != nil {
			return nil, errValidation("[search_after] cannot be used in a scroll context")
		}
		if sr.size == 0 {
			return nil, errValidation("[size] cannot be [0] in a scroll context")
		}
		sr.trackTotal = -1
		sr.scroll = scroll
	}
	if sr.searchAfter != nil {
		if len(sr.searchAfter) != len(sr.sort) {
			return nil, errIllegalArgument("search_after has %d value(s) but sort has %d.", len(sr.searchAfter), len(sr.sort))
		}
		if sr.from != 0 {
			return nil, errIllegalArgument("`from` parameter must be set to 0 when `search_after` is used.")
		}
	}
	if v, _ := rq.boolParam("seq_no_primary_term", false); v {
		sr.seqNo = true
	}
	if v, ok := rq.q["stored_fields"]; ok {
		if e := sr.setStoredFields(v[0]); e != nil {
			return nil, e
		}
	}
	if v, ok := rq.q["docvalue_fields"]; ok {
		for _, f := range strings.Split(v[0], ",") {
			sr.docvalueFields = append(sr.docvalueFields, fieldReq{pattern: f})
		}
	}
	if sr.storedNone {
		switch {
		case sr.source != nil && !sr.source.disabled:
			return nil, errIllegalArgument("[stored_fields] cannot be disabled if [_source] is requested")
		case sr.fields != nil:
			return nil, errIllegalArgument("[stored_fields] cannot be disabled when using the [fields] option")
		case sr.version:
			return nil, errIllegalArgument("[stored_fields] cannot be disabled if [version] is requested")
		}
	}
	// stored_fields without _source (or "_source" in the list) fetch no _source
	if sr.storedFields != nil && sr.source == nil && !sr.storedSource {
		sr.source = &sourceFilter{disabled: true}
	}
	return sr, nil
}

// searchTargets resolves the index expression of a search-like request and
// returns the indices read-locked; the caller calls unlock.
func (s *Server) searchTargets(rq *request, prefix string) ([]*index, func(), *esError) {
	expr := ""
	if rq.parts[0] != prefix {
		expr = rq.parts[0]
	}
	list, e := s.indexList(rq, expr, resolveOpts{allowNoIndices: true})
	if e != nil {
		return nil, nil, e
	}
	for _, ix := range list {
		ix.mu.RLock()
	}
	return list, func() {
		for _, ix := range list {
			ix.mu.RUnlock()
		}
	}, nil
}

type hitRef struct {
	ix   *index
	ord  int32
	vals []sortVal
}

// run evaluates the query on every index; matches are per index bitsets.
func (s *Server) runQuery(list []*index, q query) ([]bitset, *esError) {
	now := s.now()
	out := make([]bitset, len(list))
	for i, ix := range list {
		ec := &evalCtx{ix: ix, live: ix.liveSet(), now: now}
		b, e := q.eval(ec)
		if e != nil {
			if e.Type == "query_shard_exception" {
				e.with("index_uuid", ix.uuid).with("index", ix.name)
				return nil, shardFailure(ix.name, e)
			}
			return nil, e
		}
		out[i] = b
	}
	return out, nil
}

func queryScore(q query) float64 {
	switch x := q.(type) {
	case matchAllQ:
		return x.boost
	case constantScoreQ:
		return x.boost
	case boolQ:
		if len(x.must) == 0 && len(x.should) == 0 {
			return 0
		}
	}
	return 1
}

func shardsJSON(n int) map[string]any {
	return map[string]any{"total": n, "successful": n, "skipped": 0, "failed": 0}
}

func (s *Server) handleSearch(rq *request) *esError {
	if e := rq.allow(append(searchParams, "scroll")...); e != nil {
		return e
	}
	start := time.Now()
	sr, e := s.parseSearchRequest(rq, false)
	if e != nil {
		return e
	}
	list, unlock, e := s.searchTargets(rq, "_search")
	if e != nil {
		return e
	}
	defer unlock()
	for _, ix := range list {
		if limit := ix.setting("max_result_window", 10000); sr.from+sr.size > limit {
			return shardFailure(ix.name, errIllegalArgument("Result window is too large, from + size must be less than or equal to: [%d] but was [%d]. See the scroll api for a more efficient way to request large data sets. This limit can be set by changing the [index.max_result_window] index level setting.", limit, sr.from+sr.size))
		}
	}
	for _, ix := range list {
		if len(sr.docvalueFields) == 0 {
			continue
		}
		paths := map[string]*fieldMapping{}
		ix.m.leafPaths("", ix.m.Root, paths)
		for _, fr := range sr.docvalueFields {
			for p, f := range paths {
				if f.Type == "text" && globMatch(fr.pattern, p) {
					return shardFailure(ix.name, errIllegalArgument("Can't load fielddata on [%s] because fielddata is unsupported on fields of type [text]. Use doc values instead.", p))
				}
			}
		}
	}
	matches, e := s.runQuery(list, sr.q)
	if e != nil {
		return e
	}
	aggsOut := map[string]any{}
	setAggCtx(sr.aggs, &aggCtx{indices: list, score: queryScore(sr.q)})
	if len(sr.aggs) > 0 {
		var docs []docRef
		for i, ix := range list {
			matches[i].forEach(func(o int32) { docs = append(docs, docRef{ix: ix, ord: o}) })
		}
		for _, a := range sr.aggs {
			r, e := a.compute(docs, s.now())
			if e != nil {
				if e.Type == "illegal_argument_exception" && len(list) > 0 {
					return shardFailure(list[0].name, e)
				}
				return e
			}
			aggsOut[a.name] = r
		}
	}
	if sr.postFilter != nil {
		pf, e := s.runQuery(list, sr.postFilter)
		if e != nil {
			return e
		}
		for i := range matches {
			matches[i].and(pf[i])
		}
	}
	total := 0
	for _, m := range matches {
		total += m.count()
	}
	// validate sort fields
	for i, sp := range sr.sort {
		if sp.field == "_score" || sp.field == "_doc" {
			continue
		}
		mapped := false
		for _, ix := range list {
			if f := ix.m.lookup(sp.field); f != nil {
				if f.Type == "text" {
					return shardFailure(ix.name, errIllegalArgument("Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. Alternatively, set fielddata=true on [%s] in order to load field data by uninverting the inverted index. Note that this can use significant memory.", sp.field))
				}
				if f.Type == "object" {
					return shardFailure(ix.name, errIllegalArgument("sorting on object field [%s] is not supported", sp.field))
				}
				mapped = true
			}
		}
		if !mapped && sp.unmappedType == "" && len(list) > 0 {
			return shardFailure(list[0].name, qShardErr("No mapping found for [%s] in order to sort on", sp.field).with("index_uuid", list[0].uuid).with("index", list[0].name))
		}
		sr.sort[i] = sp
	}
	score := queryScore(sr.q)
	var hits []hitRef
	want := sr.from + sr.size
	var page []hitOut
	scrollID := ""
	if want > 0 {
		var docs []docRef
		for i, ix := range list {
			matches[i].forEach(func(o int32) { docs = append(docs, docRef{ix: ix, ord: o}) })
		}
		hits = sortedHits(docs, sr.sort, score)
		if sr.searchAfter != nil {
			after, e := searchAfterValues(list, sr.sort, sr.searchAfter)
			if e != nil {
				return e
			}
			i := sort.Search(len(hits), func(i int) bool { return cmpHits(hits[i].vals, after, sr.sort) > 0 })
			hits = hits[i:]
		}
		if sr.scroll > 0 {
			all := make([]hitOut, len(hits))
			for i, h := range hits {
				all[i] = toHitOut(h, sr)
			}
			n := min(sr.size, len(all))
			page = all[:n]
			var e *esError
			if scrollID, e = s.newScroll(&scrollCtx{hits: all, pos: n, sr: sr, total: total, shards: len(list), score: queryScore(sr.q)}); e != nil {
				return e
			}
		} else {
			if sr.from >= len(hits) {
				hits = nil
			} else {
				hits = hits[sr.from:]
				if len(hits) > sr.size {
					hits = hits[:sr.size]
				}
			}
			page = make([]hitOut, len(hits))
			for i, h := range hits {
				page[i] = toHitOut(h, sr)
			}
		}
	}
	var b bytes.Buffer
	b.WriteString(`{`)
	if scrollID != "" {
		b.WriteString(`"_scroll_id":"` + scrollID + `",`)
	}
	b.WriteString(`"took":`)
	b.WriteString(strconv.FormatInt(time.Since(start).Milliseconds(), 10))
	b.WriteString(`,"timed_out":false,"_shards":`)
	sj, _ := json.Marshal(shardsJSON(len(list)))
	b.Write(sj)
	b.WriteString(`,"hits":{`)
	if sr.restTotalAsInt {
		b.WriteString(`"total":` + strconv.Itoa(total) + ",")
	} else if sr.trackTotal != 0 {
		rel := "eq"
		t := total
		if sr.trackTotal > 0 && total > sr.trackTotal {
			t, rel = sr.trackTotal, "gte"
		}
		b.WriteString(`"total":{"value":` + strconv.Itoa(t) + `,"relation":"` + rel + `"},`)
	}
	scored := len(sr.sort) == 0 || sr.trackScores
	if scored && total > 0 {
		b.WriteString(`"max_score":` + strconv.FormatFloat(score, 'f', -1, 64))
	} else {
		b.WriteString(`"max_score":null`)
	}
	if e := renderHits(&b, page, sr, scored, score); e != nil {
		return e
	}
	if len(sr.aggs) > 0 {
		aj, err := json.Marshal(aggsOut)
		if err != nil {
			return newErr(500, "exception", "dev-es: encoding aggregations: %v", err)
		}
		b.WriteString(`,"aggregations":`)
		b.Write(aj)
	}
	b.WriteByte('}')
	if rq.pretty {
		var v any
		_ = json.Unmarshal(b.Bytes(), &v)
		return s.ok(rq, 200, v)
	}
	return s.ok(rq, 200, json.RawMessage(b.Bytes()))
}

// sortedHits computes the sort values of docs and orders them by specs
// (index order when there are none).
func sortedHits(docs []docRef, specs []sortSpec, score float64) []hitRef {
	hits := make([]hitRef, len(docs))
	for i, d := range docs {
		h := hitRef{ix: d.ix, ord: d.ord}
		if len(specs) > 0 {
			h.vals = make([]sortVal, len(specs))
			for j, sp := range specs {
				switch sp.field {
				case "_score":
					h.vals[j] = sortVal{present: true, f: score}
				case "_doc":
					h.vals[j] = sortVal{present: true, isInt: true, i: int64(d.ord)}
				default:
					h.vals[j] = sortValue(d.ix, d.ord, sp)
				}
			}
		}
		hits[i] = h
	}
	if len(specs) > 0 {
		sort.SliceStable(hits, func(a, b int) bool { return cmpHits(hits[a].vals, hits[b].vals, specs) < 0 })
	}
	return hits
}

// hitOut is a hit ready to render (a scroll keeps them between pages).
type hitOut struct {
	index, id      string
	version, seqNo int64
	source         []byte
	sort           []any
	fields         map[string]any
}

func toHitOut(h hitRef, sr *searchReq) hitOut {
	d := h.ix.segDocs[h.ord]
	o := hitOut{index: h.ix.name, id: d.id, version: d.version, seqNo: d.seqNo, source: d.source}
	o.fields, _ = hitFields(h.ix, h.ord, sr) // text docvalue_fields were refused before the fetch
	if len(sr.sort) > 0 {
		o.sort = make([]any, len(h.vals))
		for j, v := range h.vals {
			o.sort[j] = v.json()
			if !v.present {
				o.sort[j] = missingSortValue(h.ix, sr.sort[j])
			}
		}
	}
	return o
}

// renderHits writes `,"hits":[...]}` (closing the outer "hits" object).
func renderHits(b *bytes.Buffer, hits []hitOut, sr *searchReq, scored bool, score float64) *esError {
	b.WriteString(`,"hits":[`)
	for i, h := range hits {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"_index":`)
		writeJSONString(b, h.index)
		b.WriteString(`,"_type":"_doc"`)
		if !sr.storedNone {
			b.WriteString(`,"_id":`)
			writeJSONString(b, h.id)
		}
		if sr.version {
			b.WriteString(`,"_version":` + strconv.FormatInt(h.version, 10))
		}
		if sr.seqNo {
			b.WriteString(`,"_seq_no":` + strconv.FormatInt(h.seqNo, 10) + `,"_primary_term":1`)
		}
		if scored {
			b.WriteString(`,"_score":` + strconv.FormatFloat(score, 'f', -1, 64))
		} else {
			b.WriteString(`,"_score":null`)
		}
		src, e := sr.source.apply(h.source)
		if e != nil {
			return e
		}
		if src != nil {
			b.WriteString(`,"_source":`)
			b.Write(src)
		}
		if len(h.fields) > 0 {
			fj, _ := json.Marshal(h.fields)
			b.WriteString(`,"fields":`)
			b.Write(fj)
		}
		if h.sort != nil {
			vj, _ := json.Marshal(h.sort)
			b.WriteString(`,"sort":`)
			b.Write(vj)
		}
		b.WriteByte('}')
	}
	b.WriteString(`]}`)
	return nil
}

// cmpHits orders two documents' sort values by the sort specs.
func cmpHits(a, b []sortVal, specs []sortSpec) int {
	for j, sp := range specs {
		va, vb := a[j], b[j]
		if va.present != vb.present {
			if va.present == sp.missingFirst {
				return 1
			}
			return -1
		}
		if !va.present {
			continue
		}
		c := cmpSortVal(va, vb)
		if sp.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

// searchAfterValues converts search_after values to sort values of the
// sorted fields' kinds.
func searchAfterValues(list []*index, specs []sortSpec, raw []any) ([]sortVal, *esError) {
	out := make([]sortVal, len(specs))
	for j, sp := range specs {
		v := raw[j]
		if v == nil {
			continue
		}
		kind := colFloat
		switch sp.field {
		case "_doc":
			kind = colInt
		case "_score":
		default:
			for _, ix := range list {
				if f := ix.m.lookup(sp.field); f != nil {
					kind = kindOf(f.Type)
					break
				}
			}
		}
		s, ok := scalarString(v)
		if !ok {
			return nil, errIllegalArgument("search_after values must be scalars, got %v", v)
		}
		switch kind {
		case colStr:
			out[j] = sortVal{present: true, isStr: true, s: s}
		case colInt:
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, errIllegalArgument("Failed to parse search_after value for field [%s].", sp.field).cause(newErr(400, "number_format_exception", "For input string: \"%s\"", s))
			}
			out[j] = sortVal{present: true, isInt: true, i: n}
		default:
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, errIllegalArgument("Failed to parse search_after value for field [%s].", sp.field).cause(newErr(400, "number_format_exception", "For input string: \"%s\"", s))
			}
			out[j] = sortVal{present: true, f: f}
		}
	}
	return out, nil
}

// missingSortValue is what Elasticsearch puts in "sort" for a document
// without the field: the type's extreme for numbers, null for keywords.
func missingSortValue(ix *index, sp sortSpec) any {
	f := ix.m.lookup(sp.field)
	if f == nil {
		return nil
	}
	desc := sp.desc != sp.missingFirst // missing sorts as if it were the max (last asc) or min
	switch kindOf(f.Type) {
	case colInt:
		if desc {
			return int64(-9223372036854775808)
		}
		return int64(9223372036854775807)
	case colFloat:
		if desc {
			return "-Infinity"
		}
		return "Infinity"
	}
	return nil
}

func writeJSONString(b *bytes.Buffer, s string) {
	j, _ := json.Marshal(s)
	b.Write(j)
}

func (s *Server) handleCount(rq *request) *esError {
	if e := rq.allow("ignore_unavailable", "allow_no_indices", "expand_wildcards", "preference", "routing", "min_score", "terminate_after", "q", "df", "default_operator", "lenient", "analyzer", "analyze_wildcard", "ignore_throttled"); e != nil {
		return e
	}
	if e := refuseParams(rq, "min_score", "terminate_after"); e != nil {
		return e
	}
	sr, e := s.parseSearchRequest(rq, true)
	if e != nil {
		return e
	}
	list, unlock, e := s.searchTargets(rq, "_count")
	if e != nil {
		return e
	}
	defer unlock()
	matches, e := s.runQuery(list, sr.q)
	if e != nil {
		return e
	}
	total := 0
	for _, m := range matches {
		total += m.count()
	}
	return s.ok(rq, 200, map[string]any{"count": total, "_shards": shardsJSON(len(list))})
}
