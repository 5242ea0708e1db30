package update

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// WatchFlag is the agent flag that runs the trial watcher (see Watch).
const WatchFlag = "-update-watch"

// Do replaces the process with e.Path (same PID: systemd and the shell
// still see one agent). For a trial it first records the trial marker and
// starts the watcher, a child of this (the old) binary. It returns only if
// the exec failed; a trial that could not be exec'd is marked bad and the
// installed binary is exec'd instead.
func (e *Exec) Do() error {
	u := e.u
	env := withEnv(os.Environ(), BaseEnv, u.base)
	args := append([]string{u.base}, u.cfg.Args...)
	if e.args != nil {
		args = append([]string{u.base}, e.args...)
	}
	if e.trial != nil {
		now := time.Now()
		t := *e.trial
		t.Started, t.Deadline, t.PID, t.Stage = now, now.Add(u.cfg.HealthTimeout), os.Getpid(), "exec"
		if _, err := u.st.update(func(s *State) error { s.Trial = &t; return nil }); err != nil {
			return fmt.Errorf("update: record the trial: %w", err)
		}
		w := exec.Command(u.exe, WatchFlag, u.cfg.Dir)
		w.Stdout, w.Stderr, w.Env = os.Stderr, os.Stderr, env
		if err := w.Start(); err != nil {
			// Without the watcher a crash is still caught by the marker at
			// the next start and a missing ack by the trial itself; only a
			// hang would go unnoticed when no supervisor restarts us.
			u.log.Error("cannot start the update watcher", "err", err)
		} else if _, err := u.st.update(func(s *State) error { s.Watcher = w.Process.Pid; return nil }); err != nil {
			u.log.Warn("cannot record the watcher", "err", err)
		}
		u.log.Info("exec into the new version", "path", e.Path, "version", t.Version, "deadline", t.Deadline.Format(time.RFC3339))
	} else {
		u.log.Info("exec", "path", e.Path, "reason", e.Reason)
	}
	err := syscall.Exec(e.Path, args, env)
	// Still here: the exec failed.
	if e.trial == nil || e.Path == u.base {
		return fmt.Errorf("update: exec %s: %w", e.Path, err)
	}
	v := e.trial.Version
	s, uerr := u.st.update(func(s *State) error {
		if s.Trial != nil && s.Trial.Version == v {
			s.Trial = nil
		}
		s.markBad(v, "exec_failed", fmt.Sprintf("cannot start: %v", err), time.Now())
		return nil
	})
	if uerr == nil {
		u.m.showState(&s)
	}
	u.m.rollbacks.WithLabelValues("exec_failed").Inc()
	u.log.Error("update rolled back: the new version cannot start; marked bad on this host", "version", v, "err", err)
	if berr := syscall.Exec(u.base, args, env); berr != nil {
		return fmt.Errorf("update: exec %s failed (%v), and restarting %s failed: %w", e.Path, err, u.base, berr)
	}
	return nil
}

// withEnv returns env with key set to value.
func withEnv(env []string, key, value string) []string {
	env = slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
	return append(env, key+"="+value)
}
