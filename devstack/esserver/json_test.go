package esserver

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func stdDecode(b []byte) (any, error) {
	if !json.Valid(b) {
		return nil, errTrailing
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	var extra json.RawMessage
	if err := d.Decode(&extra); err == nil {
		return nil, errTrailing
	}
	if strings.TrimSpace(string(b[d.InputOffset():])) != "" {
		return nil, errTrailing
	}
	return v, nil
}

func TestParseJSON(t *testing.T) {
	good := []string{`{}`, `[]`, `{"a":[1,-2.5e3,true,false,null,"x\u00e9\n\"",{"b":{}}]}`, ` "s" `, `0`, `-0.1`, `"\ud83d\ude00"`, `"\ud800"`, "\"\xff\""}
	for _, s := range good {
		got, err := parseJSON([]byte(s))
		want, werr := stdDecode([]byte(s))
		if err != nil || werr != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %#v, %v; encoding/json %#v, %v", s, got, err, want, werr)
		}
	}
	bad := []string{``, `{`, `{"a"}`, `{"a":1,}`, `[1,]`, `01`, `1.`, `-`, `tru`, `"a`, "\"\x01\"", `{"a":1}x`, `{"a":1,"a":2}`, `"\x"`, `{a:1}`}
	for _, s := range bad {
		if v, err := parseJSON([]byte(s)); err == nil {
			t.Fatalf("%q: got %#v, want an error", s, v)
		}
	}
}

// FuzzParseJSON checks parseJSON against encoding/json: same values, and
// errors only where encoding/json errs too (or on duplicate keys).
func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[true,null,"x"]}`, `{"endpoint":"web-1","value":1.5e-3,"tags":{"k":"\u00e9"}}`, `[1,2,{"a":"\ud83d\ude00"}]`, `{"a":1,"a":2}`, "0\f"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseJSON(b)
		want, werr := stdDecode(b)
		switch {
		case err == nil && werr != nil:
			t.Fatalf("%q: parseJSON accepted what encoding/json rejects (%v)", b, werr)
		case err != nil && werr == nil:
			if !strings.Contains(err.Error(), "Duplicate field") {
				t.Fatalf("%q: parseJSON rejected valid JSON: %v", b, err)
			}
		case err == nil && !reflect.DeepEqual(got, want):
			t.Fatalf("%q: got %#v, encoding/json %#v", b, got, want)
		}
	})
}
