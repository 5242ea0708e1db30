package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/falconet/falconet/metric"
)

// Limits on what a user script may print.
const (
	MaxScriptStdout = 4 << 20 // beyond: the run is an error, its output discarded
	MaxScriptStderr = 4 << 10 // beyond: truncated in the log
)

// ErrScriptTimeout is wrapped by the error of a script run killed at its
// timeout.
var ErrScriptTimeout = errors.New("agent: script timed out")

// ScriptOptions configures NewUserMetric.
type ScriptOptions struct {
	Timeout time.Duration // default 10 s
	Logger  *slog.Logger
	Metrics *Metrics // nil: unregistered
}

// NewUserMetric returns a collector that runs the executable at path and
// reads metrics from its stdout, either Open-Falcon JSON (an array, or one
// object per line, as metric.DecodeJSON reads) or simple lines
//
//	name value [k=v ...]
//
// (blank lines and lines starting with '#' are ignored; tags may also be
// written "k=v,k2=v2").
//
// The script runs in a process group of its own. At its timeout (or when the
// collector's context ends) the whole group is killed with SIGKILL, and any
// process left in the group when the script exits is killed too; the script
// is always waited for, so it never stays a zombie. Killed descendants are
// reparented to init, which reaps them. Its stderr is logged (at most 4 KiB
// per run). A non-zero exit, a timeout, or output that is not metrics is an
// error for the scheduler to count; lines that parse are still returned when
// others do not.
func NewUserMetric(path string, opts ScriptOptions) CollectFunc {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	metrics := orNewMetrics(opts.Metrics)
	timeouts := metrics.ScriptTimeouts.WithLabelValues(path)
	var stderrLog logLimiter
	return func(ctx context.Context) ([]metric.Metric, error) {
		out, stderr, err := runScript(ctx, path, opts.Timeout)
		if len(stderr) > 0 {
			stderrLog.log(logger, "script wrote to stderr", "script", path, "stderr", stderr)
		}
		if errors.Is(err, ErrScriptTimeout) {
			timeouts.Inc()
		}
		if err != nil {
			return nil, err
		}
		return parseScriptOutput(out, time.Now().Unix())
	}
}

// runScript runs path once and returns its stdout and (bounded) stderr.
func runScript(ctx context.Context, path string, timeout time.Duration) ([]byte, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Our own pipes rather than exec's copying goroutines: Wait then returns
	// as soon as the script exits, the group is killed right away, and the
	// reads end when the last writer in the group is gone.
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, "", fmt.Errorf("script %s: %w", path, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, "", fmt.Errorf("script %s: %w", path, err)
	}
	cmd := exec.CommandContext(ctx, path)
	cmd.Dir = filepath.Dir(path)
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The negative pid is the process group: the script and every
		// child it forked that did not leave the group.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = time.Second // if SIGKILL of the group somehow did not end it
	startErr := cmd.Start()
	outW.Close() // the child holds its own copies
	errW.Close()
	stdout := &boundedBuffer{max: MaxScriptStdout}
	stderr := &boundedBuffer{max: MaxScriptStderr}
	// The readers end at EOF: when the last process holding the write ends
	// is gone, or at the read deadline set below.
	var readers sync.WaitGroup
	readers.Go(func() { _, _ = io.Copy(stdout, outR) })
	readers.Go(func() { _, _ = io.Copy(stderr, errR) })
	closeReaders := func() {
		readers.Wait()
		outR.Close()
		errR.Close()
	}
	if startErr != nil {
		closeReaders()
		return nil, "", fmt.Errorf("script %s: %w", path, startErr)
	}
	pgid := cmd.Process.Pid
	err = cmd.Wait() // always reaps the script
	// Background children the script left in its group die with it. The
	// group id is not reused while any member lives, so this signals only
	// leftovers (ESRCH when there are none).
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	// A descendant that left the group (setsid) may still hold the pipes:
	// stop reading a second after the script ended.
	deadline := time.Now().Add(time.Second)
	_ = outR.SetReadDeadline(deadline)
	_ = errR.SetReadDeadline(deadline)
	closeReaders()

	errText := stderr.String()
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, errText, fmt.Errorf("%w: %s: after %v; process group killed", ErrScriptTimeout, path, timeout)
	case ctx.Err() != nil:
		return nil, errText, fmt.Errorf("script %s: %w", path, ctx.Err())
	case err != nil:
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return nil, errText, fmt.Errorf("script %s: %v; output discarded", path, exitErr.ProcessState)
		}
		return nil, errText, fmt.Errorf("script %s: %w", path, err)
	case stdout.overflow:
		return nil, errText, fmt.Errorf("script %s: stdout larger than %d bytes; output discarded", path, MaxScriptStdout)
	}
	return stdout.Bytes(), errText, nil
}

// parseScriptOutput reads JSON or simple lines.
func parseScriptOutput(out []byte, now int64) ([]metric.Metric, error) {
	trimmed := bytes.TrimSpace(out)
	if len(trimmed) == 0 {
		return nil, nil
	}
	if trimmed[0] == '[' || trimmed[0] == '{' {
		ms, bad := metric.DecodeJSON(trimmed, now)
		if len(bad) > 0 {
			errs := make([]error, 0, len(bad))
			for _, b := range bad {
				errs = append(errs, b)
			}
			return ms, fmt.Errorf("script output: %d bad items: %w", len(bad), errors.Join(errs...))
		}
		return ms, nil
	}
	var ms []metric.Metric
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(trimmed))
	sc.Buffer(make([]byte, 0, 4096), MaxScriptStdout)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		m, err := parseSimpleLine(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		ms = append(ms, m)
	}
	if len(errs) > 0 {
		return ms, fmt.Errorf("script output: %w", errors.Join(errs...))
	}
	return ms, nil
}

// parseSimpleLine reads "name value [k=v ...]".
func parseSimpleLine(line string) (metric.Metric, error) {
	fields := strings.Fields(line)
	if len(fields) < 2 {
		return metric.Metric{}, fmt.Errorf("%w: %q: want \"name value [k=v ...]\"", metric.ErrInvalid, line)
	}
	v, err := strconv.ParseFloat(fields[1], 64)
	if err != nil {
		return metric.Metric{}, fmt.Errorf("%w: %q: value %q is not a number", metric.ErrInvalid, line, fields[1])
	}
	m := gauge(fields[0], v, nil)
	for _, f := range fields[2:] {
		tags, err := metric.ParseTags(f)
		if err != nil {
			return metric.Metric{}, fmt.Errorf("%q: %w", line, err)
		}
		if m.Tags == nil {
			m.Tags = make(map[string]string, len(tags))
		}
		for k, tv := range tags {
			m.Tags[k] = tv
		}
	}
	return m, nil
}

// boundedBuffer keeps at most max bytes and remembers whether more came.
// It never fails a write, so the child is never blocked on a full pipe. (No
// embedded bytes.Buffer: its ReadFrom would let io.Copy bypass the bound.)
type boundedBuffer struct {
	buf      bytes.Buffer
	max      int
	overflow bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room < len(p) {
		b.overflow = true
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *boundedBuffer) Bytes() []byte { return b.buf.Bytes() }

func (b *boundedBuffer) String() string {
	s := strings.TrimSpace(b.buf.String())
	if b.overflow {
		s += " ...(truncated)"
	}
	return s
}
