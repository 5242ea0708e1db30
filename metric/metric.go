package metric

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Type says how a value is to be read. Agents turn counters into rates before
// they send them; the type records what the source said it was.
type Type uint8

// The metric types, with Open-Falcon's names.
const (
	Gauge   Type = iota // GAUGE: a value at a point in time.
	Counter             // COUNTER: a monotonically increasing count.
	Derive              // DERIVE: a count that may decrease.
)

func (t Type) String() string {
	switch t {
	case Gauge:
		return "GAUGE"
	case Counter:
		return "COUNTER"
	case Derive:
		return "DERIVE"
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// ParseType reads a type name as Open-Falcon writes it (case-insensitive).
// The empty string is GAUGE, Open-Falcon's default.
func ParseType(s string) (Type, error) {
	switch strings.ToUpper(s) {
	case "", "GAUGE":
		return Gauge, nil
	case "COUNTER":
		return Counter, nil
	case "DERIVE":
		return Derive, nil
	}
	return 0, fmt.Errorf("%w: type %q (want GAUGE, COUNTER or DERIVE)", ErrInvalid, s)
}

// MarshalText implements encoding.TextMarshaler.
func (t Type) MarshalText() ([]byte, error) {
	if t > Derive {
		return nil, fmt.Errorf("%w: type %d", ErrInvalid, t)
	}
	return []byte(t.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *Type) UnmarshalText(b []byte) error {
	v, err := ParseType(string(b))
	*t = v
	return err
}

// Metric is one measurement of one series at one second.
type Metric struct {
	Endpoint  string            // the host or service measured
	Name      string            // e.g. "cpu.idle"
	Value     float64           //
	Timestamp int64             // unix seconds, UTC
	Step      int64             // seconds between measurements; 0: unknown
	Type      Type              //
	Tags      map[string]string // optional; nil and empty are the same
}

// Limits enforced by Validate.
const (
	MaxEndpointLen = 255
	MaxNameLen     = 255
	MaxTags        = 32
	MaxTagKeyLen   = 128
	MaxTagValueLen = 256
	MaxStep        = 86400 * 366
)

// The timestamp range Validate accepts: [2000-01-01, 2200-01-01) UTC. Anything
// outside is a unit mistake (milliseconds sent as seconds) or a broken clock.
var (
	MinTimestamp = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	MaxTimestamp = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
)

// ErrInvalid is wrapped by every validation and decoding error.
var ErrInvalid = errors.New("metric: invalid")

// Validate reports the first reason m cannot be stored, or nil. The rules keep
// the series key unambiguous: the endpoint holds no '/', the name no '=' or
// ',', a tag key none of '/', ',', '='; a tag value no ','. No field holds
// control characters, and only tag values may hold spaces.
func (m *Metric) Validate() error {
	if len(m.Tags) > MaxTags {
		// checked before the tags are copied; the other fields first, as before
		if err := validate(m.Endpoint, m.Name, m.Value, m.Timestamp, m.Step, m.Type, nil); err != nil {
			return err
		}
		return fmt.Errorf("%w: %s: %d tags, at most %d", ErrInvalid, m.Name, len(m.Tags), MaxTags)
	}
	var buf [MaxTags]Tag
	return validate(m.Endpoint, m.Name, m.Value, m.Timestamp, m.Step, m.Type, sortedTags(m.Tags, buf[:0]))
}

func validate(endpoint, name string, value float64, ts, step int64, typ Type, tags []Tag) error {
	if err := checkField("endpoint", endpoint, MaxEndpointLen, "/,= "); err != nil {
		return err
	}
	if err := checkField("name", name, MaxNameLen, ",= "); err != nil {
		return err
	}
	if math.IsNaN(value) || math.IsInf(value, 0) {
		return fmt.Errorf("%w: %s: value %v is not a finite number", ErrInvalid, name, value)
	}
	if ts < MinTimestamp || ts >= MaxTimestamp {
		return fmt.Errorf("%w: %s: timestamp %d outside [%d, %d) (seconds since 1970; milliseconds must be marked)",
			ErrInvalid, name, ts, MinTimestamp, MaxTimestamp)
	}
	if step < 0 || step > MaxStep {
		return fmt.Errorf("%w: %s: step %d outside [0, %d]", ErrInvalid, name, step, MaxStep)
	}
	if typ > Derive {
		return fmt.Errorf("%w: %s: type %d", ErrInvalid, name, typ)
	}
	if len(tags) > MaxTags {
		return fmt.Errorf("%w: %s: %d tags, at most %d", ErrInvalid, name, len(tags), MaxTags)
	}
	for _, t := range tags {
		k, v := t.Key, t.Value
		if err := checkField("tag key", k, MaxTagKeyLen, "/,= "); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if len(v) > MaxTagValueLen {
			return fmt.Errorf("%w: %s: tag %s: value is %d bytes, at most %d", ErrInvalid, name, k, len(v), MaxTagValueLen)
		}
		for i := 0; i < len(v); i++ {
			// ',' and control characters are ASCII; a multi-byte UTF-8
			// sequence never holds a byte below 0x80
			if c := v[i]; c < 0x20 || c == 0x7f || c == ',' {
				return fmt.Errorf("%w: %s: tag %s: value %q has a forbidden character at byte %d", ErrInvalid, name, k, v, i)
			}
		}
	}
	return nil
}

// asciiForbidden[set][c] is true for the ASCII bytes a field may not hold:
// control characters and the field's separators (0: "/,= ", 1: ",= ").
var asciiForbidden = func() (t [2][128]bool) {
	for i, set := range []string{"/,= ", ",= "} {
		for c := range 128 {
			t[i][c] = c < 0x20 || c == 0x7f || strings.IndexByte(set, byte(c)) >= 0
		}
	}
	return t
}()

func checkField(what, s string, maxLen int, forbidden string) error {
	if s == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalid, what)
	}
	if len(s) > maxLen {
		return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrInvalid, what, len(s), maxLen)
	}
	table := &asciiForbidden[0]
	switch forbidden {
	case "/,= ":
	case ",= ":
		table = &asciiForbidden[1]
	default:
		return checkFieldRunes(what, s, forbidden)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return checkFieldRunes(what, s, forbidden) // non-ASCII: the rune rules (U+FFFD)
		}
		if table[c] {
			return fmt.Errorf("%w: %s %q has a forbidden character %q at byte %d", ErrInvalid, what, s, rune(c), i)
		}
	}
	return nil
}

func checkFieldRunes(what, s string, forbidden string) error {
	for i, r := range s {
		if r < 0x20 || r == 0x7f || r == '\uFFFD' || strings.ContainsRune(forbidden, r) {
			return fmt.Errorf("%w: %s %q has a forbidden character %q at byte %d", ErrInvalid, what, s, r, i)
		}
	}
	return nil
}

// SeriesKey identifies the series: "endpoint/name/k1=v1,k2=v2" with tags
// sorted by key ("endpoint/name/" without tags). For a valid metric the key is
// unambiguous (see Validate). It is the Kafka record key.
func (m *Metric) SeriesKey() string {
	return string(m.AppendSeriesKey(nil))
}

// AppendSeriesKey appends the series key to b and returns the extended slice.
func (m *Metric) AppendSeriesKey(b []byte) []byte {
	var buf [8]Tag
	return appendSeriesKey(b, m.Endpoint, m.Name, sortedTags(m.Tags, buf[:0]))
}

// DocID is the metric's document id: the first 16 bytes of
// SHA-256(SeriesKey + "@" + decimal Timestamp), in lower-case hex (32
// characters). The value, step and type are not part of it: a second
// measurement of the same series at the same second replaces the first.
func (m *Metric) DocID() string {
	var buf [512]byte
	b := m.AppendSeriesKey(buf[:0])
	b = append(b, '@')
	b = strconv.AppendInt(b, m.Timestamp, 10)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// Time returns the metric's timestamp as a UTC time.
func (m *Metric) Time() time.Time { return time.Unix(m.Timestamp, 0).UTC() }

// Day is the UTC day of the metric's own timestamp as "YYYY.MM.DD": the
// suffix of its daily index. It never depends on the clock of the caller.
func (m *Metric) Day() string { return m.Time().Format("2006.01.02") }

// ParseTags reads Open-Falcon's tag string "k=v,k2=v2". Empty parts are
// skipped; a part without '=' is an error.
func ParseTags(s string) (map[string]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	tags := make(map[string]string, strings.Count(s, ",")+1)
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: tag %q is not key=value", ErrInvalid, part)
		}
		tags[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return tags, nil
}

// FormatTags writes tags as Open-Falcon does: "k=v,k2=v2", sorted by key.
func FormatTags(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var sb strings.Builder
	for i, k := range keys {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(k)
		sb.WriteByte('=')
		sb.WriteString(tags[k])
	}
	return sb.String()
}
