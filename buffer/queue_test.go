package buffer_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/falconet/falconet/buffer"
	"github.com/falconet/falconet/buffer/buffertest"
)

func testConfig(dir string) buffer.Config {
	cfg := buffer.DefaultConfig()
	cfg.Path = filepath.Join(dir, "buffer.db")
	cfg.LockTimeout = 200 * time.Millisecond
	return cfg
}

func openTest(t *testing.T, cfg buffer.Config) *buffer.Queue {
	t.Helper()
	var logger *slog.Logger
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	q, err := buffer.Open(cfg, logger, nil)
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg.Path, err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

func TestConformance(t *testing.T) {
	buffertest.RunConformance(t, func(t *testing.T, dir string, maxBytes int64) buffertest.Queue {
		cfg := testConfig(dir)
		cfg.MaxBytes = maxBytes
		return openTest(t, cfg)
	})
}
