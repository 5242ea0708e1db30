package esserver

import (
	"encoding/json"
	"strings"
)

// filterPath implements the filter_path response filter ("Common options >
// Response filtering"): comma-separated dotted paths where '*' matches one
// key (or part of one) and '**' any number of levels. Exclusions ('-')
// answer unsupported.
type filterPath [][]string

func parseFilterPath(s string) (filterPath, *esError) {
	var fp filterPath
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if strings.HasPrefix(p, "-") {
			return nil, errUnsupported("exclusions in filter_path")
		}
		fp = append(fp, strings.Split(p, "."))
	}
	return fp, nil
}

func (fp filterPath) apply(body []byte) []byte {
	var v any
	d := json.NewDecoder(strings.NewReader(string(body)))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return body
	}
	out, ok := filterValue(v, fp)
	if !ok {
		return []byte("{}")
	}
	b, err := json.Marshal(out)
	if err != nil {
		return body
	}
	return b
}

// filterValue keeps the parts of v that some path reaches; paths are the
// remaining segments.
func filterValue(v any, paths [][]string) (any, bool) {
	for _, p := range paths {
		if len(p) == 0 {
			return v, true // a path ended here: keep everything below
		}
	}
	switch x := v.(type) {
	case []any:
		var out []any
		for _, e := range x {
			if fe, ok := filterValue(e, paths); ok {
				out = append(out, fe)
			}
		}
		return out, len(out) > 0
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			var next [][]string
			for _, p := range paths {
				switch {
				case p[0] == "**":
					next = append(next, p) // ** may match more levels
					if len(p) > 1 && globMatch(p[1], k) {
						next = append(next, p[2:])
					}
				case globMatch(p[0], k):
					next = append(next, p[1:])
				}
			}
			if len(next) == 0 {
				continue
			}
			if fe, ok := filterValue(e, next); ok {
				out[k] = fe
			}
		}
		return out, len(out) > 0
	}
	return nil, false
}
