package update_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// supervisor restarts the agent the way systemd's Restart=on-failure,
// RestartSec=2s and KillMode=control-group do: when the main process ends,
// whatever is left in its group (here: process group) is killed; after a
// failure (non-zero status, or a signal other than SIGTERM) the installed
// binary starts again 2 s later. INVOCATION_ID is set as systemd sets it.
type supervisor struct {
	a        *agentProc
	mu       sync.Mutex
	pgid     int
	stopped  bool
	restarts atomic.Int64
	done     chan struct{}
}

func (e *fleetEnv) startSupervised(host, version, healthTimeout string) (*agentProc, *supervisor) {
	t := e.t
	a := e.startAgent(host, version, healthTimeout) // installs and starts once; replaced below
	syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
	waitFor(t, 10*time.Second, "the unsupervised start to end", func() bool { return a.metrics() == nil }, nil)
	s := &supervisor{a: a, done: make(chan struct{})}
	go s.loop()
	t.Cleanup(func() {
		s.mu.Lock()
		s.stopped = true
		pg := s.pgid
		s.mu.Unlock()
		syscall.Kill(-pg, syscall.SIGKILL)
		<-s.done
	})
	return a, s
}

func (s *supervisor) loop() {
	defer close(s.done)
	for {
		logf, err := os.OpenFile(s.a.logPath, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return
		}
		cmd := exec.Command(s.a.installed, "-config", s.a.cfgPath)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Env = append(s.a.cmd.Env, "INVOCATION_ID=0123456789abcdef")
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			logf.Close()
			return
		}
		err = cmd.Start()
		if err == nil {
			s.pgid = cmd.Process.Pid
		}
		s.mu.Unlock()
		logf.Close()
		if err != nil {
			return
		}
		err = cmd.Wait()
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the rest of the "cgroup"
		var ee *exec.ExitError
		failed := errors.As(err, &ee) && !(ee.Exited() == false && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGTERM)
		s.mu.Lock()
		stop := s.stopped
		s.mu.Unlock()
		if stop || !failed {
			return
		}
		s.restarts.Add(1)
		<-time.After(2 * time.Second) // RestartSec
	}
}

// restart is `systemctl restart`: SIGTERM to the group, wait, start again.
func (s *supervisor) restart(t *testing.T) {
	s.mu.Lock()
	pg := s.pgid
	s.mu.Unlock()
	syscall.Kill(-pg, syscall.SIGTERM)
	<-s.done
	s.done = make(chan struct{})
	go s.loop()
}

// Under a systemd-like supervisor: releases that exit at once or hang are
// rolled back (the restarted installed binary finds them marked bad); a
// good release commits, and after a service restart the installed binary
// execs the committed version again.
func TestSelfUpdateUnderSystemdSupervisor(t *testing.T) {
	t.Parallel()
	e := newFleetEnv(t)
	a, sup := e.startSupervised("sysd-host", "1.0.0", "10s") // room for the good release to commit on a loaded machine
	a.waitRunning(30*time.Second, "1.0.0", "installed")

	for _, c := range []struct{ version, binary, reason string }{
		{"2.0.0", bin(t, "bad-exit"), "exited"},
		{"2.1.0", bin(t, "bad-hang"), "hung"},
	} {
		a.waitDelivering(30 * time.Second)
		restarts := sup.restarts.Load()
		e.publish(c.version, c.binary, "linux/amd64", 100)
		published := time.Now()
		waitFor(t, 60*time.Second, c.version+" marked bad", func() bool {
			_, bad := a.state().Bad[c.version]
			return bad
		}, nil)
		a.waitRunning(60*time.Second, "1.0.0", "installed")
		if f := a.state().Bad[c.version]; f.Reason != c.reason {
			t.Errorf("%s: reason %q (%s), want %q", c.version, f.Reason, f.Detail, c.reason)
		}
		if sup.restarts.Load() == restarts {
			t.Errorf("%s: rolled back without a supervisor restart; under systemd the service restarts", c.version)
		}
		t.Logf("%s: back on 1.0.0 %v after publishing (reason %s)", c.version, time.Since(published).Round(100*time.Millisecond), a.state().Bad[c.version].Reason)
	}

	a.waitDelivering(30 * time.Second)
	e.publish("1.1.0", bin(t, "agent-1.1.0"), "", 100)
	a.waitRunning(60*time.Second, "1.1.0", "committed")
	sup.restart(t)
	a.waitRunning(30*time.Second, "1.1.0", "committed")
	a.waitDelivering(30 * time.Second)
	if s := a.state(); s.Current != "1.1.0" {
		t.Fatalf("state after a service restart: %+v, want current 1.1.0", s)
	}
	if _, err := os.Stat(filepath.Join(a.dir, "data", "versions", "1.1.0", "falconet-agent")); err != nil {
		t.Fatal(err)
	}
}
