package update_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/falconet/falconet/packaging/pkgbuild"
)

// A package-installed agent (the falconet-agent .deb from .goreleaser.yaml,
// installed with dpkg --root into a scratch root) updates itself without
// touching the package's /usr/bin/falconet-agent (dpkg --verify stays
// clean), rolls a bad release back to the previous self-updated version,
// and a package upgrade to a newer version wins over the self-updated one.
// Runs with make test-packages (root, dpkg, nfpm).
func TestPackagedAgentSelfUpdate(t *testing.T) {
	if os.Getenv("FALCONET_PACKAGE_TEST") == "" {
		t.Skip("runs with make test-packages (FALCONET_PACKAGE_TEST=1)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (dpkg --root sets owners; CI runs as root)")
	}
	for _, tool := range []string{"dpkg", "useradd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed", tool)
		}
	}
	if _, err := pkgbuild.FindNFPM(); err != nil {
		t.Fatal(err)
	}
	cfg, err := pkgbuild.Load("../.goreleaser.yaml")
	if err != nil {
		t.Fatal(err)
	}
	debOf := func(version string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		arts, err := cfg.Build(ctx, pkgbuild.Options{Dist: filepath.Join(t.TempDir(), "dist"), Version: version,
			Packages: []string{"falconet-agent"}, Arches: []string{runtime.GOARCH}, Formats: []string{"deb"}})
		if err != nil || len(arts) != 1 {
			t.Fatalf("building the falconet-agent %s deb: %v (%d artifacts)", version, err, len(arts))
		}
		return arts[0].Path
	}
	deb1 := debOf("1.0.0")

	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{"var/lib/dpkg/status": "", "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group": "root:x:0:\n", "etc/shadow": "root:*:19000:0:99999:7:::\n", "etc/gshadow": "root:*::\n"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dpkg := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--force-confold"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	dpkg("-i", deb1)

	e := newFleetEnv(t)
	a := &agentProc{t: t, dir: root, dataDir: filepath.Join(root, "var/lib/falconet/agent"), httpAddr: freePort(t),
		installed: filepath.Join(root, "usr/bin/falconet-agent"), logPath: filepath.Join(root, "agent.log")}
	// The packaged config with the test's relay, feed and paths.
	a.cfgPath = e.writeAgentConfigAt(filepath.Join(root, "etc/falconet/agent.toml"), a.dataDir, "pkg-host", a.httpAddr,
		e.relay.ProtocolAddr(), "10s")
	a.start("pkg-host")
	a.waitRunning(30*time.Second, "1.0.0", "installed")

	a.waitDelivering(30 * time.Second)
	e.publish("1.1.0", bin(t, "agent-1.1.0"), "", 100)
	a.waitRunning(60*time.Second, "1.1.0", "committed")
	// The edited config shows as changed (a conffile); the binary must not.
	if out := dpkg("--verify", "falconet-agent"); strings.Contains(out, "/usr/bin/") {
		t.Fatalf("dpkg --verify after the self-update: %s; want the package's binary untouched", out)
	}

	// A bad release goes back to 1.1.0, the previous (self-updated) version.
	a.waitDelivering(30 * time.Second)
	e.publish("2.0.0", bin(t, "bad-exit"), "linux/"+runtime.GOARCH, 100)
	waitFor(t, 60*time.Second, "2.0.0 marked bad", func() bool { _, bad := a.state().Bad["2.0.0"]; return bad }, nil)
	a.waitRunning(60*time.Second, "1.1.0", "committed")
	a.waitDelivering(30 * time.Second)

	// The package is upgraded to 1.2.0 and the service restarted: the newer
	// installed binary wins over the committed 1.1.0.
	deb2 := debOf("1.2.0")
	dpkg("-i", deb2)
	if err := syscall.Kill(-a.cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the agent to stop", func() bool { return a.metrics() == nil }, nil)
	a.start("pkg-host")
	a.waitRunning(30*time.Second, "1.2.0", "installed")
	if s := a.state(); s.Current != "" {
		t.Fatalf("state after the package upgrade: %+v, want no committed self-update", s)
	}
	a.waitDelivering(30 * time.Second)
}
