package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
)

// TestHelpToStdout: asked-for help goes to stdout (main exits 0 on
// flag.ErrHelp); a usage error goes to stderr.
func TestHelpToStdout(t *testing.T) {
	for _, tc := range []struct {
		args           []string
		help           bool
		stdout, stderr string
	}{
		{[]string{"-h"}, true, "-check-config", ""},
		{[]string{"--help"}, true, "-config", ""},
		{[]string{"-bogus"}, false, "", "flag provided but not defined"},
	} {
		var out, errb bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &errb}
		err := m.ParseFlags(tc.args)
		if errors.Is(err, flag.ErrHelp) != tc.help || err == nil || !strings.Contains(out.String(), tc.stdout) ||
			!strings.Contains(errb.String(), tc.stderr) || (tc.stdout == "" && out.Len() > 0) || (tc.stderr == "" && errb.Len() > 0) {
			t.Errorf("%q: err %v, stdout %q, stderr %q; want help=%v, stdout with %q, stderr with %q (empty if none)",
				tc.args, err, out.String(), errb.String(), tc.help, tc.stdout, tc.stderr)
		}
	}
}
