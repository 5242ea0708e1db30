package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/metric"
	"github.com/falconet/falconet/saver/savertest"
)

func runMain(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb}
	if err := m.ParseFlags(args); err != nil {
		return out.String(), errb.String(), err
	}
	err = m.Run(context.Background())
	return out.String(), errb.String(), err
}

func TestFlags(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("[kafka]\nbrokers = [\"127.0.0.1:9092\"]\n"), 0o644)
	badKey := filepath.Join(dir, "badkey.toml")
	os.WriteFile(badKey, []byte("[elasticsearch]\nretention_dayz = 3\n"), 0o644)
	badVal := filepath.Join(dir, "badval.toml")
	os.WriteFile(badVal, []byte("[elasticsearch]\nbulk_docs = 0\n"), 0o644)
	packaged := filepath.Join("..", "..", "packaging", "config", "saver.toml")
	tests := []struct {
		args     []string
		wantOut  string
		wantErr  string
		wantCode int
	}{
		{[]string{"-version"}, "falconet-saver ", "", 0},
		{[]string{"-config", good, "-check-config"}, "ok", "", 0},
		{[]string{"-config", packaged, "-check-config"}, "ok", "", 0},
		{[]string{"-config", badKey, "-check-config"}, "", "unknown key elasticsearch.retention_dayz", 1},
		{[]string{"-config", badVal, "-check-config"}, "", "saver.elasticsearch.bulk_docs", 1},
		{[]string{"-config", filepath.Join(dir, "missing.toml"), "-check-config"}, "", "missing.toml", 1},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, _, err := runMain(t, tt.args...)
			if tt.wantErr == "" {
				if err != nil || !strings.Contains(out, tt.wantOut) {
					t.Fatalf("got out %q err %v, want out containing %q and no error", out, err, tt.wantOut)
				}
				return
			}
			var ec exitCode
			if !errors.As(err, &ec) || ec.code != tt.wantCode || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got err %v, want exit %d naming %q", err, tt.wantCode, tt.wantErr)
			}
		})
	}
}

// buildSaver builds this command into a temporary directory.
func buildSaver(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "falconet-saver")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func writeConfig(t *testing.T, broker, esURL, commitInterval string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "saver.toml")
	cfg := fmt.Sprintf(`shutdown_timeout = "10s"
[http]
listen = "127.0.0.1:0"
[kafka]
brokers = [%q]
commit_interval = %q
session_timeout = "6s"
[elasticsearch]
urls = [%q]
replicas = 0
bulk_docs = 300
flush_interval = "20ms"
retry_initial = "20ms"
retry_max = "500ms"
`, broker, commitInterval, esURL)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type proc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
}

func startProc(t *testing.T, bin, config string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, "-config", config), stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func committedOffsets(t testing.TB, broker string) (commit, end int64) {
	t.Helper()
	return savertest.Committed(t, broker, "falconet-metrics", "falconet-saver")
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	savertest.WaitFor(t, timeout, what, cond)
}

// TestBinaryKillRestart runs the real binary, SIGKILLs it while it writes,
// restarts it, and checks every metric is in ES exactly once; then SIGTERM
// ends the second run cleanly with every offset committed.
func TestBinaryKillRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: builds and runs the binary")
	}
	bin := buildSaver(t)
	k := devstack.StartKafkaT(t, "falconet-metrics", "falconet-metrics-dlq")
	esURL := os.Getenv("FALCONET_TEST_ES_URL")
	if esURL == "" {
		esURL = devstack.StartES(t).URL()
	}
	es := savertest.NewESClient(t, esURL)

	const n = 40000
	now := time.Now().Unix()
	ms := make([]metric.Metric, n)
	for i := range ms {
		ms[i] = metric.Metric{Endpoint: fmt.Sprintf("kill-%03d", i%211), Name: "mem.used", Value: float64(i),
			Timestamp: now - int64(i/211), Step: 10, Type: metric.Gauge}
	}
	savertest.Produce(t, k.Addr(), "falconet-metrics", savertest.Records(ms))

	// First run: commits only every 3 s, killed once some documents are in.
	p1 := startProc(t, bin, writeConfig(t, k.Addr(), esURL, "3s"))
	waitFor(t, 60*time.Second, "first run storing", func() (bool, string) {
		c := savertest.Count(es, "falconet-metrics-*")
		return c >= 3000, fmt.Sprintf("%d documents", c)
	})
	if err := p1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p1.done
	storedAtKill := savertest.Count(es, "falconet-metrics-*")
	committedAtKill, end := committedOffsets(t, k.Addr())
	t.Logf("at SIGKILL: %d documents stored, %d of %d offsets committed: %d stored records will be read again",
		storedAtKill, committedAtKill, end, storedAtKill-committedAtKill)
	if committedAtKill > storedAtKill {
		t.Fatalf("committed %d offsets but only %d documents stored: an offset ran ahead of Elasticsearch", committedAtKill, storedAtKill)
	}
	if committedAtKill == storedAtKill {
		t.Fatalf("nothing stored beyond the committed offsets (%d): the restart would not exercise redelivery", storedAtKill)
	}

	p2 := startProc(t, bin, writeConfig(t, k.Addr(), esURL, "200ms"))
	waitFor(t, 90*time.Second, "second run committing everything", func() (bool, string) {
		c, e := committedOffsets(t, k.Addr())
		return c == e && e == n, fmt.Sprintf("committed %d of %d, %d documents", c, e, savertest.Count(es, "falconet-metrics-*"))
	})
	if got := savertest.Count(es, "falconet-metrics-*"); got != n {
		t.Fatalf("documents after kill and restart: got %d, want %d", got, n)
	}
	ctx := context.Background()
	for i := 0; i < n; i += 97 { // a sample by id; the count proves no duplicates
		m := &ms[i]
		res, err := es.Get().Index("falconet-metrics-" + m.Day()).Id(m.DocID()).Do(ctx)
		if err != nil || !res.Found {
			t.Fatalf("metric %d not found by id %s: %v", i, m.DocID(), err)
		}
	}
	// The operator's view: /healthz is ok, and /metrics shows the
	// redelivered documents answered 409 (stored once, counted as stored).
	base := httpAddr(t, p2.stderr)
	if code, body := httpGet(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz: %d %s, want 200", code, body)
	}
	_, metrics := httpGet(t, base+"/metrics")
	dups := metricValue(metrics, "falconet_saver_docs_duplicate_total")
	if dups < 1 {
		t.Errorf("falconet_saver_docs_duplicate_total = %v after redelivery, want > 0", dups)
	}
	t.Logf("second run: %v duplicates (409), %v stored", dups, metricValue(metrics, "falconet_saver_docs_stored_total"))
	// SIGTERM: clean exit within the shutdown bound.
	start := time.Now()
	p2.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p2.done:
		if err != nil {
			t.Fatalf("after SIGTERM: %v\n%s", err, p2.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit 30s after SIGTERM\n%s", p2.stderr)
	}
	t.Logf("SIGTERM to exit: %s", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(p2.stderr.String(), "falconet-saver stopped") {
		t.Errorf("no 'stopped' log line:\n%s", p2.stderr)
	}
}

// BenchmarkBinaryCPU runs the built saver as its own process over 100k
// records (kfake and dev-es in the test process) and reports the saver
// process's CPU time (user+system, from its rusage) per 100k documents, and
// docs/s from start to every offset committed (group join included), and its
// peak RSS.
func BenchmarkBinaryCPU(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "falconet-saver")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	const n = 100000
	var cpu, wall time.Duration
	var maxRSS int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		k := devstack.StartKafkaT(b, "falconet-metrics", "falconet-metrics-dlq")
		esURL := devstack.StartES(b).URL()
		now := time.Now().Unix()
		ms := make([]metric.Metric, n)
		for j := range ms {
			ms[j] = metric.Metric{Endpoint: fmt.Sprintf("cpu-%03d", j%499), Name: "net.if.in.bytes", Value: float64(j),
				Timestamp: now - int64(j/499), Step: 10, Type: metric.Counter, Tags: map[string]string{"iface": "eth0"}}
		}
		savertest.Produce(b, k.Addr(), "falconet-metrics", savertest.Records(ms))
		cfgPath := filepath.Join(b.TempDir(), "saver.toml")
		os.WriteFile(cfgPath, []byte(fmt.Sprintf("[http]\nlisten = \"\"\n[kafka]\nbrokers = [%q]\n[elasticsearch]\nurls = [%q]\nreplicas = 0\n",
			k.Addr(), esURL)), 0o644)
		b.StartTimer()
		start := time.Now()
		cmd := exec.Command(bin, "-config", cfgPath)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Minute)
		for {
			c, e := committedOffsets(b, k.Addr())
			if c == e && e == n {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				b.Fatalf("not all committed: %d of %d\n%s", c, e, stderr.String())
			}
			<-time.After(50 * time.Millisecond) // polling interval
		}
		wall += time.Since(start)
		b.StopTimer()
		// Peak RSS of the saver itself: VmHWM of its own address space (the
		// rusage maxrss of a child counts the forking test process too).
		maxRSS = max(maxRSS, vmHWM(b, cmd.Process.Pid))
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("saver: %v\n%s", err, stderr.String())
		}
		cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	b.ReportMetric(float64(maxRSS)/1024, "peak-RSS-MiB")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/100k-docs")
	b.ReportMetric(float64(n*b.N)/wall.Seconds(), "docs/s")
}

// httpAddr finds the bound HTTP address in the saver's log.
func httpAddr(t *testing.T, stderr *bytes.Buffer) string {
	t.Helper()
	var addr string
	waitFor(t, 10*time.Second, "http listening log line", func() (bool, string) {
		for _, line := range strings.Split(stderr.String(), "\n") {
			if strings.Contains(line, "http listening") {
				_, after, _ := strings.Cut(line, "addr=")
				addr = strings.Fields(after)[0]
				return true, ""
			}
		}
		return false, "not logged yet"
	})
	return "http://" + addr
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue is the value of an unlabelled sample in Prometheus text.
func metricValue(text, name string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return -1
}

func TestDryRunRetention(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	esURL := os.Getenv("FALCONET_TEST_ES_URL")
	if esURL == "" {
		esURL = devstack.StartES(t).URL()
	}
	es := savertest.NewESClient(t, esURL)
	today := time.Now().UTC()
	day := func(d int) string { return "falconet-metrics-" + today.AddDate(0, 0, -d).Format("2006.01.02") }
	for _, name := range []string{day(0), day(30), day(31), day(400)} {
		if _, err := es.CreateIndex(name).Do(context.Background()); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	cfg := filepath.Join(t.TempDir(), "saver.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("[elasticsearch]\nurls = [%q]\nretention_days = 30\n", esURL)), 0o644)
	out, _, err := runMain(t, "-config", cfg, "-dry-run-retention")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Fields(out), []string{day(400), day(31)}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("-dry-run-retention printed %q, want %q", got, want)
	}
	// A dry run deletes nothing.
	for _, name := range []string{day(0), day(30), day(31), day(400)} {
		if ok, err := es.IndexExists(name).Do(context.Background()); err != nil || !ok {
			t.Fatalf("index %s gone after a dry run (%v)", name, err)
		}
	}
}

// vmHWM is a process's peak resident set in KiB, from /proc.
func vmHWM(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
