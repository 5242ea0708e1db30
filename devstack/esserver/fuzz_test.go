package esserver

import (
	"testing"
)

// FuzzParseBulk feeds arbitrary bodies to the NDJSON bulk parser and the
// document parser: they must return a result or an Elasticsearch error,
// never panic.
func FuzzParseBulk(f *testing.F) {
	f.Add([]byte("{\"index\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"v\":1,\"s\":\"x\",\"o\":{\"d\":\"2026-01-01\"}}\n"))
	f.Add([]byte("{\"delete\":{\"_index\":\"a\",\"_id\":\"1\"}}\n"))
	f.Add([]byte("{\"update\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"doc\":{\"v\":2},\"doc_as_upsert\":true}\n"))
	f.Add([]byte("{\"index\":{}}\n{\"a\":[1,[2,3],{\"b\":null}]}"))
	f.Add([]byte("\n\n{\"create\":{\"_index\":\"a\",\"bogus\":1}}\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		ops, e := parseBulk(body, "fuzz")
		if e == nil && len(ops) == 0 {
			t.Fatalf("no error and no operations")
		}
		m := newMapping()
		for _, op := range ops {
			if op.source != nil {
				_, _, _ = m.parseDocument(op.id, op.source, 1000)
			}
		}
	})
}

// FuzzDateMath checks date math and date parsing never panic.
func FuzzDateMath(f *testing.F) {
	f.Add("now-1d/d")
	f.Add("2026-11-25T10:00:00.123+01:00||+1M/M")
	f.Add("2026-02-30")
	f.Fuzz(func(t *testing.T, s string) {
		df, _ := parseDateFormat(defaultDateFormat)
		_, _ = parseDateMath(s, df, nil2utc(), fixedNow, true)
		_, _ = parseISO(s, nil2utc(), true)
	})
}

var fixedNow = mustTime("2026-11-25T12:00:00Z")

func mustTime(s string) (t timeT) {
	t, _ = parseISO(s, nil2utc(), true)
	return t
}
