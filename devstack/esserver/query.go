package esserver

import (
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// query is a parsed query DSL node, evaluated per index (field types are
// per-index mapping).
type query interface {
	eval(ec *evalCtx) (bitset, *esError)
}

type evalCtx struct {
	ix   *index
	live bitset
	now  time.Time
}

func (ec *evalCtx) empty() bitset { return newBitset(len(ec.ix.segDocs)) }

func (ec *evalCtx) all() bitset {
	b := ec.empty()
	copy(b, ec.live)
	return b
}

func qShardErr(format string, args ...any) *esError {
	return newErr(http.StatusBadRequest, "query_shard_exception", format, args...)
}

type matchAllQ struct{ boost float64 }
type matchNoneQ struct{}
type termQ struct {
	field string
	value any
}
type termsQ struct {
	field  string
	values []any
}
type rangeQ struct {
	field            string
	gt, gte, lt, lte any
	format           string
	tz               string
	hasGt, hasGte    bool
	hasLt, hasLte    bool
	relation         string
}
type boolQ struct {
	must, filter, should, mustNot []query
	msm                           *int
}
type existsQ struct{ field string }
type idsQ struct{ ids []string }
type constantScoreQ struct {
	filter query
	boost  float64
}
type prefixQ struct {
	field, prefix string
}

// parseQuery parses the "query" object of a search or count request.
func parseQuery(v any) (query, *esError) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errParsing("[_na] query malformed, must start with start_object")
	}
	if len(obj) != 1 {
		if len(obj) == 0 {
			return nil, errParsing("query malformed, empty clause found")
		}
		keys := sortedKeys(obj)
		return nil, errParsing("[%s] malformed query, expected [END_OBJECT] but found [FIELD_NAME]", keys[0])
	}
	for name, body := range obj {
		return parseQueryNamed(name, body)
	}
	return nil, nil
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

var unsupportedQueries = map[string]bool{
	"match_phrase": true, "match_phrase_prefix": true,
	"simple_query_string": true, "wildcard": true, "regexp": true, "fuzzy": true, "nested": true, "has_child": true,
	"has_parent": true, "geo_distance": true, "geo_bounding_box": true, "geo_shape": true, "script": true,
	"script_score": true, "function_score": true, "dis_max": true, "boosting": true, "more_like_this": true,
	"terms_set": true, "intervals": true, "distance_feature": true, "pinned": true, "combined_fields": true,
	"match_bool_prefix": true, "span_term": true, "percolate": true, "rank_feature": true, "wrapper": true,
	"parent_id": true, "shape": true, "geo_polygon": true,
}

// fieldAndBody unpacks {"field": value-or-object} shapes.
func fieldAndBody(qname string, body any) (string, any, *esError) {
	obj, ok := body.(map[string]any)
	if !ok || len(obj) == 0 {
		return "", nil, errParsing("[%s] query malformed, no start_object after query name", qname)
	}
	var field string
	var val any
	n := 0
	for k, v := range obj {
		if k == "boost" || k == "_name" {
			continue
		}
		field, val = k, v
		n++
	}
	if n != 1 {
		return "", nil, errParsing("[%s] query doesn't support multiple fields, found [%s]", qname, strings.Join(sortedKeys(obj), "] and ["))
	}
	return field, val, nil
}

func parseQueryNamed(name string, body any) (query, *esError) {
	switch name {
	case "match_all":
		obj, ok := body.(map[string]any)
		if !ok {
			return nil, errParsing("[match_all] query malformed, no start_object after query name")
		}
		boost := 1.0
		for k, v := range obj {
			switch k {
			case "boost":
				boost, _ = toFloat(v)
			case "_name":
			default:
				return nil, errParsing("[match_all] query does not support [%s]", k)
			}
		}
		return matchAllQ{boost: boost}, nil
	case "match_none":
		return matchNoneQ{}, nil
	case "term":
		field, v, e := fieldAndBody("term", body)
		if e != nil {
			return nil, e
		}
		if obj, ok := v.(map[string]any); ok {
			val, has := obj["value"]
			if !has {
				return nil, errParsing("[term] query does not support [%s]", strings.Join(sortedKeys(obj), ","))
			}
			for k := range obj {
				switch k {
				case "value", "boost", "_name":
				case "case_insensitive":
					if b, _ := obj[k].(bool); b {
						return nil, errUnsupported("case_insensitive term queries")
					}
				default:
					return nil, errParsing("[term] query does not support [%s]", k)
				}
			}
			v = val
		}
		if _, isArr := v.([]any); isArr {
			return nil, errParsing("[term] query does not support array of values")
		}
		return termQ{field: field, value: v}, nil
	case "terms":
		obj, ok := body.(map[string]any)
		if !ok {
			return nil, errParsing("[terms] query malformed, no start_object after query name")
		}
		var q termsQ
		n := 0
		for k, v := range obj {
			if k == "boost" || k == "_name" {
				continue
			}
			arr, ok := v.([]any)
			if !ok {
				if _, isObj := v.(map[string]any); isObj {
					return nil, errUnsupported("terms lookup")
				}
				return nil, errParsing("[terms] query does not support [%s]", k)
			}
			q.field, q.values = k, arr
			n++
		}
		if n != 1 {
			return nil, errParsing("[terms] query does not support multiple fields")
		}
		return q, nil
	case "range":
		field, v, e := fieldAndBody("range", body)
		if e != nil {
			return nil, e
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, errParsing("[range] query malformed, no start_object after query name")
		}
		q := rangeQ{field: field}
		var from, to any
		hasFrom, hasTo, inclLower, inclUpper := false, false, true, true
		for k, val := range obj {
			switch k {
			case "gt":
				q.gt, q.hasGt = val, val != nil
			case "gte":
				q.gte, q.hasGte = val, val != nil
			case "from":
				from, hasFrom = val, val != nil
			case "to":
				to, hasTo = val, val != nil
			case "lt":
				q.lt, q.hasLt = val, val != nil
			case "lte":
				q.lte, q.hasLte = val, val != nil
			case "format":
				q.format, _ = val.(string)
			case "time_zone":
				q.tz, _ = val.(string)
			case "relation":
				q.relation, _ = val.(string)
				if q.relation != "intersects" && q.relation != "INTERSECTS" {
					return nil, errUnsupported("range relation [%s]", q.relation)
				}
			case "boost", "_name":
			case "include_lower", "include_upper":
				b, ok := val.(bool)
				if !ok {
					return nil, errParsing("[range] %s must be a boolean", k)
				}
				if k == "include_lower" {
					inclLower = b
				} else {
					inclUpper = b
				}
			default:
				return nil, errParsing("[range] query does not support [%s]", k)
			}
		}
		// the older from/to/include_lower/include_upper form (olivere sends it)
		if hasFrom {
			if inclLower {
				q.gte, q.hasGte = from, true
			} else {
				q.gt, q.hasGt = from, true
			}
		}
		if hasTo {
			if inclUpper {
				q.lte, q.hasLte = to, true
			} else {
				q.lt, q.hasLt = to, true
			}
		}
		return q, nil
	case "bool":
		obj, ok := body.(map[string]any)
		if !ok {
			return nil, errParsing("[bool] query malformed, no start_object after query name")
		}
		var q boolQ
		for k, v := range obj {
			var list []any
			switch x := v.(type) {
			case []any:
				list = x
			case map[string]any:
				list = []any{x}
			}
			parseList := func() ([]query, *esError) {
				var out []query
				for _, e := range list {
					sub, err := parseQuery(e)
					if err != nil {
						return nil, err
					}
					out = append(out, sub)
				}
				return out, nil
			}
			var err *esError
			switch k {
			case "must":
				q.must, err = parseList()
			case "filter":
				q.filter, err = parseList()
			case "should":
				q.should, err = parseList()
			case "must_not":
				q.mustNot, err = parseList()
			case "minimum_should_match":
				n, ok := toInt(v)
				if !ok {
					if s, isStr := v.(string); isStr && strings.HasSuffix(s, "%") {
						return nil, errUnsupported("percentage minimum_should_match")
					}
					return nil, errParsing("[bool] minimum_should_match must be an integer")
				}
				m := int(n)
				q.msm = &m
			case "boost", "_name", "adjust_pure_negative":
			default:
				return nil, errParsing("[bool] query does not support [%s]", k)
			}
			if err != nil {
				return nil, err
			}
		}
		return q, nil
	case "exists":
		obj, ok := body.(map[string]any)
		if !ok {
			return nil, errParsing("[exists] query malformed")
		}
		f, _ := obj["field"].(string)
		for k := range obj {
			if k != "field" && k != "boost" && k != "_name" {
				return nil, errParsing("[exists] query does not support [%s]", k)
			}
		}
		if f == "" {
			return nil, errParsing("[exists] must be provided with a [field]")
		}
		return existsQ{field: f}, nil
	case "ids":
		obj, ok := body.(map[string]any)
		if !ok {
			return nil, errParsing("[ids] query malformed")
		}
		var q idsQ
		for k, v := range obj {
			switch k {
			case "values":
				arr, ok := v.([]any)
				if !ok {
					return nil, errParsing("[ids] values must be an array")
				}
				for _, e := range arr {
					switch x := e.(type) {
					case string:
						q.ids = append(q.ids, x)
					case jsonNumber:
						q.ids = append(q.ids, string(x))
					default:
						return nil, errParsing("[ids] values must be strings")
					}
				}
			case "type", "types":
			case "boost", "_name":
			default:
				return nil, errParsing("[ids] query does not support [%s]", k)
			}
		}
		return q, nil
	case "constant_score":
		obj, ok := body.(map[string]any)
		if !ok {
			return nil, errParsing("[constant_score] query malformed")
		}
		q := constantScoreQ{boost: 1}
		for k, v := range obj {
			switch k {
			case "filter":
				f, e := parseQuery(v)
				if e != nil {
					return nil, e
				}
				q.filter = f
			case "boost":
				q.boost, _ = toFloat(v)
			case "_name":
			default:
				return nil, errParsing("[constant_score] query does not support [%s]", k)
			}
		}
		if q.filter == nil {
			return nil, errParsing("[constant_score] requires a 'filter' element")
		}
		return q, nil
	case "prefix":
		field, v, e := fieldAndBody("prefix", body)
		if e != nil {
			return nil, e
		}
		if obj, ok := v.(map[string]any); ok {
			v = obj["value"]
		}
		s, ok := v.(string)
		if !ok {
			return nil, errParsing("[prefix] value must be a string")
		}
		return prefixQ{field: field, prefix: s}, nil
	case "match":
		return parseMatch(body)
	case "multi_match":
		return parseMultiMatch(body)
	case "query_string":
		return parseQueryStringQuery(body)
	}
	if unsupportedQueries[name] {
		return nil, errUnsupported("the [%s] query", name)
	}
	return nil, errParsing("unknown query [%s]", name).cause(newErr(400, "named_object_not_found_exception", "[1:1] unknown field [%s]", name))
}

// ---- evaluation ----

func (q matchAllQ) eval(ec *evalCtx) (bitset, *esError)  { return ec.all(), nil }
func (q matchNoneQ) eval(ec *evalCtx) (bitset, *esError) { return ec.empty(), nil }

func (q constantScoreQ) eval(ec *evalCtx) (bitset, *esError) { return q.filter.eval(ec) }

func (q idsQ) eval(ec *evalCtx) (bitset, *esError) {
	b := ec.empty()
	for _, id := range q.ids {
		if ord, ok := ec.ix.segIDs[id]; ok {
			b.set(ord)
		}
	}
	b.and(ec.live)
	return b, nil
}

func (q boolQ) eval(ec *evalCtx) (bitset, *esError) {
	res := ec.all()
	for _, list := range [][]query{q.must, q.filter} {
		for _, sub := range list {
			b, e := sub.eval(ec)
			if e != nil {
				return nil, e
			}
			res.and(b)
		}
	}
	for _, sub := range q.mustNot {
		b, e := sub.eval(ec)
		if e != nil {
			return nil, e
		}
		res.andNot(b)
	}
	msm := 0
	if len(q.should) > 0 && len(q.must) == 0 && len(q.filter) == 0 {
		msm = 1
	}
	if q.msm != nil {
		msm = *q.msm
		if msm < 0 {
			msm = len(q.should) + msm
		}
	}
	if msm > 0 && len(q.should) > 0 {
		counts := make([]uint16, len(ec.ix.segDocs))
		for _, sub := range q.should {
			b, e := sub.eval(ec)
			if e != nil {
				return nil, e
			}
			b.forEach(func(o int32) { counts[o]++ })
		}
		keep := ec.empty()
		for i, c := range counts {
			if int(c) >= msm {
				keep.set(int32(i))
			}
		}
		res.and(keep)
	} else if msm > 0 {
		return ec.empty(), nil
	} else {
		// should clauses only score; still evaluate them for errors
		for _, sub := range q.should {
			if _, e := sub.eval(ec); e != nil {
				return nil, e
			}
		}
	}
	return res, nil
}

func (q existsQ) eval(ec *evalCtx) (bitset, *esError) {
	b := ec.empty()
	paths := map[string]*fieldMapping{}
	if f := ec.ix.m.lookup(q.field); f != nil {
		if f.Type == "object" {
			ec.ix.m.leafPaths(q.field+".", f, paths)
		} else {
			paths[q.field] = f
		}
	}
	if strings.Contains(q.field, "*") {
		all := map[string]*fieldMapping{}
		ec.ix.m.leafPaths("", ec.ix.m.Root, all)
		for p, f := range all {
			if globMatch(q.field, p) {
				paths[p] = f
			}
		}
	}
	for p := range paths {
		if c := ec.ix.cols[p]; c != nil {
			b.or(c.has)
		}
	}
	b.and(ec.live)
	return b, nil
}

// analyzeStandard approximates the standard analyzer: split on anything
// that is not a letter or digit, lowercase.
func analyzeStandard(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case jsonNumber:
		return string(x), true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	return "", false
}

// matchTerms returns the documents whose field has any of values.
func matchTerms(ec *evalCtx, field string, values []any) (bitset, *esError) {
	b := ec.empty()
	f := ec.ix.m.lookup(field)
	if field == "_id" {
		var ids []string
		for _, v := range values {
			s, _ := scalarString(v)
			ids = append(ids, s)
		}
		return idsQ{ids: ids}.eval(ec)
	}
	if field == "_index" {
		for _, v := range values {
			if s, _ := scalarString(v); s == ec.ix.name {
				return ec.all(), nil
			}
		}
		return b, nil
	}
	if f == nil || f.Type == "object" {
		return b, nil
	}
	c := ec.ix.cols[field]
	if c == nil {
		return b, nil
	}
	switch f.Type {
	case "keyword", "text":
		want := map[uint32]bool{}
		for _, v := range values {
			s, ok := scalarString(v)
			if !ok {
				return nil, qShardErr("failed to create query: [%s] does not support a value of type %T", field, v)
			}
			if f.Type == "keyword" {
				if o, ok := c.dictIdx[s]; ok {
					want[o] = true
				}
				continue
			}
			for o, term := range c.dict {
				for _, tok := range analyzeStandard(term) {
					if tok == s {
						want[uint32(o)] = true
						break
					}
				}
			}
		}
		for t := range want {
			for _, o := range c.postings[t] {
				b.set(o)
			}
		}
	default:
		var wantI []int64
		var wantF []float64
		for _, v := range values {
			switch kindOf(f.Type) {
			case colInt:
				n, ok, e := termInt(f, v, ec)
				if e != nil {
					return nil, e
				}
				if ok {
					wantI = append(wantI, n)
				}
			case colFloat:
				x, e := parseDouble(v, true)
				if e != nil {
					return nil, qShardErr("failed to create query: %s", e.Reason)
				}
				if f.Type == "float" || f.Type == "half_float" {
					x = float64(float32(x))
				}
				wantF = append(wantF, x)
			}
		}
		c.has.forEach(func(o int32) {
			hit := false
			if c.kind == colInt {
				c.eachInt(o, func(x int64) {
					for _, w := range wantI {
						if x == w {
							hit = true
						}
					}
				})
			} else {
				c.eachFloat(o, func(x float64) {
					for _, w := range wantF {
						if x == w {
							hit = true
						}
					}
				})
			}
			if hit {
				b.set(o)
			}
		})
	}
	b.and(ec.live)
	return b, nil
}

// termInt converts a term value for a long-family, date or boolean field.
// ok=false means the value can match nothing (a decimal part on a long).
func termInt(f *fieldMapping, v any, ec *evalCtx) (int64, bool, *esError) {
	switch f.Type {
	case "date", "date_nanos":
		s, _ := scalarString(v)
		ms, err := parseDateMath(s, f.df, time.UTC, ec.now, false)
		if err != nil {
			return 0, false, qShardErr("failed to create query: %v", err)
		}
		return ms, true, nil
	case "boolean":
		s, _ := scalarString(v)
		switch s {
		case "true":
			return 1, true, nil
		case "false", "":
			return 0, true, nil
		}
		return 0, false, qShardErr("failed to create query: Can't parse boolean value [%s], expected [true] or [false]", s)
	}
	s, ok := scalarString(v)
	if !ok {
		return 0, false, qShardErr("failed to create query: For input string: \"%v\"", v)
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true, nil
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false, qShardErr("failed to create query: For input string: \"%s\"", s)
	}
	if x != math.Trunc(x) {
		return 0, false, nil
	}
	return int64(x), true, nil
}

func (q termQ) eval(ec *evalCtx) (bitset, *esError)  { return matchTerms(ec, q.field, []any{q.value}) }
func (q termsQ) eval(ec *evalCtx) (bitset, *esError) { return matchTerms(ec, q.field, q.values) }

func (q prefixQ) eval(ec *evalCtx) (bitset, *esError) {
	b := ec.empty()
	f := ec.ix.m.lookup(q.field)
	if f == nil {
		return b, nil
	}
	if f.Type != "keyword" {
		return nil, errUnsupported("prefix queries on [%s] fields", f.Type)
	}
	c := ec.ix.cols[q.field]
	if c == nil {
		return b, nil
	}
	for t, term := range c.dict {
		if strings.HasPrefix(term, q.prefix) {
			for _, o := range c.postings[t] {
				b.set(o)
			}
		}
	}
	b.and(ec.live)
	return b, nil
}

func (q rangeQ) eval(ec *evalCtx) (bitset, *esError) {
	b := ec.empty()
	f := ec.ix.m.lookup(q.field)
	if f == nil || f.Type == "object" {
		return b, nil
	}
	c := ec.ix.cols[q.field]
	switch f.Type {
	case "text":
		return nil, errUnsupported("range queries on text fields")
	case "keyword":
		bound := func(v any) string { s, _ := scalarString(v); return s }
		lo, hi := bound(q.gte), bound(q.lte)
		if q.hasGt {
			lo = bound(q.gt)
		}
		if q.hasLt {
			hi = bound(q.lt)
		}
		if c == nil {
			return b, nil
		}
		c.has.forEach(func(o int32) {
			c.eachTerm(o, func(t uint32) {
				s := c.dict[t]
				if (q.hasGte && s < lo) || (q.hasGt && s <= lo) || (q.hasLte && s > hi) || (q.hasLt && s >= hi) {
					return
				}
				b.set(o)
			})
		})
		b.and(ec.live)
		return b, nil
	}
	lo, hi := math.Inf(-1), math.Inf(1)
	loIncl, hiIncl := true, true
	conv := func(v any, roundUp bool) (float64, *esError) {
		if f.Type == "date" || f.Type == "date_nanos" {
			df := f.df
			if q.format != "" {
				var err error
				if df, err = parseDateFormat(q.format); err != nil {
					return 0, errParsing("[range] %v", err)
				}
			}
			loc, err := parseTimeZone(q.tz)
			if err != nil {
				return 0, errIllegalArgument("%v", err)
			}
			var ms int64
			if s, ok := v.(string); ok {
				ms, err = parseDateMath(s, df, loc, ec.now, roundUp)
			} else if n, ok := df.parse(v, loc); ok {
				ms = n
			} else {
				err = fmt.Errorf("failed to parse date field [%v] with format [%s]", v, df.spec)
			}
			if err != nil {
				return 0, qShardErr("failed to create query: %v", err).cause(newErr(400, "parse_exception", "%v", err))
			}
			return float64(ms), nil
		}
		if f.Type == "boolean" {
			n, _, e := termInt(f, v, ec)
			return float64(n), e
		}
		x, e := parseDouble(v, true)
		if e != nil {
			return 0, qShardErr("failed to create query: %s", e.Reason)
		}
		return x, nil
	}
	var e *esError
	if q.hasGte {
		if lo, e = conv(q.gte, false); e != nil {
			return nil, e
		}
	}
	if q.hasGt {
		if lo, e = conv(q.gt, true); e != nil {
			return nil, e
		}
		loIncl = false
	}
	if q.hasLte {
		if hi, e = conv(q.lte, true); e != nil {
			return nil, e
		}
	}
	if q.hasLt {
		if hi, e = conv(q.lt, false); e != nil {
			return nil, e
		}
		hiIncl = false
	}
	if c == nil {
		return b, nil
	}
	in := func(x float64) bool {
		if x < lo || (!loIncl && x == lo) || x > hi || (!hiIncl && x == hi) {
			return false
		}
		return true
	}
	if c.kind == colInt && len(c.multiI) == 0 {
		ints := c.ints
		c.has.forEach(func(o int32) {
			if in(float64(ints[o])) {
				b.set(o)
			}
		})
	} else {
		c.has.forEach(func(o int32) {
			hit := false
			c.eachNum(o, func(x float64) {
				if in(x) {
					hit = true
				}
			})
			if hit {
				b.set(o)
			}
		})
	}
	b.and(ec.live)
	return b, nil
}
