// Package cli holds what every falconet command line shares: asked-for help
// is output (stdout, exit 0), not an error.
package cli

import "io"

// HelpRequested reports whether args ask for help (-h, -help, --help) before
// any "--".
func HelpRequested(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help", "--h":
			return true
		}
	}
	return false
}

// UsageOutput is where a flag set should print its usage: stdout when args
// ask for help (so `cmd -h | less` works), stderr otherwise (a usage error).
func UsageOutput(args []string, stdout, stderr io.Writer) io.Writer {
	if HelpRequested(args) {
		return stdout
	}
	return stderr
}
