package metric

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"testing"
)

// sameAsMetric checks that reading data with a BatchReader gives what
// DecodeBatch and Metric's methods give: the same metrics, validation
// verdicts, series keys and JSON.
func sameAsMetric(t *testing.T, data []byte) {
	t.Helper()
	ms, derr := DecodeBatch(nil, data)
	r, rerr := NewBatchReader(data)
	var got []Record
	if rerr == nil {
		for r.Next() {
			rec := *r.Record()
			rec.Tags = append([]Tag(nil), rec.Tags...)
			got = append(got, rec)
		}
		rerr = r.Err()
	}
	if (derr == nil) != (rerr == nil) {
		t.Fatalf("DecodeBatch error %v, BatchReader error %v", derr, rerr)
	}
	if derr != nil {
		return
	}
	if len(got) != len(ms) {
		t.Fatalf("got %d records, want %d", len(got), len(ms))
	}
	for i := range ms {
		m, rec := &ms[i], &got[i]
		verr, rverr := m.Validate(), rec.Validate()
		if (verr == nil) != (rverr == nil) {
			t.Fatalf("metric %d: Metric.Validate %v, Record.Validate %v", i, verr, rverr)
		}
		if k1, k2 := m.AppendSeriesKey(nil), rec.AppendSeriesKey(nil); !bytes.Equal(k1, k2) {
			t.Fatalf("metric %d: series key %q, want %q", i, k2, k1)
		}
		j1, e1 := m.AppendJSON(nil)
		j2, e2 := rec.AppendJSON(nil)
		if !bytes.Equal(j1, j2) || (e1 == nil) != (e2 == nil) {
			t.Fatalf("metric %d: JSON %q (%v), want %q (%v)", i, j2, e2, j1, e1)
		}
		back := rec.Metric()
		same := back.Value == m.Value || (math.IsNaN(back.Value) && math.IsNaN(m.Value))
		if !same || back.Endpoint != m.Endpoint || back.Name != m.Name || len(back.Tags) != len(m.Tags) {
			t.Fatalf("metric %d: Record.Metric() = %+v, want %+v", i, back, *m)
		}
	}
}

// rawBatch encodes metrics whose tags are given in order, duplicates
// allowed (EncodeBatch always sorts; other encoders might not).
func rawBatch(tagLists ...[]Tag) []byte {
	b := append([]byte(batchMagic), batchVersion)
	b = binary.AppendUvarint(b, uint64(len(tagLists)))
	str := func(s string) {
		b = append(b, 0)
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, tags := range tagLists {
		str("host")
		str("cpu.idle")
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(1.5))
		b = binary.AppendVarint(b, 1700000000)
		b = binary.AppendUvarint(b, 10)
		b = append(b, 0)
		b = binary.AppendUvarint(b, uint64(len(tags)))
		for _, t := range tags {
			str(t.Key)
			str(t.Value)
		}
	}
	return b
}

func TestBatchReaderMatchesDecodeBatch(t *testing.T) {
	valid, _ := EncodeBatch(nil, sampleBatch(50))
	bad := []Metric{
		{Endpoint: "a/b", Name: "x", Timestamp: 1700000000},
		{Endpoint: "héllo", Name: "x\xff", Timestamp: 1700000000},
		{Endpoint: "h", Name: "x", Timestamp: 1700000000, Tags: map[string]string{"k": "v,w"}},
		{Endpoint: "h", Name: "x", Timestamp: 1700000000, Tags: map[string]string{"k=": "v"}},
		{Endpoint: "h", Name: "x", Timestamp: 1700000000, Tags: map[string]string{"ü": "ñ\"\\\n"}},
		{Endpoint: "h", Name: "x", Value: math.Inf(1), Timestamp: 1700000000},
		{Endpoint: "h", Name: "x", Timestamp: 1, Type: 9},
	}
	many := Metric{Endpoint: "h", Name: "x", Timestamp: 1700000000, Tags: map[string]string{}}
	for i := range 40 {
		many.Tags[fmt.Sprint("k", i)] = "v"
	}
	bad = append(bad, many)
	invalid, _ := EncodeBatch(nil, bad)
	for name, data := range map[string][]byte{
		"valid":     valid,
		"invalid":   invalid,
		"empty":     []byte("FNB\x01\x00"),
		"truncated": valid[:len(valid)-3],
		"trailing":  append(append([]byte(nil), valid...), 0),
		"unsorted":  rawBatch([]Tag{{"z", "1"}, {"a", "2"}, {"m", "3"}}, []Tag{{"b", "1"}, {"a", "2"}, {"b", "3"}}),
		"dups":      rawBatch([]Tag{{"a", "1"}, {"a", "2"}}, nil),
	} {
		t.Run(name, func(t *testing.T) { sameAsMetric(t, data) })
	}
}

func TestBatchReaderResetReuses(t *testing.T) {
	a, _ := EncodeBatch(nil, sampleBatch(10))
	b, _ := EncodeBatch(nil, []Metric{{Endpoint: "other", Name: "n", Timestamp: 1700000000}})
	r, err := NewBatchReader(a)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
	}
	if err := r.Reset(b); err != nil {
		t.Fatal(err)
	}
	if !r.Next() || r.Record().Endpoint != "other" || len(r.Record().Tags) != 0 || r.Next() || r.Err() != nil {
		t.Fatalf("after Reset: got %+v, err %v; want the one metric of the second batch", *r.Record(), r.Err())
	}
}

func FuzzBatchReader(f *testing.F) {
	good, _ := EncodeBatch(nil, sampleBatch(5))
	f.Add(good)
	f.Add([]byte("FNB\x01\x00"))
	f.Add(rawBatch([]Tag{{"z", "1"}, {"a", "2"}, {"z", "3"}}))
	f.Fuzz(func(t *testing.T, data []byte) { sameAsMetric(t, data) })
}

func BenchmarkBatchReaderRecords(b *testing.B) {
	data, _ := EncodeBatch(nil, sampleBatch(1000))
	r := &BatchReader{}
	buf := make([]byte, 0, 1<<20)
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Reset(data)
		buf = buf[:0]
		for r.Next() {
			rec := r.Record()
			_ = rec.Validate()
			buf = rec.AppendSeriesKey(buf)
			buf, _ = rec.AppendJSON(buf)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "metrics/s")
}

func BenchmarkDecodeBatchRecords(b *testing.B) {
	data, _ := EncodeBatch(nil, sampleBatch(1000))
	var ms []Metric
	buf := make([]byte, 0, 1<<20)
	b.ReportAllocs()
	for b.Loop() {
		ms, _ = DecodeBatch(ms[:0], data)
		buf = buf[:0]
		for i := range ms {
			_ = ms[i].Validate()
			buf = ms[i].AppendSeriesKey(buf)
			buf, _ = ms[i].AppendJSON(buf)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "metrics/s")
}
