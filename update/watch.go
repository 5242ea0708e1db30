package update

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// SelfCheckLead returns how long before the deadline a trial without an
// ack gives up by itself (gracefully: in-flight batches get their acks, the
// buffer is closed), leaving the watcher's SIGKILL at the deadline for
// trials that cannot: min(5s, health_timeout/4). So every rollback happens
// within health_timeout.
func SelfCheckLead(healthTimeout time.Duration) time.Duration {
	return min(5*time.Second, healthTimeout/4)
}

// Watch is the trial watcher, run as `falconet-agent -update-watch DIR` by
// the old binary just before it execs into a new version. Its parent is
// the trial (the same PID after the exec). It returns, and the child
// exits, as soon as the trial is resolved (committed, or rolled back by
// the trial itself). Otherwise:
//
//   - the trial process is gone (it exited or crashed, or could not start
//     at all): the version is marked bad;
//   - the deadline passed (it hangs): it is killed with
//     SIGKILL and marked bad.
//
// Then, without systemd, the watcher execs the installed binary with the
// original arguments, which runs the previous version again. Under systemd
// (INVOCATION_ID is set) it only exits: Restart=always starts the
// installed binary, which finds the version marked bad.
//
// A trial stopped on purpose (SIGTERM) is not a failure and is not
// restarted. SIGTERM or SIGINT to the watcher ends it quietly.
func Watch(dir string, logger *slog.Logger) error {
	log := logger.With("component", "update-watch")
	st := store{dir: dir}
	s, err := st.load()
	if err != nil {
		return err
	}
	// The trial's PID comes from the state, not from getppid: a trial that
	// dies at once may be gone before this process first looks.
	if s.Trial == nil || s.Trial.Stopped {
		log.Info("no trial to watch")
		return nil
	}
	t := *s.Trial
	parent := t.PID
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		s, err := st.load()
		if err != nil {
			log.Warn("cannot read the update state", "err", err)
			continue
		}
		cur := s.Trial
		if cur == nil || cur.Version != t.Version || cur.PID != parent {
			return nil // resolved by the trial itself
		}
		gone := os.Getppid() != parent
		if gone && cur.Stopped {
			return nil // stopped on purpose
		}
		if !gone && time.Now().Before(cur.Deadline) {
			continue
		}
		reason, detail := "exited", fmt.Sprintf("exited before it became healthy (last stage: %s)", cur.Stage)
		if !gone {
			reason, detail = "hung", fmt.Sprintf("not healthy by its deadline (last stage: %s); killed", cur.Stage)
			if cur.Stage == "buffer opened" {
				reason = "no_ack"
			}
		}
		// Record first: under systemd the kill ends this watcher too.
		if _, err := st.update(func(s *State) error {
			if s.Trial != nil && s.Trial.Version == t.Version {
				s.Trial = nil
				s.markBad(t.Version, reason, detail, time.Now())
			}
			return nil
		}); err != nil {
			log.Error("cannot record the failed trial", "err", err)
		}
		if !gone {
			_ = syscall.Kill(parent, syscall.SIGKILL)
			deadline := time.Now().Add(10 * time.Second)
			for os.Getppid() == parent && time.Now().Before(deadline) {
				<-tick.C
			}
		}
		log.Error("update rolled back: the new version failed its trial; marked bad on this host",
			"version", t.Version, "reason", reason, "detail", detail)
		if os.Getenv("INVOCATION_ID") != "" {
			log.Info("under systemd: the service restarts the installed binary")
			return nil
		}
		log.Info("restarting the previous version", "path", t.Base)
		env := withEnv(os.Environ(), BaseEnv, t.Base)
		return syscall.Exec(t.Base, append([]string{t.Base}, t.Args...), env)
	}
}
