package esserver

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// parseJSON decodes one JSON value into map[string]any / []any / string /
// jsonNumber / bool / nil, like encoding/json with UseNumber, but about
// three times faster on documents and strict like Elasticsearch's parser:
// a duplicate key in an object is an error ("Duplicate field"), and
// anything but white space after the value is an error.
func parseJSON(b []byte) (any, error) {
	p := jsonParser{b: b}
	p.ws()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(p.b) {
		return nil, p.errf("Unexpected character ('%c'): expected end of input", p.b[p.i])
	}
	return v, nil
}

type jsonParser struct {
	b []byte
	i int
}

const maxJSONDepth = 10000

var errJSONEOF = reasonErr("Unexpected end-of-input")

func (p *jsonParser) errf(format string, args ...any) error {
	return reasonf("[offset %d] "+format, append([]any{p.i}, args...)...)
}

func (p *jsonParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (any, error) {
	if p.i >= len(p.b) {
		return nil, errJSONEOF
	}
	if depth > maxJSONDepth {
		return nil, p.errf("exceeded max depth")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		p.i++
		arr := []any{}
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			return arr, nil
		}
		for {
			p.ws()
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
			p.ws()
			if p.i >= len(p.b) {
				return nil, errJSONEOF
			}
			if p.b[p.i] == ',' {
				p.i++
				continue
			}
			if p.b[p.i] == ']' {
				p.i++
				return arr, nil
			}
			return nil, p.errf("Unexpected character ('%c'): was expecting comma to separate Array entries", p.b[p.i])
		}
	case c == '"':
		return p.str()
	case c == 't':
		return true, p.lit("true")
	case c == 'f':
		return false, p.lit("false")
	case c == 'n':
		return nil, p.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.num()
	default:
		return nil, p.errf("Unexpected character ('%c'): expected a valid value", c)
	}
}

func (p *jsonParser) object(depth int) (any, error) {
	p.i++ // {
	obj := map[string]any{}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return obj, nil
	}
	for {
		p.ws()
		if p.i >= len(p.b) {
			return nil, errJSONEOF
		}
		if p.b[p.i] != '"' {
			return nil, p.errf("Unexpected character ('%c'): was expecting double-quote to start field name", p.b[p.i])
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.ws()
		if p.i >= len(p.b) {
			return nil, errJSONEOF
		}
		if p.b[p.i] != ':' {
			return nil, p.errf("Unexpected character ('%c'): was expecting a colon to separate field name and value", p.b[p.i])
		}
		p.i++
		p.ws()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if _, dup := obj[k]; dup {
			return nil, p.errf("Duplicate field '%s'", k)
		}
		obj[k] = v
		p.ws()
		if p.i >= len(p.b) {
			return nil, errJSONEOF
		}
		if p.b[p.i] == ',' {
			p.i++
			continue
		}
		if p.b[p.i] == '}' {
			p.i++
			return obj, nil
		}
		return nil, p.errf("Unexpected character ('%c'): was expecting comma to separate Object entries", p.b[p.i])
	}
}

func (p *jsonParser) lit(s string) error {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return p.errf("Unrecognized token: was expecting %s", s)
	}
	p.i += len(s)
	return nil
}

func (p *jsonParser) num() (any, error) {
	st := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return nil, p.errf("Unexpected character: expected digit in a number")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, p.errf("Unexpected character: expected digit after decimal point")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, p.errf("Unexpected character: expected digit in exponent")
		}
	}
	return jsonNumber(p.b[st:p.i]), nil
}

func (p *jsonParser) str() (string, error) {
	p.i++ // opening quote
	st := p.i
	// fast path: no escapes, ASCII or valid UTF-8
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := string(p.b[st:p.i])
			p.i++
			return s, nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		p.i++
	}
	buf := make([]byte, 0, p.i-st+16)
	buf = append(buf, p.b[st:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(buf), nil
		case c < 0x20:
			return "", p.errf("Illegal unquoted character (CTRL-CHAR, code %d): has to be escaped using backslash to be included in string value", c)
		case c == '\\':
			p.i++
			if p.i >= len(p.b) {
				return "", errJSONEOF
			}
			e := p.b[p.i]
			p.i++
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return "", p.errf("Unexpected character: expected a hex-digit for character escape sequence")
				}
				if utf16.IsSurrogate(r) {
					// a pair, or U+FFFD as encoding/json does
					save := p.i
					if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
						p.i += 2
						if r2, ok := p.hex4(); ok {
							if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
								buf = utf8.AppendRune(buf, dec)
								continue
							}
						}
					}
					p.i = save
					r = utf8.RuneError
				}
				buf = utf8.AppendRune(buf, r)
			default:
				return "", p.errf("Unrecognized character escape '%c'", e)
			}
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			p.i++
		default:
			r, size := utf8.DecodeRune(p.b[p.i:])
			p.i += size
			if r == utf8.RuneError && size == 1 {
				buf = utf8.AppendRune(buf, utf8.RuneError)
				continue
			}
			buf = append(buf, p.b[p.i-size:p.i]...)
		}
	}
	return "", errJSONEOF
}

func (p *jsonParser) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(n), true
}
