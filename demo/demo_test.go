package demo

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPrepareDir(t *testing.T) {
	write := func(t *testing.T, path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, dir string)
		wantErr bool
		kept    string // a file that must survive
		gone    string // a file that must be removed
	}{
		{name: "missing directory is created", setup: func(t *testing.T, dir string) { os.Remove(dir) }},
		{name: "empty directory is adopted"},
		{name: "foreign directory is refused", wantErr: true, kept: "notes.txt",
			setup: func(t *testing.T, dir string) { write(t, filepath.Join(dir, "notes.txt"), "mine") }},
		{name: "demo directory with a foreign file is refused", wantErr: true, kept: "agent1/buffer.db",
			setup: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, markerFile), "")
				write(t, filepath.Join(dir, "agent1/buffer.db"), "x")
				write(t, filepath.Join(dir, "thesis.tex"), "mine")
			}},
		{name: "demo directory of a running demo is refused", wantErr: true, kept: "relay1.toml",
			setup: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, markerFile), "")
				write(t, filepath.Join(dir, "relay1.toml"), "")
				// A live process other than this one: a child that waits.
				cmd := exec.Command("sleep", "30")
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
				write(t, StateFile(dir), `{"pid":`+strconv.Itoa(cmd.Process.Pid)+`}`)
			}},
		{name: "earlier demo's directory is emptied", gone: "agent2/buffer.db",
			setup: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, markerFile), "")
				for _, f := range []string{"agent2/buffer.db", "agent2.toml", "relay2.toml", "saver.toml", "logs/es.log",
					"kafka/x", "es/y", "load-agent2.log", "state.json"} {
					write(t, filepath.Join(dir, f), "old")
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "demo")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			d := &Demo{cfg: Config{Dir: dir}}
			err := d.prepareDir()
			if tc.wantErr {
				if !errors.Is(err, ErrDirNotDemo) {
					t.Fatalf("prepareDir: got %v, want ErrDirNotDemo", err)
				}
			} else if err != nil {
				t.Fatalf("prepareDir: got %v, want nil", err)
			}
			if tc.kept != "" {
				if _, err := os.Stat(filepath.Join(dir, tc.kept)); err != nil {
					t.Errorf("%s: got %v, want it kept", tc.kept, err)
				}
			}
			if tc.gone != "" {
				if _, err := os.Stat(filepath.Join(dir, tc.gone)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s: got %v, want it removed", tc.gone, err)
				}
			}
			if !tc.wantErr {
				for _, f := range []string{markerFile, "logs", "kafka", "es"} {
					if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
						t.Errorf("after prepareDir: %s: %v", f, err)
					}
				}
			}
		})
	}
}

// syncBuffer is the demo's output, read by the test while Run writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// binaries returns a directory with the four binaries: $FALCONET_BIN_DIR
// (make test sets it to bin/, built just before), else a fresh build.
func binaries(t *testing.T) string {
	if dir := os.Getenv("FALCONET_BIN_DIR"); dir != "" {
		return dir
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+"/",
		"../cmd/falconet", "../cmd/falconet-agent", "../cmd/falconet-relay", "../cmd/falconet-saver")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// TestShortRunWithRelayKill runs the demo as a user does, short: the real
// binaries, a relay SIGKILLed and restarted, and the verdict. It fails on
// any missing, duplicated or misplaced metric and on a missing verdict line.
func TestShortRunWithRelayKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline for about 30 s")
	}
	bin := binaries(t)
	out := &syncBuffer{}
	cfg := DefaultConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "demo")
	cfg.BinDir, cfg.Falconet = bin, filepath.Join(bin, "falconet")
	cfg.Duration = 24 * time.Second
	cfg.Fault = FaultRelayKill
	cfg.FaultAt = 6 * time.Second
	cfg.RestartAfter = 8 * time.Second
	cfg.Agents = 3
	cfg.Every = 2 * time.Second
	cfg.PortBase = 27000 // below the ephemeral range; make demo uses 20000
	cfg.DrainTimeout = 60 * time.Second
	cfg.Out = out
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
		t.Fatalf("verdict: got %s, want everything generated stored once (generated > 0)\noutput:\n%s", res.String(), text)
	}
	verdict := regexp.MustCompile(`(?m)^synthetic streams: generated=(\d+) stored=(\d+) missing=0 duplicates=0$`)
	m := verdict.FindStringSubmatch(text)
	if m == nil || m[1] != strconv.Itoa(res.Generated) || m[1] != m[2] {
		t.Fatalf("verdict line: got none matching %s with generated=%d, output:\n%s", verdict, res.Generated, text)
	}
	for _, want := range []string{
		"status line: agents=healthy/started",
		"*** fault: relay",
		"every generated metric is in Elasticsearch exactly once",
		// What the pipeline did: the failover line, or (on a machine so
		// loaded that no sample caught the failover before the restart) the
		// line about the restarted relay.
		"*** pipeline: ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output: no line containing %q\noutput:\n%s", want, text)
		}
	}
	if !strings.Contains(text, " restarted\n") {
		t.Errorf("output: the killed relay was not restarted within the run\noutput:\n%s", text)
	}
	// Every child is stopped and the state file removed when Run returns.
	if _, err := os.Stat(StateFile(cfg.Dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state.json after Run: got %v, want it removed", err)
	}
	for _, c := range d.children {
		if c.running() {
			t.Errorf("%s still running after Run", c.member.Name)
		}
	}
}
