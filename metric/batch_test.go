package metric

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
)

func sampleBatch(n int) []Metric {
	ms := make([]Metric, n)
	for i := range ms {
		ms[i] = Metric{Endpoint: "edge-0042", Name: fmt.Sprintf("cpu.core%d.idle", i%8), Value: float64(i) * 1.25,
			Timestamp: 1700000000 + int64(i), Step: 10, Type: Type(i % 3),
			Tags: map[string]string{"core": fmt.Sprint(i % 8), "dc": "fra"}}
	}
	if n > 0 {
		ms[0].Tags = nil
	}
	return ms
}

func TestBatchRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 100} {
		ms := sampleBatch(n)
		b, err := EncodeBatch(nil, ms)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := BatchLen(b); err != nil || got != n {
			t.Fatalf("BatchLen = %d, %v; want %d", got, err, n)
		}
		got, err := DecodeBatch(nil, b)
		if err != nil {
			t.Fatalf("DecodeBatch(%d metrics): %v", n, err)
		}
		if n == 0 {
			if len(got) != 0 {
				t.Fatalf("got %d metrics, want 0", len(got))
			}
			continue
		}
		if !reflect.DeepEqual(got, ms) {
			t.Fatalf("round trip of %d metrics differs:\n got %+v\nwant %+v", n, got[:2], ms[:2])
		}
	}
}

func TestBatchIsCompact(t *testing.T) {
	b, _ := EncodeBatch(nil, sampleBatch(100))
	var jsonBytes int
	for _, m := range sampleBatch(100) {
		j, _ := m.AppendJSON(nil)
		jsonBytes += len(j)
	}
	if len(b)*3 > jsonBytes {
		t.Errorf("batch of 100 is %d bytes, canonical JSON %d: want at least 3x smaller", len(b), jsonBytes)
	}
	t.Logf("100 metrics: batch %d bytes, JSON %d bytes", len(b), jsonBytes)
}

func TestDecodeBatchCorrupt(t *testing.T) {
	good, _ := EncodeBatch(nil, sampleBatch(10))
	tests := map[string][]byte{
		"empty":        nil,
		"bad magic":    append([]byte("XXX"), good[3:]...),
		"bad version":  append(append([]byte("FNB"), 9), good[4:]...),
		"truncated":    good[:len(good)-3],
		"trailing":     append(append([]byte{}, good...), 0),
		"huge count":   {'F', 'N', 'B', 1, 0xff, 0xff, 0xff, 0x7f},
		"bad str ref":  {'F', 'N', 'B', 1, 1, 5},
		"huge str len": {'F', 'N', 'B', 1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	}
	for name, b := range tests {
		if _, err := DecodeBatch(nil, b); !errors.Is(err, ErrBatchCorrupt) {
			t.Errorf("%s: DecodeBatch error = %v, want ErrBatchCorrupt", name, err)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	good, _ := EncodeBatch(nil, sampleBatch(5))
	f.Add(good)
	f.Add([]byte("FNB\x01\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, err := DecodeBatch(nil, data)
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.Step < 0 {
				t.Fatalf("negative step %d decoded", m.Step)
			}
		}
		again, err := EncodeBatch(nil, ms)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		back, err := DecodeBatch(nil, again)
		if err != nil || len(back) != len(ms) {
			t.Fatalf("re-decode: %d metrics, %v; want %d", len(back), err, len(ms))
		}
		for i := range ms {
			same := back[i].Value == ms[i].Value || (math.IsNaN(back[i].Value) && math.IsNaN(ms[i].Value))
			if !same || back[i].Endpoint != ms[i].Endpoint {
				t.Fatalf("metric %d changed on re-encode", i)
			}
		}
	})
}

func BenchmarkEncodeBatch100(b *testing.B) {
	ms := sampleBatch(100)
	buf := make([]byte, 0, 8192)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = EncodeBatch(buf[:0], ms)
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "metrics/s")
}

func BenchmarkDecodeBatch100(b *testing.B) {
	enc, _ := EncodeBatch(nil, sampleBatch(100))
	out := make([]Metric, 0, 100)
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		out, _ = DecodeBatch(out[:0], enc)
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "metrics/s")
}

func BenchmarkAppendJSON(b *testing.B) {
	m := validMetric()
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = m.AppendJSON(buf[:0])
	}
}

func BenchmarkDocID(b *testing.B) {
	m := validMetric()
	b.ReportAllocs()
	for b.Loop() {
		_ = m.DocID()
	}
}
