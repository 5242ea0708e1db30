package demo

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSecureRun runs the demo with -secure: TLS and authentication on every
// link. Every generated metric must be in Elasticsearch once, and no secret
// may appear in a log or a configuration file.
func TestSecureRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline for about 20 s")
	}
	bin := binaries(t)
	out := &syncBuffer{}
	cfg := DefaultConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "demo")
	cfg.BinDir, cfg.Falconet = bin, filepath.Join(bin, "falconet")
	cfg.Duration = 12 * time.Second
	cfg.Agents = 2
	cfg.Every = 2 * time.Second
	cfg.PortBase = 29000
	cfg.DrainTimeout = 60 * time.Second
	cfg.Out = out
	cfg.Secure = true
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := d.Run(ctx)
	text := out.String()
	if err != nil {
		t.Fatalf("Run: %v\noutput:\n%s", err, text)
	}
	if !res.OK() || res.Generated == 0 {
		t.Fatalf("verdict: got %s, want everything generated stored once\noutput:\n%s", res.String(), text)
	}
	if !regexp.MustCompile(`(?m)^synthetic streams: generated=\d+ stored=\d+ missing=0 duplicates=0$`).MatchString(text) ||
		!strings.Contains(text, "secured: agent→relay TLS + token") {
		t.Fatalf("output lacks the secured line or the verdict:\n%s", text)
	}
	var secrets []string
	for _, f := range []string{"kafka-password", "es-api-key"} {
		b, err := os.ReadFile(filepath.Join(cfg.Dir, secureDir, f))
		if err != nil {
			t.Fatal(err)
		}
		v := strings.TrimSpace(string(b))
		if f == "es-api-key" {
			_, v, _ = strings.Cut(v, ":")
		}
		secrets = append(secrets, v)
	}
	files, _ := filepath.Glob(filepath.Join(cfg.Dir, "logs", "*.log"))
	confs, _ := filepath.Glob(filepath.Join(cfg.Dir, "*.toml"))
	for _, f := range append(files, confs...) {
		b, _ := os.ReadFile(f)
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("%s contains a secret", f)
			}
		}
	}
	relayLog, _ := os.ReadFile(filepath.Join(cfg.Dir, "logs", "relay1.log"))
	if !strings.Contains(string(relayLog), "sasl=SCRAM-SHA-512") || !strings.Contains(string(relayLog), "tls=true") {
		t.Errorf("relay1 log does not say how it reaches Kafka:\n%s", relayLog)
	}
}
