package metric

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func validMetric() Metric {
	return Metric{Endpoint: "web-1", Name: "cpu.idle", Value: 97.5, Timestamp: 1700000000, Step: 10,
		Type: Gauge, Tags: map[string]string{"core": "0", "dc": "fra"}}
}

func TestValidate(t *testing.T) {
	manyTags := map[string]string{}
	for i := range MaxTags + 1 {
		manyTags[strings.Repeat("k", i+1)] = "v"
	}
	tests := []struct {
		name    string
		mutate  func(*Metric)
		wantErr string // substring; "" means valid
	}{
		{"valid", func(*Metric) {}, ""},
		{"no tags", func(m *Metric) { m.Tags = nil }, ""},
		{"slash in name", func(m *Metric) { m.Name = "df.bytes/used" }, ""},
		{"space in tag value", func(m *Metric) { m.Tags["mount"] = "/mnt/my disk" }, ""},
		{"empty endpoint", func(m *Metric) { m.Endpoint = "" }, "endpoint is empty"},
		{"slash in endpoint", func(m *Metric) { m.Endpoint = "a/b" }, "endpoint"},
		{"empty name", func(m *Metric) { m.Name = "" }, "name is empty"},
		{"comma in name", func(m *Metric) { m.Name = "a,b" }, "forbidden character"},
		{"equals in name", func(m *Metric) { m.Name = "a=b" }, "forbidden character"},
		{"space in name", func(m *Metric) { m.Name = "cpu idle" }, "forbidden character"},
		{"control char in name", func(m *Metric) { m.Name = "cpu\x01" }, "forbidden character"},
		{"long name", func(m *Metric) { m.Name = strings.Repeat("a", MaxNameLen+1) }, "at most 255"},
		{"NaN", func(m *Metric) { m.Value = math.NaN() }, "not a finite number"},
		{"+Inf", func(m *Metric) { m.Value = math.Inf(1) }, "not a finite number"},
		{"timestamp in ms", func(m *Metric) { m.Timestamp = 1700000000000 }, "outside"},
		{"timestamp zero", func(m *Metric) { m.Timestamp = 0 }, "outside"},
		{"negative step", func(m *Metric) { m.Step = -1 }, "step"},
		{"bad type", func(m *Metric) { m.Type = 7 }, "type"},
		{"too many tags", func(m *Metric) { m.Tags = manyTags }, "tags, at most"},
		{"tag key with =", func(m *Metric) { m.Tags["a=b"] = "c" }, "tag key"},
		{"tag key with /", func(m *Metric) { m.Tags["a/b"] = "c" }, "tag key"},
		{"empty tag key", func(m *Metric) { m.Tags[""] = "c" }, "tag key is empty"},
		{"tag value with comma", func(m *Metric) { m.Tags["a"] = "b,c" }, "forbidden character"},
		{"long tag value", func(m *Metric) { m.Tags["a"] = strings.Repeat("v", MaxTagValueLen+1) }, "at most 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validMetric()
			tt.mutate(&m)
			err := m.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Validate() = nil, want error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Validate() = %q, want it to contain %q", err, tt.wantErr)
			case err != nil && !errors.Is(err, ErrInvalid):
				t.Fatalf("Validate() = %v, does not wrap ErrInvalid", err)
			}
		})
	}
}

// The golden ids pin the document id across versions and machines: changing
// them changes every stored document's _id and breaks deduplication.
// They were checked independently: printf %s "web-1/cpu.idle/@1700000000" | sha256sum.
func TestDocIDGolden(t *testing.T) {
	tests := []struct {
		m         Metric
		wantKey   string
		wantDocID string
	}{
		{Metric{Endpoint: "web-1", Name: "cpu.idle", Timestamp: 1700000000},
			"web-1/cpu.idle/", "3755b5a063aa0af5a1c9a59904783a30"},
		{Metric{Endpoint: "web-1", Name: "cpu.idle", Timestamp: 1700000000, Tags: map[string]string{"dc": "fra", "core": "0"}},
			"web-1/cpu.idle/core=0,dc=fra", "3702b87c176bf8203878e4a8a7c83886"},
		{Metric{Endpoint: "db", Name: "df.bytes.free", Timestamp: 1700000010, Tags: map[string]string{"mount": "/var/lib"}},
			"db/df.bytes.free/mount=/var/lib", "379efd7dba5f13814d811b218a706ffd"},
	}
	for _, tt := range tests {
		if got := tt.m.SeriesKey(); got != tt.wantKey {
			t.Errorf("SeriesKey() = %q, want %q", got, tt.wantKey)
		}
		if got := tt.m.DocID(); got != tt.wantDocID {
			t.Errorf("DocID(%s@%d) = %q, want %q", tt.wantKey, tt.m.Timestamp, got, tt.wantDocID)
		}
	}
}

func TestDocIDIgnoresValueAndTagOrder(t *testing.T) {
	a := validMetric()
	b := validMetric()
	b.Value = 1
	b.Step = 60
	b.Tags = map[string]string{"dc": "fra", "core": "0"}
	if a.DocID() != b.DocID() {
		t.Fatalf("same series and time gave ids %s and %s", a.DocID(), b.DocID())
	}
	b.Timestamp++
	if a.DocID() == b.DocID() {
		t.Fatalf("different timestamps gave the same id %s", a.DocID())
	}
}

func TestDay(t *testing.T) {
	m := Metric{Timestamp: 1700006399} // 2023-11-14 23:59:59 UTC
	if got := m.Day(); got != "2023.11.14" {
		t.Fatalf("Day() = %q, want 2023.11.14", got)
	}
	m.Timestamp++
	if got := m.Day(); got != "2023.11.15" {
		t.Fatalf("Day() = %q, want 2023.11.15", got)
	}
}

func TestParseTags(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"", "", false},
		{"a=b", "a=b", false},
		{" b=2 , a=1 ,", "a=1,b=2", false},
		{"a=b=c", "a=b=c", false},
		{"novalue", "", true},
		{"=v", "", true},
	}
	for _, tt := range tests {
		tags, err := ParseTags(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseTags(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if got := FormatTags(tags); got != tt.want {
			t.Errorf("ParseTags(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
