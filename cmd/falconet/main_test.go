package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/falconet/falconet/buffer"
	"github.com/falconet/falconet/buffer/buffertest"
)

// TestMain runs main itself when a test re-executes the test binary with
// FALCONET_TEST_MAIN=1, so that exit codes and stdout/stderr are real.
func TestMain(m *testing.M) {
	if os.Getenv("FALCONET_TEST_MAIN") == "1" {
		os.Args = append([]string{"falconet"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runMain runs `falconet args...` and returns its exit code and output.
func runMain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "FALCONET_TEST_MAIN=1")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("falconet %q: %v", args, err)
	}
	return code, o.String(), e.String()
}

func TestHelpAndExitCodes(t *testing.T) {
	dir := t.TempDir()
	cfg := buffer.DefaultConfig()
	cfg.Path = filepath.Join(dir, "buffer.db")
	q, err := buffer.Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for id := range uint64(3) {
		if _, err := q.Append(context.Background(), buffertest.Payload(id, 5, 0), 5); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "nope.db")

	for _, tc := range []struct {
		args       []string
		code       int
		stdoutHas  string // "" : stdout must be empty
		stderrHas  string // "" : stderr must be empty
		stdoutJSON bool
	}{
		{args: []string{"--help"}, code: 0, stdoutHas: "usage: falconet <command>"},
		{args: []string{"-h"}, code: 0, stdoutHas: "exit status: 0 ok"},
		{args: []string{"help"}, code: 0, stdoutHas: "usage: falconet <command>"},
		{args: []string{}, code: 2, stderrHas: "usage: falconet <command>"},
		{args: []string{"frobnicate"}, code: 2, stderrHas: `unknown command "frobnicate"`},
		{args: []string{"help", "buffer"}, code: 0, stdoutHas: "usage: falconet buffer"},
		{args: []string{"buffer", "-h"}, code: 0, stdoutHas: "usage: falconet buffer"},
		{args: []string{"buffer", "inspect", "--help"}, code: 0, stdoutHas: "usage: falconet buffer"},
		{args: []string{"demo", "-h"}, code: 0, stdoutHas: "-duration"},
		{args: []string{"status", "-help"}, code: 0, stdoutHas: "-state"},
		{args: []string{"release", "-h"}, code: 0, stdoutHas: "keygen"},
		{args: []string{"help", "release"}, code: 0, stdoutHas: "keygen"},
		{args: []string{"release", "bogus"}, code: 2, stdoutHas: "", stderrHas: `unknown verb "bogus"`},
		{args: []string{"buffer"}, code: 2, stderrHas: "inspect or verify?"},
		{args: []string{"buffer", "inspect", "-bogus", cfg.Path}, code: 2, stderrHas: "flag provided but not defined: -bogus"},
		{args: []string{"buffer", "inspect", cfg.Path, "extra"}, code: 2, stderrHas: "one FILE, got 2"},
		// Flags after the operand.
		{args: []string{"buffer", "inspect", cfg.Path, "-json"}, code: 0, stdoutJSON: true},
		{args: []string{"buffer", "verify", cfg.Path, "-timeout", "2s"}, code: 0, stdoutHas: "ok: structure"},
		{args: []string{"buffer", "inspect", missing, "-json"}, code: 4, stderrHas: "no such file"},
		{args: []string{"buffer", "verify", missing}, code: 4, stderrHas: "no such file"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := runMain(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			switch {
			case tc.stdoutJSON:
				var r buffer.FileReport
				if err := json.Unmarshal([]byte(stdout), &r); err != nil || r.Batches != 3 || r.OldestMetric.IsZero() {
					t.Errorf("stdout: got %q (%v), want a JSON report of 3 batches with metric times", stdout, err)
				}
			case tc.stdoutHas == "" && stdout != "":
				t.Errorf("stdout: got %q, want nothing", stdout)
			case !strings.Contains(stdout, tc.stdoutHas):
				t.Errorf("stdout: got %q, want it to contain %q", stdout, tc.stdoutHas)
			}
			if tc.stderrHas == "" && stderr != "" {
				t.Errorf("stderr: got %q, want nothing", stderr)
			} else if !strings.Contains(stderr, tc.stderrHas) {
				t.Errorf("stderr: got %q, want it to contain %q", stderr, tc.stderrHas)
			}
		})
	}
}

func TestParseFlagsAfterOperands(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		operands []string
		json     bool
		timeout  time.Duration
	}{
		{[]string{"f"}, []string{"f"}, false, time.Second},
		{[]string{"-json", "f"}, []string{"f"}, true, time.Second},
		{[]string{"f", "-json", "-timeout", "3s"}, []string{"f"}, true, 3 * time.Second},
		{[]string{"a", "-json", "b"}, []string{"a", "b"}, true, time.Second},
		{[]string{"a", "--", "-json"}, []string{"a", "-json"}, false, time.Second},
	} {
		fs := newTestFlagSet()
		asJSON := fs.Bool("json", false, "")
		timeout := fs.Duration("timeout", time.Second, "")
		got, err := parseFlags(fs, tc.args)
		if err != nil || strings.Join(got, "|") != strings.Join(tc.operands, "|") || *asJSON != tc.json || *timeout != tc.timeout {
			t.Errorf("parseFlags(%q): got %q, json=%v, timeout=%v, err %v; want %q, %v, %v",
				tc.args, got, *asJSON, *timeout, err, tc.operands, tc.json, tc.timeout)
		}
	}
}

func newTestFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}
