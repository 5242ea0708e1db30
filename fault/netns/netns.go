// Package netns builds small throw-away networks out of Linux network
// namespaces for the fault tests: a hub namespace holding a bridge, one
// namespace per node joined to the bridge by a veth pair, and a veth from the
// root namespace so the test process itself can reach every node (to query
// Elasticsearch, scrape /metrics) without being subject to the faults.
//
// Faults are applied on the hub side of a node's cable, the way a switch or a
// router would misbehave:
//
//   - LinkDown/LinkUp set the hub end of the veth down: the node sees its
//     carrier go away (NO-CARRIER), as when a cable is pulled.
//   - Blackhole/Unblackhole install an nftables bridge-family rule in the hub
//     that silently drops every frame to and from the node: no RST, no FIN, no
//     ICMP. The node's kernel sees nothing but silence.
//
// Processes run inside a node with `ip netns exec`, in their own process
// group, with stdout and stderr captured to a log file. Kill sends SIGKILL.
//
// Every namespace this package creates is named with the prefix "fnt<pid>-",
// so Sweep can remove the leftovers of a run that was interrupted (its pid no
// longer alive) before a new run starts. Close removes everything a Net
// created; New registers Close with t.Cleanup.
//
// Needs root, iproute2 and nftables.
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Subnet is the IPv4 /24 the bridge carries. The hub's root-namespace port is
// .254; nodes get .1, .2, ... in the order they are added. Addresses exist
// only inside the test's namespaces and on the root namespace's test veth.
const Subnet = "10.213.77"

const namePrefix = "fnt"

// live holds every Net not yet closed, for CloseAll.
var live struct {
	sync.Mutex
	nets map[*Net]bool
}

// CloseAll closes every Net of this process (for a signal handler: an
// interrupted test run must not leave namespaces and processes behind).
func CloseAll() {
	live.Lock()
	nets := make([]*Net, 0, len(live.nets))
	for n := range live.nets {
		nets = append(nets, n)
	}
	live.Unlock()
	for _, n := range nets {
		n.Close()
	}
}

// Net is one test network.
type Net struct {
	prefix  string
	hub     string
	hostIf  string
	logDir  string
	mu      sync.Mutex
	nodes   []*Node
	procs   []*Proc
	closed  bool
	counter int
}

// Node is a namespace on the bridge.
type Node struct {
	Name   string // short name, e.g. "agent1"
	NS     string // the namespace's name for `ip netns exec`
	IP     string // its address on the bridge
	hubIf  string // the hub end of its veth
	net    *Net
	mu     sync.Mutex
	downed bool
	holed  bool
}

// Available reports why namespaces cannot be used here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("netns: needs root (network namespaces, veth, nftables)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("netns: %s not found (apt-get install iproute2 nftables)", tool)
		}
	}
	return nil
}

// New creates a network for a test and removes it when the test ends. It
// fails the test if namespaces are unavailable: the fault suite never passes
// silently where it could not run.
func New(t testing.TB, logDir string) *Net {
	t.Helper()
	if err := Available(); err != nil {
		t.Fatal(err)
	}
	n, err := Create(logDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("netns cleanup: %v", err)
		}
	})
	return n
}

// Create builds the hub and the root namespace's port on it. Call Close.
func Create(logDir string) (*Net, error) {
	Sweep()
	if logDir == "" {
		logDir = os.TempDir()
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	pid := os.Getpid()
	n := &Net{
		prefix: fmt.Sprintf("%s%d-", namePrefix, pid),
		hostIf: fmt.Sprintf("%s%dh", namePrefix, pid),
		logDir: logDir,
	}
	n.hub = n.prefix + "hub"
	live.Lock()
	if live.nets == nil {
		live.nets = map[*Net]bool{}
	}
	live.nets[n] = true
	live.Unlock()
	// A leftover from an earlier Net in this same process (a crashed test).
	_ = run("ip", "netns", "del", n.hub)
	_ = run("ip", "link", "del", n.hostIf)
	steps := [][]string{
		{"ip", "netns", "add", n.hub},
		{"ip", "-n", n.hub, "link", "set", "lo", "up"},
		{"ip", "-n", n.hub, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", n.hub, "link", "set", "br0", "up"},
		{"ip", "link", "add", n.hostIf, "type", "veth", "peer", "name", "host", "netns", n.hub},
		{"ip", "-n", n.hub, "link", "set", "host", "master", "br0"},
		{"ip", "-n", n.hub, "link", "set", "host", "up"},
		{"ip", "addr", "add", Subnet + ".254/24", "dev", n.hostIf},
		{"ip", "link", "set", n.hostIf, "up"},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// HostIP is the root namespace's address on the bridge.
func (n *Net) HostIP() string { return Subnet + ".254" }

// LogDir is where process logs go.
func (n *Net) LogDir() string { return n.logDir }

// AddNode creates a namespace joined to the bridge, with loopback up and
// an address on the subnet.
func (n *Net) AddNode(name string) (*Node, error) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, errors.New("netns: closed")
	}
	n.counter++
	idx := n.counter
	n.mu.Unlock()
	if idx > 250 {
		return nil, errors.New("netns: too many nodes")
	}
	nd := &Node{
		Name:  name,
		NS:    n.prefix + name,
		IP:    fmt.Sprintf("%s.%d", Subnet, idx),
		hubIf: fmt.Sprintf("n%d", idx),
		net:   n,
	}
	_ = run("ip", "netns", "del", nd.NS)
	steps := [][]string{
		{"ip", "netns", "add", nd.NS},
		{"ip", "-n", nd.NS, "link", "set", "lo", "up"},
		{"ip", "-n", n.hub, "link", "add", nd.hubIf, "type", "veth", "peer", "name", "eth0", "netns", nd.NS},
		{"ip", "-n", n.hub, "link", "set", nd.hubIf, "master", "br0"},
		{"ip", "-n", n.hub, "link", "set", nd.hubIf, "up"},
		{"ip", "-n", nd.NS, "addr", "add", nd.IP + "/24", "dev", "eth0"},
		{"ip", "-n", nd.NS, "link", "set", "eth0", "up"},
	}
	n.mu.Lock()
	n.nodes = append(n.nodes, nd)
	n.mu.Unlock()
	for _, s := range steps {
		if err := run(s...); err != nil {
			return nil, err
		}
	}
	return nd, nil
}

// Addr joins the node's IP with port.
func (nd *Node) Addr(port int) string { return net.JoinHostPort(nd.IP, strconv.Itoa(port)) }

// LinkDown pulls the node's cable: the hub end of its veth goes down, so the
// node loses carrier.
func (nd *Node) LinkDown() error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	nd.downed = true
	return run("ip", "-n", nd.net.hub, "link", "set", nd.hubIf, "down")
}

// LinkUp plugs the cable back in.
func (nd *Node) LinkUp() error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	nd.downed = false
	return run("ip", "-n", nd.net.hub, "link", "set", nd.hubIf, "up")
}

func (nd *Node) tableName() string { return "fbh_" + nd.hubIf }

// Blackhole makes the hub drop every frame from and to the node silently.
func (nd *Node) Blackhole() error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.holed {
		return nil
	}
	rules := fmt.Sprintf(`table bridge %s {
	chain drops {
		type filter hook forward priority 0; policy accept;
		iifname "%s" drop
		oifname "%s" drop
	}
}
`, nd.tableName(), nd.hubIf, nd.hubIf)
	cmd := exec.Command("ip", "netns", "exec", nd.net.hub, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("netns: nft blackhole %s: %v: %s", nd.Name, err, bytes.TrimSpace(out))
	}
	nd.holed = true
	return nil
}

// Unblackhole removes the drop rule.
func (nd *Node) Unblackhole() error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if !nd.holed {
		return nil
	}
	if err := run("ip", "netns", "exec", nd.net.hub, "nft", "delete", "table", "bridge", nd.tableName()); err != nil {
		return err
	}
	nd.holed = false
	return nil
}

// Exec runs a command inside the node and returns its combined output.
func (nd *Node) Exec(ctx context.Context, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", nd.NS}, argv...)...)
	return cmd.CombinedOutput()
}

// Proc is a process started in a node. It can be killed and started again
// with the same command line and log file (appended).
type Proc struct {
	Name    string
	Node    *Node
	Argv    []string
	Env     []string
	LogPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	runs int
}

// Start runs argv inside the node, output appended to LogDir/<name>.log.
func (nd *Node) Start(name string, env []string, argv ...string) (*Proc, error) {
	p := &Proc{
		Name:    name,
		Node:    nd,
		Argv:    argv,
		Env:     env,
		LogPath: filepath.Join(nd.net.logDir, name+".log"),
	}
	if err := p.Restart(); err != nil {
		return nil, err
	}
	nd.net.mu.Lock()
	nd.net.procs = append(nd.net.procs, p)
	nd.net.mu.Unlock()
	return p, nil
}

// Restart starts the process again if it is not running.
func (p *Proc) Restart() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("netns: %s still running", p.Name)
		}
	}
	f, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.runs++
	fmt.Fprintf(f, "=== netns: start #%d at %s: %s\n", p.runs, time.Now().UTC().Format(time.RFC3339Nano), strings.Join(p.Argv, " "))
	// `ip netns exec` enters the namespace and execs the command: the pid we
	// get is the daemon's own.
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.Node.NS}, p.Argv...)...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout = f
	cmd.Stderr = f
	// No Pdeathsig: it fires when the forking OS thread exits, and
	// DialContext retires threads. Close and Sweep kill what is left.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("netns: start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Pid is the current process's pid (0 if never started).
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether the process is alive.
func (p *Proc) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Done is closed when the current run exits.
func (p *Proc) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Err is the current run's exit error, once Done.
func (p *Proc) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *Proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
}

// Kill sends SIGKILL to the process group and waits for it to be reaped.
func (p *Proc) Kill() {
	p.signal(syscall.SIGKILL)
	if d := p.Done(); d != nil {
		<-d
	}
}

// Stop sends SIGTERM and waits up to grace for a clean exit, then SIGKILL.
// It returns the exit error of a clean exit, or an error saying it had to
// kill.
func (p *Proc) Stop(grace time.Duration) error {
	d := p.Done()
	if d == nil {
		return nil
	}
	p.signal(syscall.SIGTERM)
	select {
	case <-d:
		return p.Err()
	case <-time.After(grace):
	}
	p.Kill()
	return fmt.Errorf("netns: %s did not exit within %v of SIGTERM; killed", p.Name, grace)
}

// Tail returns the last n bytes of the process's log.
func (p *Proc) Tail(n int64) string {
	f, err := os.Open(p.LogPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-n, 0)
	buf := make([]byte, st.Size()-off)
	_, _ = f.ReadAt(buf, off)
	return string(buf)
}

// Close kills every process started through the net and removes every
// namespace (their veths and nftables tables go with them).
func (n *Net) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	procs, nodes := n.procs, n.nodes
	n.mu.Unlock()
	live.Lock()
	delete(live.nets, n)
	live.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	var errs []error
	for _, nd := range nodes {
		killNamespacePids(nd.NS)
		if err := run("ip", "netns", "del", nd.NS); err != nil && !strings.Contains(err.Error(), "No such file") {
			errs = append(errs, err)
		}
	}
	if err := run("ip", "netns", "del", n.hub); err != nil && !strings.Contains(err.Error(), "No such file") {
		errs = append(errs, err)
	}
	_ = run("ip", "link", "del", n.hostIf) // gone with the hub already, normally
	return errors.Join(errs...)
}

// Sweep removes namespaces (and root-namespace veths) left behind by runs
// whose process is gone. It returns the names it removed.
func Sweep() []string {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil
	}
	var removed []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], namePrefix) {
			continue
		}
		name := f[0]
		pidStr, _, ok := strings.Cut(strings.TrimPrefix(name, namePrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pidAlive(pid) {
			continue
		}
		killNamespacePids(name)
		if run("ip", "netns", "del", name) == nil {
			removed = append(removed, name)
		}
	}
	if links, err := net.Interfaces(); err == nil {
		for _, l := range links {
			if !strings.HasPrefix(l.Name, namePrefix) || !strings.HasSuffix(l.Name, "h") {
				continue
			}
			pid, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(l.Name, namePrefix), "h"))
			if err != nil || pidAlive(pid) {
				continue
			}
			if run("ip", "link", "del", l.Name) == nil {
				removed = append(removed, l.Name)
			}
		}
	}
	return removed
}

// killNamespacePids SIGKILLs every process left inside a namespace.
func killNamespacePids(ns string) {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func pidAlive(pid int) bool {
	if pid == os.Getpid() {
		return true
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func run(argv ...string) error {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netns: %s: %v: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Hold lets time pass: the duration of a fault (a link stays down 30 s) or
// the interval between two polls. It is never used to wait for something to
// happen; that is WaitFor's job.
func Hold(d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	<-t.C
}

// WaitFor polls cond every interval until it returns nil or timeout passes;
// it returns the last error.
func WaitFor(timeout, interval time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		Hold(interval)
	}
}

// WaitTCP waits until addr accepts a TCP connection (from the caller's
// namespace).
func WaitTCP(addr string, timeout time.Duration) error {
	return WaitFor(timeout, 50*time.Millisecond, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// DialContext opens a connection from inside the node's namespace, so the
// test process can reach a node's loopback-only ports (or see the network
// as the node does) without running a helper process there. The socket is
// created on a thread switched into the namespace; that thread is never
// switched back and dies with its goroutine.
func (nd *Node) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the thread leaves the root namespace for good
		fd, err := unix.Open(filepath.Join("/var/run/netns", nd.NS), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{nil, fmt.Errorf("netns: open %s: %w", nd.NS, err)}
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			ch <- result{nil, fmt.Errorf("netns: setns %s: %w", nd.NS, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// HTTPClient returns a client whose connections start inside the node.
func (nd *Node) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: nd.DialContext, DisableKeepAlives: true}}
}
