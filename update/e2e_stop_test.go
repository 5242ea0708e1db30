package update_test

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Stopping the agent (SIGTERM) while a release is on trial is not a
// failure: nothing restarts it, the release is not marked bad, and at the
// next start the previous version runs and the release is tried again.
func TestSelfUpdateStoppedDuringTrial(t *testing.T) {
	t.Parallel()
	e := newFleetEnv(t)
	a := e.startAgent("stop-host", "1.0.0", "8s")
	a.waitRunning(30*time.Second, "1.0.0", "installed")
	a.waitDelivering(30 * time.Second)

	// 2.2.0 runs but gets no ack (its relay address is dead): it stays on
	// trial until its deadline.
	noackCfg := e.writeAgentConfig(a.dir, "noack.toml", "stop-host", a.httpAddr, freePort(t), "8s")
	script := filepath.Join(t.TempDir(), "noack.sh")
	writeExec(t, script, fmt.Sprintf("#!/bin/sh\nexec %s -config %s\n", bin(t, "agent-2.2.0"), noackCfg))
	e.publish("2.2.0", script, "linux/amd64", 100)
	waitFor(t, 30*time.Second, "2.2.0 on trial with its buffer open", func() bool {
		s := a.state()
		return s.Trial != nil && s.Trial.Version == "2.2.0" && s.Trial.Stage == "buffer opened"
	}, func() string { return fmt.Sprintf("state %+v", a.state()) })
	if err := syscall.Kill(a.cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent on trial did not stop within 10 s of SIGTERM")
	}
	// Past the trial's deadline and the watcher's grace nothing may have
	// restarted an agent, and the release is not bad.
	s := a.state()
	if s.Trial == nil || !s.Trial.Stopped {
		t.Fatalf("state after the stop: %+v, want the trial recorded as stopped", s)
	}
	until := s.Trial.Deadline.Add(7 * time.Second)
	for time.Now().Before(until) {
		if a.metrics() != nil {
			t.Fatalf("an agent answers on %s after the stop: the watcher restarted it", a.httpAddr)
		}
		<-time.After(200 * time.Millisecond)
	}
	if _, bad := a.state().Bad["2.2.0"]; bad {
		t.Fatal("2.2.0 marked bad after a stop on purpose")
	}

	// Started again: the installed 1.0.0 runs, then 2.2.0 is tried again
	// (from the versions directory) and fails its gate this time.
	a.start("stop-host")
	a.waitRunning(30*time.Second, "1.0.0", "installed")
	waitFor(t, 60*time.Second, "2.2.0 tried again and marked bad", func() bool {
		f, bad := a.state().Bad["2.2.0"]
		return bad && f.Reason == "no_ack"
	}, func() string { return fmt.Sprintf("state %+v", a.state()) })
	if n := countLines(a.log(), "release already in the versions directory", "version=2.2.0"); n != 1 {
		t.Errorf("2.2.0 re-tried from the versions directory %d times, want 1", n)
	}
	a.waitRunning(30*time.Second, "1.0.0", "installed")
}
