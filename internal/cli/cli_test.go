package cli

import (
	"bytes"
	"testing"
)

func TestHelpRequested(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"-h"}, true},
		{[]string{"-config", "x", "--help"}, true},
		{[]string{"-help"}, true},
		{[]string{"-config", "x"}, false},
		{[]string{"--", "-h"}, false},
		{[]string{"help"}, false}, // an operand, for the command to judge
	} {
		if got := HelpRequested(tc.args); got != tc.want {
			t.Errorf("HelpRequested(%q): got %v, want %v", tc.args, got, tc.want)
		}
	}
	var out, errb bytes.Buffer
	if UsageOutput([]string{"-h"}, &out, &errb) != &out || UsageOutput([]string{"-x"}, &out, &errb) != &errb {
		t.Error("UsageOutput: want stdout for -h and stderr otherwise")
	}
}
