package demo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrDirNotDemo: the working directory holds something the demo did not
// write, so the demo refuses to empty it.
var ErrDirNotDemo = errors.New("demo: refusing to empty a directory the demo did not create")

// markerFile is written into every directory the demo creates or adopts
// (an empty one); only a directory holding it is ever emptied.
const markerFile = ".falconet-demo"

// KnownEntries are the names (filepath.Match patterns) the demo writes at the
// top of its directory. A directory with anything else is left alone. Add a
// pattern here when the demo writes a new kind of file.
var KnownEntries = []string{
	markerFile, "logs", "kafka", "es", "state.json", "state.json.tmp",
	"relay[0-9]*.toml", "saver.toml", "agent[0-9]*", "agent[0-9]*.toml", "load-agent[0-9]*.log",
	secureDir,
}

func known(name string) bool {
	for _, p := range KnownEntries {
		if ok, _ := filepath.Match(p, name); ok {
			return true
		}
	}
	return false
}

// prepareDir makes Config.Dir an empty demo directory. It creates a missing
// directory and adopts an empty one; it empties a directory only if an
// earlier demo created it (marker file) and everything at its top level is
// something a demo writes; it refuses while a demo recorded there still runs.
func (d *Demo) prepareDir() error {
	dir := d.cfg.Dir
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("%w: %v", ErrDirNotDemo, err)
	case len(entries) == 0:
	default:
		if _, err := os.Stat(filepath.Join(dir, markerFile)); err != nil {
			return fmt.Errorf("%w: %s is not empty and has no %s file; "+
				"the demo empties its directory at start, so choose a new or empty one with -dir", ErrDirNotDemo, dir, markerFile)
		}
		var strange []string
		for _, e := range entries {
			if !known(e.Name()) {
				strange = append(strange, e.Name())
			}
		}
		if len(strange) > 0 {
			return fmt.Errorf("%w: %s holds files a demo does not write (%s); remove them or choose another -dir",
				ErrDirNotDemo, dir, strings.Join(strange, ", "))
		}
		if st, err := ReadState(StateFile(dir)); err == nil && st.Pid > 0 && st.Pid != os.Getpid() && syscall.Kill(st.Pid, 0) == nil {
			return fmt.Errorf("%w: a demo (pid %d) is running in %s; stop it first or choose another -dir", ErrDirNotDemo, st.Pid, dir)
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, markerFile),
		[]byte("created by falconet demo: the next demo run with this -dir empties this directory\n"), 0o644); err != nil {
		return err
	}
	for _, sub := range []string{"logs", "kafka", "es"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
	}
	return nil
}
