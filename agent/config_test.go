package agent

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/falconet/falconet/internal/confkit"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestEmptyConfigIsDefaults(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, ""))
	if err != nil {
		t.Fatalf("empty file: %v", err)
	}
	if !reflect.DeepEqual(cfg, DefaultConfig()) {
		t.Errorf("empty file gave %+v, want the defaults", cfg)
	}
}

// TestExampleConfig: the documented example file loads, and says exactly
// the defaults (it documents them).
func TestExampleConfig(t *testing.T) {
	cfg, err := LoadConfig("../packaging/config/agent.toml")
	if err != nil {
		t.Fatalf("packaging/config/agent.toml: %v", err)
	}
	def := DefaultConfig()
	if !reflect.DeepEqual(cfg, def) {
		t.Errorf("example config differs from DefaultConfig:\n got %+v\nwant %+v", cfg, def)
	}
}

func TestConfigFull(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, `
hostname = "edge-7"
interval = "30s"
[http]
listen = "127.0.0.1:2000"
[buffer]
path = "/tmp/x.db"
max_bytes = "1GiB"
max_age = "72h"
[relay]
addresses = ["r1:8433", "10.0.0.2:8433"]
token = "s3cret"
[relay.tls]
enabled = true
ca = "/etc/falconet/ca.pem"
[discovery]
seeds = ["r1:7946"]
[[script]]
path = "/opt/a.sh"
[[script]]
path = "/opt/b.sh"
interval = "60s"
timeout = "20s"
[collectors]
diskio = false
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Hostname != "edge-7" || cfg.Interval.D() != 30*time.Second || cfg.Buffer.MaxBytes != 1<<30 ||
		cfg.Buffer.MaxAge.D() != 72*time.Hour || len(cfg.Relay.Addresses) != 2 || !cfg.Relay.TLS.Enabled ||
		cfg.Collectors.DiskIO || !cfg.Collectors.CPU || len(cfg.Scripts) != 2 {
		t.Errorf("got %+v", cfg)
	}
	if got := cfg.ScriptInterval(0); got != 30*time.Second {
		t.Errorf("script[0] interval %v, want the global 30s", got)
	}
	if got := cfg.ScriptTimeout(0); got != 10*time.Second {
		t.Errorf("script[0] timeout %v, want 10s", got)
	}
	if got := cfg.ScriptTimeout(1); got != 20*time.Second {
		t.Errorf("script[1] timeout %v, want 20s", got)
	}
	jobs := Jobs(&cfg, nil, nil)
	names := []string{}
	for _, j := range jobs {
		names = append(names, j.Name)
	}
	if strings.Contains(strings.Join(names, ","), "diskio") || names[len(names)-1] != "script:/opt/b.sh" {
		t.Errorf("jobs %v: want diskio off and the scripts last", names)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		text    string
		wantKey string
	}{
		{`interval = "500ms"`, "interval:"},
		{`interval = "ten"`, "interval"},
		{`hostname = "a b"`, "hostname:"},
		{`hostname = "a/b"`, "hostname:"},
		{"[http]\nlisten = \"nope\"", "http.listen:"},
		{"[http]\nmax_push_bytes = \"10\"", "http.max_push_bytes:"},
		{"[buffer]\npath = \"\"", "buffer.path:"},
		{"[buffer]\nmax_bytes = \"1KiB\"", "buffer.max_bytes:"},
		{"[buffer]\nmax_bytes = \"lots\"", "max_bytes"},
		{"[buffer]\nmax_age = \"-1h\"", "buffer.max_age:"},
		{"[buffer]\ncommit_window = \"5s\"", "buffer.commit_window:"},
		{"[buffer]\nbatch_metrics = 0", "buffer.batch_metrics:"},
		{"[relay]\naddresses = [\"r1\"]", "relay.addresses[0]:"},
		{"[relay]\naddresses = [\"r1:8433\", \":8433\"]", "relay.addresses[1]:"},
		{"[relay]\nmax_in_flight = 0", "relay.max_in_flight:"},
		{"[relay]\nheartbeat = \"10ms\"", "relay.heartbeat:"},
		{"[relay]\nbackoff_max = \"10ms\"", "relay.backoff_max:"},
		{"[relay]\nheartbeat = \"2s\"\nread_timeout = \"3s\"", "relay.read_timeout:"},
		{"[relay]\nheartbeat = \"2s\"\nidle_heartbeat = \"1s\"", "relay.idle_heartbeat:"},
		{"[relay.tls]\nenabled = true\ncert = \"/c.pem\"", "relay.tls.cert:"},
		{"[relay.tls]\nca = \"/ca.pem\"", "relay.tls.enabled:"},
		{"[discovery]\nseeds = [\"x\"]", "discovery.seeds[0]:"},
		{"[discovery]\nbind = \"x\"", "discovery.bind:"},
		{"[[script]]\npath = \"\"", "script[0].path:"},
		{"[[script]]\npath = \"rel.sh\"", "script[0].path:"},
		{"[[script]]\npath = \"/a\"\n[[script]]\npath = \"/a\"", "script[1].path:"},
		{"[[script]]\npath = \"/a\"\ninterval = \"60s\"\ntimeout = \"90s\"", "script[0].timeout:"},
		{"[[script]]\npath = \"/a\"\ninterval = \"100ms\"", "script[0].interval:"},
		{"[log]\nlevel = \"loud\"", "log.level:"},
		{"[log]\nformat = \"xml\"", "log.format:"},
		{"[collectors]\ngpu = true", "collectors.gpu"},
		{"intervall = \"10s\"", "intervall"},
	}
	for _, tt := range tests {
		t.Run(tt.wantKey, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tt.text))
			if err == nil {
				t.Fatalf("%q: no error, want one naming %s", tt.text, tt.wantKey)
			}
			if !strings.Contains(err.Error(), tt.wantKey) {
				t.Errorf("%q: error %q does not name %s", tt.text, err, tt.wantKey)
			}
			if !errors.Is(err, ErrConfig) && !errors.Is(err, confkit.ErrConfig) {
				t.Errorf("error %v wraps neither agent.ErrConfig nor confkit.ErrConfig", err)
			}
		})
	}
}

func TestUnknownKeyNamesLine(t *testing.T) {
	_, err := LoadConfig(writeConfig(t, "interval = \"10s\"\n\n[buffer]\nmax_byte = \"1GiB\"\n"))
	if err == nil || !strings.Contains(err.Error(), "line 4") || !strings.Contains(err.Error(), "buffer.max_byte") {
		t.Errorf("err = %v, want unknown key buffer.max_byte at line 4", err)
	}
}

// TestExampleConfigDocumentsEveryKey: every key the agent reads appears in
// the example file (the [[script]] table as a commented example).
func TestExampleConfigDocumentsEveryKey(t *testing.T) {
	text, err := os.ReadFile("../packaging/config/agent.toml")
	if err != nil {
		t.Fatal(err)
	}
	var written map[string]any
	if _, err := toml.Decode(string(text), &written); err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	if err := toml.NewEncoder(&buf).Encode(DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	var all map[string]any
	if _, err := toml.Decode(buf.String(), &all); err != nil {
		t.Fatal(err)
	}
	var walk func(prefix string, want, got map[string]any)
	walk = func(prefix string, want, got map[string]any) {
		for k, v := range want {
			g, ok := got[k]
			if !ok {
				t.Errorf("key %s%s is not in packaging/config/agent.toml", prefix, k)
				continue
			}
			if sub, ok := v.(map[string]any); ok {
				gsub, _ := g.(map[string]any)
				walk(prefix+k+".", sub, gsub)
			}
		}
	}
	walk("", all, written)
	for _, k := range []string{"[[script]]", "path =", "interval =", "timeout ="} {
		if !strings.Contains(string(text), "# "+k) {
			t.Errorf("commented [[script]] example lacks %q", k)
		}
	}
}
