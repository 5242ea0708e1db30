package esserver

import (
	"testing"
	"time"
)

type timeT = time.Time

func nil2utc() *time.Location { return time.UTC }

// Reference: "Common options > Date math": rounding down for gte/lt and up
// for gt/lte.
func TestDateMath(t *testing.T) {
	df, _ := parseDateFormat(defaultDateFormat)
	now := time.Date(2026, 11, 25, 15, 30, 45, 0, time.UTC)
	cases := []struct {
		expr    string
		roundUp bool
		want    string
	}{
		{"now", false, "2026-11-25T15:30:45Z"},
		{"now-1d/d", false, "2026-11-24T00:00:00Z"},
		{"now-1d/d", true, "2026-11-24T23:59:59.999Z"},
		{"now/M", false, "2026-11-01T00:00:00Z"},
		{"now+1h", false, "2026-11-25T16:30:45Z"},
		{"now/w", false, "2026-11-23T00:00:00Z"},
		{"2026-01-31||+1M", false, "2026-03-03T00:00:00Z"},
		{"2026-11-25T10:00:00Z||/h", true, "2026-11-25T10:59:59.999Z"},
	}
	for _, tc := range cases {
		ms, err := parseDateMath(tc.expr, df, time.UTC, now, tc.roundUp)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		if got := time.UnixMilli(ms).UTC().Format(time.RFC3339Nano); got != tc.want {
			t.Fatalf("%s (roundUp %v): got %s, want %s", tc.expr, tc.roundUp, got, tc.want)
		}
	}
	for _, bad := range []string{"now-1x", "now/", "tomorrow", "2026-13-01"} {
		if _, err := parseDateMath(bad, df, time.UTC, now, false); err == nil {
			t.Fatalf("%s: got no error", bad)
		}
	}
}

// Reference: "Mapping > Field data types > Date > format": built-in formats
// and epoch formats; strict formats need zero padding.
func TestDateFormats(t *testing.T) {
	cases := []struct {
		format string
		value  any
		ok     bool
		want   int64
	}{
		{"strict_date_optional_time", "2026-11-25", true, 1795564800000},
		{"strict_date_optional_time", "2026-11-25T01:02:03.5Z", true, 1795568523500},
		{"strict_date_optional_time", "2026-11-25T01:02:03+01:00", true, 1795564923000},
		{"strict_date_optional_time", "2026-1-5", false, 0},
		{"date_optional_time", "2026-1-5", true, 1767571200000},
		{"epoch_second", jsonNumber("1700000000"), true, 1700000000000},
		{"epoch_millis", "1700000000000", true, 1700000000000},
		{"yyyy-MM-dd HH:mm:ss", "2026-11-25 01:02:03", true, 1795568523000},
		{defaultDateFormat, jsonNumber("1700000000000"), true, 1700000000000},
		{defaultDateFormat, "garbage", false, 0},
	}
	for _, tc := range cases {
		df, err := parseDateFormat(tc.format)
		if err != nil {
			t.Fatalf("%s: %v", tc.format, err)
		}
		got, ok := df.parse(tc.value, time.UTC)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Fatalf("%s %v: got %d %v, want %d %v", tc.format, tc.value, got, ok, tc.want, tc.ok)
		}
	}
	if _, err := parseDateFormat("yyyy-qq"); err == nil {
		t.Fatalf("unknown pattern letter: got no error")
	}
}

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		p, s string
		want bool
	}{
		{"a*", "abc", true}, {"*c", "abc", true}, {"a*c", "abc", true}, {"a*b*c", "aXbYc", true},
		{"a*b*c", "aXbY", false}, {"abc", "abc", true}, {"abc", "abd", false}, {"*", "", true}, {"a*a", "a", false}, {"", "", true}, {"", "a", false}, {"**", "x", true},
		{"*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false}, {"a*", "b", false},
		{"fntest-*-x", "fntest-a-b-x", true}, {"*.keyword", "name.keyword", true},
	}
	for _, tc := range cases {
		if got := globMatch(tc.p, tc.s); got != tc.want {
			t.Fatalf("globMatch(%q, %q): got %v, want %v", tc.p, tc.s, got, tc.want)
		}
	}
}
