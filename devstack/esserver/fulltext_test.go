package esserver

import (
	"strings"
	"testing"
)

// The Lucene query string syntax ("Query string query > Query string
// syntax"): what parses, into what shape, and what is refused.
func TestParseQueryString(t *testing.T) {
	for _, tc := range []struct {
		q    string
		want string // a %T-ish sketch of the tree, or "error:" + a reason fragment
	}{
		{"a", "match[*]a"},
		{"f:a", "match[f]a"},
		{"f:a AND g:b", "bool(must:match[f]a,match[g]b)"},
		{"f:a OR g:b", "bool(should:match[f]a,match[g]b)"},
		{"f:a g:b", "bool(should:match[f]a,match[g]b)"},
		{"NOT f:a", "bool(must:all,not:match[f]a)"},
		{"f:a -g:b", "bool(must:match[f]a,not:match[g]b)"},
		{"+f:a g:b", "bool(must:match[f]a,should:match[g]b)"},
		{"(f:a OR f:b) AND g:c", "bool(must:bool(should:match[f]a,match[f]b),match[g]c)"},
		{"f:(a OR b)", "bool(should:match[f]a,match[f]b)"},
		{"f:[1 TO 5}", "range[f]"},
		{"f:>=3", "range[f]"},
		{"*", "all"},
		{"f:*", "exists[f]"},
		{"_exists_:f", "exists[f]"},
		{`f:"a b"`, "match[f]a b"},
		{"f:a*", "match[f]a*"},
		{"f:a\\:b", "match[f]a:b"},
		{"a OR b AND c", "error:mix AND and OR"},
		{"a AND NOT b OR c", "error:mix AND and OR"},
		{"f:a g:b -h:c", "bool(must:bool(should:match[f]a,match[g]b),not:match[h]c)"},
		{"f:a AND NOT g:b", "bool(must:match[f]a,not:match[g]b)"},
		{"f:a~2", "error:fuzzy"},
		{"f:/re/", "error:regular expressions"},
		{"f:(a", "error:Failed to parse"},
		{"f:[1 5]", "error:Failed to parse"},
	} {
		q, e := parseQueryString(tc.q, nil, "OR")
		got := ""
		if e != nil {
			got = "error:" + e.Reason
			if e.CausedBy != nil {
				got += " " + e.CausedBy.Reason
			}
		} else {
			got = sketch(q)
		}
		if strings.HasPrefix(tc.want, "error:") {
			if !strings.HasPrefix(got, "error:") || !strings.Contains(got, strings.TrimPrefix(tc.want, "error:")) {
				t.Errorf("%q: got %s, want %s", tc.q, got, tc.want)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("%q: got %s, want %s", tc.q, got, tc.want)
		}
	}
}

func sketch(q query) string {
	list := func(qs []query) string {
		var p []string
		for _, x := range qs {
			p = append(p, sketch(x))
		}
		return strings.Join(p, ",")
	}
	switch x := q.(type) {
	case matchQ:
		return "match[" + strings.Join(x.fields, ",") + "]" + x.text
	case rangeQ:
		return "range[" + x.field + "]"
	case existsQ:
		return "exists[" + x.field + "]"
	case matchAllQ:
		return "all"
	case boolQ:
		var parts []string
		if len(x.must) > 0 {
			parts = append(parts, "must:"+list(x.must))
		}
		if len(x.should) > 0 {
			parts = append(parts, "should:"+list(x.should))
		}
		if len(x.mustNot) > 0 {
			parts = append(parts, "not:"+list(x.mustNot))
		}
		return "bool(" + strings.Join(parts, ",") + ")"
	}
	return "?"
}

// FuzzQueryString: any query string parses or answers a 4xx error, never
// panics.
func FuzzQueryString(f *testing.F) {
	for _, s := range []string{"a", "f:a AND (g:b OR -h:c)", "f:[1 TO *]", `"x`, "((", "f:>", "+a -b", "\\", "a:b:c", "NOT", "AND OR"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, e := parseQueryString(s, nil, "OR")
		if e != nil && e.Status >= 500 {
			t.Fatalf("%q: status %d", s, e.Status)
		}
		if e == nil && q == nil {
			t.Fatalf("%q: no query and no error", s)
		}
	})
}
