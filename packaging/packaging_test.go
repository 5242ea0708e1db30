package packaging_test

import (
	"bufio"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/falconet/falconet/packaging/pkgbuild"
)

// The package install test builds real packages (a few go builds) and
// installs them as root into a scratch root. `make test-packages` runs it
// (and `make test` runs that); a plain `go test ./...` skips it.
const enableEnv = "FALCONET_PACKAGE_TEST"

var daemons = []string{"agent", "relay", "saver"}

// built holds the packages of one test run.
type built struct {
	v1         map[string]string // package name -> .deb of 1.0.0 (amd64)
	v1rpm      map[string]string // package name -> .rpm of 1.0.0 (amd64)
	agentV2    string            // falconet-agent 1.0.1 .deb with a changed default agent.toml
	agentV2rpm string            // the same as .rpm
	arm64      []pkgbuild.Artifact
}

// requireTools skips (fails under CI, which installs them) when a tool is missing.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if _, err := pkgbuild.FindNFPM(); err != nil {
		missing = append(missing, "nfpm")
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("packages: %s not installed (.ci/run installs them)", strings.Join(missing, ", "))
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func TestPackages(t *testing.T) {
	if os.Getenv(enableEnv) == "" {
		t.Skipf("packages: install test runs with make test-packages (%s=1)", enableEnv)
	}
	if os.Geteuid() != 0 {
		t.Skip("packages: skipped, needs root (dpkg --root sets owners; CI runs as root)")
	}
	requireTools(t, "dpkg", "dpkg-deb", "dpkg-query", "rpm", "useradd", "systemd-analyze", "git", "go")

	cfg, err := pkgbuild.Load("../.goreleaser.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b := buildAll(t, cfg)

	t.Run("goreleaser check", testGoreleaserCheck)
	t.Run("deb contents", func(t *testing.T) { testDebContents(t, b) })
	t.Run("rpm matches deb", func(t *testing.T) { testRPM(t, b) })
	t.Run("systemd-analyze verify", func(t *testing.T) { testVerifyUnits(t, b) })
	t.Run("install upgrade remove purge", func(t *testing.T) { testLifecycle(t, b) })
	t.Run("arm64", func(t *testing.T) { testArm64(t, b) })
	t.Run("scripts in a chroot without systemd", func(t *testing.T) { testChroot(t, b) })
}

// testGoreleaserCheck validates .goreleaser.yaml with goreleaser itself: the
// file the nfpm path reads must stay the one goreleaser releases from.
func testGoreleaserCheck(t *testing.T) {
	bin, err := exec.LookPath("goreleaser")
	if err != nil {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, "go", "bin", "goreleaser")
		if _, err := os.Stat(bin); err != nil {
			msg := "packages: goreleaser not installed, goreleaser check skipped (.ci/run installs it)"
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	cmd := exec.Command(bin, "check")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("goreleaser check: %v\n%s", err, out)
	}
}

func buildAll(t *testing.T, cfg *pkgbuild.Config) built {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dist := t.TempDir()
	b := built{v1: map[string]string{}, v1rpm: map[string]string{}}

	start := time.Now()
	arts, err := cfg.Build(ctx, pkgbuild.Options{Dist: filepath.Join(dist, "v1"), Version: "1.0.0", Arches: []string{"amd64"}, Log: logWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range arts {
		switch a.Format {
		case "deb":
			b.v1[a.Name] = a.Path
		case "rpm":
			b.v1rpm[a.Name] = a.Path
		}
	}
	for _, name := range append(daemonPackages(), "falconet") {
		if b.v1[name] == "" || b.v1rpm[name] == "" {
			t.Fatalf("build 1.0.0: no deb or rpm for %s in %v", name, arts)
		}
	}

	// 1.0.1 of the agent ships a changed default config: an admin's edit
	// must survive it and the new default land beside it.
	changed := filepath.Join(dist, "agent.toml")
	orig, err := os.ReadFile("config/agent.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(changed, append(orig, []byte("\n# new default in 1.0.1\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	arts, err = cfg.Build(ctx, pkgbuild.Options{Dist: filepath.Join(dist, "v2"), Version: "1.0.1", Arches: []string{"amd64"},
		Packages: []string{"falconet-agent"}, Log: logWriter{t},
		ReplaceSource: map[string]string{"packaging/config/agent.toml": changed}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range arts {
		if a.Format == "deb" {
			b.agentV2 = a.Path
		} else {
			b.agentV2rpm = a.Path
		}
	}
	if len(arts) != 2 || b.agentV2 == "" || b.agentV2rpm == "" {
		t.Fatalf("build 1.0.1: got %v, want a deb and an rpm", arts)
	}

	b.arm64, err = cfg.Build(ctx, pkgbuild.Options{Dist: filepath.Join(dist, "arm64"), Version: "1.0.0", Arches: []string{"arm64"},
		Packages: []string{"falconet-agent"}, Log: logWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("packages: built 1.0.0 (4 packages, deb and rpm, amd64), agent 1.0.1, agent arm64 in %s", time.Since(start).Round(time.Second))
	return b
}

// logWriter sends pkgbuild's progress lines to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func daemonPackages() []string {
	var out []string
	for _, d := range daemons {
		out = append(out, "falconet-"+d)
	}
	return out
}

func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = nil
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// debEntry is one line of dpkg-deb -c.
type debEntry struct{ mode, owner, path string }

func debList(t *testing.T, deb string) map[string]debEntry {
	t.Helper()
	out := map[string]debEntry{}
	for _, line := range strings.Split(strings.TrimSpace(run(t, nil, "dpkg-deb", "-c", deb)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c %s: odd line %q", deb, line)
		}
		p := strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")
		out[p] = debEntry{mode: f[0], owner: f[1], path: p}
	}
	return out
}

// The files every package must ship, with mode and owner.
func wantFiles(pkg string) map[string]string {
	if pkg == "falconet" {
		return map[string]string{"/usr/bin/falconet": "-rwxr-xr-x root/root"}
	}
	d := strings.TrimPrefix(pkg, "falconet-")
	want := map[string]string{
		"/usr/bin/" + pkg: "-rwxr-xr-x root/root",
		"/usr/lib/systemd/system/" + pkg + ".service": "-rw-r--r-- root/root",
		"/etc/falconet/" + d + ".toml":                "-rw-r----- root/root", // postinst gives the group to falconet
		"/etc/falconet":                               "drwxr-xr-x root/root",
	}
	if d == "agent" {
		want["/etc/falconet/scripts"] = "drwxr-xr-x root/root"
	}
	return want
}

// Directories nfpm adds to a deb as parents; rpm leaves them to the base system.
var implicitDirs = []string{"/", "", "/etc", "/usr", "/usr/bin", "/usr/lib", "/usr/lib/systemd", "/usr/lib/systemd/system"}

func testDebContents(t *testing.T, b built) {
	for _, pkg := range append(daemonPackages(), "falconet") {
		deb := b.v1[pkg]
		got := debList(t, deb)
		want := wantFiles(pkg)
		for p, w := range want {
			e, ok := got[p]
			if !ok {
				t.Errorf("%s: %s missing", filepath.Base(deb), p)
				continue
			}
			if e.mode+" "+e.owner != w {
				t.Errorf("%s: %s: got %s %s, want %s", filepath.Base(deb), p, e.mode, e.owner, w)
			}
		}
		for p := range got {
			if _, ok := want[p]; !ok && !slices.Contains(implicitDirs, p) {
				t.Errorf("%s: unexpected %s", filepath.Base(deb), p)
			}
		}
		conffiles := strings.Fields(debControlFile(t, deb, "conffiles"))
		var wantConf []string
		if pkg != "falconet" {
			wantConf = []string{"/etc/falconet/" + strings.TrimPrefix(pkg, "falconet-") + ".toml"}
		}
		if !slices.Equal(conffiles, wantConf) {
			t.Errorf("%s conffiles: got %v, want %v", pkg, conffiles, wantConf)
		}
		fields := run(t, nil, "dpkg-deb", "-f", deb, "Package", "Version", "Architecture")
		wantFields := fmt.Sprintf("Package: %s\nVersion: 1.0.0\nArchitecture: amd64\n", pkg)
		if fields != wantFields {
			t.Errorf("%s control: got %q, want %q", pkg, fields, wantFields)
		}
		for _, script := range []string{"postinst", "prerm", "postrm"} {
			s := debControlFile(t, deb, script)
			if pkg == "falconet" {
				if s != "" {
					t.Errorf("%s: has a %s, want none (no daemon)", pkg, script)
				}
				continue
			}
			if !strings.HasPrefix(s, "#!/bin/sh") {
				t.Errorf("%s %s: got %.40q, want a /bin/sh script", pkg, script, s)
			}
		}
	}
}

// debControlFile returns a control member ("" when absent).
func debControlFile(t *testing.T, deb, member string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "--info", deb, member).Output()
	if err != nil {
		return ""
	}
	return string(out)
}

func testRPM(t *testing.T, b built) {
	for _, pkg := range append(daemonPackages(), "falconet") {
		rpmFile := b.v1rpm[pkg]
		name := filepath.Base(rpmFile)
		qf := run(t, nil, "rpm", "-qp", "--qf", "%{NAME} %{VERSION} %{ARCH}\n", rpmFile)
		if want := pkg + " 1.0.0 x86_64\n"; qf != want {
			t.Errorf("%s: got %q, want %q", name, qf, want)
		}
		// Files: the same set as the deb (without the deb's implicit
		// parents), with the same modes and owners.
		perms := run(t, nil, "rpm", "-qp", "--qf", "[%{FILEMODES:perms} %{FILEUSERNAME}/%{FILEGROUPNAME} %{FILENAMES}\n]", rpmFile)
		for _, line := range strings.Split(strings.TrimSpace(perms), "\n") {
			f := strings.Fields(line)
			if len(f) != 3 {
				t.Fatalf("%s: odd rpm file line %q", name, line)
			}
			if w, ok := wantFiles(pkg)[f[2]]; ok && f[0]+" "+f[1] != w {
				t.Errorf("%s: %s: got %s %s, want %s", name, f[2], f[0], f[1], w)
			}
		}
		var debFiles []string
		for p := range debList(t, b.v1[pkg]) {
			if !slices.Contains(implicitDirs, p) {
				debFiles = append(debFiles, p)
			}
		}
		qpl := strings.Fields(run(t, nil, "rpm", "-qpl", rpmFile))
		slices.Sort(debFiles)
		slices.Sort(qpl)
		if !slices.Equal(qpl, debFiles) {
			t.Errorf("%s: rpm -qpl got %v, want the deb's %v", name, qpl, debFiles)
		}
		qpc := strings.Fields(run(t, nil, "rpm", "-qpc", rpmFile))
		debConf := strings.Fields(debControlFile(t, b.v1[pkg], "conffiles"))
		if !slices.Equal(qpc, debConf) {
			t.Errorf("%s: rpm -qpc got %v, want the deb's conffiles %v", name, qpc, debConf)
		}
		// %config(noreplace): an edited config is kept on upgrade (as the deb's conffile).
		if flags := run(t, nil, "rpm", "-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]", rpmFile); pkg != "falconet" &&
			!strings.Contains(flags, "cn /etc/falconet/"+strings.TrimPrefix(pkg, "falconet-")+".toml") {
			t.Errorf("%s: config not %%config(noreplace): %s", name, flags)
		}

		scripts := splitRPMScripts(run(t, nil, "rpm", "-qp", "--scripts", rpmFile))
		if pkg == "falconet" {
			if len(scripts) != 0 {
				t.Errorf("%s: got scriptlets %v, want none", name, keys(scripts))
			}
			continue
		}
		want := map[string][]string{
			"preinstall":    {"useradd --system", "groupadd --system"},
			"postinstall":   {"pkg=" + pkg, "systemctl --no-reload enable", "install -d -m 0750 -o falconet -g falconet", "chgrp falconet"},
			"preuninstall":  {"pkg=" + pkg, "disable --now"},
			"postuninstall": {"pkg=" + pkg, "try-restart", "-check-config"},
		}
		for kind, needles := range want {
			body, ok := scripts[kind]
			if !ok {
				t.Errorf("%s: no %s scriptlet (have %v)", name, kind, keys(scripts))
				continue
			}
			for _, n := range needles {
				if !strings.Contains(body, n) {
					t.Errorf("%s %s scriptlet: %q missing", name, kind, n)
				}
			}
			f := filepath.Join(t.TempDir(), kind)
			if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("sh", "-n", f).CombinedOutput(); err != nil {
				t.Errorf("%s %s scriptlet: sh -n: %v %s", name, kind, err, out)
			}
		}
	}

	// The per-package rpm scriptlets are copies (rpm gives scriptlets no
	// package name): they must differ only in the package name.
	for _, hook := range []string{"post", "preun", "postun"} {
		ref := readNormalized(t, "scripts/rpm/falconet-agent/"+hook, "agent")
		for _, d := range daemons[1:] {
			if got := readNormalized(t, "scripts/rpm/falconet-"+d+"/"+hook, d); got != ref {
				t.Errorf("scripts/rpm/falconet-%s/%s differs from falconet-agent's beyond the name", d, hook)
			}
		}
	}
}

func readNormalized(t *testing.T, path, name string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(raw), name, "NAME")
}

var scriptletHeader = regexp.MustCompile(`^(\w+) scriptlet \(using [^)]*\):$`)

func splitRPMScripts(out string) map[string]string {
	scripts := map[string]string{}
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if m := scriptletHeader.FindStringSubmatch(sc.Text()); m != nil {
			cur = m[1]
			continue
		}
		if cur != "" {
			scripts[cur] += sc.Text() + "\n"
		}
	}
	return scripts
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func testVerifyUnits(t *testing.T, b built) {
	hostUnits := "/lib/systemd/system"
	if _, err := os.Stat(filepath.Join(hostUnits, "multi-user.target")); err != nil {
		hostUnits = "/usr/lib/systemd/system"
		if _, err := os.Stat(filepath.Join(hostUnits, "multi-user.target")); err != nil {
			msg := "packages: systemd's units (multi-user.target) not installed, cannot verify (.ci/run installs systemd)"
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	// A root with the package's files and the host's standard units, so that
	// verify resolves ExecStart= and the targets the unit names.
	for _, pkg := range daemonPackages() {
		root := t.TempDir()
		run(t, nil, "dpkg-deb", "-x", b.v1[pkg], root)
		run(t, nil, "cp", "-a", "--no-clobber", hostUnits+"/.", filepath.Join(root, "usr/lib/systemd/system"))
		unit := "/usr/lib/systemd/system/" + pkg + ".service"
		cmd := exec.Command("systemd-analyze", "verify", "--root="+root, unit)
		out, err := cmd.CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify %s: err=%v, output (want none):\n%s", pkg, err, out)
		}
		// The exposure score guards the hardening against regressions.
		out, err = exec.Command("systemd-analyze", "security", "--offline=true", "--root="+root, unit).CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze security %s: %v\n%s", pkg, err, out)
			continue
		}
		m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindStringSubmatch(string(out))
		if m == nil {
			t.Errorf("systemd-analyze security %s: no exposure level in:\n%s", pkg, out)
			continue
		}
		score, _ := strconv.ParseFloat(m[1], 64)
		if score > 2.5 {
			t.Errorf("%s: exposure %.1f, want <= 2.5 (hardening lost?)", pkg, score)
		}
		t.Logf("%s: systemd-analyze verify clean, exposure %.1f", pkg, score)
	}
}

// scratch is a dpkg root in a temporary directory.
type scratch struct {
	t    *testing.T
	root string
}

func newScratch(t *testing.T) *scratch {
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"var/lib/dpkg/status": "",
		"etc/passwd":          "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":           "root:x:0:\n",
		"etc/shadow":          "root:*:19000:0:99999:7:::\n",
		"etc/gshadow":         "root:*::\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &scratch{t: t, root: root}
}

func (s *scratch) path(p string) string { return filepath.Join(s.root, p) }

func (s *scratch) dpkg(args ...string) string {
	s.t.Helper()
	return run(s.t, nil, "dpkg", append([]string{"--root=" + s.root, "--force-script-chrootless", "--force-confold"}, args...)...)
}

// status is dpkg's Status field of pkg ("" when unknown).
func (s *scratch) status(pkg string) string {
	out, _ := exec.Command("dpkg-query", "--admindir="+s.path("var/lib/dpkg"), "-W", "-f=${Status} ${Version}", pkg).Output()
	return string(out)
}

// ids of the falconet user and group in the root's own files.
func (s *scratch) ids() (uid, gid int, passwdLine string) {
	s.t.Helper()
	uid, gid = -1, -1
	for _, f := range []string{"etc/passwd", "etc/group"} {
		raw, err := os.ReadFile(s.path(f))
		if err != nil {
			s.t.Fatal(err)
		}
		n := 0
		for _, line := range strings.Split(string(raw), "\n") {
			if !strings.HasPrefix(line, "falconet:") {
				continue
			}
			n++
			id, _ := strconv.Atoi(strings.Split(line, ":")[2])
			if f == "etc/passwd" {
				uid, passwdLine = id, line
			} else {
				gid = id
			}
		}
		if n > 1 {
			s.t.Errorf("%s: %d falconet entries, want 1", f, n)
		}
	}
	return uid, gid, passwdLine
}

// expectStat checks mode and owner of a path in the root.
func (s *scratch) expectStat(p string, mode os.FileMode, uid, gid int) {
	s.t.Helper()
	fi, err := os.Lstat(s.path(p))
	if err != nil {
		s.t.Errorf("%s: %v", p, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != mode || int(st.Uid) != uid || int(st.Gid) != gid {
		s.t.Errorf("%s: got %v %d:%d, want %v %d:%d", p, fi.Mode().Perm(), st.Uid, st.Gid, mode, uid, gid)
	}
}

func (s *scratch) exists(p string) bool {
	_, err := os.Lstat(s.path(p))
	return err == nil
}

func (s *scratch) expectExists(p string, want bool, why string) {
	s.t.Helper()
	if got := s.exists(p); got != want {
		s.t.Errorf("%s: exists=%v, want %v (%s)", p, got, want, why)
	}
}

const wantsDir = "etc/systemd/system/multi-user.target.wants/"

func testLifecycle(t *testing.T, b built) {
	s := newScratch(t)

	// Install 1.0.0 of everything.
	var debs []string
	for _, pkg := range append(daemonPackages(), "falconet") {
		debs = append(debs, b.v1[pkg])
	}
	s.dpkg(append([]string{"-i"}, debs...)...)
	for _, pkg := range append(daemonPackages(), "falconet") {
		if st := s.status(pkg); st != "install ok installed 1.0.0" {
			t.Errorf("%s after install: status %q, want %q", pkg, st, "install ok installed 1.0.0")
		}
	}
	uid, gid, pw := s.ids()
	if uid < 1 || uid >= 1000 || gid < 1 || gid >= 1000 {
		t.Fatalf("falconet user: uid %d gid %d, want a system user and group (1..999); passwd: %q", uid, gid, pw)
	}
	if want := fmt.Sprintf("falconet:x:%d:%d:falconet daemons:/var/lib/falconet:/usr/sbin/nologin", uid, gid); pw != want {
		t.Errorf("passwd: got %q, want %q", pw, want)
	}
	s.expectStat("var/lib/falconet", 0o750, uid, gid)
	s.expectStat("etc/falconet", 0o755, 0, 0)
	s.expectStat("etc/falconet/scripts", 0o755, 0, 0)
	s.expectStat("usr/bin/falconet", 0o755, 0, 0)
	for _, d := range daemons {
		pkg := "falconet-" + d
		s.expectStat("var/lib/falconet/"+d, 0o750, uid, gid)
		s.expectStat("etc/falconet/"+d+".toml", 0o640, 0, gid)
		s.expectStat("usr/bin/"+pkg, 0o755, 0, 0)
		s.expectStat("usr/lib/systemd/system/"+pkg+".service", 0o644, 0, 0)
		// Enabled (deb-systemd-helper inside DPKG_ROOT), not started: no systemd there.
		if target, err := os.Readlink(s.path(wantsDir + pkg + ".service")); err != nil || target != "/usr/lib/systemd/system/"+pkg+".service" {
			t.Errorf("%s: enable symlink: got %q, %v; want the unit", pkg, target, err)
		}
		// The installed binary is the 1.0.0 build and accepts the shipped config.
		if out := run(t, nil, s.path("usr/bin/"+pkg), "-version"); !strings.Contains(out, pkg+" 1.0.0 ") {
			t.Errorf("%s -version: got %q, want %s 1.0.0", pkg, out, pkg)
		}
		run(t, nil, s.path("usr/bin/"+pkg), "-check-config", "-config", s.path("etc/falconet/"+d+".toml"))
	}
	if conf := s.conffiles("falconet-agent"); !strings.Contains(conf, "/etc/falconet/agent.toml") {
		t.Errorf("falconet-agent conffiles in dpkg's database: got %q, want /etc/falconet/agent.toml", conf)
	}

	// The admin edits the config, the agent has buffered data.
	agentConf := s.path("etc/falconet/agent.toml")
	conf, err := os.ReadFile(agentConf)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(conf), `hostname = ""`, `hostname = "edited-by-admin"`, 1)
	if edited == string(conf) {
		t.Fatal(`agent.toml: no hostname = "" line to edit`)
	}
	if err := os.WriteFile(agentConf, []byte(edited), 0o640); err != nil {
		t.Fatal(err)
	}
	buffer := s.path("var/lib/falconet/agent/buffer.db")
	if err := os.WriteFile(buffer, []byte("undelivered metrics"), 0o600); err != nil {
		t.Fatal(err)
	}

	// An admin's disable (systemctl disable removes the wants symlink)
	// survives a reinstall/upgrade of the package: deb-systemd-helper, which
	// the postinst uses, never re-creates a link it made once. Enabled again
	// by hand for what follows.
	relayLink, relayUnit := s.path(wantsDir+"falconet-relay.service"), "/usr/lib/systemd/system/falconet-relay.service"
	if err := os.Remove(relayLink); err != nil {
		t.Fatal(err)
	}
	s.dpkg("-i", b.v1["falconet-relay"])
	s.expectExists(wantsDir+"falconet-relay.service", false, "an admin's disable kept by the upgrade")
	if err := os.Symlink(relayUnit, relayLink); err != nil {
		t.Fatal(err)
	}

	// Upgrade the agent to 1.0.1, whose default config changed.
	s.dpkg("-i", b.agentV2)
	if st := s.status("falconet-agent"); st != "install ok installed 1.0.1" {
		t.Errorf("after upgrade: status %q, want install ok installed 1.0.1", st)
	}
	if out := run(t, nil, s.path("usr/bin/falconet-agent"), "-version"); !strings.Contains(out, "falconet-agent 1.0.1 ") {
		t.Errorf("after upgrade, -version: got %q, want 1.0.1", out)
	}
	if got, _ := os.ReadFile(agentConf); string(got) != edited {
		t.Errorf("after upgrade, agent.toml lost the admin's edit:\n%s", got)
	}
	if dist, err := os.ReadFile(agentConf + ".dpkg-dist"); err != nil || !strings.Contains(string(dist), "# new default in 1.0.1") {
		t.Errorf("after upgrade, agent.toml.dpkg-dist: got err=%v, want the 1.0.1 default beside the edited file", err)
	}
	s.expectStat("etc/falconet/agent.toml", 0o640, 0, gid)
	if got, err := os.ReadFile(buffer); err != nil || string(got) != "undelivered metrics" {
		t.Errorf("after upgrade, buffer: %q, %v; want it untouched", got, err)
	}
	if u2, g2, _ := s.ids(); u2 != uid || g2 != gid {
		t.Errorf("after upgrade, falconet ids %d:%d, want unchanged %d:%d", u2, g2, uid, gid)
	}
	s.expectExists(wantsDir+"falconet-agent.service", true, "still enabled after upgrade")

	// Remove: program and unit gone, config and buffer kept.
	s.dpkg("-r", "falconet-agent")
	if st := s.status("falconet-agent"); st != "deinstall ok config-files 1.0.1" {
		t.Errorf("after remove: status %q, want deinstall ok config-files 1.0.1", st)
	}
	s.expectExists("usr/bin/falconet-agent", false, "removed")
	s.expectExists("usr/lib/systemd/system/falconet-agent.service", false, "removed")
	if got, _ := os.ReadFile(agentConf); string(got) != edited {
		t.Errorf("after remove, agent.toml: want the edited config kept")
	}
	if got, err := os.ReadFile(buffer); err != nil || string(got) != "undelivered metrics" {
		t.Errorf("after remove, buffer: %q, %v; want it kept", got, err)
	}

	// Purge: config, buffer, enablement gone; the other packages untouched.
	s.dpkg("-P", "falconet-agent")
	if st := s.status("falconet-agent"); st != "" && !strings.HasPrefix(st, "unknown ok not-installed") {
		t.Errorf("after purge: status %q, want not installed", st)
	}
	for _, p := range []string{"etc/falconet/agent.toml", "etc/falconet/agent.toml.dpkg-dist", "var/lib/falconet/agent",
		wantsDir + "falconet-agent.service", "etc/systemd/system/falconet-agent.service",
		"var/lib/systemd/deb-systemd-helper-enabled/falconet-agent.service.dsh-also"} {
		s.expectExists(p, false, "purged")
	}
	s.expectExists("etc/falconet/scripts", false, "purged (empty)")
	s.expectExists("etc/falconet/relay.toml", true, "relay still installed")
	s.expectExists("var/lib/falconet/relay", true, "relay still installed")
	s.expectExists(wantsDir+"falconet-relay.service", true, "relay still enabled")

	// Purge the rest: nothing of falconet stays but its user.
	s.dpkg("-P", "falconet-relay", "falconet-saver", "falconet")
	for _, p := range []string{"etc/falconet", "var/lib/falconet", "usr/bin/falconet"} {
		s.expectExists(p, false, "all purged")
	}
	if entries, _ := os.ReadDir(s.path(wantsDir)); len(entries) != 0 {
		t.Errorf("after purging all: %s holds %d entries, want none", wantsDir, len(entries))
	}
	if u3, _, _ := s.ids(); u3 != uid {
		t.Errorf("after purge, falconet user: uid %d, want kept (%d)", u3, uid)
	}

	// Reinstall after purge: the user is reused, everything comes back.
	s.dpkg("-i", b.v1["falconet-agent"])
	if u4, g4, _ := s.ids(); u4 != uid || g4 != gid {
		t.Errorf("reinstall: falconet ids %d:%d, want the kept %d:%d", u4, g4, uid, gid)
	}
	s.expectStat("var/lib/falconet/agent", 0o750, uid, gid)
	s.expectExists(wantsDir+"falconet-agent.service", true, "enabled again")
}

func (s *scratch) conffiles(pkg string) string {
	out, _ := exec.Command("dpkg-query", "--admindir="+s.path("var/lib/dpkg"), "-W", "-f=${Conffiles}", pkg).Output()
	return string(out)
}

func testArm64(t *testing.T, b built) {
	formats := map[string]bool{}
	for _, a := range b.arm64 {
		formats[a.Format] = true
		switch a.Format {
		case "deb":
			if got := strings.TrimSpace(run(t, nil, "dpkg-deb", "-f", a.Path, "Architecture")); got != "arm64" {
				t.Errorf("%s: Architecture %q, want arm64", filepath.Base(a.Path), got)
			}
			dir := t.TempDir()
			run(t, nil, "dpkg-deb", "-x", a.Path, dir)
			f, err := elf.Open(filepath.Join(dir, "usr/bin/falconet-agent"))
			if err != nil {
				t.Fatal(err)
			}
			if f.Machine != elf.EM_AARCH64 {
				t.Errorf("arm64 deb: binary is %v, want EM_AARCH64", f.Machine)
			}
			f.Close()
		case "rpm":
			if got := run(t, nil, "rpm", "-qp", "--qf", "%{ARCH}", a.Path); got != "aarch64" {
				t.Errorf("%s: ARCH %q, want aarch64", filepath.Base(a.Path), got)
			}
		}
	}
	if !formats["deb"] || !formats["rpm"] {
		t.Errorf("arm64: built %v, want deb and rpm", b.arm64)
	}
}

// newChroot makes a root whose /usr is an overlay on the host's /usr (what
// the packages write there lands in a temporary upper layer), so that
// maintainer scripts run chrooted with real tools, without DPKG_ROOT and
// without systemd: the path taken in a container.
func newChroot(t *testing.T) string {
	t.Helper()
	root, layers := t.TempDir(), t.TempDir()
	for _, d := range []string{"usr", "etc", "dev", "tmp", "run", "var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"up", "work"} {
		if err := os.MkdirAll(filepath.Join(layers, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := "lowerdir=/usr,upperdir=" + filepath.Join(layers, "up") + ",workdir=" + filepath.Join(layers, "work")
	if err := syscall.Mount("overlay", filepath.Join(root, "usr"), "overlay", 0, opts); err != nil {
		t.Skipf("packages: chroot test skipped, cannot mount an overlay on /usr: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(filepath.Join(root, "usr"), 0); err != nil {
			t.Errorf("unmount the overlay: %v", err)
		}
	})
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
		if target, err := os.Readlink("/" + l); err == nil {
			if err := os.Symlink(target, filepath.Join(root, l)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := syscall.Mknod(filepath.Join(root, "dev/null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "dev/null"), 0o666); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"var/lib/dpkg/status": "",
		"etc/passwd":          "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":           "root:x:0:\n",
		"etc/shadow":          "root:*:19000:0:99999:7:::\n",
		"etc/gshadow":         "root:*::\n",
	}
	for _, f := range []string{"adduser.conf", "login.defs", "nsswitch.conf"} {
		if raw, err := os.ReadFile("/etc/" + f); err == nil {
			files["etc/"+f] = string(raw)
		}
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func testChroot(t *testing.T, b built) {
	t.Run("deb", func(t *testing.T) {
		s := &scratch{t: t, root: newChroot(t)}
		// No --force-script-chrootless: dpkg runs the scripts chrooted, so
		// they take the host path (adduser, getent) with no systemd running.
		dpkg := func(args ...string) string {
			t.Helper()
			return run(t, nil, "dpkg", append([]string{"--root=" + s.root, "--force-confold"}, args...)...)
		}
		dpkg("-i", b.v1["falconet-agent"])
		uid, gid, pw := s.ids()
		if uid < 1 || uid >= 1000 || gid < 1 || gid >= 1000 || !strings.HasSuffix(pw, ":/var/lib/falconet:/usr/sbin/nologin") {
			t.Fatalf("adduser: got %q (gid %d), want a system user with home /var/lib/falconet and no login", pw, gid)
		}
		s.expectStat("var/lib/falconet/agent", 0o750, uid, gid)
		s.expectStat("etc/falconet/agent.toml", 0o640, 0, gid)
		s.expectExists(wantsDir+"falconet-agent.service", true, "enabled by deb-systemd-helper")
		dpkg("-i", b.agentV2)
		if st := s.status("falconet-agent"); st != "install ok installed 1.0.1" {
			t.Errorf("upgrade: status %q, want install ok installed 1.0.1", st)
		}
		dpkg("-P", "falconet-agent")
		for _, p := range []string{"etc/falconet", "var/lib/falconet", wantsDir + "falconet-agent.service"} {
			s.expectExists(p, false, "purged")
		}
	})

	t.Run("rpm", func(t *testing.T) {
		s := &scratch{t: t, root: newChroot(t)}
		rpm := func(args ...string) string {
			t.Helper()
			return run(t, nil, "rpm", append([]string{"--root", s.root, "--nodeps"}, args...)...)
		}
		run(t, nil, "rpm", "--root", s.root, "--initdb")
		rpm("-i", b.v1rpm["falconet-agent"])
		uid, gid, pw := s.ids()
		if uid < 1 || uid >= 1000 || gid < 1 || gid >= 1000 || !strings.HasSuffix(pw, ":/var/lib/falconet:/sbin/nologin") {
			t.Fatalf("%%pre: got %q (gid %d), want a system user with home /var/lib/falconet and no login", pw, gid)
		}
		s.expectStat("var/lib/falconet/agent", 0o750, uid, gid)
		s.expectStat("etc/falconet/agent.toml", 0o640, 0, gid)
		s.expectExists(wantsDir+"falconet-agent.service", true, "enabled by %post")

		agentConf := s.path("etc/falconet/agent.toml")
		conf, err := os.ReadFile(agentConf)
		if err != nil {
			t.Fatal(err)
		}
		edited := strings.Replace(string(conf), `hostname = ""`, `hostname = "edited-by-admin"`, 1)
		if err := os.WriteFile(agentConf, []byte(edited), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(s.path("var/lib/falconet/agent/buffer.db"), []byte("undelivered"), 0o600); err != nil {
			t.Fatal(err)
		}

		rpm("-U", b.agentV2rpm)
		if q := run(t, nil, "rpm", "--root", s.root, "-q", "--qf", "%{VERSION}", "falconet-agent"); q != "1.0.1" {
			t.Errorf("upgrade: installed version %q, want 1.0.1", q)
		}
		if got, _ := os.ReadFile(agentConf); string(got) != edited {
			t.Errorf("upgrade: agent.toml lost the admin's edit")
		}
		if dist, err := os.ReadFile(agentConf + ".rpmnew"); err != nil || !strings.Contains(string(dist), "# new default in 1.0.1") {
			t.Errorf("upgrade: agent.toml.rpmnew: err=%v, want the 1.0.1 default", err)
		}
		s.expectStat("etc/falconet/agent.toml", 0o640, 0, gid)
		s.expectExists(wantsDir+"falconet-agent.service", true, "still enabled after upgrade")

		rpm("-e", "falconet-agent")
		s.expectExists("usr/bin/falconet-agent", false, "erased")
		s.expectExists(wantsDir+"falconet-agent.service", false, "disabled by %preun")
		s.expectExists("etc/falconet/agent.toml.rpmsave", true, "edited config kept by rpm")
		s.expectExists("var/lib/falconet/agent/buffer.db", true, "data kept (rpm has no purge)")
	})
}
