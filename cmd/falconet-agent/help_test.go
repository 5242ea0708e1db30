package main

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/falconet/falconet/agent"
)

// TestHelpToStdout: asked-for help goes to stdout with exit 0; a usage error
// to stderr with exit 2.
func TestHelpToStdout(t *testing.T) {
	for _, tc := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"-h"}, 0, "-check-config", ""},
		{[]string{"--help"}, 0, "-config", ""},
		{[]string{"-bogus"}, 2, "", "flag provided but not defined"},
	} {
		var out, errb bytes.Buffer
		m := NewMain(&out, &errb)
		err := m.ParseFlags(tc.args)
		var ee exitError
		if !errors.As(err, &ee) || ee.code != tc.code || !strings.Contains(out.String(), tc.stdout) ||
			!strings.Contains(errb.String(), tc.stderr) || (tc.stdout == "" && out.Len() > 0) || (tc.stderr == "" && errb.Len() > 0) {
			t.Errorf("%q: err %v, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q (empty if none)",
				tc.args, err, out.String(), errb.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
}

// TestCheckConfigDefaults: with no file at the default path -check-config
// says it checked the defaults, as -test and the daemon do.
func TestCheckConfigDefaults(t *testing.T) {
	if _, err := os.Stat(agent.DefaultConfigPath); err == nil {
		t.Skipf("%s exists on this machine; the no-file case cannot be run here", agent.DefaultConfigPath)
	}
	out, _, err := runMain(t, "-check-config")
	want := "ok (no config file at " + agent.DefaultConfigPath + "; running on the defaults)"
	if err != nil || strings.TrimSpace(out) != want {
		t.Errorf("-check-config without a file: got %q, %v; want %q", out, err, want)
	}
}
