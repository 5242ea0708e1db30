package update

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// State is the update state kept in Dir/state.json. Every process that
// changes it (the agent, the trial, the watcher) does so under an exclusive
// lock on Dir/state.lock, with an atomic rename.
type State struct {
	// Current is the committed version to run from Dir/<version>; "" runs
	// the installed binary.
	Current string `json:"current,omitempty"`
	// Previous is what ran before Current ("" the installed binary): where
	// a halted Current returns to.
	Previous string `json:"previous,omitempty"`
	// Trial is set while a new version proves itself.
	Trial *Trial `json:"trial,omitempty"`
	// Bad versions are never taken again on this host.
	Bad map[string]Failure `json:"bad,omitempty"`
	// LastFailure is the newest rollback, for /metrics, logs and status.
	LastFailure *Failure `json:"last_failure,omitempty"`
	// Serial is the highest manifest serial seen; lower ones are refused.
	Serial int64 `json:"serial,omitempty"`
	// Rechecked counts, per version, "no_ack" verdicts withdrawn because
	// the version rolled back to could not deliver either (the network,
	// not the release). Withdrawn once at most.
	Rechecked map[string]int `json:"rechecked,omitempty"`
	// Watcher is the PID of the last trial watcher, a child of the agent
	// process: the agent reaps it (no zombie left behind).
	Watcher int `json:"watcher,omitempty"`
}

// Trial is a version on probation.
type Trial struct {
	Version string `json:"version"`
	// From is the version that ran before ("" the installed binary).
	From     string    `json:"from"`
	Started  time.Time `json:"started"`
	Deadline time.Time `json:"deadline"`
	// PID is the process (the same before and after exec).
	PID int `json:"pid"`
	// Base is the installed binary and Args its arguments: the watcher
	// starts them again if the trial dies.
	Base string   `json:"base"`
	Args []string `json:"args"`
	// Stage is the last health step passed: "exec", "started",
	// "buffer opened".
	Stage string `json:"stage"`
	// Stopped: the trial was stopped on purpose (SIGTERM) before it
	// committed; not a failure.
	Stopped bool `json:"stopped,omitempty"`
}

// Failure is one rolled-back (or refused at start) version.
type Failure struct {
	// Confirmed: for "no_ack", the version rolled back to did get acks,
	// so the release, not the network, was at fault.
	Confirmed bool   `json:"confirmed,omitempty"`
	Version   string `json:"version"`
	// Reason is a short code: "exited", "hung", "no_ack", "exec_failed",
	// "halted".
	Reason string    `json:"reason"`
	Detail string    `json:"detail"`
	At     time.Time `json:"at"`
}

// IsBad reports whether version was marked bad.
func (s *State) IsBad(version string) bool {
	_, bad := s.Bad[version]
	return bad
}

// markBad records version as bad and as the last failure.
func (s *State) markBad(version, reason, detail string, now time.Time) Failure {
	f := Failure{Version: version, Reason: reason, Detail: detail, At: now.UTC()}
	if s.Bad == nil {
		s.Bad = map[string]Failure{}
	}
	s.Bad[version] = f
	s.LastFailure = &f
	return f
}

// store reads and writes Dir/state.json.
type store struct{ dir string }

func (st store) path() string { return filepath.Join(st.dir, "state.json") }

// load reads the state without the lock (a consistent snapshot: writes are
// atomic renames).
func (st store) load() (State, error) {
	var s State
	data, err := os.ReadFile(st.path())
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("update: %s: %w", st.path(), err)
	}
	return s, nil
}

// update runs change on the state under the lock and writes the result if
// change returns nil.
func (st store) update(change func(*State) error) (State, error) {
	if err := os.MkdirAll(st.dir, 0o755); err != nil {
		return State{}, err
	}
	lf, err := os.OpenFile(filepath.Join(st.dir, "state.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return State{}, err
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return State{}, fmt.Errorf("update: lock %s: %w", lf.Name(), err)
	}
	s, err := st.load()
	if err != nil {
		return s, err
	}
	if err := change(&s); err != nil {
		return s, err
	}
	data, err := json.MarshalIndent(&s, "", "  ")
	if err != nil {
		return s, err
	}
	return s, writeFileSync(st.path(), append(data, '\n'), 0o644)
}

// writeFileSync writes path atomically and durably: temp file, fsync,
// rename, fsync of the directory.
func writeFileSync(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return werr
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
