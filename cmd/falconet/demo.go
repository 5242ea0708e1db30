package main

// falconet demo runs the whole pipeline on loopback as child processes of the
// built binaries (bin/falconet-agent, -relay, -saver next to this binary, and
// this binary's dev-kafka, dev-es and load subcommands): what runs is exactly
// what an operator deploys, each daemon with its own TOML file, log file and
// /metrics. The demo writes a state file that `falconet status` reads.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/falconet/falconet/fault/check"
	"github.com/falconet/falconet/fault/load"
)

func init() {
	register("demo", "run the whole pipeline on this machine (dev Kafka, dev ES, 2 relays, a saver, agents) with a live summary", runDemo)
}

// demoState is what `falconet status` reads.
type demoState struct {
	Started time.Time    `json:"started"`
	Pid     int          `json:"pid"`
	Dir     string       `json:"dir"`
	ES      string       `json:"es"`
	Kafka   string       `json:"kafka"`
	Members []demoMember `json:"members"`
}

type demoMember struct {
	Name string `json:"name"`
	Role string `json:"role"` // agent, relay, saver, kafka, es
	Addr string `json:"addr"` // protocol/listen address
	HTTP string `json:"http"` // base URL of /metrics and /healthz ("" for none)
	Log  string `json:"log"`
	Pid  int    `json:"pid"`
}

func defaultDemoDir() string { return filepath.Join(os.TempDir(), "falconet-demo") }

type child struct {
	member demoMember
	argv   []string
	cmd    *exec.Cmd
	done   chan struct{}
}

func (c *child) start() error {
	f, err := os.OpenFile(c.member.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.argv[0], c.argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", c.member.Name, err)
	}
	c.cmd, c.done = cmd, make(chan struct{})
	c.member.Pid = cmd.Process.Pid
	go func() {
		cmd.Wait()
		f.Close()
		close(c.done)
	}()
	return nil
}

func (c *child) running() bool {
	if c.done == nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

func (c *child) signal(sig syscall.Signal) {
	if c.running() {
		_ = syscall.Kill(-c.cmd.Process.Pid, sig)
	}
}

func (c *child) stop(grace time.Duration) {
	if !c.running() {
		return
	}
	c.signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		c.signal(syscall.SIGKILL)
		<-c.done
	}
}

func (c *child) kill() {
	c.signal(syscall.SIGKILL)
	if c.done != nil {
		<-c.done
	}
}

type demo struct {
	dir      string
	binDir   string
	children []*child
	loads    []*child
	logs     []string
	es       *check.ES
	state    demoState
	out      io.Writer
}

func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	duration := fs.Duration("duration", 0, "stop after this long and print generated/stored/missing/duplicates (0: until Ctrl-C)")
	agents := fs.Int("agents", 4, "agents: the first collects this host's real metrics, the others push a synthetic stream")
	faultName := fs.String("fault", "", "inject a fault mid-run: relay-kill (SIGKILL the busiest relay, restart it 20 s later)")
	dir := fs.String("dir", defaultDemoDir(), "working directory (configs, data, logs, state.json); emptied at start")
	binDir := fs.String("bin", "", "directory with falconet-agent, falconet-relay, falconet-saver (default: next to this binary)")
	portBase := fs.Int("port-base", 20000, "loopback ports: Kafka base+92, ES base+200, relays base+433.., saver base+161, agents base+988..")
	rate := fs.Float64("rate", 10, "pushes per second per synthetic agent")
	series := fs.Int("series", 50, "series per synthetic agent")
	every := fs.Duration("every", 3*time.Second, "summary line interval")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *faultName != "" && *faultName != "relay-kill" {
		return exitError{code: 2, msg: fmt.Sprintf("-fault %q: the demo knows relay-kill", *faultName)}
	}
	if *agents < 1 {
		return exitError{code: 2, msg: "-agents: at least 1"}
	}
	if *binDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		*binDir = filepath.Dir(exe)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for _, b := range []string{"falconet-agent", "falconet-relay", "falconet-saver"} {
		if _, err := os.Stat(filepath.Join(*binDir, b)); err != nil {
			return exitError{code: 1, msg: fmt.Sprintf("%s not found in %s: run `make build` (or pass -bin DIR)", b, *binDir)}
		}
	}
	if err := os.RemoveAll(*dir); err != nil {
		return err
	}
	for _, d := range []string{"logs", "kafka", "es"} {
		if err := os.MkdirAll(filepath.Join(*dir, d), 0o755); err != nil {
			return err
		}
	}
	d := &demo{dir: *dir, binDir: *binDir, out: os.Stdout}
	defer d.shutdown()

	lo := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(*portBase+p)) }
	kafkaAddr, esAddr := lo(92), lo(200)
	d.state = demoState{Started: time.Now().UTC(), Pid: os.Getpid(), Dir: *dir, ES: "http://" + esAddr, Kafka: kafkaAddr}
	d.es = &check.ES{URL: d.state.ES}

	fmt.Fprintf(d.out, "falconet demo: pipeline on loopback, working directory %s\n", *dir)
	if _, err := d.spawn(demoMember{Name: "kafka", Role: "kafka", Addr: kafkaAddr},
		self, "dev-kafka", "-listen", kafkaAddr, "-data", filepath.Join(*dir, "kafka")); err != nil {
		return err
	}
	if _, err := d.spawn(demoMember{Name: "es", Role: "es", Addr: esAddr, HTTP: "http://" + esAddr},
		self, "dev-es", "-listen", esAddr, "-data", filepath.Join(*dir, "es")); err != nil {
		return err
	}
	if err := d.waitTCP(ctx, kafkaAddr, esAddr); err != nil {
		return err
	}
	var relayAddrs []string
	var relays []*child
	for i := range 2 {
		proto, legacy, httpAddr := lo(433+i), lo(444+i), lo(60+i)
		cfg, err := d.writeConfig(fmt.Sprintf("relay%d.toml", i+1), fmt.Sprintf(`# falconet demo relay %d
[listen]
protocol = %q
legacy = %q
http = %q
[kafka]
brokers = [%q]
topic = "falconet-metrics"
`, i+1, proto, legacy, httpAddr, kafkaAddr))
		if err != nil {
			return err
		}
		c, err := d.spawn(demoMember{Name: fmt.Sprintf("relay%d", i+1), Role: "relay", Addr: proto, HTTP: "http://" + httpAddr},
			filepath.Join(*binDir, "falconet-relay"), "-config", cfg)
		if err != nil {
			return err
		}
		relays = append(relays, c)
		relayAddrs = append(relayAddrs, proto)
	}
	saverHTTP := lo(161)
	saverCfg, err := d.writeConfig("saver.toml", fmt.Sprintf(`# falconet demo saver
[http]
listen = %q
[kafka]
brokers = [%q]
topic = "falconet-metrics"
group = "falconet-saver"
[elasticsearch]
urls = [%q]
retention_days = 30
# Production default is 30s; the demo's live counts want 1s.
refresh_interval = "1s"
`, saverHTTP, kafkaAddr, d.state.ES))
	if err != nil {
		return err
	}
	if _, err := d.spawn(demoMember{Name: "saver", Role: "saver", Addr: saverHTTP, HTTP: "http://" + saverHTTP},
		filepath.Join(*binDir, "falconet-saver"), "-config", saverCfg); err != nil {
		return err
	}
	if err := d.waitTCP(ctx, append(slices.Clone(relayAddrs), saverHTTP)...); err != nil {
		return err
	}
	start := time.Now().Add(-time.Hour).Unix()
	for i := range *agents {
		name := fmt.Sprintf("agent%d", i+1)
		httpAddr := lo(988 + i)
		// Spread preferences: agent i lists the relays rotated by i.
		prefs := append(slices.Clone(relayAddrs[i%2:]), relayAddrs[:i%2]...)
		quoted := make([]string, len(prefs))
		for j, a := range prefs {
			quoted[j] = strconv.Quote(a)
		}
		collectors := "" // agent1: the built-in collectors, this host's real metrics
		if i > 0 {
			collectors = "[collectors]\ncpu = false\nload = false\nmemory = false\nfilesystem = false\ndiskio = false\nnet = false\nprocesses = false\nuptime = false\n"
		}
		if err := os.MkdirAll(filepath.Join(*dir, name), 0o755); err != nil {
			return err
		}
		cfg, err := d.writeConfig(name+".toml", fmt.Sprintf(`# falconet demo %s
hostname = "demo-%s"
interval = "5s"
[http]
listen = %q
[buffer]
path = %q
[relay]
addresses = [%s]
%s`, name, name, httpAddr, filepath.Join(*dir, name, "buffer.db"), strings.Join(quoted, ", "), collectors))
		if err != nil {
			return err
		}
		if _, err := d.spawn(demoMember{Name: name, Role: "agent", Addr: httpAddr, HTTP: "http://" + httpAddr},
			filepath.Join(*binDir, "falconet-agent"), "-config", cfg); err != nil {
			return err
		}
		if err := d.waitTCP(ctx, httpAddr); err != nil {
			return err
		}
		if i > 0 {
			logPath := filepath.Join(*dir, "load-"+name+".log")
			lc := &child{
				member: demoMember{Name: "load-" + name, Role: "load", Log: filepath.Join(*dir, "logs", "load-"+name+".log")},
				argv: []string{self, "load", "-url", "http://" + httpAddr + "/v1/push", "-endpoint", "demo-synthetic-" + name,
					"-series", strconv.Itoa(*series), "-rate", strconv.FormatFloat(*rate, 'f', -1, 64),
					"-start", strconv.FormatInt(start, 10), "-log", logPath},
			}
			if err := lc.start(); err != nil {
				return err
			}
			d.loads = append(d.loads, lc)
			d.logs = append(d.logs, logPath)
		}
	}
	if err := d.writeState(); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "running: kafka %s, es %s, relays %s, saver %s, %d agents (agent1: host metrics; others: %d series x %.0f/s each)\n",
		kafkaAddr, esAddr, strings.Join(relayAddrs, " "), saverHTTP, *agents, *series, *rate)
	fmt.Fprintf(d.out, "`falconet status` shows the members; logs in %s/logs\n", *dir)

	runCtx := ctx
	var cancel context.CancelFunc = func() {}
	if *duration > 0 {
		runCtx, cancel = context.WithTimeout(ctx, *duration)
	}
	defer cancel()
	faultAt := time.Now().Add(20 * time.Second)
	if *duration > 0 {
		faultAt = time.Now().Add(*duration / 3)
	}
	var killed *child
	var restartAt time.Time
	tick := time.NewTicker(*every)
	defer tick.Stop()
	began := time.Now()
	prev := d.sample(ctx)
loop:
	for {
		select {
		case <-runCtx.Done():
			break loop
		case <-tick.C:
		}
		if *faultName == "relay-kill" && killed == nil && time.Now().After(faultAt) {
			// Kill the relay with the most agents.
			victim, most := relays[0], -1.0
			for _, r := range relays {
				if v, err := scrape(r.member.HTTP+"/metrics", "falconet_relay_agent_connections"); err == nil && v > most {
					victim, most = r, v
				}
			}
			victim.kill()
			killed, restartAt = victim, time.Now().Add(20*time.Second)
			fmt.Fprintf(d.out, "*** fault: %s killed with SIGKILL (it had %.0f agents); restart in 20 s\n", victim.member.Name, most)
		}
		if killed != nil && !restartAt.IsZero() && time.Now().After(restartAt) {
			if err := killed.start(); err != nil {
				return err
			}
			restartAt = time.Time{}
			_ = d.writeState()
			fmt.Fprintf(d.out, "*** fault: %s restarted\n", killed.member.Name)
		}
		cur := d.sample(ctx)
		fmt.Fprintln(d.out, cur.line(prev, time.Since(began)))
		prev = cur
	}
	return d.finish(ctx)
}

func (d *demo) spawn(m demoMember, argv ...string) (*child, error) {
	m.Log = filepath.Join(d.dir, "logs", m.Name+".log")
	c := &child{member: m, argv: argv}
	if err := c.start(); err != nil {
		return nil, err
	}
	d.children = append(d.children, c)
	return c, nil
}

func (d *demo) writeConfig(name, content string) (string, error) {
	p := filepath.Join(d.dir, name)
	return p, os.WriteFile(p, []byte(content), 0o644)
}

func (d *demo) writeState() error {
	d.state.Members = d.state.Members[:0]
	for _, c := range d.children {
		d.state.Members = append(d.state.Members, c.member)
	}
	b, err := json.MarshalIndent(d.state, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(d.dir, "state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(d.dir, "state.json"))
}

func (d *demo) waitTCP(ctx context.Context, addrs ...string) error {
	for _, a := range addrs {
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			for _, ch := range d.children {
				if !ch.running() {
					return exitError{code: 1, msg: fmt.Sprintf("%s exited during start-up; see %s:\n%s", ch.member.Name, ch.member.Log, tail(ch.member.Log, 1500))}
				}
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return exitError{code: 1, msg: fmt.Sprintf("nothing listening on %s after 30 s: %v", a, err)}
			}
			time.Sleep(100 * time.Millisecond) // start-up poll
		}
	}
	return nil
}

func tail(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return string(b)
}

// sample is one reading of the pipeline's counters.
type sample struct {
	at             time.Time
	agentsUp       int
	agents         int
	relayAgents    []string
	buffered       float64
	acked          float64 // metrics the agents got acked by relays
	stored         float64 // documents in ES
	storedErr      error
	droppedMetrics float64
}

func (d *demo) sample(ctx context.Context) sample {
	s := sample{at: time.Now()}
	for _, c := range d.children {
		switch c.member.Role {
		case "agent":
			s.agents++
			if healthy(c.member.HTTP) {
				s.agentsUp++
			}
			page, err := fetch(c.member.HTTP + "/metrics")
			if err != nil {
				continue
			}
			s.buffered += promSum(page, "falconet_buffer_metrics")
			s.acked += promSum(page, "falconet_agent_sender_metrics_acked_total")
			s.droppedMetrics += promSum(page, "falconet_buffer_dropped_metrics_total")
		case "relay":
			v, err := scrape(c.member.HTTP+"/metrics", "falconet_relay_agent_connections")
			if err != nil || !c.running() {
				s.relayAgents = append(s.relayAgents, c.member.Name+":down")
				continue
			}
			s.relayAgents = append(s.relayAgents, fmt.Sprintf("%s:%.0f", c.member.Name, v))
		}
	}
	n, err := d.es.CountAll(ctx)
	s.stored, s.storedErr = float64(n), err
	return s
}

func (s sample) line(prev sample, since time.Duration) string {
	dt := s.at.Sub(prev.at).Seconds()
	if dt <= 0 {
		dt = 1
	}
	stored := fmt.Sprintf("stored=%.0f (%.0f/s)", s.stored, (s.stored-prev.stored)/dt)
	if s.storedErr != nil {
		stored = "stored=? (ES: " + s.storedErr.Error() + ")"
	}
	return fmt.Sprintf("[%4.0fs] agents=%d/%d agents-per-relay=[%s] buffered=%.0f sent=%.0f/s %s dropped=%.0f",
		since.Seconds(), s.agentsUp, s.agents, strings.Join(s.relayAgents, " "), s.buffered,
		(s.acked-prev.acked)/dt, stored, s.droppedMetrics)
}

// finish stops the generators, lets the pipeline drain, and checks ES.
func (d *demo) finish(ctx context.Context) error {
	fmt.Fprintln(d.out, "stopping the generators; waiting for the pipeline to drain...")
	for _, l := range d.loads {
		l.stop(10 * time.Second)
	}
	// Interrupts from here on should still allow the check; use a fresh,
	// bounded context.
	cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var recs []*load.Record
	var ids []string
	for _, p := range d.logs {
		r, err := load.ReadLog(p)
		if err != nil {
			return err
		}
		recs = append(recs, r)
		var seqs []int64
		for seq := range r.Accepted {
			seqs = append(seqs, seq)
		}
		ids = append(ids, check.IDs(r.Stream, seqs)...)
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		n, err := d.es.CountIDs(cctx, ids)
		if err == nil && n >= len(ids) {
			break
		}
		time.Sleep(500 * time.Millisecond) // drain poll
	}
	res, err := d.es.CheckAll(cctx, recs...)
	if err != nil {
		return err
	}
	total, _ := d.es.CountAll(cctx)
	fmt.Fprintf(d.out, "\nsynthetic streams: generated=%d stored=%d missing=%d duplicates=%d\n", res.Generated, res.Stored, res.Missing, res.Duplicated)
	fmt.Fprintf(d.out, "all documents in ES (host metrics of agent1 included): %d\n", total)
	if !res.OK() {
		fmt.Fprintln(d.out, res.String())
		return exitError{code: 1, msg: "delivery contract broken (see above)"}
	}
	fmt.Fprintln(d.out, "every generated metric is in Elasticsearch exactly once")
	_ = ctx
	return nil
}

func (d *demo) shutdown() {
	for _, l := range d.loads {
		l.stop(5 * time.Second)
	}
	// Agents first (they flush), then relays, saver, ES, Kafka.
	for i := len(d.children) - 1; i >= 0; i-- {
		d.children[i].stop(10 * time.Second)
	}
	os.Remove(filepath.Join(d.dir, "state.json"))
}

var httpClient = &http.Client{Timeout: 3 * time.Second}

func fetch(url string) (string, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	return string(b), nil
}

func healthy(base string) bool {
	_, err := fetch(base + "/healthz")
	return err == nil
}

func scrape(url, name string) (float64, error) {
	page, err := fetch(url)
	if err != nil {
		return 0, err
	}
	if !strings.Contains(page, "\n"+name) && !strings.HasPrefix(page, name) {
		return 0, errors.New(name + " not exposed")
	}
	return promSum(page, name), nil
}

// promSum adds every sample of name (all label sets) in a Prometheus text
// page.
func promSum(page, name string) float64 {
	var sum float64
	for line := range strings.SplitSeq(page, "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// promLabeled returns each label set's value of name.
func promLabeled(page, name string) map[string]float64 {
	out := map[string]float64{}
	for line := range strings.SplitSeq(page, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 {
			continue
		}
		f := strings.Fields(line[end+1:])
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			out[line[len(name)+1:end]] = v
		}
	}
	return out
}
