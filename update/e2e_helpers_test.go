package update_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/relay"
	"github.com/falconet/falconet/relay/relaytest"
	"github.com/falconet/falconet/update"
	"github.com/falconet/falconet/update/feed"
)

// Binaries are built once per test run.
var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// agentVersions are the real agent builds the tests use.
var agentVersions = []string{"1.0.0", "1.1.0", "2.2.0"}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// bin returns the path of a built binary: "agent-1.0.0", "bad-exit",
// "bad-hang".
func bin(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "falconet-update-bins-")
		if buildErr != nil {
			return
		}
		build := func(out, pkg, ldflags string) error {
			cmd := exec.Command("go", "build", "-ldflags", ldflags, "-o", filepath.Join(buildDir, out), pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("go build %s: %v\n%s", out, err, b)
			}
			return nil
		}
		for _, v := range agentVersions {
			if buildErr = build("agent-"+v, "github.com/falconet/falconet/cmd/falconet-agent",
				"-X github.com/falconet/falconet/internal/version.Version="+v); buildErr != nil {
				return
			}
		}
		for _, mode := range []string{"exit", "hang"} {
			if buildErr = build("bad-"+mode, "./testdata/badagent", "-X main.mode="+mode); buildErr != nil {
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, name)
}

// fleetEnv is dev Kafka, a relay, a signing key and a feed served over
// HTTP on loopback.
type fleetEnv struct {
	t         *testing.T
	dir       string
	kafka     *devstack.Kafka
	relay     *relaytest.Relay
	key       feed.SecretKey
	feedDir   string
	feedURL   string
	relayAddr string       // agents' relay; default relay.ProtocolAddr()
	truncate  atomic.Value // string: artifact path served cut in half
	fetches   atomic.Int64 // artifact downloads
}

func newFleetEnv(t *testing.T) *fleetEnv {
	t.Helper()
	e := &fleetEnv{t: t, dir: t.TempDir()}
	e.truncate.Store("")
	e.kafka = devstack.StartKafkaT(t, "falconet-metrics")
	e.relay = relaytest.Start(t, relaytest.Config(e.kafka.Addr()), slog.New(slog.DiscardHandler))
	var err error
	if e.key, err = feed.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	e.feedDir = filepath.Join(e.dir, "feed")
	if err := os.MkdirAll(e.feedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := http.FileServer(http.Dir(e.feedDir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/")
		if !strings.HasSuffix(p, ".json") && !strings.HasSuffix(p, feed.SignatureExt) {
			e.fetches.Add(1)
		}
		if cut := e.truncate.Load().(string); cut != "" && p == cut {
			data, err := os.ReadFile(filepath.Join(e.feedDir, filepath.FromSlash(p)))
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			// Announce the full length, send half, then drop the connection.
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.WriteHeader(200)
			w.Write(data[:len(data)/2])
			panic(http.ErrAbortHandler)
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e.feedURL = srv.URL
	return e
}

// viaRelayMirror makes agents fetch the feed from the relay's [update]
// mirror (served at /update/ on its HTTP port) instead of the feed server.
func (e *fleetEnv) viaRelayMirror() {
	t := e.t
	t.Helper()
	m, err := feed.NewMirror(feed.MirrorConfig{Upstream: e.feedURL, Dir: filepath.Join(e.dir, "mirror"), Interval: 200 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.relay.HandleHTTP(relay.FeedPath, http.StripPrefix("/update", m)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.feedURL = "http://" + e.relay.HTTPAddr() + "/update"
}

// publish adds a release signed with the env's key.
func (e *fleetEnv) publish(version, binary, platform string, percent int) {
	e.t.Helper()
	if _, err := feed.Publish(e.feedDir, e.key, version, []feed.Binary{{Path: binary, Platform: platform}},
		feed.PublishOptions{Percent: percent}); err != nil {
		e.t.Fatalf("publish %s: %v", version, err)
	}
}

// agentProc is an agent started by hand (no systemd) from an "installed"
// binary in a read-only directory, in its own process group.
type agentProc struct {
	t         *testing.T
	dir       string
	dataDir   string // buffer.db and versions/
	installed string
	cfgPath   string
	logPath   string
	httpAddr  string
	cmd       *exec.Cmd
	exited    chan struct{} // closed when the started process ended
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

const agentConfig = `hostname = %q
interval = "1s"
jitter = "0s"
[http]
listen = %q
[buffer]
path = %q
[relay]
addresses = [%q]
heartbeat = "500ms"
read_timeout = "2s"
backoff_max = "1s"
[collectors]
cpu = false
load = true
memory = false
filesystem = false
diskio = false
net = false
processes = false
uptime = true
[update]
enabled = true
feed = %q
public_keys = [%q]
interval = "1s"
health_timeout = %q
`

// writeAgentConfig writes an agent config under dir, with the buffer in
// dir/data.
func (e *fleetEnv) writeAgentConfig(dir, name, host, httpAddr, relayAddr, healthTimeout string) string {
	e.t.Helper()
	return e.writeAgentConfigAt(filepath.Join(dir, name), filepath.Join(dir, "data"), host, httpAddr, relayAddr, healthTimeout)
}

func (e *fleetEnv) writeAgentConfigAt(p, dataDir, host, httpAddr, relayAddr, healthTimeout string) string {
	e.t.Helper()
	text := fmt.Sprintf(agentConfig, host, httpAddr, filepath.Join(dataDir, "buffer.db"), relayAddr, e.feedURL,
		e.key.PublicKey(), healthTimeout)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// freePorts returns n distinct free loopback addresses (all held open
// while choosing, so none is handed out twice).
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}

// startAgent installs agent-<version> read-only and starts it by hand.
func (e *fleetEnv) startAgent(host, version, healthTimeout string) *agentProc {
	e.t.Helper()
	return e.startAgentAt(host, version, healthTimeout, freePort(e.t))
}

// startAgentAt is startAgent with the HTTP address given.
func (e *fleetEnv) startAgentAt(host, version, healthTimeout, httpAddr string) *agentProc {
	t := e.t
	t.Helper()
	a := &agentProc{t: t, dir: filepath.Join(e.dir, host), httpAddr: httpAddr}
	a.dataDir = filepath.Join(a.dir, "data")
	binDir := filepath.Join(a.dir, "usr", "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	a.installed = filepath.Join(binDir, "falconet-agent")
	if err := os.Link(bin(t, "agent-"+version), a.installed); err != nil { // same bytes, no copy
		t.Fatal(err)
	}
	if err := os.Chmod(binDir, 0o555); err != nil { // like ProtectSystem=strict
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(binDir, 0o755) })
	relayAddr := e.relayAddr
	if relayAddr == "" {
		relayAddr = e.relay.ProtocolAddr()
	}
	a.cfgPath = e.writeAgentConfig(a.dir, "agent.toml", host, a.httpAddr, relayAddr, healthTimeout)
	a.logPath = filepath.Join(a.dir, "agent.log")
	a.start(host)
	return a
}

// start runs a.installed -config a.cfgPath by hand, logging to a.logPath.
func (a *agentProc) start(host string) {
	t := a.t
	t.Helper()
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	a.cmd = exec.Command(a.installed, "-config", a.cfgPath)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "INVOCATION_ID=") && !strings.HasPrefix(kv, update.BaseEnv+"=") {
			a.cmd.Env = append(a.cmd.Env, kv)
		}
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := a.cmd.Process.Pid
	a.exited = make(chan struct{})
	go func() { a.cmd.Wait(); close(a.exited) }() // reap; the watcher may outlive it
	t.Cleanup(func() {
		// The agent, its watcher and anything the watcher restarted share
		// the process group this test created.
		syscall.Kill(-pgid, syscall.SIGKILL)
		if t.Failed() {
			t.Logf("agent %s log:\n%s", host, a.log())
		}
	})
}

func (a *agentProc) log() string {
	b, _ := os.ReadFile(a.logPath)
	return string(b)
}

func (a *agentProc) state() update.State {
	var s update.State
	b, err := os.ReadFile(filepath.Join(a.dataDir, "versions", "state.json"))
	if err == nil {
		json.Unmarshal(b, &s)
	}
	return s
}

// sample is one Prometheus sample.
type sample struct {
	labels map[string]string
	value  float64
}

// metrics scrapes /metrics; nil while the agent does not answer.
func (a *agentProc) metrics() map[string][]sample {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + a.httpAddr + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string][]sample{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		name, labels := line[:sp], map[string]string{}
		if i := strings.IndexByte(name, '{'); i >= 0 {
			for _, kv := range strings.Split(strings.TrimSuffix(name[i+1:], "}"), ",") {
				k, val, _ := strings.Cut(kv, "=")
				labels[k] = strings.Trim(val, `"`)
			}
			name = name[:i]
		}
		out[name] = append(out[name], sample{labels, v})
	}
	return out
}

// value returns the sum of name's samples whose labels include want
// (-1 when the agent does not answer).
func (a *agentProc) value(name string, want map[string]string) float64 {
	ms := a.metrics()
	if ms == nil {
		return -1
	}
	sum := 0.0
outer:
	for _, s := range ms[name] {
		for k, v := range want {
			if s.labels[k] != v {
				continue outer
			}
		}
		sum += s.value
	}
	return sum
}

// running returns the version and update state the agent reports.
func (a *agentProc) running() (version, state string) {
	for _, s := range a.metrics()["falconet_update_running_version_info"] {
		if s.value == 1 {
			return s.labels["version"], s.labels["state"]
		}
	}
	return "", ""
}

// waitFor polls cond every 100 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool, detail func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			d := ""
			if detail != nil {
				d = detail()
			}
			t.Fatalf("timed out after %v waiting for %s; %s", timeout, what, d)
		}
		<-time.After(100 * time.Millisecond)
	}
}

// waitRunning waits until the agent reports version in state.
func (a *agentProc) waitRunning(timeout time.Duration, version, state string) {
	a.t.Helper()
	waitFor(a.t, timeout, fmt.Sprintf("agent running %s (%s)", version, state), func() bool {
		v, s := a.running()
		return v == version && s == state
	}, func() string {
		v, s := a.running()
		return fmt.Sprintf("got %q (%q); state file %+v", v, s, a.state())
	})
}

// waitDelivering waits until the running process has had a batch acked.
func (a *agentProc) waitDelivering(timeout time.Duration) {
	a.t.Helper()
	waitFor(a.t, timeout, "a relay ack", func() bool {
		return a.value("falconet_agent_sender_batches_acked_total", nil) > 0
	}, nil)
}
