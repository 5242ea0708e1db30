package metric

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
)

// Tag is one tag of a Record.
type Tag struct{ Key, Value string }

// Record is a metric whose tags are a slice sorted by key with unique keys,
// as BatchReader yields it: the relay's hot path turns a batch into Kafka
// records without building a map per metric. Its Validate, AppendSeriesKey
// and AppendJSON give exactly what Metric's do for the same metric.
type Record struct {
	Endpoint  string
	Name      string
	Value     float64
	Timestamp int64
	Step      int64
	Type      Type
	Tags      []Tag // sorted by Key, keys unique
}

// Metric returns r as a Metric (a new tag map).
func (r *Record) Metric() Metric {
	m := Metric{Endpoint: r.Endpoint, Name: r.Name, Value: r.Value, Timestamp: r.Timestamp, Step: r.Step, Type: r.Type}
	if len(r.Tags) > 0 {
		m.Tags = make(map[string]string, len(r.Tags))
		for _, t := range r.Tags {
			m.Tags[t.Key] = t.Value
		}
	}
	return m
}

// Validate is Metric.Validate for a Record.
func (r *Record) Validate() error {
	return validate(r.Endpoint, r.Name, r.Value, r.Timestamp, r.Step, r.Type, r.Tags)
}

// AppendSeriesKey is Metric.AppendSeriesKey for a Record.
func (r *Record) AppendSeriesKey(b []byte) []byte {
	return appendSeriesKey(b, r.Endpoint, r.Name, r.Tags)
}

// AppendJSON is Metric.AppendJSON for a Record.
func (r *Record) AppendJSON(b []byte) ([]byte, error) {
	return appendJSON(b, r.Endpoint, r.Name, r.Value, r.Timestamp, r.Step, r.Type, r.Tags)
}

// sortedTags returns m's tags sorted by key in buf (or a new slice when
// more than fit).
func sortedTags(m map[string]string, buf []Tag) []Tag {
	ts := buf[:0]
	for k, v := range m {
		ts = append(ts, Tag{k, v})
	}
	sortTags(ts)
	return ts
}

// sortTags is an insertion sort: tag sets are small.
func sortTags(ts []Tag) {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j].Key < ts[j-1].Key; j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

func appendSeriesKey(b []byte, endpoint, name string, tags []Tag) []byte {
	b = append(b, endpoint...)
	b = append(b, '/')
	b = append(b, name...)
	b = append(b, '/')
	for i, t := range tags {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(append(append(b, t.Key...), '='), t.Value...)
	}
	return b
}

func appendJSON(b []byte, endpoint, name string, value float64, ts, step int64, typ Type, tags []Tag) ([]byte, error) {
	if math.IsNaN(value) || math.IsInf(value, 0) {
		return b, fmt.Errorf("%w: %s: value %v is not a finite number", ErrInvalid, name, value)
	}
	if typ > Derive {
		return b, fmt.Errorf("%w: %s: type %d", ErrInvalid, name, typ)
	}
	b = append(b, `{"endpoint":`...)
	b = appendJSONString(b, endpoint)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, name)
	b = append(b, `,"value":`...)
	b = appendJSONFloat(b, value)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"step":`...)
	b = strconv.AppendInt(b, step, 10)
	b = append(b, `,"type":"`...)
	b = append(b, typ.String()...)
	b = append(b, '"')
	if len(tags) > 0 {
		b = append(b, `,"tags":{`...)
		for i, t := range tags {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, t.Key)
			b = append(b, ':')
			b = appendJSONString(b, t.Value)
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// BatchReader reads an encoded batch one Record at a time, reusing the
// Record and its tag slice (valid until the next call to Next). Strings
// are allocated once per distinct string of the batch.
type BatchReader struct {
	d   batchDecoder
	n   int
	i   int
	rec Record
	err error
}

// NewBatchReader checks the batch header; Next reads the metrics.
func NewBatchReader(b []byte) (*BatchReader, error) {
	r := &BatchReader{}
	return r, r.Reset(b)
}

// Reset starts reading another batch, keeping the buffers.
func (r *BatchReader) Reset(b []byte) error {
	n, err := BatchLen(b)
	if err != nil {
		return err
	}
	_, k := binary.Uvarint(b[4:])
	r.d = batchDecoder{b: b, off: 4 + k, table: r.d.table[:0]}
	clear(r.d.table[:cap(r.d.table)])
	r.n, r.i, r.err = n, 0, nil
	if n > (len(b)-r.d.off)/14 {
		r.err = fmt.Errorf("%w: count %d larger than the %d bytes can hold", ErrBatchCorrupt, n, len(b))
	}
	return r.err
}

// Len is the number of metrics in the batch.
func (r *BatchReader) Len() int { return r.n }

// Next decodes the next metric; false at the end or on a corrupt batch
// (see Err). Tags with the same key keep the last value, as DecodeBatch's
// map does.
func (r *BatchReader) Next() bool {
	if r.err != nil || r.i >= r.n {
		if r.err == nil && r.i == r.n && r.d.off != len(r.d.b) {
			r.err = fmt.Errorf("%w: %d trailing bytes", ErrBatchCorrupt, len(r.d.b)-r.d.off)
		}
		return false
	}
	d, m := &r.d, &r.rec
	m.Endpoint = d.str()
	m.Name = d.str()
	if d.err == nil && d.off+8 <= len(d.b) {
		m.Value = math.Float64frombits(binary.LittleEndian.Uint64(d.b[d.off:]))
		d.off += 8
	} else {
		d.fail("value")
	}
	m.Timestamp = d.varint()
	step := d.uvarint()
	if step > math.MaxInt64 {
		d.fail("step")
	}
	m.Step = int64(step)
	if d.err == nil && d.off < len(d.b) {
		m.Type = Type(d.b[d.off])
		d.off++
	} else {
		d.fail("type")
	}
	m.Tags = m.Tags[:0]
	ntags := d.uvarint()
	if ntags > 0 && d.err == nil {
		if ntags > uint64(len(d.b)-d.off)/2 {
			d.fail("tag count")
		} else {
			sorted := true
			for range ntags {
				k := d.str()
				v := d.str()
				if n := len(m.Tags); n > 0 && k <= m.Tags[n-1].Key {
					sorted = false
				}
				m.Tags = append(m.Tags, Tag{k, v})
			}
			if !sorted {
				m.Tags = dedupeTags(m.Tags)
			}
		}
	}
	if d.err != nil {
		r.err = fmt.Errorf("%w: metric %d: %v", ErrBatchCorrupt, r.i, d.err)
		return false
	}
	r.i++
	return true
}

// dedupeTags sorts ts by key (stable) and keeps the last value of each key.
func dedupeTags(ts []Tag) []Tag {
	for i := 1; i < len(ts); i++ { // stable insertion sort
		for j := i; j > 0 && ts[j].Key < ts[j-1].Key; j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
	out := ts[:0]
	for i, t := range ts {
		if i+1 < len(ts) && ts[i+1].Key == t.Key {
			continue // a later one wins
		}
		out = append(out, t)
	}
	return out
}

// Record is the metric Next decoded.
func (r *BatchReader) Record() *Record { return &r.rec }

// Err is the corruption that stopped Next, if any.
func (r *BatchReader) Err() error { return r.err }
