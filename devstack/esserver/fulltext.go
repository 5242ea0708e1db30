package esserver

import (
	"strconv"
	"strings"
	"unicode"
)

// Full-text queries ("match", "multi_match", "query_string", URI search
// ?q=) over dev-es's fields. keyword fields match the whole string (no
// normalizer), numeric, date and boolean fields match the parsed value, and
// text fields match the tokens of the standard-analyzer approximation
// (split on non letters/digits, lowercase): a document matches when any
// (operator or) or every (operator and) query token is among its tokens.
// Phrases, fuzziness, regular expressions and custom analyzers on text
// fields answer 400.

// matchQ matches text against one field, or against several fields (the
// fields of multi_match or a query_string default field), any of which
// may match.
type matchQ struct {
	fields   []string // may hold wildcards
	text     string
	and      bool // operator and
	msm      int  // minimum_should_match (0: one token)
	lenient  bool // values that do not parse for a field's type match nothing
	zeroAll  bool // zero_terms_query all
	phrase   bool // a quoted query_string term
	wildcard bool // text holds * or ? (query_string)
}

// expandFields resolves field names and patterns against an index; a
// pattern implies lenient, as in Elasticsearch.
func expandFields(ix *index, fields []string) (paths []string, lenient bool) {
	for _, f := range fields {
		if !strings.ContainsAny(f, "*?") {
			paths = append(paths, f)
			continue
		}
		lenient = true
		all := map[string]*fieldMapping{}
		ix.m.leafPaths("", ix.m.Root, all)
		for p := range all {
			if globMatch(f, p) {
				paths = append(paths, p)
			}
		}
	}
	return paths, lenient
}

func (q matchQ) eval(ec *evalCtx) (bitset, *esError) {
	out := ec.empty()
	paths, implied := expandFields(ec.ix, q.fields)
	for _, p := range paths {
		b, e := q.evalField(ec, p, q.lenient || implied)
		if e != nil {
			return nil, e
		}
		out.or(b)
	}
	return out, nil
}

func (q matchQ) evalField(ec *evalCtx, field string, lenient bool) (bitset, *esError) {
	f := ec.ix.m.lookup(field)
	if f == nil || f.Type == "object" {
		return ec.empty(), nil
	}
	if q.wildcard {
		if f.Type != "keyword" {
			if lenient {
				return ec.empty(), nil
			}
			return nil, errUnsupported("wildcard terms on [%s] fields (only keyword)", f.Type)
		}
		return globTerms(ec, field, q.text), nil
	}
	if f.Type != "text" {
		if q.phrase || f.Type == "keyword" {
			return matchTerms(ec, field, []any{q.text})
		}
		b, e := matchTerms(ec, field, []any{q.text})
		if e != nil && lenient {
			return ec.empty(), nil
		}
		return b, e
	}
	if q.phrase {
		return nil, errUnsupported("phrase queries on text fields ([%s])", field)
	}
	toks := analyzeStandard(q.text)
	if len(toks) == 0 {
		if q.zeroAll {
			return ec.all(), nil
		}
		return ec.empty(), nil
	}
	need := 1
	switch {
	case q.and:
		need = len(toks)
	case q.msm > 0:
		need = min(q.msm, len(toks))
	case q.msm < 0:
		need = max(1, len(toks)+q.msm)
	}
	counts := map[int32]int{}
	for _, t := range dedupe(toks) {
		b, e := matchTerms(ec, field, []any{t})
		if e != nil {
			return nil, e
		}
		b.forEach(func(o int32) { counts[o]++ })
	}
	out := ec.empty()
	for o, n := range counts {
		if n >= need {
			out.set(o)
		}
	}
	return out, nil
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// globTerms matches keyword terms against a pattern with * and ?.
func globTerms(ec *evalCtx, field, pattern string) bitset {
	b := ec.empty()
	c := ec.ix.cols[field]
	if c == nil || c.kind != colStr {
		return b
	}
	for t, term := range c.dict {
		if wildcardMatch(pattern, term) {
			for _, o := range c.postings[t] {
				b.set(o)
			}
		}
	}
	b.and(ec.live)
	return b
}

// wildcardMatch is Lucene's wildcard: * any run, ? one character.
func wildcardMatch(p, s string) bool {
	pr, sr := []rune(p), []rune(s)
	var match func(i, j int) bool
	match = func(i, j int) bool {
		for i < len(pr) {
			switch pr[i] {
			case '*':
				for k := j; k <= len(sr); k++ {
					if match(i+1, k) {
						return true
					}
				}
				return false
			case '?':
				if j >= len(sr) {
					return false
				}
			default:
				if j >= len(sr) || sr[j] != pr[i] {
					return false
				}
			}
			i++
			j++
		}
		return j == len(sr)
	}
	return match(0, 0)
}

// parseMatch parses {"match":{"field":"text"}} and {"match":{"field":{"query":...}}}.
func parseMatch(body any) (query, *esError) {
	field, v, e := fieldAndBody("match", body)
	if e != nil {
		return nil, e
	}
	q := matchQ{fields: []string{field}}
	obj, isObj := v.(map[string]any)
	if !isObj {
		obj = map[string]any{"query": v}
	}
	return q.options("match", obj)
}

// options reads the options match and multi_match share.
func (q matchQ) options(name string, obj map[string]any) (query, *esError) {
	hasQuery := false
	for k, v := range obj {
		switch k {
		case "query":
			s, ok := scalarString(v)
			if !ok {
				return nil, errParsing("[%s] unknown token [%s] after [query]", name, tokenName(v))
			}
			q.text, hasQuery = s, true
		case "operator":
			s, _ := v.(string)
			switch strings.ToLower(s) {
			case "or":
			case "and":
				q.and = true
			default:
				return nil, errIllegalArgument("No enum constant org.elasticsearch.index.query.Operator.%s", strings.ToUpper(s))
			}
		case "lenient":
			b, ok := v.(bool)
			if !ok {
				return nil, errParsing("[%s] lenient must be a boolean", name)
			}
			q.lenient = b
		case "minimum_should_match":
			n, ok := toInt(v)
			if !ok {
				return nil, errUnsupported("minimum_should_match [%v] (only integers)", v)
			}
			q.msm = int(n)
		case "zero_terms_query":
			s, _ := v.(string)
			switch strings.ToLower(s) {
			case "none":
			case "all":
				q.zeroAll = true
			default:
				return nil, errParsing("Unsupported zero_terms_query value [%s]", s)
			}
		case "analyzer":
			if s, _ := v.(string); s != "standard" {
				return nil, errUnsupported("the analyzer [%v] (only standard)", v)
			}
		case "fuzziness", "cutoff_frequency":
			return nil, errUnsupported("[%s] in %s queries", k, name)
		case "boost", "_name", "auto_generate_synonyms_phrase_query", "prefix_length", "max_expansions", "fuzzy_transpositions":
		case "fields", "type", "tie_breaker":
			if name != "multi_match" {
				return nil, errParsing("[%s] query does not support [%s]", name, k)
			}
		default:
			return nil, errParsing("[%s] query does not support [%s]", name, k)
		}
	}
	if !hasQuery {
		return nil, errParsing("[%s] requires query value", name)
	}
	return q, nil
}

// parseMultiMatch parses multi_match of type best_fields or most_fields
// (the same set of matching documents; scores are constant in dev-es).
func parseMultiMatch(body any) (query, *esError) {
	obj, ok := body.(map[string]any)
	if !ok {
		return nil, errParsing("[multi_match] query malformed, no start_object after query name")
	}
	q := matchQ{fields: []string{"*"}}
	if v, ok := obj["fields"]; ok {
		fs, ok := toPatterns(v)
		if !ok {
			return nil, errParsing("[multi_match] query does not support [fields] of %T", v)
		}
		q.fields = stripBoosts(fs)
	}
	if t, ok := obj["type"]; ok {
		s, _ := t.(string)
		switch s {
		case "best_fields", "most_fields":
		case "cross_fields", "phrase", "phrase_prefix", "bool_prefix":
			return nil, errUnsupported("multi_match type [%s]", s)
		default:
			return nil, errParsing("failed to parse [multi_match] query type [%s]. unknown type.", s)
		}
	}
	return q.options("multi_match", obj)
}

func stripBoosts(fs []string) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		if j := strings.IndexByte(f, '^'); j >= 0 {
			f = f[:j]
		}
		out[i] = f
	}
	return out
}

// parseQueryStringQuery parses {"query_string":{...}}.
func parseQueryStringQuery(body any) (query, *esError) {
	obj, ok := body.(map[string]any)
	if !ok {
		return nil, errParsing("[query_string] query malformed, no start_object after query name")
	}
	text, op := "", "OR"
	var fields []string
	has := false
	lenient := false
	for k, v := range obj {
		switch k {
		case "query":
			text, has = v.(string)
		case "default_field":
			s, _ := v.(string)
			fields = []string{s}
		case "fields":
			fs, ok := toPatterns(v)
			if !ok {
				return nil, errParsing("[query_string] fields must be an array of strings")
			}
			fields = stripBoosts(fs)
		case "default_operator":
			op, _ = v.(string)
		case "lenient":
			lenient, _ = v.(bool)
		case "analyzer", "quote_analyzer":
			if s, _ := v.(string); s != "standard" {
				return nil, errUnsupported("the analyzer [%v] (only standard)", v)
			}
		case "fuzziness", "fuzzy_max_expansions", "fuzzy_prefix_length", "fuzzy_transpositions", "quote_field_suffix", "type", "tie_breaker", "rewrite", "time_zone", "minimum_should_match", "phrase_slop", "auto_generate_synonyms_phrase_query", "max_determinized_states", "enable_position_increments", "analyze_wildcard":
			return nil, errUnsupported("[%s] in query_string queries", k)
		case "boost", "_name", "allow_leading_wildcard", "escape":
		default:
			return nil, errParsing("[query_string] query does not support [%s]", k)
		}
	}
	if !has {
		return nil, errParsing("[query_string] must be provided with a [query]")
	}
	q, e := parseQueryString(text, fields, op)
	if e != nil {
		return nil, e
	}
	if lenient {
		q = lenientQ{q}
	}
	return q, nil
}

// lenientQ marks every field clause below it lenient.
type lenientQ struct{ q query }

func (l lenientQ) eval(ec *evalCtx) (bitset, *esError) { return setLenient(l.q).eval(ec) }

func setLenient(q query) query {
	switch x := q.(type) {
	case matchQ:
		x.lenient = true
		return x
	case boolQ:
		for _, list := range []*[]query{&x.must, &x.should, &x.mustNot, &x.filter} {
			n := make([]query, len(*list))
			for i, c := range *list {
				n[i] = setLenient(c)
			}
			*list = n
		}
		return x
	}
	return q
}

// ---- Lucene query string syntax ----

type qsTok struct {
	kind  byte // 'w' word, 'p' phrase, '(' ')', ':', 'A' AND, 'O' OR, 'N' NOT, '+', '-', 'r' range
	text  string
	incLo bool
	incHi bool
	lo    string
	hi    string
}

// lexQueryString splits a Lucene query string into tokens.
func lexQueryString(s string) ([]qsTok, *esError) {
	var toks []qsTok
	rs := []rune(s)
	bad := func(format string, args ...any) *esError {
		return errParsing("Failed to parse query [%s]", s).cause(newErr(400, "parse_exception", format, args...))
	}
	for i := 0; i < len(rs); {
		c := rs[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '(' || c == ')' || c == ':' || c == '+' || c == '-' || c == '!':
			k := byte(c)
			if c == '!' {
				k = 'N'
			}
			toks = append(toks, qsTok{kind: k})
			i++
		case c == '&' && i+1 < len(rs) && rs[i+1] == '&':
			toks = append(toks, qsTok{kind: 'A'})
			i += 2
		case c == '|' && i+1 < len(rs) && rs[i+1] == '|':
			toks = append(toks, qsTok{kind: 'O'})
			i += 2
		case c == '"':
			j := i + 1
			var b strings.Builder
			for j < len(rs) && rs[j] != '"' {
				if rs[j] == '\\' && j+1 < len(rs) {
					j++
				}
				b.WriteRune(rs[j])
				j++
			}
			if j >= len(rs) {
				return nil, bad("Lexical error: unterminated phrase")
			}
			toks = append(toks, qsTok{kind: 'p', text: b.String()})
			i = j + 1
		case c == '[' || c == '{':
			j := i + 1
			for j < len(rs) && rs[j] != ']' && rs[j] != '}' {
				j++
			}
			if j >= len(rs) {
				return nil, bad("Encountered unterminated range")
			}
			lo, hi, ok := strings.Cut(strings.TrimSpace(string(rs[i+1:j])), " TO ")
			if !ok {
				return nil, bad("Encountered a range without TO")
			}
			toks = append(toks, qsTok{kind: 'r', incLo: c == '[', incHi: rs[j] == ']', lo: strings.TrimSpace(lo), hi: strings.TrimSpace(hi)})
			i = j + 1
		case c == '/':
			return nil, errUnsupported("regular expressions in query strings")
		default:
			var b strings.Builder
			j := i
			for j < len(rs) && !unicode.IsSpace(rs[j]) && !strings.ContainsRune("():\"[]{}", rs[j]) {
				if rs[j] == '\\' && j+1 < len(rs) {
					j++
					b.WriteRune(rs[j])
					j++
					continue
				}
				b.WriteRune(rs[j])
				j++
			}
			if j == i {
				return nil, bad("Encountered \"%c\" where a term was expected", rs[i])
			}
			w := b.String()
			switch {
			case w == "AND":
				toks = append(toks, qsTok{kind: 'A'})
			case w == "OR":
				toks = append(toks, qsTok{kind: 'O'})
			case w == "NOT":
				toks = append(toks, qsTok{kind: 'N'})
			default:
				toks = append(toks, qsTok{kind: 'w', text: w})
			}
			i = j
		}
	}
	return toks, nil
}

type qsParser struct {
	toks   []qsTok
	pos    int
	fields []string
	and    bool // default operator AND
	src    string
}

// parseQueryString parses a Lucene query string into dev-es queries.
// Operators follow boolean precedence (NOT, then AND, then OR); a query
// that mixes AND and OR on one level without parentheses is refused,
// because Lucene's classic parser reads it differently.
func parseQueryString(s string, fields []string, op string) (query, *esError) {
	switch strings.ToUpper(op) {
	case "OR", "":
	case "AND":
	default:
		return nil, errIllegalArgument("No enum constant org.elasticsearch.index.query.Operator.%s", strings.ToUpper(op))
	}
	toks, e := lexQueryString(s)
	if e != nil {
		return nil, e
	}
	if len(fields) == 0 {
		fields = []string{"*"}
	}
	p := &qsParser{toks: toks, fields: fields, and: strings.EqualFold(op, "AND"), src: s}
	if len(toks) == 0 {
		return matchNoneQ{}, nil
	}
	q, e := p.expr()
	if e != nil {
		return nil, e
	}
	if p.pos < len(p.toks) {
		return nil, p.bad("unexpected [%s]", p.tokText(p.toks[p.pos]))
	}
	return q, nil
}

func (p *qsParser) bad(format string, args ...any) *esError {
	return errParsing("Failed to parse query [%s]", p.src).cause(newErr(400, "parse_exception", format, args...))
}

func (p *qsParser) tokText(t qsTok) string {
	switch t.kind {
	case 'w', 'p':
		return t.text
	case 'A':
		return "AND"
	case 'O':
		return "OR"
	case 'N':
		return "NOT"
	}
	return string(t.kind)
}

func (p *qsParser) peek() byte {
	if p.pos < len(p.toks) {
		return p.toks[p.pos].kind
	}
	return 0
}

// expr parses a sequence of clauses joined by AND, OR or nothing (the
// default operator) up to ")" or the end. As in Lucene, a prohibited clause
// ("-x", "NOT x") excludes from the whole level, and "+x" (required) makes
// the plain clauses of its level optional.
func (p *qsParser) expr() (query, *esError) {
	var groups []query // OR of AND runs of positive clauses
	var cur, plus, pos, neg []query
	sawAnd, sawOr, explicitOp := false, false, false
	first := true
	for {
		k := p.peek()
		if k == 0 || k == ')' {
			break
		}
		op, explicit := byte(0), false
		if !first && (k == 'A' || k == 'O') {
			op, explicit = k, true
			explicitOp = true
			p.pos++
		}
		isNeg, isPlus := false, false
		switch p.peek() {
		case 'N', '-':
			isNeg = true
			p.pos++
		case '+':
			isPlus = true
			p.pos++
		}
		c, e := p.clause()
		if e != nil {
			return nil, e
		}
		if op == 0 && !first {
			op = 'O'
			if p.and {
				op = 'A'
			}
		}
		first = false
		switch {
		case isPlus:
			plus = append(plus, c)
			continue
		case isNeg:
			// the operator before a prohibited clause only matters when
			// written: "a AND NOT b OR c" is read differently by Lucene
			neg = append(neg, c)
			sawAnd = sawAnd || explicit && op == 'A'
			sawOr = sawOr || explicit && op == 'O'
			continue
		}
		switch op {
		case 'A':
			sawAnd = true
		case 'O':
			sawOr = true
			if len(cur) > 0 {
				groups = append(groups, andGroup(cur))
			}
			cur = nil
		}
		cur = append(cur, c)
		pos = append(pos, c)
	}
	if first {
		return nil, p.bad("empty clause")
	}
	if len(plus) > 0 {
		if explicitOp || p.and {
			return nil, errUnsupported("query strings that mix + with AND/OR or default_operator AND ([%s])", p.src)
		}
		return boolQ{must: plus, should: pos, mustNot: neg}, nil
	}
	if sawAnd && sawOr {
		return nil, errUnsupported("query strings that mix AND and OR without parentheses ([%s]); add parentheses", p.src)
	}
	if len(cur) > 0 {
		groups = append(groups, andGroup(cur))
	}
	var core query = matchAllQ{boost: 1}
	switch len(groups) {
	case 0:
	case 1:
		core = groups[0]
	default:
		core = boolQ{should: groups}
	}
	if len(neg) == 0 {
		return core, nil
	}
	if b, ok := core.(boolQ); ok && len(b.should) == 0 && len(b.mustNot) == 0 {
		b.mustNot = neg
		return b, nil
	}
	return boolQ{must: []query{core}, mustNot: neg}, nil
}

// andGroup combines the clauses of one AND run.
func andGroup(must []query) query {
	if len(must) == 1 {
		return must[0]
	}
	return boolQ{must: must}
}

// clause is one term: [field:](word | "phrase" | range | (expr) | >v).
func (p *qsParser) clause() (query, *esError) {
	fields := p.fields
	if p.pos+1 < len(p.toks) && p.toks[p.pos].kind == 'w' && p.toks[p.pos+1].kind == ':' {
		f := p.toks[p.pos].text
		p.pos += 2
		if f == "_exists_" {
			if p.peek() != 'w' {
				return nil, p.bad("_exists_ needs a field name")
			}
			name := p.toks[p.pos].text
			p.pos++
			return existsQ{field: name}, nil
		}
		fields = []string{f}
	}
	if p.pos >= len(p.toks) {
		return nil, p.bad("missing value after field")
	}
	t := p.toks[p.pos]
	p.pos++
	switch t.kind {
	case '(':
		saved := p.fields
		p.fields = fields
		q, e := p.expr()
		p.fields = saved
		if e != nil {
			return nil, e
		}
		if p.peek() != ')' {
			return nil, p.bad("missing )")
		}
		p.pos++
		return q, nil
	case 'p':
		return matchQ{fields: fields, text: t.text, phrase: true}, nil
	case 'r':
		return p.rangeOf(fields, t.lo, t.hi, t.incLo, t.incHi)
	case 'w':
		w := t.text
		if i := strings.LastIndexByte(w, '^'); i > 0 {
			if _, err := strconv.ParseFloat(w[i+1:], 64); err == nil {
				w = w[:i]
			}
		}
		if strings.Contains(w, "~") {
			return nil, errUnsupported("fuzzy and proximity queries (~) in query strings")
		}
		for _, cmp := range []string{">=", "<=", ">", "<"} {
			if strings.HasPrefix(w, cmp) {
				v := w[len(cmp):]
				switch cmp {
				case ">=":
					return p.rangeOf(fields, v, "*", true, true)
				case ">":
					return p.rangeOf(fields, v, "*", false, true)
				case "<=":
					return p.rangeOf(fields, "*", v, true, true)
				}
				return p.rangeOf(fields, "*", v, true, false)
			}
		}
		if w == "*" {
			if len(fields) == 1 && fields[0] == "*" {
				return matchAllQ{boost: 1}, nil
			}
			var qs []query
			for _, f := range fields {
				qs = append(qs, existsQ{field: f})
			}
			if len(qs) == 1 {
				return qs[0], nil
			}
			return boolQ{should: qs}, nil
		}
		wild := strings.ContainsAny(w, "*?")
		return matchQ{fields: fields, text: w, wildcard: wild, and: p.and}, nil
	}
	return nil, p.bad("unexpected [%s]", p.tokText(t))
}

func (p *qsParser) rangeOf(fields []string, lo, hi string, incLo, incHi bool) (query, *esError) {
	var qs []query
	for _, f := range fields {
		if strings.ContainsAny(f, "*?") {
			return nil, errUnsupported("range clauses without a field in query strings")
		}
		r := rangeQ{field: f}
		if lo != "*" {
			if incLo {
				r.gte, r.hasGte = lo, true
			} else {
				r.gt, r.hasGt = lo, true
			}
		}
		if hi != "*" {
			if incHi {
				r.lte, r.hasLte = hi, true
			} else {
				r.lt, r.hasLt = hi, true
			}
		}
		qs = append(qs, r)
	}
	if len(qs) == 1 {
		return qs[0], nil
	}
	return boolQ{should: qs}, nil
}
