package agent

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/falconet/falconet/internal/confkit"
)

func TestUpdateConfigValidate(t *testing.T) {
	const key = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"
	tests := []struct {
		name, toml, wantKey string
	}{
		{"off by default", "", ""},
		{"on", "[update]\nenabled = true\nfeed = \"http://relay:6060/update\"\npublic_keys = [\"" + key + "\"]\n", ""},
		{"on without feed", "[update]\nenabled = true\npublic_keys = [\"" + key + "\"]\n", "update.feed"},
		{"feed not a URL", "[update]\nenabled = true\nfeed = \"relay:6060\"\npublic_keys = [\"" + key + "\"]\n", "update.feed"},
		{"on without keys", "[update]\nenabled = true\nfeed = \"http://h/f\"\n", "update.public_keys"},
		{"key not minisign", "[update]\npublic_keys = [\"ssh-ed25519 AAAA\"]\n", "update.public_keys[0]"},
		{"health timeout too short", "[update]\nhealth_timeout = \"100ms\"\n", "update.health_timeout"},
		{"interval too short", "[update]\ninterval = \"10ms\"\n", "update.interval"},
		{"relative dir", "[update]\ndir = \"versions\"\n", "update.dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if err := confkit.Decode("agent.toml", []byte(tt.toml), &cfg); err != nil {
				t.Fatal(err)
			}
			err := cfg.Validate()
			switch {
			case tt.wantKey == "" && err != nil:
				t.Fatalf("Validate: got %v, want nil", err)
			case tt.wantKey != "" && (err == nil || !strings.Contains(err.Error(), tt.wantKey+":")):
				t.Fatalf("Validate: got %v, want an error naming %s", err, tt.wantKey)
			}
		})
	}
}

func TestUpdateDirDefault(t *testing.T) {
	cfg := DefaultConfig()
	if got, want := cfg.UpdateDir(), filepath.Join(filepath.Dir(cfg.Buffer.Path), "versions"); got != want {
		t.Fatalf("UpdateDir: got %s, want %s", got, want)
	}
	cfg.Update.Dir = "/srv/v"
	if got := cfg.UpdateDir(); got != "/srv/v" {
		t.Fatalf("UpdateDir: got %s, want /srv/v", got)
	}
}
