package metric

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCanonicalJSONRoundTrip(t *testing.T) {
	m := validMetric()
	m.Tags["quote"] = `he said "hi" <b>`
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"endpoint":"web-1","name":"cpu.idle","value":97.5,"timestamp":1700000000,"step":10,"type":"GAUGE","tags":{"core":"0","dc":"fra","quote":"he said \"hi\" \u003cb\u003e"}}`
	if string(b) != want {
		t.Fatalf("Marshal =\n%s\nwant\n%s", b, want)
	}
	var got Metric
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.DocID() != m.DocID() || got.Value != m.Value || got.Step != m.Step || got.Tags["quote"] != m.Tags["quote"] {
		t.Fatalf("round trip: got %+v, want %+v", got, m)
	}
}

func TestJSONFloatMatchesEncodingJSON(t *testing.T) {
	for _, f := range []float64{0, 1, -1, 0.1, 1e-7, 123456789.123, 1e20, 1e21, 1e300, -2.5e-300} {
		m := validMetric()
		m.Value = f
		got, _ := m.AppendJSON(nil)
		want, _ := json.Marshal(f)
		if !strings.Contains(string(got), `"value":`+string(want)+`,`) {
			t.Errorf("value %v encoded as %s, encoding/json says %s", f, got, want)
		}
	}
}

func TestDecodeJSONOpenFalcon(t *testing.T) {
	// As Open-Falcon's agent /v1/push receives it, value as number and as string.
	in := `[{"endpoint":"host1","metric":"disk.io.util","value":12.5,"step":60,"counterType":"GAUGE","tags":"device=sda,dc=fra","timestamp":1700000000},
	        {"endpoint":"host1","metric":"net.if.in.bytes","value":"1024","step":60,"counterType":"COUNTER","tags":"","timestamp":1700000000}]`
	ms, bad := DecodeJSON([]byte(in), 1700000099)
	if len(bad) != 0 {
		t.Fatalf("bad items: %v", bad)
	}
	if len(ms) != 2 {
		t.Fatalf("got %d metrics, want 2", len(ms))
	}
	if ms[0].Name != "disk.io.util" || ms[0].Tags["device"] != "sda" || ms[0].Step != 60 || ms[0].Value != 12.5 {
		t.Errorf("first metric = %+v", ms[0])
	}
	if ms[1].Type != Counter || ms[1].Value != 1024 || ms[1].Tags != nil {
		t.Errorf("second metric = %+v", ms[1])
	}
}

func TestDecodeJSONItems(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantN   int
		wantBad []string // substrings, one per bad item
	}{
		{"single object without timestamp", `{"endpoint":"h","name":"m","value":1}`, 1, nil},
		{"lines", "{\"endpoint\":\"h\",\"name\":\"m\",\"value\":1}\n{\"endpoint\":\"h\",\"name\":\"n\",\"value\":2}\n", 2, nil},
		{"milliseconds marked", `{"endpoint":"h","name":"m","value":1,"timestamp":1700000000123,"precision":"ms"}`, 1, nil},
		{"milliseconds unmarked", `{"endpoint":"h","name":"m","value":1,"timestamp":1700000000123}`, 0, []string{"outside"}},
		{"not json", `hello`, 0, []string{"invalid"}},
		{"truncated array", `[{"endpoint":"h"`, 0, []string{"invalid"}},
		{"mixed good and bad", `[{"endpoint":"h","name":"m","value":1},{"endpoint":"h","name":"","value":1},{"endpoint":"h","name":"x","value":"abc"}]`,
			1, []string{"name is empty", "not a number"}},
		{"bad tags type", `{"endpoint":"h","name":"m","value":1,"tags":[1]}`, 0, []string{"tags must be"}},
		{"bad counterType", `{"endpoint":"h","metric":"m","value":1,"counterType":"HISTOGRAM"}`, 0, []string{"HISTOGRAM"}},
		{"missing value", `{"endpoint":"h","metric":"m"}`, 0, []string{"value missing"}},
		{"both names", `{"endpoint":"h","metric":"m","name":"n","value":1}`, 0, []string{"both name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, bad := DecodeJSON([]byte(tt.in), 1700000000)
			if len(ms) != tt.wantN {
				t.Errorf("got %d good metrics, want %d (bad: %v)", len(ms), tt.wantN, bad)
			}
			if len(bad) != len(tt.wantBad) {
				t.Fatalf("got bad items %v, want %d", bad, len(tt.wantBad))
			}
			for i, w := range tt.wantBad {
				if !strings.Contains(bad[i].Error(), w) {
					t.Errorf("bad item %d = %q, want it to contain %q", i, bad[i], w)
				}
			}
			for _, m := range ms {
				if m.Timestamp != 1700000000 {
					t.Errorf("timestamp = %d, want 1700000000", m.Timestamp)
				}
			}
		})
	}
}

func TestOpenFalconJSONRoundTrip(t *testing.T) {
	m := validMetric()
	b, err := m.OpenFalconJSON()
	if err != nil {
		t.Fatal(err)
	}
	ms, bad := DecodeJSON(b, 0)
	if len(bad) != 0 || len(ms) != 1 || ms[0].DocID() != m.DocID() || ms[0].Value != m.Value {
		t.Fatalf("OpenFalconJSON %s decoded to %+v, %v", b, ms, bad)
	}
}

func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`[{"endpoint":"h","metric":"m","value":"1","tags":"a=b","timestamp":1700000000}]`))
	f.Add([]byte(`{"endpoint":"h","name":"m","value":1.5,"tags":{"a":"b"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, _ := DecodeJSON(data, 1700000000)
		for _, m := range ms {
			if err := m.Validate(); err != nil {
				t.Fatalf("DecodeJSON returned an invalid metric: %v", err)
			}
			b, err := m.AppendJSON(nil)
			if err != nil {
				t.Fatalf("valid metric did not encode: %v", err)
			}
			back, bad := DecodeJSON(b, 0)
			if len(bad) != 0 || len(back) != 1 || back[0].DocID() != m.DocID() {
				t.Fatalf("canonical %s did not round-trip: %v %v", b, back, bad)
			}
		}
	})
}
