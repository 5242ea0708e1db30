// Package confkit loads falconet's TOML configuration files the same way for
// every daemon: strictly (an unknown key is an error naming the key and its
// line), with durations and sizes written as strings ("10s", "256MiB").
//
// Each daemon package owns its Config type, its defaults and its Validate;
// confkit only decodes.
package confkit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Duration is a time.Duration written as a string: "10s", "1m30s".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (examples: \"500ms\", \"10s\", \"5m\")", b)
	}
	*d = Duration(v)
	return nil
}

// Size is a byte count written as a string: "512", "64KiB", "256MiB", "1GiB",
// "10MB" (powers of 1000), "2GB".
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
}

// ParseSize reads a size string.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 || n*float64(mult) > float64(1<<62) {
		return 0, fmt.Errorf("%q is not a size (examples: \"4096\", \"64KiB\", \"256MiB\", \"1GiB\")", s)
	}
	return Size(n * float64(mult)), nil
}

// MarshalText implements encoding.TextMarshaler.
func (s Size) MarshalText() ([]byte, error) {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if s != 0 && int64(s)%u.mult == 0 {
			return []byte(strconv.FormatInt(int64(s)/u.mult, 10) + u.suffix), nil
		}
	}
	return []byte(strconv.FormatInt(int64(s), 10)), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ErrConfig is wrapped by every error Load returns.
var ErrConfig = errors.New("config")

// Load decodes the TOML file at path into v, which holds the defaults on
// entry. Keys that v does not have are an error naming the key and its line.
func Load(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return Decode(path, data, v)
}

// Decode is Load for a file already read; name is used in errors.
func Decode(name string, data []byte, v any) error {
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(v)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			where := fmt.Sprintf("line %d", perr.Position.Line)
			if perr.LastKey != "" {
				return fmt.Errorf("%w: %s: %s: key %s: %s", ErrConfig, name, where, perr.LastKey, perr.Message)
			}
			return fmt.Errorf("%w: %s: %s: %s", ErrConfig, name, where, perr.Message)
		}
		return fmt.Errorf("%w: %s: %v", ErrConfig, name, err)
	}
	if undec := md.Undecoded(); len(undec) > 0 {
		key := undec[0]
		line := findKeyLine(data, key)
		return fmt.Errorf("%w: %s: line %d: unknown key %s", ErrConfig, name, line, key.String())
	}
	return nil
}

// findKeyLine finds the line on which key is defined, tracking table headers;
// 0 when it cannot tell. BurntSushi/toml keeps positions private.
func findKeyLine(data []byte, key toml.Key) int {
	full := key.String()
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			table = strings.Trim(line, "[] \t")
			if i := strings.Index(table, "#"); i >= 0 {
				table = strings.TrimSpace(table[:i])
			}
			if table == full {
				return n
			}
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k = strings.Trim(strings.TrimSpace(k), `"`)
		if table != "" {
			k = table + "." + k
		}
		if k == full || strings.HasPrefix(full, k+".") {
			return n
		}
	}
	return 0
}
