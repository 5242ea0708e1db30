package saver

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"testing"
	"time"

	"github.com/falconet/falconet/metric"
)

func sameMetric(a, b metric.Metric) bool {
	return a.Endpoint == b.Endpoint && a.Name == b.Name &&
		(a.Value == b.Value || (math.IsNaN(a.Value) && math.IsNaN(b.Value))) &&
		a.Timestamp == b.Timestamp && a.Step == b.Step && a.Type == b.Type && maps.Equal(a.Tags, b.Tags)
}

func TestDecodeCanonical(t *testing.T) {
	now := time.Now()
	for _, rec := range benchRecords(200, now) {
		var fast, slow metric.Metric
		if !decodeCanonical(rec, &fast) {
			t.Fatalf("decodeCanonical(%s) = false, want true for canonical JSON", rec)
		}
		if err := json.Unmarshal(rec, &slow); err != nil || !sameMetric(fast, slow) {
			t.Fatalf("decodeCanonical(%s) = %+v, json.Unmarshal = %+v, %v", rec, fast, slow, err)
		}
	}
	for _, in := range []string{
		`{"endpoint":"a","name":"b","value":1,"timestamp":1,"step":1,"type":"GAUGE"} `,
		`{"endpoint":"a\"","name":"b","value":1,"timestamp":1,"step":1,"type":"GAUGE"}`,
		`{"endpoint":"a","name":"b","value":01,"timestamp":1,"step":1,"type":"GAUGE"}`,
		`{"endpoint":"a","name":"b","value":1,"timestamp":1.5,"step":1,"type":"GAUGE"}`,
		`{"endpoint":"a","name":"b","value":1,"timestamp":1,"step":1,"type":"gauge"}`,
		`{"endpoint":"a","name":"b","value":1,"timestamp":1,"step":1,"type":"GAUGE","tags":{"k":"v","k":"w"}}`,
		`{"endpoint":"a","metric":"b","value":1,"timestamp":1,"step":1,"counterType":"GAUGE"}`,
		"{\"endpoint\":\"\xff\",\"name\":\"b\",\"value\":1,\"timestamp\":1,\"step\":1,\"type\":\"GAUGE\"}",
	} {
		var m metric.Metric
		if decodeCanonical([]byte(in), &m) {
			t.Errorf("decodeCanonical(%s) = true, want false (not canonical)", in)
		}
	}
}

// FuzzDecodeCanonical: wherever the fast path accepts input, json.Unmarshal
// accepts it too and gives the same metric.
func FuzzDecodeCanonical(f *testing.F) {
	for _, rec := range benchRecords(5, time.Unix(1764072000, 0)) {
		f.Add(rec)
	}
	f.Add([]byte(`{"endpoint":"a","name":"b","value":-0.5e-3,"timestamp":0,"step":-1,"type":"DERIVE","tags":{}}`))
	f.Add([]byte(`{"endpoint":"a","name":"b","value":1E+400,"timestamp":9223372036854775808,"step":1,"type":"COUNTER"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast, slow metric.Metric
		if !decodeCanonical(data, &fast) {
			return
		}
		if err := json.Unmarshal(data, &slow); err != nil {
			t.Fatalf("fast path accepted %q, json.Unmarshal: %v", data, err)
		}
		if !sameMetric(fast, slow) {
			t.Fatalf("%q: fast %+v, json.Unmarshal %+v", data, fast, slow)
		}
	})
}

// FuzzDecodeRecord: any record value either goes to the dead-letter topic
// with a reason, or becomes two valid JSON bulk lines naming its day's
// index and its id.
func FuzzDecodeRecord(f *testing.F) {
	for _, rec := range benchRecords(3, time.Unix(1764072000, 0)) {
		f.Add(rec)
	}
	f.Add([]byte(`{"endpoint":"h","metric":"m","value":"1.5","timestamp":1764072000,"step":60,"counterType":"GAUGE","tags":"a=b,c=d"}`))
	f.Add([]byte(`{"endpoint":"h","name":"m","value":1,"timestamp":1764072000000,"precision":"ms","type":"COUNTER","tags":{"a.b":"\u00e9"}}`))
	f.Add([]byte(`[{"endpoint":"h"}]`))
	now := time.Unix(1764072000, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, reason, err := decodeRecord(data, now, 10*time.Minute, 30)
		if (reason == "") != (err == nil) {
			t.Fatalf("reason %q with err %v", reason, err)
		}
		if err != nil {
			return
		}
		b, docOff, err := appendBulkItem(nil, "create", &m)
		if err != nil {
			return // AppendJSON refuses (it validates less than Validate): dead-lettered as invalid
		}
		lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
		if len(lines) != 2 || docOff != len(lines[0])+1 {
			t.Fatalf("%q: bulk item %q is not two lines", data, b)
		}
		for _, l := range lines {
			if !json.Valid(l) {
				t.Fatalf("%q: bulk line %q is not valid JSON", data, l)
			}
		}
		if !bytes.Contains(lines[0], []byte(`"_index":"falconet-metrics-`+m.Day()+`","_id":"`+m.DocID()+`"`)) {
			t.Fatalf("%q: action %q", data, lines[0])
		}
	})
}
