package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/falconet/falconet/metric"
)

// writeScript writes an executable shell script into a test directory.
func writeScript(t testing.TB, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUserMetricOutputs(t *testing.T) {
	now := time.Now().Unix()
	tests := []struct {
		name    string
		body    string
		want    []string // "name value tags"
		wantErr string
	}{
		{"simple lines", "echo 'app.queue 12 queue=jobs'\necho '# comment'\necho ''\necho 'app.ok 1'\n",
			[]string{"app.queue 12 queue=jobs", "app.ok 1 "}, ""},
		{"tags as one k=v,k2=v2 token", "echo 'app.x 2.5 a=1,b=2'\n", []string{"app.x 2.5 a=1,b=2"}, ""},
		{"open-falcon json array", fmt.Sprintf(`echo '[{"endpoint":"db-1","metric":"mysql.qps","value":42,"step":60,"counterType":"GAUGE","tags":"port=3306","timestamp":%d}]'`+"\n", now),
			[]string{"mysql.qps 42 port=3306"}, ""},
		{"json lines", fmt.Sprintf(`echo '{"endpoint":"h","metric":"a","value":1,"timestamp":%d}'`+"\n"+`echo '{"endpoint":"h","metric":"b","value":2,"timestamp":%d}'`+"\n", now, now),
			[]string{"a 1 ", "b 2 "}, ""},
		{"bad line keeps the good ones", "echo 'good 1'\necho 'bad notanumber'\n", []string{"good 1 "}, "line 2"},
		{"bad json item named", fmt.Sprintf(`echo '[{"endpoint":"h","metric":"a","value":1,"timestamp":%d},{"endpoint":"h","metric":"","value":1}]'`+"\n", now),
			[]string{"a 1 "}, "item 1"},
		{"non-zero exit discards output", "echo 'x 1'\nexit 3\n", nil, "exit status 3"},
		{"empty output", "true\n", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn := NewUserMetric(writeScript(t, tt.body), ScriptOptions{Timeout: 5 * time.Second})
			ms, err := fn(context.Background())
			if tt.wantErr == "" && err != nil {
				t.Fatalf("err = %v, want nil", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
			}
			var got []string
			for _, m := range ms {
				got = append(got, fmt.Sprintf("%s %v %s", m.Name, m.Value, metric.FormatTags(m.Tags)))
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUserMetricMissingScript(t *testing.T) {
	_, err := NewUserMetric("/nonexistent/falconet-script", ScriptOptions{})(context.Background())
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/falconet-script") {
		t.Errorf("err = %v, want one naming the script", err)
	}
}

func TestUserMetricStderrBounded(t *testing.T) {
	path := writeScript(t, "head -c 100000 /dev/zero | tr '\\0' e >&2\necho 'x 1'\n")
	out, stderr, err := runScript(context.Background(), path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "x 1\n" {
		t.Errorf("stdout = %q, want %q", out, "x 1\n")
	}
	if len(stderr) > MaxScriptStderr+32 || !strings.HasSuffix(stderr, "(truncated)") {
		t.Errorf("stderr is %d bytes (suffix %q), want at most %d and marked truncated", len(stderr), stderr[max(0, len(stderr)-20):], MaxScriptStderr)
	}
}

func TestUserMetricStdoutTooLarge(t *testing.T) {
	path := writeScript(t, fmt.Sprintf("head -c %d /dev/zero | tr '\\0' 'x'\n", MaxScriptStdout+10))
	ms, err := NewUserMetric(path, ScriptOptions{Timeout: 10 * time.Second})(context.Background())
	if err == nil || !strings.Contains(err.Error(), "larger than") || len(ms) != 0 {
		t.Errorf("got %d metrics, err %v; want none and a size error", len(ms), err)
	}
}

// procInfo is what /proc/PID/stat says about a process.
type procInfo struct {
	pid, ppid, pgid int
	state           byte
}

func readProcs(t testing.TB) []procInfo {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var out []procInfo
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // exited meanwhile
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) < 3 {
			continue
		}
		pid, _ := strconv.Atoi(strings.Fields(s)[0])
		ppid, _ := strconv.Atoi(fields[1])
		pgid, _ := strconv.Atoi(fields[2])
		out = append(out, procInfo{pid: pid, ppid: ppid, pgid: pgid, state: fields[0][0]})
	}
	return out
}

// TestUserMetricTimeoutKillsGroupNoZombies runs a script that forks
// children and hangs, 200 times, and checks that every run timed out, that
// no process of any run's group survives, and that no zombie is left.
func TestUserMetricTimeoutKillsGroupNoZombies(t *testing.T) {
	const runs = 200
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pids")
	path := writeScript(t, fmt.Sprintf(`echo $$ >> %s
sleep 300 &
sleep 300 &
( sleep 300; echo never ) &
echo "partial 1"
sleep 300
`, pidFile))
	metrics := NewMetrics(nil)
	fn := NewUserMetric(path, ScriptOptions{Timeout: 150 * time.Millisecond, Metrics: metrics})

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, runs)
	sem := make(chan struct{}, 10)
	for range runs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			ms, err := fn(context.Background())
			if len(ms) != 0 || !errors.Is(err, ErrScriptTimeout) {
				errs <- fmt.Errorf("got %d metrics, err %v; want none and ErrScriptTimeout", len(ms), err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d timed-out runs in %v", runs, time.Since(start))
	if got := counterValue(metrics.ScriptTimeouts.WithLabelValues(path)); got != runs {
		t.Errorf("falconet_agent_script_timeouts_total = %v, want %d", got, runs)
	}

	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	groups := map[int]bool{}
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		groups[pid] = true
	}
	if len(groups) != runs {
		t.Fatalf("%d script runs recorded their pid, want %d", len(groups), runs)
	}
	self := os.Getpid()
	for _, p := range readProcs(t) {
		if p.ppid == self && p.state == 'Z' {
			t.Errorf("zombie child of the agent: pid %d", p.pid)
		}
	}
	// Killed grandchildren were reparented to init; wait for init to reap
	// them, then nothing of any script's group may remain, alive or zombie.
	var left []procInfo
	deadline := time.Now().Add(10 * time.Second)
	for {
		left = left[:0]
		for _, p := range readProcs(t) {
			if groups[p.pgid] {
				left = append(left, p)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) //nolint:forbidigo // polling /proc with a deadline
	}
	if len(left) > 0 {
		t.Errorf("%d processes of the scripts' groups remain (first: pid %d state %c ppid %d)", len(left), left[0].pid, left[0].state, left[0].ppid)
	}
}

// TestUserMetricLeftoverChildren: a script that exits but leaves children in
// its group (holding stdout) and one escaped with setsid returns promptly,
// and its group's leftovers are killed.
func TestUserMetricLeftoverChildren(t *testing.T) {
	dir := t.TempDir()
	escaped := filepath.Join(dir, "escaped")
	path := writeScript(t, fmt.Sprintf(`echo $$ > %s/leader
sleep 300 &
setsid sleep 300 &
echo $! > %s
echo "done 1"
`, dir, escaped))
	start := time.Now()
	ms, err := NewUserMetric(path, ScriptOptions{Timeout: 20 * time.Second})(context.Background())
	if err != nil || len(ms) != 1 || ms[0].Name != "done" {
		t.Fatalf("got %v, %v; want one metric \"done\"", ms, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("run took %v; leftover children must not hold it up to the timeout", d)
	}
	b, _ := os.ReadFile(escaped)
	if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL) // the escaped one is outside our reach by design
	}
	b, _ = os.ReadFile(filepath.Join(dir, "leader"))
	leader, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := 0
		for _, p := range readProcs(t) {
			if p.pgid == leader {
				n++
			}
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d processes left in the script's group", n)
		}
		time.Sleep(20 * time.Millisecond) //nolint:forbidigo // polling /proc with a deadline
	}
}

func TestUserMetricContextCancelKills(t *testing.T) {
	started := filepath.Join(t.TempDir(), "started")
	path := writeScript(t, fmt.Sprintf("touch %s\nsleep 300\n", started))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := NewUserMetric(path, ScriptOptions{Timeout: time.Minute})(ctx)
		done <- err
	}()
	waitFor(t, "the script to start", 10*time.Second, func() bool {
		_, err := os.Stat(started)
		return err == nil
	})
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("script still running 10 s after its context was cancelled")
	}
}

func TestParseSimpleLine(t *testing.T) {
	tests := []struct {
		line    string
		wantErr bool
	}{
		{"a 1", false},
		{"a -1.5e3 k=v", false},
		{"a", true},
		{"a x", true},
		{"a 1 novalue", true},
	}
	for _, tt := range tests {
		_, err := parseSimpleLine(tt.line)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseSimpleLine(%q) err = %v, want error %v", tt.line, err, tt.wantErr)
		}
	}
}

func FuzzParseScriptOutput(f *testing.F) {
	f.Add([]byte("a 1 k=v\nb 2\n"))
	f.Add([]byte(`[{"endpoint":"h","metric":"m","value":1,"timestamp":1700000000,"tags":"a=b"}]`))
	f.Add([]byte("{\"endpoint\":\"h\",\"metric\":\"m\",\"value\":\"x\"}\n{}"))
	f.Add([]byte("# c\n\n x 1e400\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, _ := parseScriptOutput(data, 1_700_000_000)
		for _, m := range ms {
			_ = m.SeriesKey()
		}
	})
}

// BenchmarkScriptRun is one run of a small script printing ten lines.
func BenchmarkScriptRun(b *testing.B) {
	path := writeScript(b, "for i in 0 1 2 3 4 5 6 7 8 9; do echo \"app.m$i $i k=v\"; done\n")
	fn := NewUserMetric(path, ScriptOptions{Timeout: 5 * time.Second})
	ctx := context.Background()
	for b.Loop() {
		ms, err := fn(ctx)
		if err != nil || len(ms) != 10 {
			b.Fatalf("%d metrics, %v", len(ms), err)
		}
	}
}
