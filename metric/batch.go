package metric

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The batch encoding is what the agent's buffer stores and what a wire batch
// frame carries, byte for byte: the agent never re-encodes a batch between
// disk and network.
//
//	batch   = magic "FNB" version(1 byte) count(uvarint) metric*count
//	metric  = str(endpoint) str(name) value(8 bytes, IEEE-754 little endian)
//	          timestamp(varint) step(uvarint) type(1 byte) ntags(uvarint) (str(key) str(value))*ntags
//	str     = uvarint(0) len(uvarint) bytes   a string not seen before in this batch
//	        | uvarint(i)                      the i-th distinct string of this batch (1-based)
//
// The string table makes repeated endpoints, tag keys and tag values cost one
// or two bytes each. There is no checksum here: the buffer and the wire each
// protect the bytes with their own CRC.
const (
	batchMagic   = "FNB"
	batchVersion = 1
)

// MaxBatchMetrics bounds the metrics in one batch, so a decoder can refuse a
// hostile count before allocating.
const MaxBatchMetrics = 1 << 20

// ErrBatchCorrupt is wrapped by every batch decoding error.
var ErrBatchCorrupt = errors.New("metric: corrupt batch")

// EncodeBatch appends the batch encoding of ms to dst and returns the extended
// slice. It does not validate the metrics.
func EncodeBatch(dst []byte, ms []Metric) ([]byte, error) {
	if len(ms) > MaxBatchMetrics {
		return dst, fmt.Errorf("metric: batch of %d metrics, at most %d", len(ms), MaxBatchMetrics)
	}
	e := batchEncoder{b: dst, table: make(map[string]uint64, 16)}
	e.b = append(e.b, batchMagic...)
	e.b = append(e.b, batchVersion)
	e.b = binary.AppendUvarint(e.b, uint64(len(ms)))
	var keys []string
	for i := range ms {
		m := &ms[i]
		e.str(m.Endpoint)
		e.str(m.Name)
		e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(m.Value))
		e.b = binary.AppendVarint(e.b, m.Timestamp)
		if m.Step < 0 {
			return dst, fmt.Errorf("%w: %s: negative step %d", ErrInvalid, m.Name, m.Step)
		}
		e.b = binary.AppendUvarint(e.b, uint64(m.Step))
		e.b = append(e.b, byte(m.Type))
		e.b = binary.AppendUvarint(e.b, uint64(len(m.Tags)))
		keys = sortedKeys(keys[:0], m.Tags)
		for _, k := range keys {
			e.str(k)
			e.str(m.Tags[k])
		}
	}
	return e.b, nil
}

type batchEncoder struct {
	b     []byte
	table map[string]uint64
}

func (e *batchEncoder) str(s string) {
	if i, ok := e.table[s]; ok {
		e.b = binary.AppendUvarint(e.b, i)
		return
	}
	e.table[s] = uint64(len(e.table) + 1)
	e.b = append(e.b, 0)
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

func sortedKeys(dst []string, m map[string]string) []string {
	for k := range m {
		dst = append(dst, k)
	}
	// insertion sort: tag sets are small
	for i := 1; i < len(dst); i++ {
		for j := i; j > 0 && dst[j] < dst[j-1]; j-- {
			dst[j], dst[j-1] = dst[j-1], dst[j]
		}
	}
	return dst
}

// BatchLen returns the number of metrics in an encoded batch without decoding
// it.
func BatchLen(b []byte) (int, error) {
	if len(b) < len(batchMagic)+1 || string(b[:3]) != batchMagic {
		return 0, fmt.Errorf("%w: bad magic", ErrBatchCorrupt)
	}
	if b[3] != batchVersion {
		return 0, fmt.Errorf("%w: version %d, this build reads %d", ErrBatchCorrupt, b[3], batchVersion)
	}
	n, k := binary.Uvarint(b[4:])
	if k <= 0 || n > MaxBatchMetrics {
		return 0, fmt.Errorf("%w: bad count", ErrBatchCorrupt)
	}
	return int(n), nil
}

// DecodeBatch decodes an encoded batch, appending the metrics to dst. It never
// panics and allocates in proportion to len(b).
func DecodeBatch(dst []Metric, b []byte) ([]Metric, error) {
	n, err := BatchLen(b)
	if err != nil {
		return dst, err
	}
	_, k := binary.Uvarint(b[4:])
	d := batchDecoder{b: b, off: 4 + k}
	// each metric takes at least 14 bytes; refuse counts the input cannot hold
	if n > (len(b)-d.off)/14 {
		return dst, fmt.Errorf("%w: count %d larger than the %d bytes can hold", ErrBatchCorrupt, n, len(b))
	}
	dst = append(dst, make([]Metric, n)...)
	out := dst[len(dst)-n:]
	for i := range out {
		m := &out[i]
		m.Endpoint = d.str()
		m.Name = d.str()
		if d.err == nil && d.off+8 <= len(b) {
			m.Value = math.Float64frombits(binary.LittleEndian.Uint64(b[d.off:]))
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
		if d.err == nil && d.off < len(b) {
			m.Type = Type(b[d.off])
			d.off++
		} else {
			d.fail("type")
		}
		ntags := d.uvarint()
		if ntags > 0 && d.err == nil {
			if ntags > uint64(len(b)-d.off)/2 {
				d.fail("tag count")
				break
			}
			m.Tags = make(map[string]string, ntags)
			for range ntags {
				k := d.str()
				m.Tags[k] = d.str()
			}
		}
		if d.err != nil {
			return dst[:len(dst)-n], fmt.Errorf("%w: metric %d: %v", ErrBatchCorrupt, i, d.err)
		}
	}
	if d.err != nil {
		return dst[:len(dst)-n], fmt.Errorf("%w: %v", ErrBatchCorrupt, d.err)
	}
	if d.off != len(b) {
		return dst[:len(dst)-n], fmt.Errorf("%w: %d trailing bytes", ErrBatchCorrupt, len(b)-d.off)
	}
	return dst, nil
}

type batchDecoder struct {
	b     []byte
	off   int
	table []string
	err   error
}

func (d *batchDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("truncated or bad %s at byte %d", what, d.off)
	}
}

func (d *batchDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Uvarint(d.b[d.off:])
	if k <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.off += k
	return v
}

func (d *batchDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Varint(d.b[d.off:])
	if k <= 0 {
		d.fail("varint")
		return 0
	}
	d.off += k
	return v
}

func (d *batchDecoder) str() string {
	i := d.uvarint()
	if d.err != nil {
		return ""
	}
	if i > 0 {
		if i > uint64(len(d.table)) {
			d.fail("string reference")
			return ""
		}
		return d.table[i-1]
	}
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("string length")
		return ""
	}
	s := string(d.b[d.off : d.off+int(n)])
	d.off += int(n)
	d.table = append(d.table, s)
	return s
}
