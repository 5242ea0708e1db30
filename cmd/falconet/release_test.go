package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/falconet/falconet/update/feed"
)

// The release commands with the flags DESIGN.md fixes: keygen, publish
// (os/arch read from the Go binary), rollout, halt; the manifest verifies
// with the generated public key after each.
func TestReleaseCommands(t *testing.T) {
	dir := t.TempDir()
	keys, feedDir := filepath.Join(dir, "keys"), filepath.Join(dir, "feed")
	ctx := context.Background()
	code := func(err error) int {
		var ee exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		if err != nil {
			return 1
		}
		return 0
	}
	if err := runRelease(ctx, []string{"keygen", "-out", keys, "-unencrypted"}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(keys, "falconet.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("falconet.key: %v, mode %v; want 0600", err, fi.Mode())
	}
	if c := code(runRelease(ctx, []string{"keygen", "-out", keys, "-unencrypted"})); c != 1 {
		t.Fatalf("keygen over an existing key: exit %d, want 1", c)
	}
	pubText, err := os.ReadFile(filepath.Join(keys, "falconet.pub"))
	if err != nil {
		t.Fatal(err)
	}
	kr, err := feed.ParseKeyring([]string{string(pubText)})
	if err != nil {
		t.Fatal(err)
	}
	manifest := func() *feed.Manifest {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(feedDir, feed.ManifestFile))
		if err != nil {
			t.Fatal(err)
		}
		sig, err := os.ReadFile(filepath.Join(feedDir, feed.ManifestSig))
		if err != nil {
			t.Fatal(err)
		}
		m, err := feed.VerifyManifest(data, sig, kr)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	key := filepath.Join(keys, "falconet.key")
	self, err := os.Executable() // a Go binary: publish reads its os/arch
	if err != nil {
		t.Fatal(err)
	}
	if err := runRelease(ctx, []string{"publish", "-key", key, "-feed", feedDir, "-version", "1.4.0", "-percent", "5", self}); err != nil {
		t.Fatal(err)
	}
	plat := runtime.GOOS + "/" + runtime.GOARCH
	if r := manifest().Latest(); r == nil || r.Version != "1.4.0" || r.Percent != 5 || r.Artifacts[plat].Size == 0 {
		t.Fatalf("after publish: %+v, want 1.4.0 at 5 %% with a %s artifact", r, plat)
	}
	if err := runRelease(ctx, []string{"rollout", "-key", key, "-feed", feedDir, "-percent", "50"}); err != nil {
		t.Fatal(err)
	}
	if r := manifest().Latest(); r.Percent != 50 {
		t.Fatalf("after rollout: percent %d, want 50", r.Percent)
	}
	if err := runRelease(ctx, []string{"halt", "-key", key, "-feed", feedDir}); err != nil {
		t.Fatal(err)
	}
	if m := manifest(); !m.Releases[0].Halted || m.Serial != 3 {
		t.Fatalf("after halt: %+v serial %d, want halted, serial 3", m.Releases[0], m.Serial)
	}
	for _, args := range [][]string{
		{"publish", "-key", key, "-feed", feedDir, self},                // no -version
		{"publish", "-key", key, "-feed", feedDir, "-version", "1.5.0"}, // no binary
		{"rollout", "-key", key, "-feed", feedDir},                      // no -percent
		{"halt", "-feed", feedDir},                                      // no -key
		{"keygen"},                                                      // no -out
		{"frobnicate"},
	} {
		if c := code(runRelease(ctx, args)); c != 2 {
			t.Errorf("%v: exit %d, want 2", args, c)
		}
	}
}
