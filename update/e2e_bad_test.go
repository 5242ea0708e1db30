package update_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Releases that fail their health gate are rolled back within a minute,
// marked bad, and not taken again: one that exits at once, one that hangs
// (ignores SIGTERM), a real agent that runs but never gets an ack, a
// truncated binary and a binary for another architecture (both published
// "correctly", so they pass size, checksum and signature), and a good
// binary published under a version it does not report. The agent is
// started by hand (no systemd): the watcher restarts the old version.
func TestSelfUpdateBadReleasesRolledBack(t *testing.T) {
	t.Parallel()
	e := newFleetEnv(t)
	a := e.startAgent("bad-host", "1.0.0", "5s")
	a.waitRunning(30*time.Second, "1.0.0", "installed")

	dir := t.TempDir()
	// 2.2.0: the real agent, but pointed at a relay address nobody listens
	// on: it runs, opens the buffer, and never gets an ack.
	noackCfg := e.writeAgentConfig(a.dir, "noack.toml", "bad-host", a.httpAddr, freePort(t), "5s")
	noack := filepath.Join(dir, "noack.sh")
	writeExec(t, noack, fmt.Sprintf("#!/bin/sh\nexec %s -config %s\n", bin(t, "agent-2.2.0"), noackCfg))
	// 2.3.0: the first 64 KiB of a real agent binary.
	full, err := os.ReadFile(bin(t, "agent-1.1.0"))
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated")
	writeExec(t, truncated, string(full[:64<<10]))
	// 2.4.0: an ELF binary for aarch64 (the exit program with its machine
	// field changed), published as linux/amd64.
	exitProg, err := os.ReadFile(bin(t, "bad-exit"))
	if err != nil {
		t.Fatal(err)
	}
	if string(exitProg[:4]) != "\x7fELF" {
		t.Fatal("test bug: bad-exit is not ELF")
	}
	binary.LittleEndian.PutUint16(exitProg[18:], 183) // EM_AARCH64
	otherArch := filepath.Join(dir, "arm64")
	writeExec(t, otherArch, string(exitProg))

	cases := []struct {
		version, binary string
		reasons         []string
	}{
		{"2.0.0", bin(t, "bad-exit"), []string{"exited"}},
		{"2.1.0", bin(t, "bad-hang"), []string{"hung"}},
		{"2.2.0", noack, []string{"no_ack"}},
		{"2.3.0", truncated, []string{"exec_failed", "exited"}},
		{"2.4.0", otherArch, []string{"exec_failed"}},
		{"2.5.0", bin(t, "agent-1.1.0"), []string{"wrong_version"}}, // a good binary, published under the wrong version
	}
	for _, c := range cases {
		a.waitDelivering(30 * time.Second)
		refusedBefore := max(0, a.value("falconet_update_refused_total", map[string]string{"reason": "bad_version"}))
		e.publish(c.version, c.binary, "linux/amd64", 100)
		published := time.Now()
		waitFor(t, 60*time.Second, c.version+" marked bad", func() bool {
			_, bad := a.state().Bad[c.version]
			return bad
		}, func() string { return fmt.Sprintf("state %+v", a.state()) })
		a.waitRunning(60*time.Second, "1.0.0", "installed")
		back := time.Since(published)
		f := a.state().Bad[c.version]
		ok := false
		for _, r := range c.reasons {
			ok = ok || f.Reason == r
		}
		if !ok {
			t.Errorf("%s: rolled back for %q (%s), want one of %v", c.version, f.Reason, f.Detail, c.reasons)
		}
		if back > time.Minute {
			t.Errorf("%s: back on 1.0.0 %v after publishing, want within a minute", c.version, back)
		}
		t.Logf("%s: back on 1.0.0 %v after publishing; reason %s: %s", c.version, back.Round(100*time.Millisecond), f.Reason, f.Detail)
		// Not retried: the next checks refuse it as bad here.
		waitFor(t, 30*time.Second, c.version+" refused as bad", func() bool {
			return a.value("falconet_update_refused_total", map[string]string{"reason": "bad_version"}) > refusedBefore
		}, func() string { return a.log() })
		if n := countLines(a.log(), "release verified and applied", "version="+c.version+" "); n != 1 {
			t.Errorf("%s applied %d times, want once", c.version, n)
		}
		if s := a.state(); s.Trial != nil || s.Current != "" {
			t.Errorf("state after rolling back %s: %+v, want no trial and the installed binary current", c.version, s)
		}
	}
	// The last failure is visible in /metrics.
	if v := a.value("falconet_update_last_failure_info", map[string]string{"version": "2.5.0"}); v != 1 {
		t.Errorf("falconet_update_last_failure_info{version=2.5.0}: got %v, want 1", v)
	}
	if v := a.value("falconet_update_bad_versions", nil); v != float64(len(cases)) {
		t.Errorf("falconet_update_bad_versions: got %v, want %d", v, len(cases))
	}
}

func writeExec(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}

// countLines counts the lines of text containing every one of parts.
func countLines(text string, parts ...string) int {
	n := 0
	for _, line := range strings.Split(text, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}
