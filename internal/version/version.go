// Package version holds the build's version, stamped by the linker:
//
//	go build -ldflags "-X github.com/falconet/falconet/internal/version.Version=1.2.3 \
//	  -X github.com/falconet/falconet/internal/version.Commit=abc123"
//
// The Makefile does this from `git describe`.
package version

import (
	"fmt"
	"runtime"
)

var (
	// Version is the release version, "dev" for unstamped builds.
	Version = "dev"
	// Commit is the git commit the binary was built from.
	Commit = "unknown"
)

// String is the one-line version report printed by every binary's -version.
func String(binary string) string {
	return fmt.Sprintf("%s %s (commit %s, %s, %s/%s)", binary, Version, Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
