package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/falconet/falconet/agent"
	"github.com/falconet/falconet/buffer"
	"github.com/falconet/falconet/metric"
)

// TestMain lets a test re-execute this binary as the real agent.
func TestMain(m *testing.M) {
	if os.Getenv("FALCONET_AGENT_TEST_MAIN") == "1" {
		os.Args = append([]string{"falconet-agent"}, strings.Fields(os.Getenv("FALCONET_AGENT_TEST_ARGS"))...)
		main()
		return
	}
	os.Exit(m.Run())
}

func writeFile(t *testing.T, name, text string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// runMain runs Main with args to completion.
func runMain(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	m := NewMain(&out, &errb)
	if err := m.ParseFlags(args); err != nil {
		return out.String(), errb.String(), err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = m.Run(ctx)
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	return out.String(), errb.String(), err
}

func TestVersion(t *testing.T) {
	out, _, err := runMain(t, "-version")
	if err != nil || !strings.HasPrefix(out, "falconet-agent ") {
		t.Errorf("got %q, %v; want a version line", out, err)
	}
}

func TestCheckConfig(t *testing.T) {
	good := writeFile(t, "good.toml", "interval = \"30s\"\n", 0o644)
	out, _, err := runMain(t, "-check-config", "-config", good)
	if err != nil || strings.TrimSpace(out) != "ok" {
		t.Errorf("good config: got %q, %v; want ok", out, err)
	}
	tests := []struct{ text, wantKey string }{
		{"[[script]]\npath = \"/a\"\ninterval = \"10s\"\ntimeout = \"20s\"\n", "script[0].timeout"},
		{"[relay]\naddresses = [\"nohost\"]\n", "relay.addresses[0]"},
		{"[http]\nlisten = \"127.0.0.1:1988\"\nport = 3\n", "http.port"},
		{"[relay.tls]\nenabled = true\nca = \"/nonexistent/ca.pem\"\n", "relay.tls.ca"},
	}
	for _, tt := range tests {
		_, _, err := runMain(t, "-check-config", "-config", writeFile(t, "bad.toml", tt.text, 0o644))
		var ee exitError
		if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(ee.msg, tt.wantKey) {
			t.Errorf("%q: got %v, want exit 1 naming %s", tt.text, err, tt.wantKey)
		}
	}
	_, _, err = runMain(t, "-check-config", "-config", "/nonexistent/agent.toml")
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(ee.msg, "/nonexistent/agent.toml") {
		t.Errorf("missing explicit config: got %v, want exit 1 naming the file", err)
	}
}

func TestTestMode(t *testing.T) {
	script := writeFile(t, "s.sh", "#!/bin/sh\necho 'app.answer 42 team=core'\n", 0o755)
	cfg := writeFile(t, "agent.toml", fmt.Sprintf("hostname = \"test-host\"\n[[script]]\npath = %q\n", script), 0o644)
	out, _, err := runMain(t, "-test", "-config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m metric.Metric
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d %q: %v", i, line, err)
		}
		if err := m.Validate(); err != nil {
			t.Errorf("line %d: %v", i, err)
		}
		if m.Endpoint != "test-host" {
			t.Errorf("line %d endpoint %q, want test-host", i, m.Endpoint)
		}
		seen[m.Name] = true
		if m.Name == "app.answer" && (m.Value != 42 || m.Tags["team"] != "core") {
			t.Errorf("script metric %+v, want 42 team=core", m)
		}
	}
	for _, n := range []string{"cpu.idle", "load.1min", "mem.memtotal", "df.bytes.total", "proc.total", "system.uptime", "app.answer"} {
		if !seen[n] {
			t.Errorf("%s missing from -test output", n)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDaemonInProcess starts the daemon in-process, pushes, scrapes
// /metrics and /healthz, and stops it.
func TestDaemonInProcess(t *testing.T) {
	cfg := writeFile(t, "agent.toml", fmt.Sprintf("interval = \"1s\"\njitter = \"0s\"\n[http]\nlisten = \"127.0.0.1:0\"\n[buffer]\npath = %q\n",
		filepath.Join(t.TempDir(), "buffer.db")), 0o644)
	var stderr bytes.Buffer
	m := NewMain(io.Discard, &stderr)
	if err := m.ParseFlags([]string{"-config", cfg}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	select {
	case <-m.Ready():
	case err := <-done:
		t.Fatalf("Run ended early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready after 10 s")
	}
	base := "http://" + m.HTTPAddr()
	resp, err := http.Post(base+"/v1/push", "application/json",
		strings.NewReader(`[{"endpoint":"app","metric":"app.x","value":1,"step":10,"counterType":"GAUGE","tags":"","timestamp":1700000000}]`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("push status %d, want 200", resp.StatusCode)
	}
	if code, body := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz %d %q, want 200", code, body)
	}
	if code, _ := get(t, base+"/debug/pprof/"); code != 404 {
		t.Errorf("/debug/pprof/ %d with http.pprof off (the default), want 404", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := get(t, base+"/metrics")
		if strings.Contains(body, `falconet_agent_collect_duration_seconds_count{collector="cpu"}`) &&
			strings.Contains(body, "falconet_agent_push_metrics_total 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks the agent's collector and push metrics after 10 s:\n%s", body)
		}
		time.Sleep(50 * time.Millisecond) //nolint:forbidigo // polling with a deadline
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5 s of cancel")
	}
	t.Logf("stopped in %v", time.Since(start))
	if err := m.Close(); err != nil {
		t.Error(err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestSIGTERM runs the real process and stops it with SIGTERM: it exits 0
// within 5 s.
func TestSIGTERM(t *testing.T) {
	addr := freeAddr(t)
	script := writeFile(t, "hang.sh", "#!/bin/sh\nsleep 300\n", 0o755)
	cfg := writeFile(t, "agent.toml", fmt.Sprintf("interval = \"1s\"\njitter = \"0s\"\n[http]\nlisten = %q\n[buffer]\npath = %q\n[[script]]\npath = %q\ntimeout = \"1s\"\n",
		addr, filepath.Join(t.TempDir(), "buffer.db"), script), 0o644)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "FALCONET_AGENT_TEST_MAIN=1", "FALCONET_AGENT_TEST_ARGS=-config "+cfg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("agent not serving after 20 s: %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond) //nolint:forbidigo // polling with a deadline
	}
	// Let the hanging script start so shutdown has to kill it.
	time.Sleep(300 * time.Millisecond) //nolint:forbidigo // give the scheduler a tick; not a synchronisation
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Errorf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-waitErr
		t.Fatalf("still running 5 s after SIGTERM\n%s", stderr.String())
	}
	t.Logf("exited %v after SIGTERM\n%s", time.Since(start), stderr.String())
	if !strings.Contains(stderr.String(), "agent stopped") {
		t.Errorf("no clean-stop log line:\n%s", stderr.String())
	}
}

// TestBufferDefaultsInStep: agent.toml's [buffer] defaults are the buffer
// package's defaults, so an empty file runs the buffer as its author tuned it.
func TestBufferDefaultsInStep(t *testing.T) {
	got := bufferConfig(agent.DefaultConfig().Buffer)
	// DeepEqual: buffer.Config has a func field (Clock, nil in both).
	if want := buffer.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("agent [buffer] defaults give\n %+v\nbuffer.DefaultConfig() is\n %+v", got, want)
	}
}

// TestPprofSwitch: [http] pprof = true serves the profiler on the agent's
// listener (a real heap profile), off it is absent (TestDaemonInProcess).
func TestPprofSwitch(t *testing.T) {
	cfg := writeFile(t, "agent.toml", fmt.Sprintf("[http]\nlisten = \"127.0.0.1:0\"\npprof = true\n[buffer]\npath = %q\n",
		filepath.Join(t.TempDir(), "buffer.db")), 0o644)
	m := NewMain(io.Discard, io.Discard)
	if err := m.ParseFlags([]string{"-config", cfg}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		m.Close()
	}()
	select {
	case <-m.Ready():
	case err := <-done:
		t.Fatalf("Run ended early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready after 10 s")
	}
	code, body := get(t, "http://"+m.HTTPAddr()+"/debug/pprof/heap?debug=1")
	if code != 200 || !strings.Contains(body, "heap profile:") {
		t.Errorf("/debug/pprof/heap?debug=1: %d, %.80q; want 200 and a heap profile", code, body)
	}
}
