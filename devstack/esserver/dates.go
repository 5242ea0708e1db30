package esserver

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// dateFormat is a parsed Elasticsearch date "format": one or more formats
// joined by "||". Values are tried against each in order; output (key_as_string,
// value_as_string) uses the first.
type dateFormat struct {
	spec    string
	parsers []dateParser
}

type dateKind int

const (
	dateISO         dateKind = iota // strict_date_optional_time and friends
	dateEpochMillis                 // epoch_millis
	dateEpochSecond                 // epoch_second
	dateLayout                      // a Java pattern translated to a Go layout
)

type dateParser struct {
	kind   dateKind
	strict bool
	layout string // dateLayout only
	name   string
}

const defaultDateFormat = "strict_date_optional_time||epoch_millis"

var isoNames = map[string]bool{
	"strict_date_optional_time": true, "date_optional_time": true,
	"strict_date_optional_time_nanos": true, "strict_date_time": true, "date_time": true,
	"strict_date_time_no_millis": true, "date_time_no_millis": true,
	"strict_date_hour_minute_second": true, "date_hour_minute_second": true,
	"strict_date_hour_minute_second_millis": true, "date_hour_minute_second_millis": true,
	"strict_date_hour_minute_second_fraction": true, "date_hour_minute_second_fraction": true,
	"strict_date_hour_minute": true, "date_hour_minute": true,
	"strict_date_hour": true, "date_hour": true,
	"strict_date": true, "date": true, "strict_year_month_day": true, "year_month_day": true,
	"strict_year_month": true, "year_month": true, "strict_year": true, "year": true,
}

var namedLayouts = map[string]string{
	"basic_date": "20060102", "strict_basic_week_date": "", "basic_date_time": "20060102T150405.000Z0700",
	"basic_date_time_no_millis": "20060102T150405Z0700",
}

func parseDateFormat(spec string) (*dateFormat, error) {
	if spec == "" {
		spec = defaultDateFormat
	}
	f := &dateFormat{spec: spec}
	for _, part := range strings.Split(spec, "||") {
		p := strings.TrimSpace(part)
		switch {
		case p == "":
			return nil, reasonf("Invalid format: [%s]: empty format", spec)
		case p == "epoch_millis":
			f.parsers = append(f.parsers, dateParser{kind: dateEpochMillis, name: p})
		case p == "epoch_second":
			f.parsers = append(f.parsers, dateParser{kind: dateEpochSecond, name: p})
		case isoNames[p]:
			f.parsers = append(f.parsers, dateParser{kind: dateISO, strict: strings.HasPrefix(p, "strict_"), name: p})
		case namedLayouts[p] != "":
			f.parsers = append(f.parsers, dateParser{kind: dateLayout, layout: namedLayouts[p], name: p})
		default:
			l, err := javaToGoLayout(p)
			if err != nil {
				return nil, reasonf("Invalid format: [%s]: %v", spec, err)
			}
			f.parsers = append(f.parsers, dateParser{kind: dateLayout, layout: l, name: p})
		}
	}
	return f, nil
}

// javaToGoLayout translates the common subset of java.time patterns.
func javaToGoLayout(p string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(p); {
		c := p[i]
		if c == '\'' {
			j := strings.IndexByte(p[i+1:], '\'')
			if j < 0 {
				return "", fmt.Errorf("unterminated quote")
			}
			b.WriteString(p[i+1 : i+1+j])
			i += j + 2
			continue
		}
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			b.WriteByte(c)
			i++
			continue
		}
		n := 1
		for i+n < len(p) && p[i+n] == c {
			n++
		}
		tok := p[i : i+n]
		i += n
		switch tok {
		case "yyyy", "uuuu":
			b.WriteString("2006")
		case "yy", "uu":
			b.WriteString("06")
		case "MM":
			b.WriteString("01")
		case "MMM":
			b.WriteString("Jan")
		case "dd":
			b.WriteString("02")
		case "HH":
			b.WriteString("15")
		case "mm":
			b.WriteString("04")
		case "ss":
			b.WriteString("05")
		case "SSS":
			// Go's fractional seconds must follow a '.' or ','
			s := b.String()
			if !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, ",") {
				return "", fmt.Errorf("pattern [SSS] must follow '.' in dev-es")
			}
			b.WriteString("000")
		case "Z":
			b.WriteString("-0700")
		case "XXX", "ZZZ", "xxx":
			b.WriteString("Z07:00")
		case "X":
			b.WriteString("Z07")
		default:
			return "", reasonf("Unknown pattern letter: %s", tok)
		}
	}
	return b.String(), nil
}

// parse interprets a JSON value (string or number) as a date, returning
// epoch milliseconds.
func (f *dateFormat) parse(v any, loc *time.Location) (int64, bool) {
	for _, p := range f.parsers {
		if ms, ok := p.parse(v, loc); ok {
			return ms, true
		}
	}
	return 0, false
}

func (p dateParser) parse(v any, loc *time.Location) (int64, bool) {
	var s string
	var isNum bool
	switch x := v.(type) {
	case string:
		s = x
	case jsonNumber:
		s, isNum = string(x), true
	case float64:
		s, isNum = strconv.FormatFloat(x, 'f', -1, 64), true
	case int64:
		s, isNum = strconv.FormatInt(x, 10), true
	default:
		return 0, false
	}
	switch p.kind {
	case dateEpochMillis, dateEpochSecond:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || strings.ContainsAny(s, "eE") && !isNum {
			return 0, false
		}
		if p.kind == dateEpochSecond {
			return int64(f * 1000), true
		}
		return int64(f), true
	case dateISO:
		if isNum {
			return 0, false
		}
		t, ok := parseISO(s, loc, p.strict)
		return t.UnixMilli(), ok
	default:
		if isNum && !strings.ContainsAny(p.layout, "0123456789") {
			return 0, false
		}
		t, err := time.ParseInLocation(p.layout, s, loc)
		if err != nil {
			return 0, false
		}
		return t.UnixMilli(), true
	}
}

// format renders epoch milliseconds with the first format.
func (f *dateFormat) format(ms int64) string {
	p := f.parsers[0]
	t := time.UnixMilli(ms).UTC()
	switch p.kind {
	case dateEpochMillis:
		return strconv.FormatInt(ms, 10)
	case dateEpochSecond:
		return strconv.FormatInt(ms/1000, 10)
	case dateLayout:
		return t.Format(p.layout)
	}
	return t.Format("2006-01-02T15:04:05.000Z")
}

// parseISO parses yyyy[-MM[-dd]][THH[:mm[:ss[.fraction]]]][Z|±HH[:mm]],
// the grammar of strict_date_optional_time. The lenient variant accepts
// one-digit month, day and time fields.
func parseISO(s string, loc *time.Location, strict bool) (time.Time, bool) {
	i := 0
	num := func(minD, maxD int) (int, bool) {
		j := i
		for j < len(s) && j-i < maxD && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j-i < minD {
			return 0, false
		}
		n, _ := strconv.Atoi(s[i:j])
		i = j
		return n, true
	}
	minD := 2
	if !strict {
		minD = 1
	}
	year, ok := num(4, 4)
	if !ok {
		return time.Time{}, false
	}
	month, day, hour, minute, sec, nsec := 1, 1, 0, 0, 0, 0
	if i < len(s) && s[i] == '-' {
		i++
		if month, ok = num(minD, 2); !ok {
			return time.Time{}, false
		}
		if i < len(s) && s[i] == '-' {
			i++
			if day, ok = num(minD, 2); !ok {
				return time.Time{}, false
			}
			if i < len(s) && s[i] == 'T' {
				i++
				if hour, ok = num(minD, 2); !ok {
					return time.Time{}, false
				}
				if i < len(s) && s[i] == ':' {
					i++
					if minute, ok = num(minD, 2); !ok {
						return time.Time{}, false
					}
					if i < len(s) && s[i] == ':' {
						i++
						if sec, ok = num(minD, 2); !ok {
							return time.Time{}, false
						}
						if i < len(s) && (s[i] == '.' || s[i] == ',') {
							i++
							st := i
							frac, ok := num(1, 9)
							if !ok {
								return time.Time{}, false
							}
							for d := i - st; d < 9; d++ {
								frac *= 10
							}
							nsec = frac
						}
					}
				}
			}
		}
	}
	if month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	zone := loc
	if i < len(s) {
		switch s[i] {
		case 'Z':
			zone = time.UTC
			i++
		case '+', '-':
			sign := 1
			if s[i] == '-' {
				sign = -1
			}
			i++
			zh, ok := num(2, 2)
			if !ok {
				return time.Time{}, false
			}
			zm := 0
			if i < len(s) && s[i] == ':' {
				i++
			}
			if i < len(s) {
				if zm, ok = num(2, 2); !ok {
					return time.Time{}, false
				}
			}
			zone = time.FixedZone("", sign*(zh*3600+zm*60))
		default:
			return time.Time{}, false
		}
	}
	if i != len(s) {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, zone)
	if t.Day() != day { // Feb 30 and friends
		return time.Time{}, false
	}
	return t, true
}

// parseDateMath evaluates Elasticsearch date math: "now-1d/d",
// "2026-01-01||+1M/d", or a plain date in the field's format. roundUp
// selects the end of a rounded unit (used by gt and lte).
func parseDateMath(expr string, f *dateFormat, loc *time.Location, now time.Time, roundUp bool) (int64, error) {
	var base time.Time
	var math string
	if strings.HasPrefix(expr, "now") {
		base = now.In(loc)
		math = expr[3:]
	} else {
		datePart := expr
		if i := strings.Index(expr, "||"); i >= 0 {
			datePart, math = expr[:i], expr[i+2:]
		}
		ms, ok := f.parse(datePart, loc)
		if !ok {
			return 0, fmt.Errorf("failed to parse date field [%s] with format [%s]", expr, f.spec)
		}
		base = time.UnixMilli(ms).In(loc)
	}
	t := base
	for i := 0; i < len(math); {
		op := math[i]
		i++
		if op != '+' && op != '-' && op != '/' {
			return 0, fmt.Errorf("operator not supported for date math [%s]", expr)
		}
		n := 1
		if op != '/' {
			j := i
			for j < len(math) && math[j] >= '0' && math[j] <= '9' {
				j++
			}
			if j > i {
				n, _ = strconv.Atoi(math[i:j])
			}
			i = j
			if op == '-' {
				n = -n
			}
		}
		if i >= len(math) {
			return 0, fmt.Errorf("truncated date math [%s]", expr)
		}
		unit := math[i]
		i++
		if op == '/' {
			start, next, err := roundUnit(t, unit)
			if err != nil {
				return 0, fmt.Errorf("%v in date math [%s]", err, expr)
			}
			if roundUp {
				t = next.Add(-time.Millisecond)
			} else {
				t = start
			}
			continue
		}
		switch unit {
		case 'y':
			t = t.AddDate(n, 0, 0)
		case 'M':
			t = t.AddDate(0, n, 0)
		case 'w':
			t = t.AddDate(0, 0, 7*n)
		case 'd':
			t = t.AddDate(0, 0, n)
		case 'h', 'H':
			t = t.Add(time.Duration(n) * time.Hour)
		case 'm':
			t = t.Add(time.Duration(n) * time.Minute)
		case 's':
			t = t.Add(time.Duration(n) * time.Second)
		default:
			return 0, fmt.Errorf("unit [%c] not supported for date math [%s]", unit, expr)
		}
	}
	return t.UnixMilli(), nil
}

// roundUnit returns the start of t's calendar unit and the start of the next.
func roundUnit(t time.Time, unit byte) (time.Time, time.Time, error) {
	loc := t.Location()
	y, mo, d := t.Date()
	switch unit {
	case 'y':
		s := time.Date(y, 1, 1, 0, 0, 0, 0, loc)
		return s, s.AddDate(1, 0, 0), nil
	case 'q':
		s := time.Date(y, mo-(mo-1)%3, 1, 0, 0, 0, 0, loc)
		return s, s.AddDate(0, 3, 0), nil
	case 'M':
		s := time.Date(y, mo, 1, 0, 0, 0, 0, loc)
		return s, s.AddDate(0, 1, 0), nil
	case 'w':
		wd := (int(t.Weekday()) + 6) % 7 // Monday = 0
		s := time.Date(y, mo, d-wd, 0, 0, 0, 0, loc)
		return s, s.AddDate(0, 0, 7), nil
	case 'd':
		s := time.Date(y, mo, d, 0, 0, 0, 0, loc)
		return s, s.AddDate(0, 0, 1), nil
	case 'h', 'H':
		s := time.Date(y, mo, d, t.Hour(), 0, 0, 0, loc)
		return s, s.Add(time.Hour), nil
	case 'm':
		s := time.Date(y, mo, d, t.Hour(), t.Minute(), 0, 0, loc)
		return s, s.Add(time.Minute), nil
	case 's':
		s := time.Date(y, mo, d, t.Hour(), t.Minute(), t.Second(), 0, loc)
		return s, s.Add(time.Second), nil
	}
	return t, t, fmt.Errorf("rounding unit [%c] not supported", unit)
}

// parseTimeZone accepts "UTC", "Z", "+01:00", "-0530" and IANA names.
func parseTimeZone(s string) (*time.Location, error) {
	if s == "" || s == "UTC" || s == "Z" || s == "utc" {
		return time.UTC, nil
	}
	if s[0] == '+' || s[0] == '-' {
		t, ok := parseISO("2000-01-01T00:00:00"+s, time.UTC, false)
		if ok {
			_, off := t.Zone()
			return time.FixedZone(s, off), nil
		}
		return nil, fmt.Errorf("invalid time zone [%s]", s)
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		return nil, reasonf("Unknown time-zone ID: %s", s)
	}
	return loc, nil
}
