package confkit

import (
	"errors"
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	Interval Duration `toml:"interval"`
	HTTP     struct {
		Listen string `toml:"listen"`
	} `toml:"http"`
	Buffer struct {
		MaxBytes Size `toml:"max_bytes"`
	} `toml:"buffer"`
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"empty", "", ""},
		{"good", "interval = \"15s\"\n[http]\nlisten = \":1988\"\n[buffer]\nmax_bytes = \"64MiB\"\n", ""},
		{"unknown top key", "interval = \"15s\"\nintervall = \"1s\"\n", "line 2: unknown key intervall"},
		{"unknown table key", "[http]\nlisten = \":1\"\n\n[buffer]\nmax_byte = \"1MiB\"\n", "line 5: unknown key buffer.max_byte"},
		{"bad duration", "interval = \"ten seconds\"\n", "interval"},
		{"bad size", "[buffer]\nmax_bytes = \"lots\"\n", "not a size"},
		{"syntax", "interval = \n", "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c testConfig
			c.Interval = Duration(10 * time.Second)
			err := Decode("agent.toml", []byte(tt.in), &c)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrConfig) {
				t.Fatalf("Decode error = %v, want ErrConfig containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := map[string]Size{"0": 0, "4096": 4096, "64KiB": 64 << 10, "256MiB": 256 << 20, "1GiB": 1 << 30, "10MB": 10e6, "1.5 GiB": 3 << 29}
	for in, want := range tests {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "MiB", "12 parsecs"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) succeeded, want an error", bad)
		}
	}
}
