package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/falconet/falconet/buffer"
	"github.com/falconet/falconet/buffer/buffertest"
)

func TestBufferCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := buffer.DefaultConfig()
	cfg.Path = filepath.Join(dir, "buffer.db")
	q, err := buffer.Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for id := range uint64(20) {
		if _, err := q.Append(context.Background(), buffertest.Payload(id, 5, 0), 5); err != nil {
			t.Fatal(err)
		}
	}
	code := func(err error) int {
		var ee exitError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &ee):
			return ee.code
		}
		return -1
	}
	ctx := context.Background()
	if got := code(runBuffer(ctx, []string{"verify", "-timeout", "100ms", cfg.Path})); got != 3 {
		t.Fatalf("verify while the queue holds the file: exit %d, want 3 (locked)", got)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"inspect", "verify"} {
		if got := code(runBuffer(ctx, []string{verb, cfg.Path})); got != 0 {
			t.Fatalf("%s of a good file: exit %d, want 0", verb, got)
		}
	}
	if err := os.WriteFile(cfg.Path, []byte("not a buffer"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := code(runBuffer(ctx, []string{"verify", "-json", cfg.Path})); got != 1 {
		t.Fatalf("verify of a corrupt file: exit %d, want 1", got)
	}
	if got := code(runBuffer(ctx, []string{"frobnicate"})); got != 2 {
		t.Fatalf("unknown verb: exit %d, want 2", got)
	}
}
