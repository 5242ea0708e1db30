package esserver

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"sort"
	"strconv"
	"time"
)

// aggCtx is what every aggregation of one search shares: the searched
// indices (terms with min_doc_count 0 lists their terms) and the query
// score (top_hits).
type aggCtx struct {
	indices []*index
	score   float64
}

func setAggCtx(aggs []*aggSpec, c *aggCtx) {
	for _, a := range aggs {
		a.ctx = c
		setAggCtx(a.subs, c)
		if a.composite != nil {
			for _, src := range a.composite.sources {
				src.spec.ctx = c
			}
		}
	}
}

func (a *aggSpec) asString(f *fieldMapping, x float64) (string, bool) {
	if f == nil || f.df == nil {
		return "", false
	}
	df := a.format
	if df == nil {
		df = f.df
	}
	return df.format(int64(x)), true
}

// statsResult renders stats and extended_stats ("Stats aggregation",
// "Extended stats aggregation"); empty sets give nulls as in ES.
func (a *aggSpec) statsResult(res map[string]any, f *fieldMapping, n int, sum, sumSq, lo, hi float64) map[string]any {
	res["count"], res["sum"] = n, sum
	res["min"], res["max"], res["avg"] = nil, nil, nil
	if n > 0 {
		res["min"], res["max"], res["avg"] = lo, hi, sum/float64(n)
		for _, k := range []string{"min", "max", "avg"} {
			if s, ok := a.asString(f, res[k].(float64)); ok {
				res[k+"_as_string"] = s
			}
		}
		if s, ok := a.asString(f, sum); ok {
			res["sum_as_string"] = s
		}
	}
	if a.typ != "extended_stats" {
		return res
	}
	keys := []string{"sum_of_squares", "variance", "variance_population", "variance_sampling", "std_deviation", "std_deviation_population", "std_deviation_sampling"}
	bounds := map[string]any{"upper": nil, "lower": nil, "upper_population": nil, "lower_population": nil, "upper_sampling": nil, "lower_sampling": nil}
	for _, k := range keys {
		res[k] = nil
	}
	if n > 0 {
		mean := sum / float64(n)
		vp := math.Max(0, sumSq/float64(n)-mean*mean)
		vs := math.NaN()
		if n > 1 {
			vs = math.Max(0, (sumSq-float64(n)*mean*mean)/float64(n-1))
		}
		res["sum_of_squares"], res["variance"], res["variance_population"] = sumSq, vp, vp
		res["std_deviation"], res["std_deviation_population"] = math.Sqrt(vp), math.Sqrt(vp)
		bounds["upper"], bounds["lower"] = mean+a.sigma*math.Sqrt(vp), mean-a.sigma*math.Sqrt(vp)
		bounds["upper_population"], bounds["lower_population"] = bounds["upper"], bounds["lower"]
		if !math.IsNaN(vs) {
			res["variance_sampling"], res["std_deviation_sampling"] = vs, math.Sqrt(vs)
			bounds["upper_sampling"], bounds["lower_sampling"] = mean+a.sigma*math.Sqrt(vs), mean-a.sigma*math.Sqrt(vs)
		}
	}
	res["std_deviation_bounds"] = bounds
	return res
}

// percentilesResult computes exact percentiles: the values are sorted and
// percentile p is interpolated linearly between the values at ranks
// floor and ceil of p/100*(n-1). Elasticsearch's TDigest estimates them
// and can differ slightly, most on small or very skewed sets.
func (a *aggSpec) percentilesResult(res map[string]any, f *fieldMapping, vals []float64) map[string]any {
	sort.Float64s(vals)
	keyed := a.keyed == nil || *a.keyed
	obj := map[string]any{}
	var list []any
	for _, p := range a.percents {
		var v any
		if len(vals) > 0 {
			r := p / 100 * float64(len(vals)-1)
			lo, hi := int(math.Floor(r)), int(math.Ceil(r))
			v = vals[lo] + (vals[hi]-vals[lo])*(r-float64(lo))
		}
		key := strconv.FormatFloat(p, 'f', -1, 64)
		if p == math.Trunc(p) {
			key += ".0"
		}
		if keyed {
			obj[key] = v
			if x, ok := v.(float64); ok {
				if s, ok := a.asString(f, x); ok {
					obj[key+"_as_string"] = s
				}
			}
		} else {
			e := map[string]any{"key": p, "value": v}
			if x, ok := v.(float64); ok {
				if s, ok := a.asString(f, x); ok {
					e["value_as_string"] = s
				}
			}
			list = append(list, e)
		}
	}
	if keyed {
		res["values"] = obj
	} else {
		res["values"] = list
	}
	return res
}

// ---- top_hits ----

var topHitsKeys = map[string]bool{"from": true, "size": true, "sort": true, "_source": true, "stored_fields": true,
	"docvalue_fields": true, "fields": true, "version": true, "seq_no_primary_term": true, "track_scores": true}

func (a *aggSpec) parseTopHits(body map[string]any) *esError {
	for k := range body {
		if !topHitsKeys[k] {
			if k == "highlight" || k == "explain" || k == "script_fields" {
				return errUnsupported("[%s] in top_hits", k)
			}
			return errParsing("[top_hits] unknown field [%s]", k)
		}
	}
	sr, e := parseSearchBody(body, false)
	if e != nil {
		return e
	}
	if _, ok := body["size"]; !ok {
		sr.size = 3
	}
	if sr.storedFields != nil && sr.source == nil && !sr.storedSource {
		sr.source = &sourceFilter{disabled: true}
	}
	a.hitsReq = sr
	return nil
}

// topHits is the top_hits aggregation ("Top hits aggregation").
func (a *aggSpec) topHits(docs []docRef) (any, *esError) {
	sr := a.hitsReq
	limit := 100
	if len(a.ctx.indices) > 0 {
		limit = a.ctx.indices[0].setting("max_inner_result_window", 100)
	}
	if sr.from+sr.size > limit {
		return nil, errIllegalArgument("Top hits result window is too large, the top hits aggregator [%s]'s from + size must be less than or equal to: [%d] but was [%d]. This limit can be set by changing the [index.max_inner_result_window] index level setting.", a.name, limit, sr.from+sr.size)
	}
	hits := sortedHits(docs, sr.sort, a.ctx.score)
	if sr.from >= len(hits) {
		hits = nil
	} else {
		hits = hits[sr.from:min(len(hits), sr.from+sr.size)]
	}
	page := make([]hitOut, len(hits))
	for i, h := range hits {
		page[i] = toHitOut(h, sr)
	}
	scored := len(sr.sort) == 0 || sr.trackScores
	var b bytes.Buffer
	b.WriteString(`{"hits":{"total":{"value":` + strconv.Itoa(len(docs)) + `,"relation":"eq"},"max_score":`)
	if scored && len(docs) > 0 {
		b.WriteString(strconv.FormatFloat(a.ctx.score, 'f', -1, 64))
	} else {
		b.WriteString("null")
	}
	if e := renderHits(&b, page, sr, scored, a.ctx.score); e != nil {
		return nil, e
	}
	b.WriteByte('}')
	var out map[string]any
	if err := json.Unmarshal(b.Bytes(), &out); err != nil {
		return nil, newErr(500, "exception", "dev-es: top_hits: %v", err)
	}
	if a.meta != nil {
		out["meta"] = a.meta
	}
	return out, nil
}

// ---- composite ----

type compositeSource struct {
	name     string
	kind     string // terms, date_histogram, histogram
	desc     bool
	missing  bool // missing_bucket
	interval float64
	spec     *aggSpec // field, and the date_histogram rounding
}

type compositeSpec struct {
	sources []*compositeSource
	size    int
	after   map[string]any
}

func (a *aggSpec) parseComposite(body map[string]any) *esError {
	cs := &compositeSpec{size: 10}
	for k, v := range body {
		switch k {
		case "size":
			n, ok := toInt(v)
			if !ok || n <= 0 {
				return errIllegalArgument("[size] must be greater than 0. Found [%v] in [%s]", v, a.name)
			}
			cs.size = int(n)
		case "after":
			m, ok := v.(map[string]any)
			if !ok {
				return errParsing("[composite] after must be an object")
			}
			cs.after = m
		case "sources":
			arr, ok := v.([]any)
			if !ok || len(arr) == 0 {
				return errIllegalArgument("Composite [sources] cannot be null or empty")
			}
			for _, raw := range arr {
				m, ok := raw.(map[string]any)
				if !ok || len(m) != 1 {
					return errParsing("[composite] each source must be an object with one name")
				}
				for name, def := range m {
					src, e := parseCompositeSource(name, def)
					if e != nil {
						return e
					}
					cs.sources = append(cs.sources, src)
				}
			}
		default:
			return errParsing("[composite] unknown field [%s]", k)
		}
	}
	if len(cs.sources) == 0 {
		return errIllegalArgument("Composite [sources] cannot be null or empty")
	}
	if cs.after != nil {
		if len(cs.after) != len(cs.sources) {
			return errIllegalArgument("[after] has %d value(s) but [sources] has %d", len(cs.after), len(cs.sources))
		}
		for _, src := range cs.sources {
			if _, ok := cs.after[src.name]; !ok {
				return errIllegalArgument("Missing value for [after.%s]", src.name)
			}
		}
	}
	a.composite = cs
	return nil
}

func parseCompositeSource(name string, def any) (*compositeSource, *esError) {
	m, ok := def.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, errParsing("[composite] source [%s] must be an object with one value source type", name)
	}
	for kind, raw := range m {
		body, ok := raw.(map[string]any)
		if !ok {
			return nil, errParsing("[composite] source [%s] must be an object", name)
		}
		src := &compositeSource{name: name, kind: kind}
		inner := map[string]any{}
		for k, v := range body {
			switch k {
			case "order":
				s, _ := v.(string)
				if s != "asc" && s != "desc" {
					return nil, errIllegalArgument("Unknown order direction [%v]", v)
				}
				src.desc = s == "desc"
			case "missing_bucket":
				b, ok := v.(bool)
				if !ok {
					return nil, errParsing("[missing_bucket] must be a boolean")
				}
				src.missing = b
			case "interval":
				if kind == "histogram" {
					f, ok := toFloat(v)
					if !ok || f <= 0 {
						return nil, errIllegalArgument("[interval] must be greater than 0 for histogram aggregation [%s]", name)
					}
					src.interval = f
					continue
				}
				inner[k] = v
			case "missing", "script", "value_type":
				return nil, errUnsupported("[%s] in composite sources", k)
			default:
				inner[k] = v
			}
		}
		switch kind {
		case "terms", "histogram":
			src.spec = &aggSpec{name: name, typ: kind}
			for k, v := range inner {
				if k != "field" {
					return nil, errParsing("[%s] unknown field [%s]", kind, k)
				}
				src.spec.field, _ = v.(string)
			}
			if kind == "histogram" && src.interval == 0 {
				return nil, errIllegalArgument("[interval] must be set for histogram aggregation [%s]", name)
			}
		case "date_histogram":
			src.spec = &aggSpec{name: name, typ: "date_histogram"}
			if e := src.spec.parseBody(inner); e != nil {
				return nil, e
			}
			if src.spec.rawFormat != "" {
				df, err := parseDateFormat(src.spec.rawFormat)
				if err != nil {
					return nil, errParsing("[%s] %v", name, err)
				}
				src.spec.format = df
			}
		case "geotile_grid":
			return nil, errUnsupported("geotile_grid composite sources")
		default:
			return nil, errParsing("Unknown value source type [%s] for composite source [%s]", kind, name)
		}
		if src.spec.field == "" {
			return nil, errIllegalArgument("Required one of fields [field, script], but none were specified. ")
		}
		return src, nil
	}
	return nil, nil
}

// compositeKey holds one value per source; nil is a missing bucket.
type compositeKey []*aggKey

// id is a map key for the combination.
func (k compositeKey) id(buf []byte) []byte {
	buf = buf[:0]
	for _, x := range k {
		if x == nil {
			buf = append(buf, 'n', 0)
			continue
		}
		buf = append(buf, byte('0'+x.kind))
		switch x.kind {
		case colStr:
			buf = strconv.AppendInt(buf, int64(len(x.s)), 10)
			buf = append(buf, ':')
			buf = append(buf, x.s...)
		case colFloat:
			buf = strconv.AppendFloat(buf, x.f, 'g', -1, 64)
		default:
			buf = strconv.AppendInt(buf, x.i, 10)
		}
		buf = append(buf, 0)
	}
	return buf
}

func cmpAggKey(x, y *aggKey) int {
	switch {
	case x == nil && y == nil:
		return 0
	case x == nil:
		return -1
	case y == nil:
		return 1
	case x.less(*y):
		return -1
	case y.less(*x):
		return 1
	}
	return 0
}

func (cs *compositeSpec) cmp(a, b compositeKey) int {
	for i, src := range cs.sources {
		c := cmpAggKey(a[i], b[i])
		if src.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

// keysOf lists one document's values for a source (deduplicated).
func (src *compositeSource) keysOf(d docRef, f *fieldMapping, out []*aggKey) []*aggKey {
	out = out[:0]
	src.spec.eachKey(d, f, func(k aggKey) {
		switch src.kind {
		case "date_histogram":
			k.i, _ = src.spec.roundKey(k.i)
		case "histogram":
			x := k.f
			if k.kind == colInt {
				x = float64(k.i)
			}
			k = aggKey{kind: colFloat, f: math.Floor(x/src.interval) * src.interval}
		}
		for _, o := range out {
			if o != nil && *o == k {
				return
			}
		}
		kk := k
		out = append(out, &kk)
	})
	if len(out) == 0 && src.missing {
		out = append(out, nil)
	}
	return out
}

func (src *compositeSource) keyJSON(k *aggKey, f *fieldMapping) any {
	if k == nil {
		return nil
	}
	if src.kind == "date_histogram" && src.spec.format != nil {
		return formatInZone(src.spec.format, k.i, src.spec.tz)
	}
	switch k.kind {
	case colStr:
		return k.s
	case colFloat:
		return k.f
	}
	if f != nil && f.Type == "boolean" {
		return k.i == 1
	}
	return k.i
}

// afterKey converts the after values to keys of the sources' kinds.
func (src *compositeSource) afterKey(v any, f *fieldMapping) (*aggKey, *esError) {
	if v == nil {
		return nil, nil
	}
	kind := colStr
	if f != nil {
		kind = kindOf(f.Type)
	}
	if src.kind == "histogram" {
		kind = colFloat
	}
	s, _ := scalarString(v)
	switch kind {
	case colStr:
		return &aggKey{kind: colStr, s: s}, nil
	case colFloat:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, errIllegalArgument("invalid value for [after.%s]: %v", src.name, v)
		}
		return &aggKey{kind: colFloat, f: x}, nil
	}
	if f != nil && f.Type == "boolean" {
		return &aggKey{kind: colInt, i: map[string]int64{"true": 1}[s]}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return &aggKey{kind: colInt, i: n}, nil
	}
	if f != nil && f.df != nil {
		df := f.df
		if src.spec.format != nil {
			df = src.spec.format
		}
		if ms, ok := df.parse(s, src.spec.tz); ok {
			return &aggKey{kind: colInt, i: ms}, nil
		}
	}
	return nil, errIllegalArgument("invalid value for [after.%s]: %v", src.name, v)
}

// compositeAgg is the composite aggregation ("Composite aggregation"):
// buckets of value combinations in key order, a page of size after the
// after key, and after_key for the next page.
func (a *aggSpec) compositeAgg(docs []docRef, now time.Time) (any, *esError) {
	cs := a.composite
	fields := make([]*fieldMapping, len(cs.sources))
	for i, src := range cs.sources {
		f, e := src.spec.fieldInfo(docs)
		if e != nil {
			return nil, e
		}
		if src.kind != "terms" && f != nil && kindOf(f.Type) == colStr {
			return nil, errIllegalArgument("Field [%s] of type [%s] is not supported for aggregation [%s]", src.spec.field, f.Type, src.kind)
		}
		fields[i] = f
	}
	type cbucket struct {
		key  compositeKey
		docs []docRef
		n    int
	}
	byKey := map[string]*cbucket{}
	keyBufs := make([][]*aggKey, len(cs.sources))
	var idBuf []byte
	for _, d := range docs {
		combos := []compositeKey{{}}
		for i, src := range cs.sources {
			keyBufs[i] = src.keysOf(d, fields[i], keyBufs[i])
			ks := keyBufs[i]
			if len(ks) == 1 {
				for j := range combos {
					combos[j] = append(combos[j], ks[0])
				}
				continue
			}
			var next []compositeKey
			for _, c := range combos {
				for _, k := range ks {
					next = append(next, append(append(compositeKey{}, c...), k))
				}
			}
			combos = next
		}
		for _, c := range combos {
			idBuf = c.id(idBuf)
			b := byKey[string(idBuf)]
			if b == nil {
				b = &cbucket{key: c}
				byKey[string(idBuf)] = b
			}
			b.n++
			if len(a.subs) > 0 {
				b.docs = append(b.docs, d)
			}
		}
	}
	bs := make([]*cbucket, 0, len(byKey))
	for _, b := range byKey {
		bs = append(bs, b)
	}
	sort.Slice(bs, func(i, j int) bool { return cs.cmp(bs[i].key, bs[j].key) < 0 })
	if cs.after != nil {
		after := make(compositeKey, len(cs.sources))
		for i, src := range cs.sources {
			k, e := src.afterKey(cs.after[src.name], fields[i])
			if e != nil {
				return nil, e
			}
			after[i] = k
		}
		i := sort.Search(len(bs), func(i int) bool { return cs.cmp(bs[i].key, after) > 0 })
		bs = bs[i:]
	}
	if len(bs) > cs.size {
		bs = bs[:cs.size]
	}
	out := []any{}
	var lastKey map[string]any
	for _, b := range bs {
		key := map[string]any{}
		for i, src := range cs.sources {
			key[src.name] = src.keyJSON(b.key[i], fields[i])
		}
		o := map[string]any{"key": key, "doc_count": b.n}
		bk := &bucket{docs: b.docs}
		if e := a.subResults(bk, now); e != nil {
			return nil, e
		}
		for k, v := range bk.subs {
			o[k] = v
		}
		out = append(out, o)
		lastKey = key
	}
	if len(byKey) > maxBuckets {
		return nil, newErr(http.StatusServiceUnavailable, "too_many_buckets_exception", "Trying to create too many buckets. Must be less than or equal to: [%d] but was [%d]. This limit can be set by changing the [search.max_buckets] cluster level setting.", maxBuckets, len(byKey))
	}
	res := map[string]any{"buckets": out}
	if lastKey != nil {
		res["after_key"] = lastKey
	}
	if a.meta != nil {
		res["meta"] = a.meta
	}
	return res, nil
}

// zeroTermBuckets adds the terms of the searched indices no matching
// document has (terms with min_doc_count 0).
func (a *aggSpec) zeroTermBuckets(byKey map[aggKey]*bucket) {
	for _, ix := range a.ctx.indices {
		c := ix.cols[a.field]
		if c == nil {
			continue
		}
		live := ix.liveSet()
		c.has.forEach(func(o int32) {
			if !live.has(o) {
				return
			}
			d := docRef{ix: ix, ord: o}
			a.lastIx = nil
			a.eachKey(d, ix.m.lookup(a.field), func(k aggKey) {
				if byKey[k] == nil {
					byKey[k] = &bucket{key: k}
				}
			})
		})
	}
	a.lastIx = nil
}
