package esserver

import (
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

type docRef struct {
	ix  *index
	ord int32
}

type aggOrder struct {
	key  string // "_count", "_key" or a sub-aggregation name
	desc bool
}

type aggSpec struct {
	name        string
	typ         string
	field       string
	size        int
	minDocCount int
	order       []aggOrder
	missing     any
	// date_histogram
	fixed             time.Duration
	calUnit           byte
	tz                *time.Location
	offset            time.Duration
	format            *dateFormat
	rawFormat         string
	boundsMin         any
	boundsMax         any
	subs              []*aggSpec
	meta              map[string]any
	showDocCountError bool // terms: doc_count_error_upper_bound per bucket
	// percentiles, extended_stats
	percents []float64
	keyed    *bool
	sigma    float64
	// top_hits and composite
	hitsReq   *searchReq
	composite *compositeSpec
	ctx       *aggCtx
	// per-request cache of the field's column in the last index seen
	lastIx  *index
	lastCol *column
}

func (a *aggSpec) col(d docRef) *column {
	if d.ix != a.lastIx {
		a.lastIx, a.lastCol = d.ix, d.ix.cols[a.field]
	}
	return a.lastCol
}

var bucketAggs = map[string]bool{"terms": true, "date_histogram": true, "composite": true}
var metricAggs = map[string]bool{"min": true, "max": true, "avg": true, "sum": true, "value_count": true, "cardinality": true,
	"stats": true, "extended_stats": true, "percentiles": true, "top_hits": true}
var unsupportedAggs = map[string]bool{
	"filter": true, "filters": true, "range": true, "date_range": true, "histogram": true,
	"percentile_ranks": true,
	"nested":           true, "reverse_nested": true, "global": true, "missing": true, "significant_terms": true,
	"auto_date_histogram": true, "multi_terms": true, "rare_terms": true, "sampler": true, "scripted_metric": true,
	"geo_bounds": true, "geo_centroid": true, "weighted_avg": true, "median_absolute_deviation": true,
	"bucket_script": true, "bucket_selector": true, "bucket_sort": true, "derivative": true, "cumulative_sum": true,
	"moving_avg": true, "moving_fn": true, "avg_bucket": true, "max_bucket": true, "min_bucket": true,
	"sum_bucket": true, "stats_bucket": true, "serial_diff": true, "adjacency_matrix": true, "ip_range": true,
	"variable_width_histogram": true, "string_stats": true, "boxplot": true, "t_test": true, "top_metrics": true,
	"matrix_stats": true, "geohash_grid": true, "geotile_grid": true, "geo_distance": true, "children": true,
	"parent": true, "diversified_sampler": true, "significant_text": true, "rate": true,
}

func parseAggs(obj map[string]any) ([]*aggSpec, *esError) {
	var out []*aggSpec
	for _, name := range sortedKeys(obj) {
		if strings.ContainsAny(name, "[]>") {
			return nil, errParsing("Invalid aggregation name [%s]. Aggregation names can contain any character except '[', ']', and '>'", name)
		}
		def, ok := obj[name].(map[string]any)
		if !ok {
			return nil, errParsing("Expected [START_OBJECT] under [%s], but got a [VALUE] in [%s]", name, name)
		}
		a := &aggSpec{name: name}
		var body map[string]any
		for _, k := range sortedKeys(def) {
			v := def[k]
			switch {
			case k == "aggs" || k == "aggregations":
				sub, ok := v.(map[string]any)
				if !ok {
					return nil, errParsing("[aggs] must be an object in [%s]", name)
				}
				subs, e := parseAggs(sub)
				if e != nil {
					return nil, e
				}
				a.subs = subs
			case k == "meta":
				a.meta, _ = v.(map[string]any)
			default:
				if a.typ != "" {
					return nil, errParsing("Found two aggregation type definitions in [%s]: [%s] and [%s]", name, a.typ, k)
				}
				if unsupportedAggs[k] {
					return nil, errUnsupported("the [%s] aggregation", k)
				}
				if !bucketAggs[k] && !metricAggs[k] {
					return nil, errParsing("Unknown aggregation type [%s]", k).cause(newErr(400, "named_object_not_found_exception", "[1:1] unknown field [%s]", k))
				}
				a.typ = k
				body, ok = v.(map[string]any)
				if !ok {
					return nil, errParsing("Expected [START_OBJECT] under [%s], but got a [VALUE] in [%s]", k, name)
				}
			}
		}
		if a.typ == "" {
			return nil, errParsing("Missing definition for aggregation [%s]", name)
		}
		if metricAggs[a.typ] && len(a.subs) > 0 {
			return nil, newErr(http.StatusBadRequest, "aggregation_initialization_exception", "Aggregator [%s] of type [%s] cannot accept sub-aggregations", name, a.typ)
		}
		var e *esError
		switch a.typ {
		case "top_hits":
			e = a.parseTopHits(body)
		case "composite":
			e = a.parseComposite(body)
		default:
			e = a.parseBody(body)
		}
		if e != nil {
			return nil, e
		}
		out = append(out, a)
	}
	return out, nil
}

var calendarUnits = map[string]byte{"minute": 'm', "1m": 'm', "hour": 'h', "1h": 'h', "day": 'd', "1d": 'd',
	"week": 'w', "1w": 'w', "month": 'M', "1M": 'M', "quarter": 'q', "1q": 'q', "year": 'y', "1y": 'y'}

func parseFixedInterval(s string) (time.Duration, bool) {
	for _, u := range []struct {
		suf string
		d   time.Duration
	}{{"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour}} {
		if strings.HasSuffix(s, u.suf) {
			n, err := strconv.ParseInt(strings.TrimSuffix(s, u.suf), 10, 64)
			if err == nil && n > 0 {
				return time.Duration(n) * u.d, true
			}
			if u.suf == "ms" {
				return 0, false
			}
		}
	}
	return 0, false
}

func (a *aggSpec) parseBody(body map[string]any) *esError {
	a.size, a.minDocCount, a.sigma = 10, 1, 2
	if a.typ == "percentiles" {
		a.percents = []float64{1, 5, 25, 50, 75, 95, 99}
	}
	if a.typ == "date_histogram" {
		a.minDocCount = 0
		a.order = []aggOrder{{key: "_key"}}
		a.tz = time.UTC
	}
	var intervalSet []string
	for _, k := range sortedKeys(body) {
		v := body[k]
		s, _ := v.(string)
		switch k {
		case "field":
			a.field = s
		case "script":
			return errUnsupported("scripts in aggregations")
		case "missing":
			a.missing = v
		case "format":
			a.rawFormat = s
		case "size":
			if a.typ != "terms" {
				return errParsing("[%s] unknown field [size]", a.typ)
			}
			n, ok := toInt(v)
			if !ok || n <= 0 {
				return errIllegalArgument("[size] must be greater than 0. Found [%v] in [%s]", v, a.name)
			}
			a.size = int(n)
		case "shard_size", "execution_hint", "collect_mode", "show_term_doc_count_error", "precision_threshold":
			// counts are exact in dev-es: these only tune ES's approximations
			if (k == "precision_threshold") != (a.typ == "cardinality") {
				return errParsing("[%s] unknown field [%s]", a.typ, k)
			}
			if k == "show_term_doc_count_error" {
				a.showDocCountError, _ = v.(bool)
			}
		case "min_doc_count":
			n, ok := toInt(v)
			if !ok || n < 0 {
				return errIllegalArgument("[min_doc_count] must be greater than or equal to 0. Found [%v] in [%s]", v, a.name)
			}
			a.minDocCount = int(n)
		case "percents":
			if a.typ != "percentiles" {
				return errParsing("[%s] unknown field [%s]", a.typ, k)
			}
			arr, ok := v.([]any)
			if !ok || len(arr) == 0 {
				return errIllegalArgument("[percents] must not be empty: [%s]", a.name)
			}
			a.percents = nil
			for _, x := range arr {
				f, ok := toFloat(x)
				if !ok || f < 0 || f > 100 {
					return errIllegalArgument("percent must be in [0,100], got [%v]: [%s]", x, a.name)
				}
				a.percents = append(a.percents, f)
			}
		case "sigma":
			if a.typ != "extended_stats" {
				return errParsing("[%s] unknown field [%s]", a.typ, k)
			}
			f, ok := toFloat(v)
			if !ok || f < 0 {
				return errIllegalArgument("[sigma] must be greater than or equal to 0. Found [%v] in [%s]", v, a.name)
			}
			a.sigma = f
		case "tdigest", "hdr":
			return errUnsupported("[%s] in percentiles (dev-es computes exact percentiles)", k)
		case "order":
			var list []any
			switch x := v.(type) {
			case []any:
				list = x
			case map[string]any:
				list = []any{x}
			default:
				return errParsing("[%s] order must be an object or array", a.name)
			}
			a.order = nil
			for _, e := range list {
				om, _ := e.(map[string]any)
				for ok, ov := range om {
					dir, _ := ov.(string)
					if dir != "asc" && dir != "desc" {
						return errIllegalArgument("Unknown order direction [%v]", ov)
					}
					if ok == "_term" {
						ok = "_key"
					}
					a.order = append(a.order, aggOrder{key: ok, desc: dir == "desc"})
				}
			}
		case "fixed_interval", "calendar_interval", "interval":
			if a.typ != "date_histogram" {
				return errParsing("[%s] unknown field [%s]", a.typ, k)
			}
			intervalSet = append(intervalSet, k)
			switch k {
			case "calendar_interval":
				u, ok := calendarUnits[s]
				if !ok {
					return errIllegalArgument("The supplied interval [%s] could not be parsed as a calendar interval.", s)
				}
				a.calUnit = u
			case "fixed_interval":
				d, ok := parseFixedInterval(s)
				if !ok {
					return errIllegalArgument("failed to parse setting [date_histogram.fixedInterval] with value [%s] as a time value: unit is missing or unrecognized", s)
				}
				a.fixed = d
			default:
				if u, ok := calendarUnits[s]; ok {
					a.calUnit = u
				} else if d, ok := parseFixedInterval(s); ok {
					a.fixed = d
				} else {
					return errIllegalArgument("failed to parse setting [date_histogram.interval] with value [%v] as a time value", v)
				}
			}
		case "time_zone":
			loc, err := parseTimeZone(s)
			if err != nil {
				return errIllegalArgument("%v", err)
			}
			a.tz = loc
		case "offset":
			neg := strings.HasPrefix(s, "-")
			d, err := parseTimeValue(strings.TrimLeft(s, "+-"))
			if err != nil {
				return errIllegalArgument("failed to parse offset [%s]", s)
			}
			if neg {
				d = -d
			}
			a.offset = d
		case "extended_bounds":
			eb, ok := v.(map[string]any)
			if !ok {
				return errParsing("[extended_bounds] must be an object")
			}
			a.boundsMin, a.boundsMax = eb["min"], eb["max"]
		case "keyed":
			b, ok := v.(bool)
			if !ok {
				return errParsing("[keyed] must be a boolean")
			}
			if a.typ == "percentiles" {
				a.keyed = &b
			} else if b {
				return errUnsupported("keyed bucket responses")
			}
		default:
			if k == "include" || k == "exclude" || k == "hard_bounds" || k == "value_type" {
				return errUnsupported("[%s] in %s aggregations", k, a.typ)
			}
			return errParsing("[%s] unknown field [%s]", a.typ, k)
		}
	}
	if a.typ == "date_histogram" {
		if len(intervalSet) == 0 {
			return errIllegalArgument("Invalid interval specified, must be non-null and non-empty")
		}
		if len(intervalSet) > 1 {
			return errIllegalArgument("Cannot use [%s] with [%s] configuration option.", intervalSet[1], intervalSet[0])
		}
	}
	if a.field == "" {
		return errIllegalArgument("Required one of fields [field, script], but none were specified. ").with("aggregation", a.name)
	}
	if a.typ == "terms" && a.order == nil {
		a.order = []aggOrder{{key: "_count", desc: true}}
	}
	for _, o := range a.order {
		if o.key == "_count" || o.key == "_key" {
			continue
		}
		found := false
		for _, s := range a.subs {
			if s.name == o.key && metricAggs[s.typ] {
				found = true
			}
		}
		if !found {
			return errIllegalArgument("Invalid aggregator order path [%s]. The provided aggregation [%s] either does not exist, or is a pipeline aggregation and cannot be used to sort the buckets.", o.key, o.key)
		}
	}
	return nil
}

// fieldInfo resolves the aggregation field across the searched indices.
func (a *aggSpec) fieldInfo(docs []docRef) (*fieldMapping, *esError) {
	seen := map[*index]bool{}
	var found *fieldMapping
	for _, d := range docs {
		if seen[d.ix] {
			continue
		}
		seen[d.ix] = true
		f := d.ix.m.lookup(a.field)
		if f == nil {
			continue
		}
		if f.Type == "text" {
			return nil, errIllegalArgument("Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. Alternatively, set fielddata=true on [%s] in order to load field data by uninverting the inverted index. Note that this can use significant memory.", a.field)
		}
		if f.Type == "object" {
			return nil, errIllegalArgument("Field [%s] of type [object] is not supported for aggregation [%s]", a.field, a.typ)
		}
		if found != nil && kindOf(found.Type) != kindOf(f.Type) {
			return nil, errIllegalArgument("Field [%s] has different types across indices ([%s], [%s]); dev-es cannot merge them", a.field, found.Type, f.Type)
		}
		if found == nil {
			found = f
		}
	}
	return found, nil
}

// aggKey is a bucket key: int (long, date, boolean), float or string.
type aggKey struct {
	kind colKind
	i    int64
	f    float64
	s    string
}

func (k aggKey) less(o aggKey) bool {
	switch k.kind {
	case colStr:
		return k.s < o.s
	case colFloat:
		return k.f < o.f
	}
	return k.i < o.i
}

func (a *aggSpec) compute(docs []docRef, now time.Time) (any, *esError) {
	switch a.typ {
	case "top_hits":
		return a.topHits(docs)
	case "composite":
		return a.compositeAgg(docs, now)
	}
	f, e := a.fieldInfo(docs)
	if e != nil {
		return nil, e
	}
	if a.rawFormat != "" && a.format == nil {
		if a.typ != "date_histogram" && (f == nil || f.df == nil) {
			return nil, errUnsupported("the format parameter on [%s] aggregations of non-date fields", a.typ)
		}
		df, err := parseDateFormat(a.rawFormat)
		if err != nil {
			return nil, errParsing("[%s] %v", a.name, err)
		}
		a.format = df
	}
	switch a.typ {
	case "terms":
		return a.terms(docs, f, now)
	case "date_histogram":
		return a.dateHistogram(docs, f, now)
	}
	return a.metric(docs, f)
}

// eachKey calls fn with every distinct value of the field in one document.
func (a *aggSpec) eachKey(d docRef, f *fieldMapping, fn func(aggKey)) {
	c := a.col(d)
	if c == nil || !c.has.has(d.ord) {
		if a.missing != nil && f != nil {
			switch kindOf(f.Type) {
			case colStr:
				s, _ := scalarString(a.missing)
				fn(aggKey{kind: colStr, s: s})
			case colFloat:
				x, _ := toFloat(a.missing)
				fn(aggKey{kind: colFloat, f: x})
			default:
				if f.df != nil {
					if ms, ok := f.df.parse(a.missing, time.UTC); ok {
						fn(aggKey{kind: colInt, i: ms})
					}
				} else if n, ok := toInt(a.missing); ok {
					fn(aggKey{kind: colInt, i: n})
				}
			}
		}
		return
	}
	if !c.hasMulti(d.ord) {
		switch c.kind {
		case colStr:
			fn(aggKey{kind: colStr, s: c.dict[c.strs[d.ord]]})
		case colFloat:
			fn(aggKey{kind: colFloat, f: c.floats[d.ord]})
		default:
			fn(aggKey{kind: colInt, i: c.ints[d.ord]})
		}
		return
	}
	seen := map[aggKey]bool{}
	emit := func(k aggKey) {
		if !seen[k] {
			seen[k] = true
			fn(k)
		}
	}
	switch c.kind {
	case colStr:
		c.eachTerm(d.ord, func(t uint32) { emit(aggKey{kind: colStr, s: c.dict[t]}) })
	case colFloat:
		c.eachFloat(d.ord, func(x float64) { emit(aggKey{kind: colFloat, f: x}) })
	default:
		c.eachInt(d.ord, func(x int64) { emit(aggKey{kind: colInt, i: x}) })
	}
}

func (c *column) hasMulti(ord int32) bool {
	switch c.kind {
	case colStr:
		return len(c.multiS[ord]) > 0
	case colFloat:
		return len(c.multiF[ord]) > 0
	}
	return len(c.multiI[ord]) > 0
}

type bucket struct {
	key  aggKey
	n    int      // doc_count
	docs []docRef // kept only when there are sub-aggregations
	subs map[string]any
}

func (a *aggSpec) addDoc(b *bucket, d docRef) {
	b.n++
	if len(a.subs) > 0 {
		b.docs = append(b.docs, d)
	}
}

func (a *aggSpec) keyJSON(b *bucket, f *fieldMapping, out map[string]any) {
	switch b.key.kind {
	case colStr:
		out["key"] = b.key.s
	case colFloat:
		out["key"] = b.key.f
	default:
		out["key"] = b.key.i
		if f != nil && f.Type == "boolean" {
			out["key_as_string"] = strconv.FormatBool(b.key.i == 1)
		} else if a.typ == "date_histogram" || (f != nil && f.df != nil) {
			df := a.format
			if df == nil && f != nil && f.df != nil {
				df = f.df
			}
			if df == nil {
				df, _ = parseDateFormat(defaultDateFormat)
			}
			out["key_as_string"] = formatInZone(df, b.key.i, a.tz)
		}
	}
}

func formatInZone(df *dateFormat, ms int64, loc *time.Location) string {
	if loc == nil || loc == time.UTC || df.parsers[0].kind != dateISO {
		return df.format(ms)
	}
	t := time.UnixMilli(ms).In(loc)
	return t.Format("2006-01-02T15:04:05.000Z07:00")
}

func (a *aggSpec) subResults(b *bucket, now time.Time) *esError {
	b.subs = map[string]any{}
	for _, s := range a.subs {
		r, e := s.compute(b.docs, now)
		if e != nil {
			return e
		}
		b.subs[s.name] = r
	}
	return nil
}

func metricValue(v any) float64 {
	m, _ := v.(map[string]any)
	switch x := m["value"].(type) {
	case float64:
		return x
	case int:
		return float64(x)
	case int64:
		return float64(x)
	}
	return math.Inf(-1) // null sorts first ascending
}

func (a *aggSpec) sortBuckets(bs []*bucket) {
	sort.SliceStable(bs, func(i, j int) bool {
		for _, o := range a.order {
			var c int
			switch o.key {
			case "_count":
				c = bs[i].n - bs[j].n
			case "_key":
				if bs[i].key.less(bs[j].key) {
					c = -1
				} else if bs[j].key.less(bs[i].key) {
					c = 1
				}
			default:
				x, y := metricValue(bs[i].subs[o.key]), metricValue(bs[j].subs[o.key])
				if x < y {
					c = -1
				} else if x > y {
					c = 1
				}
			}
			if o.desc {
				c = -c
			}
			if c != 0 {
				return c < 0
			}
		}
		return bs[i].key.less(bs[j].key) // tie-break: key ascending
	})
}

func (a *aggSpec) terms(docs []docRef, f *fieldMapping, now time.Time) (any, *esError) {
	byKey := map[aggKey]*bucket{}
	if len(a.subs) == 0 && a.missing == nil && f != nil && kindOf(f.Type) == colStr {
		a.countKeywords(docs, byKey)
		docs = nil
	}
	for _, d := range docs {
		a.eachKey(d, f, func(k aggKey) {
			b := byKey[k]
			if b == nil {
				b = &bucket{key: k}
				byKey[k] = b
			}
			a.addDoc(b, d)
		})
	}
	if a.minDocCount == 0 {
		a.zeroTermBuckets(byKey)
	}
	var bs []*bucket
	for _, b := range byKey {
		if b.n >= a.minDocCount {
			bs = append(bs, b)
		}
	}
	needSubsFirst := false
	for _, o := range a.order {
		if o.key != "_count" && o.key != "_key" {
			needSubsFirst = true
		}
	}
	if needSubsFirst {
		for _, b := range bs {
			if e := a.subResults(b, now); e != nil {
				return nil, e
			}
		}
	}
	a.sortBuckets(bs)
	other := 0
	if len(bs) > a.size {
		for _, b := range bs[a.size:] {
			other += b.n
		}
		bs = bs[:a.size]
	}
	out := []any{}
	for _, b := range bs {
		if !needSubsFirst {
			if e := a.subResults(b, now); e != nil {
				return nil, e
			}
		}
		o := map[string]any{"doc_count": b.n}
		if a.showDocCountError {
			o["doc_count_error_upper_bound"] = 0
		}
		a.keyJSON(b, f, o)
		for k, v := range b.subs {
			o[k] = v
		}
		out = append(out, o)
	}
	res := map[string]any{"doc_count_error_upper_bound": 0, "sum_other_doc_count": other, "buckets": out}
	if a.meta != nil {
		res["meta"] = a.meta
	}
	return res, nil
}

// countKeywords is the terms fast path for keyword fields without
// sub-aggregations: count dictionary ordinals per index, then merge.
func (a *aggSpec) countKeywords(docs []docRef, byKey map[aggKey]*bucket) {
	for start := 0; start < len(docs); {
		ix := docs[start].ix
		end := start
		for end < len(docs) && docs[end].ix == ix {
			end++
		}
		c := ix.cols[a.field]
		if c != nil {
			counts := make([]int, len(c.dict))
			for _, d := range docs[start:end] {
				if !c.has.has(d.ord) {
					continue
				}
				if !c.hasMulti(d.ord) {
					counts[c.strs[d.ord]]++
					continue
				}
				seen := map[uint32]bool{}
				c.eachTerm(d.ord, func(t uint32) {
					if !seen[t] {
						seen[t] = true
						counts[t]++
					}
				})
			}
			for t, n := range counts {
				if n == 0 {
					continue
				}
				k := aggKey{kind: colStr, s: c.dict[t]}
				b := byKey[k]
				if b == nil {
					b = &bucket{key: k}
					byKey[k] = b
				}
				b.n += n
			}
		}
		start = end
	}
}

const maxBuckets = 65536

func (a *aggSpec) roundKey(ms int64) (start, next int64) {
	if a.calUnit != 0 {
		t := time.UnixMilli(ms - a.offset.Milliseconds()).In(a.tz)
		s, n, _ := roundUnit(t, a.calUnit)
		return s.UnixMilli() + a.offset.Milliseconds(), n.UnixMilli() + a.offset.Milliseconds()
	}
	iv := a.fixed.Milliseconds()
	_, off := time.UnixMilli(ms).In(a.tz).Zone()
	local := ms + int64(off)*1000 - a.offset.Milliseconds()
	q := local / iv
	if local%iv < 0 {
		q--
	}
	s := q*iv - int64(off)*1000 + a.offset.Milliseconds()
	return s, s + iv
}

func (a *aggSpec) dateHistogram(docs []docRef, f *fieldMapping, now time.Time) (any, *esError) {
	if f != nil && kindOf(f.Type) == colStr {
		return nil, errIllegalArgument("Field [%s] of type [%s] is not supported for aggregation [date_histogram]", a.field, f.Type)
	}
	byKey := map[int64]*bucket{}
	var missingMs *int64
	if a.missing != nil {
		ms, ok := f.dfOrDefault().parse(a.missing, time.UTC)
		if !ok {
			if n, isInt := toInt(a.missing); isInt {
				ms, ok = n, true
			}
		}
		if !ok {
			return nil, errIllegalArgument("failed to parse [missing] value [%v] of aggregation [%s]", a.missing, a.name)
		}
		missingMs = &ms
	}
	for _, d := range docs {
		c := a.col(d)
		if c == nil || !c.has.has(d.ord) {
			if missingMs != nil {
				k, _ := a.roundKey(*missingMs)
				b := byKey[k]
				if b == nil {
					b = &bucket{key: aggKey{kind: colInt, i: k}}
					byKey[k] = b
				}
				a.addDoc(b, d)
			}
			continue
		}
		var seen map[int64]bool
		if c.hasMulti(d.ord) {
			seen = map[int64]bool{}
		}
		c.eachNum(d.ord, func(x float64) {
			k, _ := a.roundKey(int64(x))
			if seen != nil {
				if seen[k] {
					return
				}
				seen[k] = true
			}
			b := byKey[k]
			if b == nil {
				b = &bucket{key: aggKey{kind: colInt, i: k}}
				byKey[k] = b
			}
			a.addDoc(b, d)
		})
	}
	if len(byKey) > maxBuckets {
		return nil, newErr(http.StatusServiceUnavailable, "too_many_buckets_exception", "Trying to create too many buckets. Must be less than or equal to: [%d] but was [%d]. This limit can be set by changing the [search.max_buckets] cluster level setting.", maxBuckets, len(byKey))
	}
	if a.minDocCount == 0 && (len(byKey) > 0 || a.boundsMin != nil) {
		lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
		for k := range byKey {
			lo, hi = min(lo, k), max(hi, k)
		}
		df := f.dfOrDefault()
		for _, bnd := range []any{a.boundsMin, a.boundsMax} {
			if bnd == nil {
				continue
			}
			var ms int64
			if s, ok := bnd.(string); ok {
				v, err := parseDateMath(s, df, a.tz, now, false)
				if err != nil {
					return nil, errParsing("[extended_bounds] %v", err)
				}
				ms = v
			} else if n, ok := toInt(bnd); ok {
				ms = n
			}
			k, _ := a.roundKey(ms)
			lo, hi = min(lo, k), max(hi, k)
		}
		n := 0
		for k := lo; k <= hi; {
			if byKey[k] == nil {
				byKey[k] = &bucket{key: aggKey{kind: colInt, i: k}}
			}
			_, k = a.roundKey(k)
			if n++; n > maxBuckets {
				return nil, newErr(http.StatusServiceUnavailable, "too_many_buckets_exception", "Trying to create too many buckets. Must be less than or equal to: [%d] but was [%d]. This limit can be set by changing the [search.max_buckets] cluster level setting.", maxBuckets, n)
			}
		}
	}
	var bs []*bucket
	for _, b := range byKey {
		if b.n >= a.minDocCount {
			bs = append(bs, b)
		}
	}
	for _, b := range bs {
		if e := a.subResults(b, now); e != nil {
			return nil, e
		}
	}
	a.sortBuckets(bs)
	out := []any{}
	for _, b := range bs {
		o := map[string]any{"doc_count": b.n}
		a.keyJSON(b, f, o)
		for k, v := range b.subs {
			o[k] = v
		}
		out = append(out, o)
	}
	res := map[string]any{"buckets": out}
	if a.meta != nil {
		res["meta"] = a.meta
	}
	return res, nil
}

func (f *fieldMapping) dfOrDefault() *dateFormat {
	if f != nil && f.df != nil {
		return f.df
	}
	df, _ := parseDateFormat(defaultDateFormat)
	return df
}

func (a *aggSpec) metric(docs []docRef, f *fieldMapping) (any, *esError) {
	res := map[string]any{}
	if a.meta != nil {
		res["meta"] = a.meta
	}
	if f != nil && kindOf(f.Type) == colStr && a.typ != "value_count" && a.typ != "cardinality" {
		return nil, errIllegalArgument("Field [%s] of type [%s] is not supported for aggregation [%s]", a.field, f.Type, a.typ)
	}
	switch a.typ {
	case "value_count", "cardinality":
		count := 0
		distinct := map[aggKey]bool{}
		for _, d := range docs {
			c := a.col(d)
			if c == nil || !c.has.has(d.ord) {
				if a.missing != nil {
					a.eachKey(d, f, func(k aggKey) { count++; distinct[k] = true })
				}
				continue
			}
			switch c.kind {
			case colStr:
				c.eachTerm(d.ord, func(t uint32) { count++; distinct[aggKey{kind: colStr, s: c.dict[t]}] = true })
			case colFloat:
				c.eachFloat(d.ord, func(x float64) { count++; distinct[aggKey{kind: colFloat, f: x}] = true })
			default:
				c.eachInt(d.ord, func(x int64) { count++; distinct[aggKey{kind: colInt, i: x}] = true })
			}
		}
		if a.typ == "value_count" {
			res["value"] = count
		} else {
			res["value"] = len(distinct)
		}
		return res, nil
	}
	n := 0
	var sum, sumSq float64
	var all []float64 // percentiles only
	lo, hi := math.Inf(1), math.Inf(-1)
	add := func(x float64) {
		n++
		sum += x
		sumSq += x * x
		lo, hi = math.Min(lo, x), math.Max(hi, x)
		if a.typ == "percentiles" {
			all = append(all, x)
		}
	}
	for _, d := range docs {
		c := a.col(d)
		if c == nil || !c.has.has(d.ord) {
			if a.missing != nil {
				if x, ok := toFloat(a.missing); ok {
					add(x)
				}
			}
			continue
		}
		c.eachNum(d.ord, add)
	}
	switch a.typ {
	case "stats", "extended_stats":
		return a.statsResult(res, f, n, sum, sumSq, lo, hi), nil
	case "percentiles":
		return a.percentilesResult(res, f, all), nil
	}
	var v any
	switch a.typ {
	case "sum":
		v = sum
	case "avg":
		if n > 0 {
			v = sum / float64(n)
		}
	case "min":
		if n > 0 {
			v = lo
		}
	case "max":
		if n > 0 {
			v = hi
		}
	}
	res["value"] = v
	if x, ok := v.(float64); ok && f != nil && f.df != nil {
		df := a.format
		if df == nil {
			df = f.df
		}
		res["value_as_string"] = df.format(int64(x))
	}
	return res, nil
}
