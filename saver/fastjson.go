package saver

import (
	"bytes"
	"strconv"
	"unicode/utf8"

	"github.com/falconet/falconet/metric"
)

// decodeCanonical is a fast path for exactly the canonical JSON the relay
// writes (metric.AppendJSON: keys in order, no spaces, no escapes). It
// reports false for anything else, and the caller falls back to
// json.Unmarshal, which reads every accepted form. Where it reports true the
// result equals json.Unmarshal's (FuzzDecodeCanonical checks this).
func decodeCanonical(b []byte, m *metric.Metric) bool {
	p := canonParser{b: b}
	*m = metric.Metric{}
	if !p.lit(`{"endpoint":`) {
		return false
	}
	var ok bool
	if m.Endpoint, ok = p.str(); !ok || !p.lit(`,"name":`) {
		return false
	}
	if m.Name, ok = p.str(); !ok || !p.lit(`,"value":`) {
		return false
	}
	num, ok := p.number()
	if !ok {
		return false
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return false
	}
	m.Value = v
	if !p.lit(`,"timestamp":`) {
		return false
	}
	if m.Timestamp, ok = p.integer(); !ok || !p.lit(`,"step":`) {
		return false
	}
	if m.Step, ok = p.integer(); !ok || !p.lit(`,"type":`) {
		return false
	}
	typ, ok := p.str()
	if !ok {
		return false
	}
	switch typ {
	case "GAUGE":
		m.Type = metric.Gauge
	case "COUNTER":
		m.Type = metric.Counter
	case "DERIVE":
		m.Type = metric.Derive
	default:
		return false
	}
	if p.lit(`,"tags":{`) {
		m.Tags = make(map[string]string, 4)
		for first := true; ; first = false {
			if p.lit("}") {
				break
			}
			if !first && !p.lit(",") {
				return false
			}
			k, ok := p.str()
			if !ok || !p.lit(":") {
				return false
			}
			v, ok := p.str()
			if !ok {
				return false
			}
			if _, dup := m.Tags[k]; dup {
				return false
			}
			m.Tags[k] = v
		}
	}
	return p.lit("}") && p.i == len(p.b)
}

type canonParser struct {
	b []byte
	i int
}

func (p *canonParser) lit(s string) bool {
	if bytes.HasPrefix(p.b[p.i:], []byte(s)) {
		p.i += len(s)
		return true
	}
	return false
}

// str reads a string without escapes or control characters, valid UTF-8.
func (p *canonParser) str() (string, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", false
	}
	start := p.i + 1
	for j := start; j < len(p.b); j++ {
		c := p.b[j]
		switch {
		case c == '"':
			s := p.b[start:j]
			if !utf8.Valid(s) {
				return "", false
			}
			p.i = j + 1
			return string(s), true
		case c == '\\' || c < 0x20:
			return "", false
		}
	}
	return "", false
}

// number reads a JSON number (RFC 8259 grammar).
func (p *canonParser) number() (string, bool) {
	b, i := p.b, p.i
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return "", false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return "", false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return "", false
		}
	}
	p.i = i
	return string(b[start:i]), true
}

// integer reads an integer JSON number: -?(0|[1-9][0-9]*), fitting int64.
func (p *canonParser) integer() (int64, bool) {
	save := p.i
	s, ok := p.number()
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		p.i = save
		return 0, false
	}
	return n, true
}
