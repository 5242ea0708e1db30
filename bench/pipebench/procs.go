package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// bins are the binaries under test, built from this checkout.
type bins struct {
	dir                           string
	falconet, relay, saver, agent string
	self                          string // this program, for the raw producer child
}

func buildBinaries(root, dir string) (bins, error) {
	b := bins{dir: dir}
	for _, x := range []struct {
		dst *string
		pkg string
	}{{&b.falconet, "falconet"}, {&b.relay, "falconet-relay"}, {&b.saver, "falconet-saver"}, {&b.agent, "falconet-agent"}} {
		*x.dst = filepath.Join(dir, x.pkg)
		cmd := exec.Command("go", "build", "-trimpath", "-o", *x.dst, "./cmd/"+x.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %v\n%s", x.pkg, err, out)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return b, err
	}
	b.self = self
	return b, nil
}

// safeBuf is a goroutine-safe log sink that keeps the last 1 MiB.
type safeBuf struct {
	mu sync.Mutex
	b  []byte
}

func (s *safeBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	if len(s.b) > 2<<20 {
		s.b = append(s.b[:0], s.b[len(s.b)-(1<<20):]...)
	}
	return len(p), nil
}

func (s *safeBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

// proc is one started process.
type proc struct {
	name string
	cmd  *exec.Cmd
	logs safeBuf
	done chan struct{}
}

func startProc(name, bin string, stdout io.Writer, env []string, args ...string) (*proc, error) {
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	if len(env) > 0 {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stderr = &p.logs
	if stdout != nil {
		p.cmd.Stdout = stdout
	} else {
		p.cmd.Stdout = &p.logs
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	return p, nil
}

// stop ends the process with SIGTERM, SIGKILL after 15 s.
func (p *proc) stop() {
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// cpu is the process's user+system CPU time so far.
func (p *proc) cpu() time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100) // USER_HZ = 100
}

// rssMB is the resident size in MB.
func (p *proc) rssMB() float64 {
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.Fields(v)[0], 64)
			return kb / 1024
		}
	}
	return 0
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitFor polls cond every 20 ms until it holds or d passed.
func waitFor(d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", d, what)
		}
		<-time.After(20 * time.Millisecond)
	}
	return nil
}

// firstLine starts a dev server that prints its address on stdout's first line.
func firstLine(name, bin string, args ...string) (*proc, string, error) {
	pr, pw := io.Pipe()
	p, err := startProc(name, bin, pw, nil, args...)
	if err != nil {
		return nil, "", err
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case l, ok := <-lines:
		if !ok {
			p.stop()
			return nil, "", fmt.Errorf("%s exited: %s", name, p.logs.String())
		}
		return p, strings.TrimSpace(l), nil
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, "", fmt.Errorf("%s did not start: %s", name, p.logs.String())
	}
}

func startDevKafka(b bins) (*proc, string, error) {
	return firstLine("dev-kafka", b.falconet, "dev-kafka", "-listen", "127.0.0.1:0")
}

func startDevES(b bins) (*proc, string, error) {
	return firstLine("dev-es", b.falconet, "dev-es", "-listen", "127.0.0.1:0", "-memory")
}

// relayProc is a running falconet-relay.
type relayProc struct {
	*proc
	addr, http string
}

func startRelay(b bins, dir, broker, extraKafka string) (*relayProc, error) {
	r := &relayProc{addr: freeAddr(), http: freeAddr()}
	// PIPEBENCH_RELAY_KAFKA: extra [kafka] lines for experiments ("linger = \"25ms\"").
	extraKafka += "\n" + strings.ReplaceAll(os.Getenv("PIPEBENCH_RELAY_KAFKA"), `\n`, "\n")
	conf := filepath.Join(dir, fmt.Sprintf("relay-%d.toml", time.Now().UnixNano()))
	text := fmt.Sprintf("[listen]\nprotocol = %q\nlegacy = \"\"\nhttp = %q\npprof = true\n[kafka]\nbrokers = [%q]\n%s\n[discovery]\nbind = \"\"\n",
		r.addr, r.http, broker, extraKafka)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, err
	}
	p, err := startProc("relay", b.relay, nil, strings.Fields(os.Getenv("PIPEBENCH_RELAY_ENV")), "-config", conf)
	if err != nil {
		return nil, err
	}
	r.proc = p
	if err := waitFor(30*time.Second, "relay connected to kafka", func() bool {
		return strings.Contains(p.logs.String(), "connected to kafka") || p.exited()
	}); err != nil || p.exited() {
		p.stop()
		return nil, fmt.Errorf("relay did not start (%v): %s", err, p.logs.String())
	}
	return r, nil
}

// saverProc is a running falconet-saver.
type saverProc struct {
	*proc
	http string
}

func startSaver(b bins, dir, broker, esURL, extraES string) (*saverProc, error) {
	s := &saverProc{http: freeAddr()}
	conf := filepath.Join(dir, fmt.Sprintf("saver-%d.toml", time.Now().UnixNano()))
	text := fmt.Sprintf("[http]\nlisten = %q\npprof = true\n[kafka]\nbrokers = [%q]\ngroup = %q\n[elasticsearch]\nurls = [%q]\nreplicas = 0\n%s\n",
		s.http, broker, fmt.Sprintf("bench-%d", time.Now().UnixNano()), esURL, extraES)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, err
	}
	p, err := startProc("saver", b.saver, nil, nil, "-config", conf)
	if err != nil {
		return nil, err
	}
	s.proc = p
	if err := waitFor(30*time.Second, "saver /healthz", func() bool {
		res, err := http.Get("http://" + s.http + "/healthz")
		if err != nil {
			return p.exited()
		}
		res.Body.Close()
		return res.StatusCode == 200 || p.exited()
	}); err != nil || p.exited() {
		p.stop()
		return nil, fmt.Errorf("saver did not start (%v): %s", err, p.logs.String())
	}
	return s, nil
}

// profile saves a CPU profile of secs seconds from a daemon's
// /debug/pprof (in the background).
func profile(httpAddr, path string, secs int) {
	go func() {
		res, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", httpAddr, secs))
		if err != nil {
			logf("profile: %v", err)
			return
		}
		defer res.Body.Close()
		prof, _ := io.ReadAll(res.Body)
		_ = os.WriteFile(path, prof, 0o644)
	}()
}

// promValue reads one sample (sum over labels) from a /metrics page.
func promValue(addr, name string) (float64, error) {
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	found := false
	for line := range bytes.SplitSeq(body, []byte("\n")) {
		if !bytes.HasPrefix(line, []byte(name)) {
			continue
		}
		rest := line[len(name):]
		if len(rest) == 0 || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := bytes.Fields(line)
		v, err := strconv.ParseFloat(string(f[len(f)-1]), 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return 0, errors.New(name + " not found")
	}
	return sum, nil
}

func (s *saverProc) stored() float64 {
	v, _ := promValue(s.http, "falconet_saver_docs_stored_total")
	return v
}

var errTimeout = errors.New("pipebench: timed out")

// waitStored waits until the saver stored at least n documents.
func (s *saverProc) waitStored(ctx context.Context, n float64, d time.Duration) (time.Time, error) {
	deadline := time.Now().Add(d)
	for {
		if s.stored() >= n {
			return time.Now(), nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil || s.exited() {
			return time.Now(), fmt.Errorf("%w: saver stored %.0f of %.0f", errTimeout, s.stored(), n)
		}
		<-time.After(50 * time.Millisecond)
	}
}
