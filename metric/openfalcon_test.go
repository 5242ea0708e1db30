package metric

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestOpenFalconItemToMetric(t *testing.T) {
	const now = 1764000000
	item := func(mod func(it *OpenFalconItem)) OpenFalconItem {
		it := OpenFalconItem{Endpoint: "h1", Metric: "cpu.idle", Value: json.RawMessage("97.5"), Step: 60,
			CounterType: "GAUGE", Tags: "core=0", Timestamp: now - 5}
		if mod != nil {
			mod(&it)
		}
		return it
	}
	tests := []struct {
		name    string
		it      OpenFalconItem
		want    Metric // zero when wantErr
		fixed   bool
		wantErr string
	}{
		{name: "gauge", it: item(nil),
			want: Metric{Endpoint: "h1", Name: "cpu.idle", Value: 97.5, Timestamp: now - 5, Step: 60, Type: Gauge, Tags: map[string]string{"core": "0"}}},
		{name: "string value, DERIVE, empty tags", it: item(func(it *OpenFalconItem) {
			it.Value, it.CounterType, it.Tags = json.RawMessage(`"12.25"`), "DERIVE", ""
		}), want: Metric{Endpoint: "h1", Name: "cpu.idle", Value: 12.25, Timestamp: now - 5, Step: 60, Type: Derive}},
		{name: "counter", it: item(func(it *OpenFalconItem) { it.CounterType = "COUNTER" }),
			want: Metric{Endpoint: "h1", Name: "cpu.idle", Value: 97.5, Timestamp: now - 5, Step: 60, Type: Counter, Tags: map[string]string{"core": "0"}}},
		{name: "timestamp 0 becomes now", it: item(func(it *OpenFalconItem) { it.Timestamp = 0 }), fixed: true,
			want: Metric{Endpoint: "h1", Name: "cpu.idle", Value: 97.5, Timestamp: now, Step: 60, Type: Gauge, Tags: map[string]string{"core": "0"}}},
		{name: "negative timestamp becomes now", it: item(func(it *OpenFalconItem) { it.Timestamp = -7 }), fixed: true,
			want: Metric{Endpoint: "h1", Name: "cpu.idle", Value: 97.5, Timestamp: now, Step: 60, Type: Gauge, Tags: map[string]string{"core": "0"}}},
		{name: "milliseconds (> 2×now) become now", it: item(func(it *OpenFalconItem) { it.Timestamp = now * 1000 }), fixed: true,
			want: Metric{Endpoint: "h1", Name: "cpu.idle", Value: 97.5, Timestamp: now, Step: 60, Type: Gauge, Tags: map[string]string{"core": "0"}}},
		{name: "timestamp before 2000 refused", it: item(func(it *OpenFalconItem) { it.Timestamp = 86400 }), wantErr: "timestamp 86400 outside"},
		{name: "empty endpoint", it: item(func(it *OpenFalconItem) { it.Endpoint = "" }), wantErr: "endpoint is empty"},
		{name: "empty metric", it: item(func(it *OpenFalconItem) { it.Metric = "" }), wantErr: "metric is empty"},
		{name: "kernel.hostname", it: item(func(it *OpenFalconItem) { it.Metric = "kernel.hostname" }), wantErr: "kernel.hostname"},
		{name: "lower-case type", it: item(func(it *OpenFalconItem) { it.CounterType = "gauge" }), wantErr: `counterType "gauge"`},
		{name: "no type", it: item(func(it *OpenFalconItem) { it.CounterType = "" }), wantErr: `counterType ""`},
		{name: "step 0", it: item(func(it *OpenFalconItem) { it.Step = 0 }), wantErr: "step 0"},
		{name: "metric+tags > 510", it: item(func(it *OpenFalconItem) { it.Tags = "k=" + strings.Repeat("v", 510) }), wantErr: "len(metric)+len(tags)"},
		{name: "value not a number", it: item(func(it *OpenFalconItem) { it.Value = json.RawMessage(`"abc"`) }), wantErr: `value "abc" is not a number`},
		{name: "value bool", it: item(func(it *OpenFalconItem) { it.Value = json.RawMessage(`true`) }), wantErr: "neither a number"},
		{name: "value missing", it: item(func(it *OpenFalconItem) { it.Value = nil }), wantErr: "value missing"},
		{name: "value NaN (falconet stricter)", it: item(func(it *OpenFalconItem) { it.Value = json.RawMessage(`"NaN"`) }), wantErr: "not a finite number"},
		{name: "space in metric (falconet stricter)", it: item(func(it *OpenFalconItem) { it.Metric = "cpu idle" }), wantErr: "forbidden character"},
		{name: "slash in endpoint (falconet stricter)", it: item(func(it *OpenFalconItem) { it.Endpoint = "a/b" }), wantErr: "forbidden character"},
		{name: "empty tag key (falconet stricter)", it: item(func(it *OpenFalconItem) { it.Tags = "=v" }), wantErr: "tag key is empty"},
		{name: "too many tags (falconet stricter)", it: item(func(it *OpenFalconItem) {
			var parts []string
			for i := range 33 {
				parts = append(parts, string(rune('a'+i%26))+strings.Repeat("x", i/26)+"=1")
			}
			it.Tags = strings.Join(parts, ",")
		}), wantErr: "33 tags"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, fixed, err := tt.it.ToMetric(now)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got err %v (metric %+v), want ErrInvalid containing %q", err, got, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got err %v, want %+v", err, tt.want)
			}
			if !reflect.DeepEqual(got, tt.want) || fixed != tt.fixed {
				t.Fatalf("got %+v fixed=%v, want %+v fixed=%v", got, fixed, tt.want, tt.fixed)
			}
		})
	}
}

func TestOpenFalconTags(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
	}{
		{"", nil},
		{"a=1", map[string]string{"a": "1"}},
		{" a = 1 , b=2 ", map[string]string{"a": "1", "b": "2"}},
		{"a=1,junk,b=", map[string]string{"a": "1", "b": ""}},
		{"a=x=y", map[string]string{"a": "x=y"}},
		{"a=1,a=2", map[string]string{"a": "2"}},
		{"junk", nil},
	}
	for _, tt := range tests {
		if got := OpenFalconTags(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("OpenFalconTags(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestDecodeOpenFalconItems(t *testing.T) {
	items, bad, err := DecodeOpenFalconItems([]byte(`[{"endpoint":"h","metric":"m","value":1,"step":60,"counterType":"GAUGE","tags":"","timestamp":5},
		null, {"endpoint":"h","step":"60"}, 7]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 4 || items[0].Endpoint != "h" || string(items[0].Value) != "1" {
		t.Fatalf("items %+v", items)
	}
	if len(bad) != 3 || bad[0].Index != 1 || bad[1].Index != 2 || bad[2].Index != 3 {
		t.Fatalf("bad %v, want items 1, 2, 3", bad)
	}
	for _, in := range []string{`{"endpoint":"h"}`, `[1,`, `"x"`} {
		if _, _, err := DecodeOpenFalconItems([]byte(in)); err == nil {
			t.Errorf("DecodeOpenFalconItems(%s): no error", in)
		}
	}
	if items, bad, err := DecodeOpenFalconItems([]byte(` null `)); err != nil || len(items)+len(bad) != 0 {
		t.Errorf("null: %v %v %v, want nothing", items, bad, err)
	}
}

func TestParseOpenFalconUpdate(t *testing.T) {
	tests := []struct {
		line    string
		want    OpenFalconItem
		wantErr string
	}{
		{line: "h1 cpu.idle 1764000000 97.5", want: OpenFalconItem{Endpoint: "h1", Metric: "cpu.idle", Timestamp: 1764000000, Value: json.RawMessage(`"97.5"`), CounterType: "COUNTER", Step: 60}},
		{line: "h1 cpu.idle 1764000000 97.5 GAUGE", want: OpenFalconItem{Endpoint: "h1", Metric: "cpu.idle", Timestamp: 1764000000, Value: json.RawMessage(`"97.5"`), CounterType: "GAUGE", Step: 60}},
		{line: "h1 cpu.idle 1764000000 97.5 DERIVE 30", want: OpenFalconItem{Endpoint: "h1", Metric: "cpu.idle", Timestamp: 1764000000, Value: json.RawMessage(`"97.5"`), CounterType: "DERIVE", Step: 30}},
		{line: "h1 cpu.idle 1764000000 97.5 GAUGE 120:U:U:15", want: OpenFalconItem{Endpoint: "h1", Metric: "cpu.idle", Timestamp: 1764000000, Value: json.RawMessage(`"97.5"`), CounterType: "GAUGE", Step: 15}},
		{line: "h1 cpu.idle 1764000000", wantErr: "3 fields"},
		{line: "h1 cpu.idle 1764000000 1 GAUGE 60 extra", wantErr: "7 fields"},
		{line: "h1 cpu.idle soon 1", wantErr: `timestamp "soon"`},
		{line: "h1 cpu.idle 1764000000 lots", wantErr: `value "lots"`},
		{line: "h1 cpu.idle 1764000000 1 GAUGE 1:2", wantErr: `step "1:2"`},
		{line: "h1 cpu.idle 1764000000 1 GAUGE x", wantErr: `step "x"`},
	}
	for _, tt := range tests {
		got, err := ParseOpenFalconUpdate(strings.Fields(tt.line))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: got %+v, %v; want error containing %q", tt.line, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: got %+v, %v; want %+v", tt.line, got, err, tt.want)
		}
	}
}
