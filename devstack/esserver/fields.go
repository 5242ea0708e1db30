package esserver

import (
	"sort"
	"strconv"
	"strings"
)

// Hit fields besides _source ("Retrieve selected fields from a search"):
// stored_fields, docvalue_fields and the fields option. All three read the
// document's indexed values (dev-es's doc values), which are the values of
// _source parsed by the mapping: keyword values over ignore_above are left
// out, dates are formatted with the field's (or the requested) format.

type fieldReq struct {
	pattern string
	format  *dateFormat
	raw     string // the format as given
}

// parseFieldReqs parses ["a", {"field":"b","format":"..."}].
func parseFieldReqs(key string, v any) ([]fieldReq, *esError) {
	var list []any
	switch x := v.(type) {
	case []any:
		list = x
	case string, map[string]any:
		list = []any{x}
	default:
		return nil, errParsing("[%s] must be an array", key)
	}
	var out []fieldReq
	for _, e := range list {
		switch x := e.(type) {
		case string:
			out = append(out, fieldReq{pattern: x})
		case map[string]any:
			var fr fieldReq
			for k, val := range x {
				s, _ := val.(string)
				switch k {
				case "field":
					fr.pattern = s
				case "format":
					fr.raw = s
				case "include_unmapped":
					return nil, errUnsupported("include_unmapped in [%s]", key)
				default:
					return nil, errParsing("[%s] unknown field [%s]", key, k)
				}
			}
			if fr.pattern == "" {
				return nil, errParsing("[%s] requires a [field]", key)
			}
			out = append(out, fr)
		default:
			return nil, errParsing("[%s] entries must be strings or objects", key)
		}
	}
	for i := range out {
		if out[i].raw == "" || out[i].raw == "use_field_mapping" {
			continue
		}
		df, err := parseDateFormat(out[i].raw)
		if err != nil {
			return nil, errUnsupported("the format [%s] in [%s] (date formats only)", out[i].raw, key)
		}
		out[i].format = df
	}
	return out, nil
}

// columnValues returns one document's values of a field as JSON values:
// strings for keyword/text, numbers, booleans, formatted dates.
func columnValues(ix *index, ord int32, path string, f *fieldMapping, df *dateFormat) []any {
	c := ix.cols[path]
	if c == nil || !c.has.has(ord) {
		return nil
	}
	var out []any
	switch c.kind {
	case colStr:
		c.eachTerm(ord, func(t uint32) { out = append(out, c.dict[t]) })
	case colFloat:
		c.eachFloat(ord, func(x float64) {
			if f.Type == "float" || f.Type == "half_float" {
				y, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', -1, 32), 64)
				out = append(out, y)
				return
			}
			out = append(out, x)
		})
	default:
		c.eachInt(ord, func(x int64) {
			switch {
			case f.Type == "boolean":
				out = append(out, x == 1)
			case f.df != nil:
				d := df
				if d == nil {
					d = f.df
				}
				out = append(out, d.format(x))
			default:
				out = append(out, x)
			}
		})
	}
	return out
}

// hitFields computes a hit's "fields" object.
func hitFields(ix *index, ord int32, sr *searchReq) (map[string]any, *esError) {
	if sr.storedFields == nil && sr.docvalueFields == nil && sr.fields == nil {
		return nil, nil
	}
	out := map[string]any{}
	paths := map[string]*fieldMapping{}
	ix.m.leafPaths("", ix.m.Root, paths)
	matching := func(pattern string) []string {
		var ps []string
		for p := range paths {
			if globMatch(pattern, p) {
				ps = append(ps, p)
			}
		}
		sort.Strings(ps)
		return ps
	}
	for _, sf := range sr.storedFields {
		for _, p := range matching(sf) {
			if st, _ := paths[p].Params["store"].(bool); st {
				if vs := columnValues(ix, ord, p, paths[p], nil); vs != nil {
					out[p] = vs
				}
			}
		}
	}
	for _, fr := range sr.docvalueFields {
		for _, p := range matching(fr.pattern) {
			f := paths[p]
			if f.Type == "text" {
				return nil, errIllegalArgument("Can't load fielddata on [%s] because fielddata is unsupported on fields of type [text]. Use doc values instead.", p)
			}
			if fr.format != nil && f.df == nil {
				return nil, errUnsupported("the format [%s] on [%s] fields in docvalue_fields", fr.raw, f.Type)
			}
			vs := columnValues(ix, ord, p, f, fr.format)
			if vs == nil {
				continue
			}
			out[p] = sortDocValues(vs)
		}
	}
	for _, fr := range sr.fields {
		for _, p := range matching(fr.pattern) {
			f := paths[p]
			if fr.format != nil && f.df == nil {
				return nil, errUnsupported("the format [%s] on [%s] fields in the fields option", fr.raw, f.Type)
			}
			if vs := columnValues(ix, ord, p, f, fr.format); vs != nil {
				out[p] = vs
			}
		}
	}
	return out, nil
}

// sortDocValues orders values as doc values hold them: numbers ascending,
// keywords sorted and unique.
func sortDocValues(vs []any) []any {
	sort.SliceStable(vs, func(i, j int) bool {
		switch a := vs[i].(type) {
		case int64:
			return a < vs[j].(int64)
		case float64:
			return a < vs[j].(float64)
		case string:
			return a < vs[j].(string)
		case bool:
			return !a && vs[j].(bool)
		}
		return false
	})
	if len(vs) > 0 {
		if _, isStr := vs[0].(string); isStr {
			w := 1
			for i := 1; i < len(vs); i++ {
				if vs[i] != vs[w-1] {
					vs[w] = vs[i]
					w++
				}
			}
			return vs[:w]
		}
	}
	return vs
}

// storedFieldsParam parses stored_fields (body or URL): "_none_" disables
// metadata fields and _source.
func (sr *searchReq) setStoredFields(v any) *esError {
	var list []string
	switch x := v.(type) {
	case string:
		list = strings.Split(x, ",")
	case []any:
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return errParsing("[stored_fields] must be a string or an array of strings")
			}
			list = append(list, s)
		}
	default:
		return errParsing("[stored_fields] must be a string or an array of strings")
	}
	sr.storedFields = []string{}
	for _, s := range list {
		switch s {
		case "_none_":
			if len(list) > 1 {
				return errIllegalArgument("cannot combine _none_ with other fields")
			}
			sr.storedNone = true
		case "_source":
			sr.storedSource = true
		default:
			sr.storedFields = append(sr.storedFields, s)
		}
	}
	return nil
}
