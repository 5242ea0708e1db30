package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/falconet/falconet/fault/check"
	"github.com/falconet/falconet/fault/load"
	"github.com/falconet/falconet/internal/promtext"
)

// FaultRelayKill kills the relay with the most agents with SIGKILL and
// restarts it Config.RestartAfter later.
const FaultRelayKill = "relay-kill"

// Sentinel errors of Run and New.
var (
	// ErrContractBroken: a synthetic metric accepted by an agent is missing
	// from Elasticsearch, stored twice, or stored in the wrong place.
	ErrContractBroken = errors.New("demo: delivery contract broken")
	// ErrStartup: a member did not start (missing binary, exited, port busy).
	ErrStartup = errors.New("demo: start-up failed")
)

// Config is what a demo runs. The zero value is not usable; start from
// DefaultConfig.
type Config struct {
	// Dir is the working directory: configs, data, logs, state.json.
	Dir string
	// BinDir holds falconet-agent, falconet-relay and falconet-saver.
	BinDir string
	// Falconet is the falconet binary, whose dev-kafka, dev-es and load
	// subcommands the demo runs.
	Falconet string
	// Duration stops the run and prints the verdict after this long; 0 runs
	// until ctx ends (the verdict is printed then too).
	Duration time.Duration
	// Agents: the first collects this host's metrics, the others are fed a
	// synthetic stream.
	Agents int
	// Fault is "" or FaultRelayKill.
	Fault string
	// FaultAt is when the fault is injected, from the start of the run;
	// 0: a third of Duration, or 20 s for an endless run.
	FaultAt time.Duration
	// RestartAfter is how long a killed relay stays down.
	RestartAfter time.Duration
	// PortBase: Kafka base+92, ES base+200, relays base+433.. (legacy
	// base+444.., HTTP base+60..), saver base+161, agents base+988...
	PortBase int
	// Rate is pushes per second per synthetic agent, Series the metrics per
	// push.
	Rate   float64
	Series int
	// Every is the status line interval.
	Every time.Duration
	// DrainTimeout bounds the wait for the pipeline to drain at the end.
	DrainTimeout time.Duration
	// Out receives the status lines and the verdict.
	Out io.Writer
	// Secure runs every link with TLS and authentication (secure.go).
	Secure bool
}

// DefaultConfig is the demo `falconet demo` runs without flags, with the
// binaries looked up next to the running executable.
func DefaultConfig() Config {
	cfg := Config{
		Dir:          DefaultDir(),
		Agents:       4,
		RestartAfter: 20 * time.Second,
		PortBase:     20000,
		Rate:         10,
		Series:       50,
		Every:        3 * time.Second,
		DrainTimeout: 90 * time.Second,
		Out:          os.Stdout,
	}
	if exe, err := os.Executable(); err == nil {
		cfg.Falconet = exe
		cfg.BinDir = filepath.Dir(exe)
	}
	return cfg
}

// Validate checks the settings; its errors name the setting.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("demo dir: empty")
	case c.Falconet == "":
		return errors.New("demo falconet: empty (the falconet binary)")
	case c.Fault != "" && c.Fault != FaultRelayKill:
		return fmt.Errorf("demo fault %q: the demo knows %s", c.Fault, FaultRelayKill)
	case c.Agents < 1:
		return fmt.Errorf("demo agents %d: at least 1", c.Agents)
	case c.Agents > 12:
		return fmt.Errorf("demo agents %d: at most 12 (the agents' ports would run into others)", c.Agents)
	case c.PortBase < 1024 || c.PortBase > 65535-1000:
		return fmt.Errorf("demo port-base %d: want 1024..64535", c.PortBase)
	case c.Rate <= 0:
		return fmt.Errorf("demo rate %v: must be positive", c.Rate)
	case c.Series < 1:
		return fmt.Errorf("demo series %d: at least 1", c.Series)
	case c.Every <= 0:
		return fmt.Errorf("demo every %v: must be positive", c.Every)
	case c.Duration < 0:
		return fmt.Errorf("demo duration %v: must not be negative", c.Duration)
	}
	return nil
}

// Demo is one run of the pipeline. Run it once.
type Demo struct {
	cfg      Config
	children []*child // kafka, es, relays, saver, agents: started in this order
	relays   []*child
	loads    []*child
	logs     []string // the load generators' records
	es       *check.ES
	state    State
	out      io.Writer
	sec      *secure // nil unless Config.Secure
}

// New validates cfg and checks that the binaries exist.
func New(cfg Config) (*Demo, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for _, b := range []string{"falconet-agent", "falconet-relay", "falconet-saver"} {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, b)); err != nil {
			return nil, fmt.Errorf("%w: %s not found in %s: run `make build` (or pass -bin DIR)", ErrStartup, b, cfg.BinDir)
		}
	}
	if _, err := os.Stat(cfg.Falconet); err != nil {
		return nil, fmt.Errorf("%w: the falconet binary: %v", ErrStartup, err)
	}
	out := cfg.Out
	if out == nil {
		out = io.Discard
	}
	return &Demo{cfg: cfg, out: out}, nil
}

func (d *Demo) addr(offset int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(d.cfg.PortBase+offset))
}

// Run starts the pipeline, prints a status line every Config.Every, injects
// the fault, and when Duration has passed or ctx ends, stops the generators,
// waits for the pipeline to drain and checks Elasticsearch. It returns the
// check's result; ErrContractBroken if the contract did not hold. Every child
// process is stopped before Run returns.
func (d *Demo) Run(ctx context.Context) (check.Result, error) {
	defer d.shutdown()
	if err := d.prepareDir(); err != nil {
		return check.Result{}, err
	}
	if err := d.start(ctx); err != nil {
		return check.Result{}, err
	}
	if err := d.loop(ctx); err != nil {
		return check.Result{}, err
	}
	return d.finish()
}

// start runs every member and the load generators and waits until each
// listens.
func (d *Demo) start(ctx context.Context) error {
	cfg := d.cfg
	kafkaAddr, esAddr := d.addr(92), d.addr(200)
	if cfg.Secure {
		var err error
		if d.sec, err = newSecure(cfg.Dir); err != nil {
			return fmt.Errorf("%w: -secure: %v", ErrStartup, err)
		}
	}
	d.state = State{Started: time.Now().UTC(), Pid: os.Getpid(), Dir: cfg.Dir, ES: d.sec.scheme() + esAddr, Kafka: kafkaAddr}
	d.es = &check.ES{URL: d.state.ES, Client: d.sec.esClient()}

	fmt.Fprintf(d.out, "falconet demo: pipeline on loopback, working directory %s\n%s", cfg.Dir, d.sec.describe())
	if _, err := d.spawn(Member{Name: "kafka", Role: "kafka", Addr: kafkaAddr}, append([]string{
		cfg.Falconet, "dev-kafka", "-listen", kafkaAddr, "-data", filepath.Join(cfg.Dir, "kafka")}, d.sec.kafkaArgs()...)...); err != nil {
		return err
	}
	if _, err := d.spawn(Member{Name: "es", Role: "es", Addr: esAddr, HTTP: d.sec.scheme() + esAddr}, append([]string{
		cfg.Falconet, "dev-es", "-listen", esAddr, "-data", filepath.Join(cfg.Dir, "es")}, d.sec.esArgs()...)...); err != nil {
		return err
	}
	if err := d.waitTCP(ctx, kafkaAddr, esAddr); err != nil {
		return err
	}
	var relayAddrs []string
	// Discovery: the relays gossip on base+946.. and seed each other; agents
	// get only these seeds and the gossip key, no relay addresses.
	gossip := []string{d.addr(946), d.addr(947)}
	d.state.Seeds, d.state.GossipKey = gossip, newGossipKey()
	for i := range 2 {
		proto, legacy, httpAddr := d.addr(433+i), d.addr(444+i), d.addr(60+i)
		path, err := d.writeConfig(fmt.Sprintf("relay%d.toml", i+1), fmt.Sprintf(`# falconet demo relay %d
id = "relay%d"
[listen]
protocol = %q
legacy = %q
http = %q
[kafka]
brokers = [%q]
topic = "falconet-metrics"
[discovery]
bind = %q
seeds = [%q]
keys = [%q]
%s`, i+1, i+1, proto, legacy, httpAddr, kafkaAddr, gossip[i], gossip[1-i], d.state.GossipKey, d.sec.relayTOML()))
		if err != nil {
			return err
		}
		c, err := d.spawn(Member{Name: fmt.Sprintf("relay%d", i+1), Role: "relay", Addr: proto, HTTP: "http://" + httpAddr},
			filepath.Join(cfg.BinDir, "falconet-relay"), "-config", path)
		if err != nil {
			return err
		}
		d.relays = append(d.relays, c)
		relayAddrs = append(relayAddrs, proto)
	}
	saverHTTP := d.addr(161)
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
%s`, saverHTTP, kafkaAddr, d.state.ES, d.sec.saverTOML()))
	if err != nil {
		return err
	}
	if _, err := d.spawn(Member{Name: "saver", Role: "saver", Addr: saverHTTP, HTTP: "http://" + saverHTTP},
		filepath.Join(cfg.BinDir, "falconet-saver"), "-config", saverCfg); err != nil {
		return err
	}
	if err := d.waitTCP(ctx, append(slices.Clone(relayAddrs), saverHTTP)...); err != nil {
		return err
	}
	start := time.Now().Add(-time.Hour).Unix()
	for i := range cfg.Agents {
		if err := d.startAgent(ctx, i, relayAddrs, start); err != nil {
			return err
		}
	}
	if err := d.writeState(); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "running: kafka %s, es %s, relays %s, saver %s, %d agents (agent1: host metrics; others: %d series x %.0f/s each)\n",
		kafkaAddr, esAddr, strings.Join(relayAddrs, " "), saverHTTP, cfg.Agents, cfg.Series, cfg.Rate)
	fmt.Fprintf(d.out, "`falconet status` shows the members; logs in %s\n", filepath.Join(cfg.Dir, "logs"))
	fmt.Fprintln(d.out, legend)
	return nil
}

// startAgent runs agent i (0-based) and, for i > 0, its load generator.
func (d *Demo) startAgent(ctx context.Context, i int, relayAddrs []string, streamStart int64) error {
	cfg := d.cfg
	name := fmt.Sprintf("agent%d", i+1)
	httpAddr := d.addr(988 + i)
	// Seeds only: the agent finds the relays through gossip.
	quoted := make([]string, len(d.state.Seeds))
	for j, a := range d.state.Seeds {
		quoted[j] = strconv.Quote(a)
	}
	collectors := "" // agent1: the built-in collectors, this host's real metrics
	if i > 0 {
		collectors = "[collectors]\ncpu = false\nload = false\nmemory = false\nfilesystem = false\ndiskio = false\nnet = false\nprocesses = false\nuptime = false\n"
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, name), 0o755); err != nil {
		return err
	}
	path, err := d.writeConfig(name+".toml", fmt.Sprintf(`# falconet demo %s
hostname = "demo-%s"
interval = "5s"
[http]
listen = %q
[buffer]
path = %q
[relay]
addresses = []
%s[discovery]
seeds = [%s]
bind = %q
keys = [%q]
%s`, name, name, httpAddr, filepath.Join(cfg.Dir, name, "buffer.db"), d.sec.agentTOML(), strings.Join(quoted, ", "), d.addr(700+i),
		d.state.GossipKey, collectors))
	if err != nil {
		return err
	}
	if _, err := d.spawn(Member{Name: name, Role: "agent", Addr: httpAddr, HTTP: "http://" + httpAddr},
		filepath.Join(cfg.BinDir, "falconet-agent"), "-config", path); err != nil {
		return err
	}
	if err := d.waitTCP(ctx, httpAddr); err != nil {
		return err
	}
	if i == 0 {
		return nil
	}
	logPath := filepath.Join(cfg.Dir, "load-"+name+".log")
	lc := &child{
		member: Member{Name: "load-" + name, Role: "load", Log: filepath.Join(cfg.Dir, "logs", "load-"+name+".log")},
		argv: []string{cfg.Falconet, "load", "-url", "http://" + httpAddr + "/v1/push", "-endpoint", "demo-synthetic-" + name,
			"-series", strconv.Itoa(cfg.Series), "-rate", strconv.FormatFloat(cfg.Rate, 'f', -1, 64),
			"-start", strconv.FormatInt(streamStart, 10), "-log", logPath},
	}
	if err := lc.start(); err != nil {
		return err
	}
	d.loads = append(d.loads, lc)
	d.logs = append(d.logs, logPath)
	return nil
}

// loop prints the status lines and injects the fault until Duration has
// passed or ctx ends.
func (d *Demo) loop(ctx context.Context) error {
	cfg := d.cfg
	runCtx := ctx
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	faultAfter := cfg.FaultAt
	if faultAfter == 0 {
		faultAfter = 20 * time.Second
		if cfg.Duration > 0 {
			faultAfter = cfg.Duration / 3
		}
	}
	began := time.Now()
	faultAt := began.Add(faultAfter)
	var killed *child
	var restartAt time.Time
	var watch faultWatch
	tick := time.NewTicker(cfg.Every)
	defer tick.Stop()
	prev := d.sample(ctx)
	for {
		select {
		case <-runCtx.Done():
			return nil
		case <-tick.C:
		}
		if cfg.Fault == FaultRelayKill && killed == nil && time.Now().After(faultAt) {
			// Kill the relay with the most agents.
			victim, most := d.relays[0], -1.0
			for _, r := range d.relays {
				if v, err := promtext.Scrape(ctx, r.member.HTTP+"/metrics", "falconet_relay_agent_connections"); err == nil && v > most {
					victim, most = r, v
				}
			}
			victim.kill()
			killed, restartAt = victim, time.Now().Add(cfg.RestartAfter)
			watch.killed(victim, most, time.Now())
			fmt.Fprintf(d.out, "*** fault: %s killed with SIGKILL (it had %.0f agents); restart in %s\n", victim.member.Name, most, cfg.RestartAfter)
		}
		if killed != nil && !restartAt.IsZero() && time.Now().After(restartAt) {
			if err := killed.start(); err != nil {
				return err
			}
			restartAt = time.Time{}
			watch.restarted(time.Now())
			_ = d.writeState()
			fmt.Fprintf(d.out, "*** fault: %s restarted\n", killed.member.Name)
		}
		cur := d.sample(ctx)
		fmt.Fprintln(d.out, cur.line(prev, time.Since(began)))
		for _, l := range watch.observe(cur, cfg.Agents) {
			fmt.Fprintln(d.out, l)
		}
		prev = cur
	}
}

func (d *Demo) spawn(m Member, argv ...string) (*child, error) {
	m.Log = filepath.Join(d.cfg.Dir, "logs", m.Name+".log")
	c := &child{member: m, argv: argv}
	if err := c.start(); err != nil {
		return nil, err
	}
	d.children = append(d.children, c)
	return c, nil
}

func (d *Demo) writeConfig(name, content string) (string, error) {
	p := filepath.Join(d.cfg.Dir, name)
	return p, os.WriteFile(p, []byte(content), 0o644)
}

// waitTCP waits until each address accepts a connection, up to 30 s each;
// a member that exits meanwhile fails the start with the end of its log.
func (d *Demo) waitTCP(ctx context.Context, addrs ...string) error {
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
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
					return fmt.Errorf("%w: %s exited during start-up; see %s:\n%s", ErrStartup, ch.member.Name, ch.member.Log, tail(ch.member.Log, 1500))
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%w: nothing listening on %s after 30 s: %v", ErrStartup, a, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-poll.C:
			}
		}
	}
	return nil
}

// finish stops the generators, lets the pipeline drain, and checks ES.
func (d *Demo) finish() (check.Result, error) {
	fmt.Fprintln(d.out, "stopping the generators; waiting for the pipeline to drain...")
	for _, l := range d.loads {
		l.stop(10 * time.Second)
	}
	// An interrupt has ended the run's context; the check still deserves a
	// bounded one of its own.
	cctx, cancel := context.WithTimeout(context.Background(), d.cfg.DrainTimeout+30*time.Second)
	defer cancel()
	var recs []*load.Record
	var ids []string
	for _, p := range d.logs {
		r, err := load.ReadLog(p)
		if err != nil {
			return check.Result{}, err
		}
		recs = append(recs, r)
		var seqs []int64
		for seq := range r.Accepted {
			seqs = append(seqs, seq)
		}
		ids = append(ids, check.IDs(r.Stream, seqs)...)
	}
	poll := time.NewTicker(500 * time.Millisecond)
	defer poll.Stop()
	deadline := time.Now().Add(d.cfg.DrainTimeout)
	for time.Now().Before(deadline) {
		n, err := d.es.CountIDs(cctx, ids)
		if err == nil && n >= len(ids) {
			break
		}
		<-poll.C
	}
	res, err := d.es.CheckAll(cctx, recs...)
	if err != nil {
		return res, err
	}
	total, _ := d.es.CountAll(cctx)
	fmt.Fprintf(d.out, "\nsynthetic streams: generated=%d stored=%d missing=%d duplicates=%d\n", res.Generated, res.Stored, res.Missing, res.Duplicated)
	fmt.Fprintf(d.out, "all documents in ES (host metrics of agent1 included): %d\n", total)
	if !res.OK() {
		fmt.Fprintln(d.out, res.String())
		return res, ErrContractBroken
	}
	fmt.Fprintln(d.out, "every generated metric is in Elasticsearch exactly once")
	return res, nil
}

// shutdown stops the generators, then the members in reverse start order:
// agents first (they flush), then the saver, relays, ES, Kafka.
func (d *Demo) shutdown() {
	for _, l := range d.loads {
		l.stop(5 * time.Second)
	}
	for i := len(d.children) - 1; i >= 0; i-- {
		d.children[i].stop(10 * time.Second)
	}
	os.Remove(StateFile(d.cfg.Dir))
}
