package metric

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// OpenFalconItem is one MetricValue as Open-Falcon's transfer receives it
// (JSON-RPC Transfer.Update, POST /api/push). Value is kept raw: Open-Falcon
// takes a JSON number or a string holding a number.
type OpenFalconItem struct {
	Endpoint    string          `json:"endpoint"`
	Metric      string          `json:"metric"`
	Value       json.RawMessage `json:"value"`
	Step        int64           `json:"step"`
	CounterType string          `json:"counterType"`
	Tags        string          `json:"tags"`
	Timestamp   int64           `json:"timestamp"`
}

// OpenFalconMaxKeyLen is Open-Falcon's bound on len(metric)+len(tags).
const OpenFalconMaxKeyLen = 510

// DecodeOpenFalconItems reads a JSON array of MetricValue. An item that does
// not decode (a string step, a null item) is an error at its index, not a
// failure of the whole array as in Open-Falcon; an input that is not an array
// is an error. It never panics and allocates in proportion to data.
func DecodeOpenFalconItems(data []byte) ([]OpenFalconItem, []ItemError, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		return nil, nil, nil
	}
	if data[0] != '[' {
		return nil, nil, fmt.Errorf("%w: want a JSON array of metric values", ErrInvalid)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	items := make([]OpenFalconItem, len(raws))
	var bad []ItemError
	for i, raw := range raws {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || raw[0] != '{' {
			bad = append(bad, ItemError{Index: i, Err: fmt.Errorf("%w: item is %.20s, not an object", ErrInvalid, raw)})
			items[i] = OpenFalconItem{}
			continue
		}
		if err := json.Unmarshal(raw, &items[i]); err != nil {
			bad = append(bad, ItemError{Index: i, Err: fmt.Errorf("%w: %v", ErrInvalid, err)})
			items[i] = OpenFalconItem{}
		}
	}
	return items, bad, nil
}

// ToMetric applies Open-Falcon transfer's rules and then falconet's Validate.
// now is the receiver's clock (unix seconds). Like Open-Falcon it refuses an
// empty endpoint or metric, a counterType other than GAUGE, COUNTER or
// DERIVE (exact case), step <= 0, len(metric)+len(tags) > 510, a value that
// is not a number or a string holding one, and the metric kernel.hostname;
// like Open-Falcon it replaces a timestamp <= 0 or > 2×now with now
// (fixed reports that). Tags are read as Open-Falcon reads them
// (OpenFalconTags). Where falconet is stricter (characters, lengths, tag
// counts, NaN and ±Inf, timestamps before 2000) the error says why.
func (it *OpenFalconItem) ToMetric(now int64) (m Metric, fixed bool, err error) {
	switch {
	case it.Endpoint == "":
		return m, false, fmt.Errorf("%w: endpoint is empty", ErrInvalid)
	case it.Metric == "":
		return m, false, fmt.Errorf("%w: metric is empty", ErrInvalid)
	case it.Metric == "kernel.hostname":
		// Open-Falcon's transfer drops this one by name (old agents sent a
		// string value); do the same so counts agree.
		return m, false, fmt.Errorf("%w: metric kernel.hostname is refused (as by Open-Falcon's transfer)", ErrInvalid)
	}
	var typ Type
	switch it.CounterType {
	case "GAUGE":
		typ = Gauge
	case "COUNTER":
		typ = Counter
	case "DERIVE":
		typ = Derive
	default:
		return m, false, fmt.Errorf("%w: %s: counterType %q (want GAUGE, COUNTER or DERIVE)", ErrInvalid, it.Metric, it.CounterType)
	}
	if it.Step <= 0 {
		return m, false, fmt.Errorf("%w: %s: step %d, want > 0", ErrInvalid, it.Metric, it.Step)
	}
	if n := len(it.Metric) + len(it.Tags); n > OpenFalconMaxKeyLen {
		return m, false, fmt.Errorf("%w: %s: len(metric)+len(tags) is %d, at most %d", ErrInvalid, it.Metric, n, OpenFalconMaxKeyLen)
	}
	v, err := openFalconValue(it.Value)
	if err != nil {
		return m, false, fmt.Errorf("%w: %s: %v", ErrInvalid, it.Metric, err)
	}
	ts := it.Timestamp
	if ts <= 0 || ts > 2*now {
		ts, fixed = now, true
	}
	m = Metric{Endpoint: it.Endpoint, Name: it.Metric, Value: v, Timestamp: ts, Step: it.Step, Type: typ, Tags: OpenFalconTags(it.Tags)}
	if err := m.Validate(); err != nil {
		return Metric{}, fixed, err
	}
	return m, fixed, nil
}

func openFalconValue(raw json.RawMessage) (float64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, errors.New("value missing")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("value %.40s: %v", raw, err)
		}
		f, err := strconv.ParseFloat(s, 64) // Open-Falcon: no trimming
		if err != nil {
			return 0, fmt.Errorf("value %q is not a number", s)
		}
		return f, nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		var f float64
		if err := json.Unmarshal(raw, &f); err != nil {
			return 0, fmt.Errorf("value %.40s: %v", raw, err)
		}
		return f, nil
	}
	return 0, fmt.Errorf("value %.40s is neither a number nor a string holding one", raw)
}

// OpenFalconTags reads a tag string as Open-Falcon's transfer does: every
// space removed, split on ",", each part split on its first "="; parts
// without "=" are dropped, a repeated key keeps its last value. Keys or values
// that falconet refuses (an empty key, a "/" in a key, too long) are kept
// here, so that Validate names them.
func OpenFalconTags(s string) map[string]string {
	if s == "" {
		return nil
	}
	s = strings.ReplaceAll(s, " ", "")
	var tags map[string]string
	for part := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		if tags == nil {
			tags = make(map[string]string, strings.Count(s, ",")+1)
		}
		tags[k] = v
	}
	return tags
}

// ParseOpenFalconUpdate reads the fields after "update" of an Open-Falcon
// socket line: endpoint metric timestamp value [counterType] [step], where
// step is a number or RRD's "heartbeat:min:max:step". counterType defaults
// to COUNTER and step to 60, as in Open-Falcon; there are no tags.
func ParseOpenFalconUpdate(fields []string) (OpenFalconItem, error) {
	if len(fields) < 4 || len(fields) > 6 {
		return OpenFalconItem{}, fmt.Errorf("%w: update line has %d fields, want 4 to 6 (endpoint metric timestamp value [counterType] [step])", ErrInvalid, len(fields))
	}
	it := OpenFalconItem{Endpoint: fields[0], Metric: fields[1], CounterType: "COUNTER", Step: 60}
	ts, err := strconv.ParseInt(fields[2], 10, 64)
	if err != nil {
		return OpenFalconItem{}, fmt.Errorf("%w: timestamp %q is not an integer", ErrInvalid, fields[2])
	}
	it.Timestamp = ts
	if _, err := strconv.ParseFloat(fields[3], 64); err != nil {
		return OpenFalconItem{}, fmt.Errorf("%w: value %q is not a number", ErrInvalid, fields[3])
	}
	it.Value = json.RawMessage(strconv.Quote(fields[3]))
	if len(fields) >= 5 {
		it.CounterType = fields[4]
	}
	if len(fields) == 6 {
		parts := strings.Split(fields[5], ":")
		var s string
		switch len(parts) {
		case 1:
			s = parts[0]
		case 4:
			s = parts[3]
		default:
			return OpenFalconItem{}, fmt.Errorf("%w: step %q (want N or heartbeat:min:max:N)", ErrInvalid, fields[5])
		}
		if it.Step, err = strconv.ParseInt(s, 10, 64); err != nil {
			return OpenFalconItem{}, fmt.Errorf("%w: step %q is not an integer", ErrInvalid, fields[5])
		}
	}
	return it, nil
}
