package buffer_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/falconet/falconet/buffer"
)

func TestInspectVerify(t *testing.T) {
	const n = 300
	orig, _ := makeFile(t, n)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.db", orig)
	for _, f := range []func(string, time.Duration) (*buffer.FileReport, error){buffer.Inspect, buffer.Verify} {
		r, err := f(good, time.Second)
		if err != nil {
			t.Fatalf("good file: %v", err)
		}
		if r.Batches != n || r.Metrics != 10*n || r.FirstSeq != 1 || r.LastSeq != n || len(r.Problems) != 0 {
			t.Fatalf("good file: got batches %d metrics %d seqs %d..%d problems %v; want %d, %d, 1..%d, none",
				r.Batches, r.Metrics, r.FirstSeq, r.LastSeq, r.Problems, n, 10*n, n)
		}
		if r.OldestAppended.IsZero() || r.NewestAppended.Before(r.OldestAppended) || r.OldestMetric.IsZero() {
			t.Fatalf("good file: times %v %v %v", r.OldestAppended, r.NewestAppended, r.OldestMetric)
		}
	}

	d := bytes.Clone(orig)
	flipPayloadByte(t, d)
	damaged := write("damaged.db", d)
	if _, err := buffer.Inspect(damaged, time.Second); err != nil {
		t.Fatalf("Inspect of a file with one bad checksum: %v (inspect reads the structure only)", err)
	}
	r, err := buffer.Verify(damaged, time.Second)
	if !errors.Is(err, buffer.ErrCorrupt) || len(r.Problems) == 0 || !strings.Contains(strings.Join(r.Problems, "\n"), "crc32c") {
		t.Fatalf("Verify of a damaged batch got %v, problems %q; want ErrCorrupt naming the checksum", err, r.Problems)
	}

	for name, data := range map[string][]byte{"garbage.db": bytes.Repeat([]byte("x"), 10000), "empty.db": nil, "short.db": orig[:len(orig)/3]} {
		r, err := buffer.Verify(write(name, data), time.Second)
		if !errors.Is(err, buffer.ErrCorrupt) || len(r.Problems) == 0 {
			t.Fatalf("Verify(%s) got %v, problems %v; want ErrCorrupt", name, err, r.Problems)
		}
	}

	cfg := testConfig(t.TempDir())
	q := openTest(t, cfg)
	_ = q
	start := time.Now()
	if _, err := buffer.Verify(cfg.Path, 300*time.Millisecond); !errors.Is(err, buffer.ErrLocked) {
		t.Fatalf("Verify of a file the queue holds got %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Verify of a locked file took %s, want it to give up after the timeout", d)
	}
}
