package metric

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MarshalJSON writes the canonical JSON form:
//
//	{"endpoint":"web-1","name":"cpu.idle","value":97.5,"timestamp":1700000000,"step":10,"type":"GAUGE","tags":{"core":"0"}}
//
// Tags are sorted by key and omitted when empty. It does not validate; NaN and
// ±Inf are an error since JSON cannot carry them.
func (m Metric) MarshalJSON() ([]byte, error) {
	return m.AppendJSON(make([]byte, 0, 128+32*len(m.Tags)))
}

// AppendJSON appends the canonical JSON form of m to b.
func (m *Metric) AppendJSON(b []byte) ([]byte, error) {
	var buf [8]Tag
	return appendJSON(b, m.Endpoint, m.Name, m.Value, m.Timestamp, m.Step, m.Type, sortedTags(m.Tags, buf[:0]))
}

// appendJSONFloat writes f as encoding/json does (shortest repr, exponent
// only for very large or small magnitudes).
func appendJSONFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' { // as encoding/json: e-07 becomes e-7
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// jsonMetric accepts both the canonical form and Open-Falcon's
// (`metric`, `counterType`, tags as "k=v,k2=v2", value as number or string).
type jsonMetric struct {
	Endpoint    string          `json:"endpoint"`
	Name        string          `json:"name"`
	Metric      string          `json:"metric"` // Open-Falcon
	Value       json.RawMessage `json:"value"`
	Timestamp   json.Number     `json:"timestamp"`
	Precision   string          `json:"precision"` // "s" (default), "ms", "us", "ns"
	Step        json.Number     `json:"step"`
	Type        string          `json:"type"`
	CounterType string          `json:"counterType"` // Open-Falcon
	Tags        json.RawMessage `json:"tags"`
}

// UnmarshalJSON reads one metric in canonical or Open-Falcon form. It does not
// fill a missing timestamp and does not validate; DecodeJSON does both.
func (m *Metric) UnmarshalJSON(data []byte) error {
	var j jsonMetric
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return j.to(m, 0)
}

func (j *jsonMetric) to(m *Metric, now int64) error {
	*m = Metric{Endpoint: j.Endpoint, Name: j.Name}
	if m.Name == "" {
		m.Name = j.Metric
	} else if j.Metric != "" && j.Metric != j.Name {
		return fmt.Errorf("%w: both name %q and metric %q given", ErrInvalid, j.Name, j.Metric)
	}
	v, err := parseValue(j.Value)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, m.Name, err)
	}
	m.Value = v
	ts, err := parseTimestamp(j.Timestamp, j.Precision)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, m.Name, err)
	}
	if ts == 0 {
		ts = now
	}
	m.Timestamp = ts
	if j.Step != "" {
		step, err := strconv.ParseInt(string(j.Step), 10, 64)
		if err != nil {
			return fmt.Errorf("%w: %s: step %s is not a whole number of seconds", ErrInvalid, m.Name, j.Step)
		}
		m.Step = step
	}
	typ := j.Type
	if typ == "" {
		typ = j.CounterType
	}
	if m.Type, err = ParseType(typ); err != nil {
		return err
	}
	m.Tags, err = parseJSONTags(j.Tags)
	if err != nil {
		return fmt.Errorf("%s: %w", m.Name, err)
	}
	return nil
}

func parseValue(raw json.RawMessage) (float64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, fmt.Errorf("value missing")
	}
	s := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("value %s: %v", raw, err)
		}
		s = strings.TrimSpace(s)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("value %s is not a number", raw)
	}
	return f, nil
}

func parseTimestamp(n json.Number, precision string) (int64, error) {
	if n == "" {
		return 0, nil
	}
	ts, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(string(n), 64)
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<62 {
			return 0, fmt.Errorf("timestamp %s is not a whole number", n)
		}
		ts = int64(f)
	}
	switch precision {
	case "", "s":
	case "ms":
		ts /= int64(time.Second / time.Millisecond)
	case "us":
		ts /= int64(time.Second / time.Microsecond)
	case "ns":
		ts /= int64(time.Second)
	default:
		return 0, fmt.Errorf("precision %q (want s, ms, us or ns)", precision)
	}
	return ts, nil
}

func parseJSONTags(raw json.RawMessage) (map[string]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("%w: tags: %v", ErrInvalid, err)
		}
		return ParseTags(s)
	case '{':
		var tags map[string]string
		if err := json.Unmarshal(raw, &tags); err != nil {
			return nil, fmt.Errorf("%w: tags must map strings to strings: %v", ErrInvalid, err)
		}
		if len(tags) == 0 {
			return nil, nil
		}
		return tags, nil
	}
	return nil, fmt.Errorf("%w: tags must be an object or a \"k=v,k2=v2\" string", ErrInvalid)
}

// ItemError is the reason one item of a JSON document was refused.
type ItemError struct {
	Index int // position in the array (0 for a single object or the first line)
	Err   error
}

func (e ItemError) Error() string { return fmt.Sprintf("item %d: %v", e.Index, e.Err) }
func (e ItemError) Unwrap() error { return e.Err }

// DecodeJSON reads metrics from data: one JSON object, a JSON array of
// objects, or objects one per line (in canonical or Open-Falcon form, mixed
// freely). A metric without a timestamp gets now (unix seconds). Every metric
// is validated. It returns the good metrics and, for each bad item, why; a
// document that is not JSON at all gives one ItemError with Index -1.
func DecodeJSON(data []byte, now int64) ([]Metric, []ItemError) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, nil
	}
	var items []json.RawMessage
	if data[0] == '[' {
		if err := json.Unmarshal(data, &items); err != nil {
			return nil, []ItemError{{Index: -1, Err: fmt.Errorf("%w: %v", ErrInvalid, err)}}
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(data))
		for {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return decodeItems(items, now, ItemError{Index: len(items), Err: fmt.Errorf("%w: %v", ErrInvalid, err)})
			}
			items = append(items, raw)
		}
	}
	return decodeItems(items, now, ItemError{})
}

func decodeItems(items []json.RawMessage, now int64, tail ItemError) ([]Metric, []ItemError) {
	out := make([]Metric, 0, len(items))
	var bad []ItemError
	for i, raw := range items {
		var j jsonMetric
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var m Metric
		err := dec.Decode(&j)
		if err != nil {
			err = fmt.Errorf("%w: %v", ErrInvalid, err)
		} else if err = j.to(&m, now); err == nil {
			err = m.Validate()
		}
		if err != nil {
			bad = append(bad, ItemError{Index: i, Err: err})
			continue
		}
		out = append(out, m)
	}
	if tail.Err != nil {
		bad = append(bad, tail)
	}
	return out, bad
}

// OpenFalconJSON writes m in Open-Falcon's form, for tools that feed
// Open-Falcon's transfer or read its output.
func (m *Metric) OpenFalconJSON() ([]byte, error) {
	if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
		return nil, fmt.Errorf("%w: %s: value %v is not a finite number", ErrInvalid, m.Name, m.Value)
	}
	b := make([]byte, 0, 160)
	b = append(b, `{"endpoint":`...)
	b = appendJSONString(b, m.Endpoint)
	b = append(b, `,"metric":`...)
	b = appendJSONString(b, m.Name)
	b = append(b, `,"value":`...)
	b = appendJSONFloat(b, m.Value)
	b = append(b, `,"step":`...)
	b = strconv.AppendInt(b, m.Step, 10)
	b = append(b, `,"counterType":"`...)
	b = append(b, m.Type.String()...)
	b = append(b, `","tags":`...)
	b = appendJSONString(b, FormatTags(m.Tags))
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, m.Timestamp, 10)
	return append(b, '}'), nil
}
