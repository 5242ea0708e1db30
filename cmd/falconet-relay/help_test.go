package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestHelpAndDefaults: asked-for help goes to stdout with exit 0 (a usage
// error to stderr with 2); -check-config without a file says it checked the
// defaults.
func TestHelpAndDefaults(t *testing.T) {
	for _, tc := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"-h"}, 0, "-check-config", ""},
		{[]string{"--help"}, 0, "-config", ""},
		{[]string{"-bogus"}, 2, "", "flag provided but not defined"},
		{[]string{"-check-config"}, 0, "running on the defaults", ""},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errb.String(), tc.stderr) ||
			(tc.stdout == "" && out.Len() > 0) || (tc.stderr == "" && errb.Len() > 0) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q (empty if none)",
				tc.args, code, out.String(), errb.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
}
