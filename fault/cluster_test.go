//go:build fault

package fault

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/falconet/falconet/fault/check"
	"github.com/falconet/falconet/fault/load"
	"github.com/falconet/falconet/fault/netns"
)

// Ports inside each namespace (DESIGN.md's defaults).
const (
	kafkaPort   = 9092
	esPort      = 9200
	saverPort   = 6061
	relayPort   = 8433
	legacyPort  = 4444
	relayHTTP   = 6060
	agentHTTP   = 1988
	loadSeries  = 10
	loadRate    = 10.0 // pushes per second per agent: 100 metrics/s per agent
	pollEvery   = 200 * time.Millisecond
	warmTimeout = 90 * time.Second
	drainLimit  = 180 * time.Second
)

// bins holds the binaries built once by TestMain.
var bins struct {
	dir   string
	err   map[string]error
	built bool
}

var binaryNames = []string{"falconet", "falconet-agent", "falconet-relay", "falconet-saver"}

func buildBinaries() {
	bins.err = map[string]error{}
	dir, err := os.MkdirTemp("", "falconet-fault-bin-")
	if err != nil {
		for _, b := range binaryNames {
			bins.err[b] = err
		}
		return
	}
	bins.dir = dir
	for _, b := range binaryNames {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b), "github.com/falconet/falconet/cmd/"+b)
		if out, err := cmd.CombinedOutput(); err != nil {
			bins.err[b] = fmt.Errorf("go build %s: %v: %s", b, err, strings.TrimSpace(string(out)))
		}
	}
	bins.built = true
}

func bin(t *testing.T, name string) string {
	t.Helper()
	if err := bins.err[name]; err != nil {
		t.Fatalf("component %s cannot be built, scenario cannot run: %v", name, err)
	}
	return filepath.Join(bins.dir, name)
}

// report collects one row per scenario for the table written by TestMain.
var report struct {
	mu   sync.Mutex
	rows []row
}

type row struct {
	Scenario   string
	Fault      string
	Result     check.Result
	FirstLive  time.Duration // heal -> first metric accepted after heal is in ES
	Drain      time.Duration // heal -> every metric accepted before heal is in ES
	Dropped    int64         // buffer drops reported by the agents
	Wall       time.Duration
	Pass       bool
	Note       string
	firstLiveM bool
	drainM     bool
}

func addRow(r row) {
	report.mu.Lock()
	defer report.mu.Unlock()
	report.rows = append(report.rows, r)
}

func fmtDur(d time.Duration, measured bool) string {
	if !measured {
		return "n/a"
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func reportTable() string {
	report.mu.Lock()
	defer report.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "| scenario | fault | generated | stored | missing | duplicated | first live after heal | backlog drained after heal | dropped (counter) | wall | result |\n")
	fmt.Fprintf(&b, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range report.rows {
		res := "PASS"
		if !r.Pass {
			res = "FAIL"
		}
		if r.Note != "" {
			res += " (" + r.Note + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %s | %s | %d | %.0f s | %s |\n", r.Scenario, r.Fault,
			r.Result.Generated, r.Result.Stored, r.Result.Missing, r.Result.Duplicated,
			fmtDur(r.FirstLive, r.firstLiveM), fmtDur(r.Drain, r.drainM), r.Dropped, r.Wall.Seconds(), res)
	}
	return b.String()
}

func TestMain(m *testing.M) {
	if err := netns.Available(); err != nil {
		fmt.Fprintf(os.Stderr, "fault suite cannot run: %v\n", err)
		os.Exit(1)
	}
	netns.Sweep()
	// An interrupted run (Ctrl-C, a CI timeout's SIGTERM) still removes its
	// namespaces and kills its daemons.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "fault suite: %v: removing namespaces\n", s)
		netns.CloseAll()
		if bins.dir != "" {
			os.RemoveAll(bins.dir)
		}
		os.Exit(1)
	}()
	buildBinaries()
	code := m.Run()
	if len(report.rows) > 0 {
		table := reportTable()
		fmt.Printf("\nfault suite report (%s):\n%s", time.Now().UTC().Format(time.RFC3339), table)
		path := os.Getenv("FALCONET_FAULT_REPORT")
		if path == "" {
			path = filepath.Join(os.TempDir(), "falconet-fault-report.md")
		}
		hdr := fmt.Sprintf("Fault suite, %s, %d scenarios, each agent pushing %d series x %.0f pushes/s.\n\n",
			time.Now().UTC().Format("2006-01-02 15:04 MST"), len(report.rows), loadSeries, loadRate)
		if err := os.WriteFile(path, []byte(hdr+table), 0o644); err == nil {
			fmt.Printf("report written to %s\n", path)
		}
	}
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

// opts shapes a cluster.
type opts struct {
	agents         int
	bufferMaxBytes string // agent buffer cap ("" = default)
	kafkaSync      bool
	series         int     // per push (default loadSeries)
	rate           float64 // pushes per second (default loadRate)
	// span is how long the generators may run. Push seq is stamped
	// start+seq, so a stream runs ahead of the clock by rate-1 seconds per
	// second; start lies far enough back that the newest push is still in
	// the past after span (the saver refuses metrics from the future).
	// Default 6 minutes.
	span time.Duration
	// beforeAgents runs once the relays listen and before the agents start
	// (to put a delaying proxy between them: set c.agentRelays).
	beforeAgents func(c *cluster)
}

type cluster struct {
	t      *testing.T
	net    *netns.Net
	dir    string
	core   *netns.Node
	relayN [2]*netns.Node
	agentN []*netns.Node

	kafka, es, saver *netns.Proc
	relays           [2]*netns.Proc
	agents           []*netns.Proc
	loads            []*netns.Proc
	loadLogs         []string
	ES               *check.ES
	started          time.Time
	round            int // startLoads calls, naming each round's streams
	o                opts
	agentRelays      []string // the agents' relay.addresses; default the two relays
}

func logDir(t *testing.T) string {
	base := os.Getenv("FALCONET_FAULT_LOGS")
	if base == "" {
		base = filepath.Join(os.TempDir(), "falconet-fault-logs")
	}
	d := filepath.Join(base, strings.ReplaceAll(t.Name(), "/", "_"))
	os.RemoveAll(d)
	return d
}

func newCluster(t *testing.T, o opts) *cluster {
	t.Helper()
	if o.agents == 0 {
		o.agents = 2
	}
	if o.series == 0 {
		o.series = loadSeries
	}
	if o.rate == 0 {
		o.rate = loadRate
	}
	logs := logDir(t)
	c := &cluster{t: t, net: netns.New(t, logs), dir: t.TempDir(), started: time.Now(), o: o}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs kept in %s", logs)
		}
	})
	var err error
	must := func(nd *netns.Node, err error) *netns.Node {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return nd
	}
	c.core = must(c.net.AddNode("core"))
	c.relayN[0] = must(c.net.AddNode("relay1"))
	c.relayN[1] = must(c.net.AddNode("relay2"))
	for i := range o.agents {
		c.agentN = append(c.agentN, must(c.net.AddNode(fmt.Sprintf("agent%d", i+1))))
	}
	falconet := bin(t, "falconet")
	relayBin := bin(t, "falconet-relay")
	saverBin := bin(t, "falconet-saver")
	agentBin := bin(t, "falconet-agent")

	// Kafka, ES, the saver in the core namespace.
	kargs := []string{falconet, "dev-kafka", "-listen", c.core.Addr(kafkaPort), "-data", filepath.Join(c.dir, "kafka")}
	if o.kafkaSync {
		kargs = append(kargs, "-sync")
	}
	c.kafka = c.start(c.core, "kafka", kargs...)
	c.es = c.start(c.core, "es", falconet, "dev-es", "-listen", c.core.Addr(esPort), "-data", filepath.Join(c.dir, "es"))
	c.waitTCP(c.core.Addr(kafkaPort), c.kafka)
	c.waitTCP(c.core.Addr(esPort), c.es)
	c.ES = &check.ES{URL: "http://" + c.core.Addr(esPort)}

	saverCfg := c.writeFile("saver.toml", fmt.Sprintf(`
[http]
listen = %q
[kafka]
brokers = [%q]
topic = "falconet-metrics"
group = "falconet-saver"
[elasticsearch]
urls = ["http://%s"]
retention_days = 30
# The template's default is 30s; the suite measures delivery, not refresh.
refresh_interval = "1s"
`, c.core.Addr(saverPort), c.core.Addr(kafkaPort), c.core.Addr(esPort)))
	c.saver = c.start(c.core, "saver", saverBin, "-config", saverCfg)

	for i, nd := range c.relayN {
		cfg := c.writeFile(fmt.Sprintf("relay%d.toml", i+1), fmt.Sprintf(`
[listen]
protocol = %q
legacy = %q
http = %q
[kafka]
brokers = [%q]
topic = "falconet-metrics"
`, nd.Addr(relayPort), nd.Addr(legacyPort), nd.Addr(relayHTTP), c.core.Addr(kafkaPort)))
		c.relays[i] = c.start(nd, fmt.Sprintf("relay%d", i+1), relayBin, "-config", cfg)
	}
	c.waitTCP(c.core.Addr(saverPort), c.saver)
	for i, nd := range c.relayN {
		c.waitTCP(nd.Addr(relayPort), c.relays[i])
	}

	c.agentRelays = []string{c.relayN[0].Addr(relayPort), c.relayN[1].Addr(relayPort)}
	if o.beforeAgents != nil {
		o.beforeAgents(c)
	}
	for i, nd := range c.agentN {
		maxBytes := ""
		if o.bufferMaxBytes != "" {
			maxBytes = fmt.Sprintf("max_bytes = %q\n", o.bufferMaxBytes)
		}
		cfg := c.writeFile(fmt.Sprintf("agent%d.toml", i+1), fmt.Sprintf(`
hostname = %q
[http]
listen = "0.0.0.0:%d"
[buffer]
path = %q
%s
[relay]
addresses = %s
[collectors]
cpu = false
load = false
memory = false
filesystem = false
diskio = false
net = false
processes = false
uptime = false
`, nd.Name, agentHTTP, filepath.Join(c.dir, nd.Name, "buffer.db"), maxBytes, tomlStrings(c.agentRelays)))
		if err = os.MkdirAll(filepath.Join(c.dir, nd.Name), 0o755); err != nil {
			t.Fatal(err)
		}
		c.agents = append(c.agents, c.start(nd, nd.Name, agentBin, "-config", cfg))
	}
	for i, nd := range c.agentN {
		c.waitTCP(nd.Addr(agentHTTP), c.agents[i])
	}
	return c
}

func tomlStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func (c *cluster) writeFile(name, content string) string {
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return p
}

func (c *cluster) start(nd *netns.Node, name string, argv ...string) *netns.Proc {
	c.t.Helper()
	p, err := nd.Start(name, nil, argv...)
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

func (c *cluster) waitTCP(addr string, p *netns.Proc) {
	c.t.Helper()
	err := netns.WaitFor(30*time.Second, 50*time.Millisecond, func() error {
		if !p.Running() {
			return fmt.Errorf("%s exited: %v", p.Name, p.Err())
		}
		return netns.WaitTCP(addr, 0)
	})
	if err != nil {
		c.t.Fatalf("%s not listening on %s: %v\n--- %s log tail ---\n%s", p.Name, addr, err, p.Name, p.Tail(3000))
	}
}

// startLoads starts one generator per agent, inside the agent's namespace,
// pushing to the agent's loopback push API.
func (c *cluster) startLoads() {
	c.t.Helper()
	span := c.o.span
	if span <= 0 {
		span = 6 * time.Minute
	}
	rate := c.o.rate
	if rate <= 0 {
		rate = loadRate
	}
	back := max(2*time.Hour, time.Duration(rate*span.Seconds())*time.Second)
	start := time.Now().Add(-back).Unix()
	c.round++
	for i, nd := range c.agentN {
		logPath := filepath.Join(c.dir, fmt.Sprintf("load%d-r%d.log", i+1, c.round))
		p := c.start(nd, fmt.Sprintf("load%d-r%d", i+1, c.round), bin(c.t, "falconet"), "load",
			"-url", fmt.Sprintf("http://127.0.0.1:%d/v1/push", agentHTTP),
			"-endpoint", c.endpoint(nd), "-series", strconv.Itoa(c.o.series),
			"-rate", strconv.FormatFloat(c.o.rate, 'f', -1, 64), "-start", strconv.FormatInt(start, 10),
			"-log", logPath)
		c.loads = append(c.loads, p)
		c.loadLogs = append(c.loadLogs, logPath)
	}
}

// endpoint is the current round's stream name of an agent.
func (c *cluster) endpoint(nd *netns.Node) string {
	return fmt.Sprintf("fault-%s-r%d", nd.Name, c.round)
}

// stopLoads ends the generators cleanly and returns their records.
func (c *cluster) stopLoads() []*load.Record {
	c.t.Helper()
	for _, p := range c.loads {
		if err := p.Stop(15 * time.Second); err != nil {
			c.t.Errorf("load generator %s: %v\n%s", p.Name, err, p.Tail(2000))
		}
	}
	return c.records()
}

func (c *cluster) records() []*load.Record {
	c.t.Helper()
	var recs []*load.Record
	for _, path := range c.loadLogs {
		r, err := load.ReadLog(path)
		if err != nil {
			c.t.Fatalf("load log %s: %v", path, err)
		}
		recs = append(recs, r)
	}
	return recs
}

// waitWarm waits until every agent's stream has reached ES.
func (c *cluster) waitWarm() {
	c.t.Helper()
	ctx := context.Background()
	for _, nd := range c.agentN {
		ep := c.endpoint(nd)
		err := netns.WaitFor(warmTimeout, pollEvery, func() error {
			n, err := c.ES.CountEndpoint(ctx, ep)
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("no document of %s yet", ep)
			}
			return nil
		})
		if err != nil {
			c.t.Fatalf("pipeline never delivered %s: %v\n%s", ep, err, c.tails())
		}
	}
}

func (c *cluster) tails() string {
	var b strings.Builder
	all := []*netns.Proc{c.kafka, c.es, c.saver, c.relays[0], c.relays[1]}
	all = append(all, c.agents...)
	all = append(all, c.loads...)
	for _, p := range all {
		if p == nil {
			continue
		}
		fmt.Fprintf(&b, "--- %s (running=%v) ---\n%s\n", p.Name, p.Running(), p.Tail(1500))
	}
	return b.String()
}

// measureHeal measures, from heal, the time until the first metric accepted
// after heal is in ES (live) and until every metric accepted before heal is
// (backlog drained). It returns when both are known or the limit passes.
func (c *cluster) measureHeal(heal time.Time, limit time.Duration) (firstLive, drain time.Duration, liveOK, drainOK bool) {
	return c.measure(heal, limit, true, 0)
}

// measureDrainOnly measures only the backlog, counting it drained when all
// but allowMissing of it arrived (the buffer dropped that many); for
// scenarios that stop generating before the heal.
func (c *cluster) measureDrainOnly(heal time.Time, limit time.Duration, allowMissing int) (drain time.Duration, drainOK bool) {
	_, drain, _, drainOK = c.measure(heal, limit, false, allowMissing)
	return drain, drainOK
}

func (c *cluster) measure(heal time.Time, limit time.Duration, wantLive bool, allowMissing int) (firstLive, drain time.Duration, liveOK, drainOK bool) {
	c.t.Helper()
	ctx := context.Background()
	liveDone := !wantLive
	deadline := heal.Add(limit)
	var backlog []string
	for _, r := range c.records() {
		var seqs []int64
		for seq, at := range r.Accepted {
			if at.Before(heal) {
				seqs = append(seqs, seq)
			}
		}
		backlog = append(backlog, check.IDs(r.Stream, seqs)...)
	}
	for time.Now().Before(deadline) && !(liveDone && drainOK) {
		if !liveDone {
			var live []string
			for _, r := range c.records() {
				var seqs []int64
				for seq, at := range r.Accepted {
					if !at.Before(heal) {
						seqs = append(seqs, seq)
					}
				}
				slices.Sort(seqs)
				if len(seqs) > 5 {
					seqs = seqs[:5]
				}
				live = append(live, check.IDs(r.Stream, seqs)...)
			}
			if len(live) > 0 {
				if n, err := c.ES.CountIDs(ctx, live); err == nil && n > 0 {
					firstLive, liveOK, liveDone = time.Since(heal), true, true
				}
			}
		}
		if !drainOK {
			if n, err := c.ES.CountIDs(ctx, backlog); err == nil && n >= len(backlog)-allowMissing {
				drain, drainOK = time.Since(heal), true
			}
		}
		netns.Hold(pollEvery) // polling interval
	}
	return
}

// finish stops the generators, waits for every accepted metric to be in ES,
// checks the contract and records the report row.
func (c *cluster) finish(r row) check.Result {
	c.t.Helper()
	ctx := context.Background()
	recs := c.stopLoads()
	var ids []string
	for _, rec := range recs {
		var seqs []int64
		for seq := range rec.Accepted {
			seqs = append(seqs, seq)
		}
		ids = append(ids, check.IDs(rec.Stream, seqs)...)
	}
	want := len(ids)
	if r.Dropped > 0 {
		want -= int(r.Dropped)
	}
	err := netns.WaitFor(drainLimit, 500*time.Millisecond, func() error {
		n, err := c.ES.CountIDs(ctx, ids)
		if err != nil {
			return err
		}
		if n < want {
			return fmt.Errorf("%d of %d accepted metrics stored", n, want)
		}
		return nil
	})
	if err != nil {
		c.t.Errorf("not everything arrived: %v", err)
	}
	res, cerr := c.ES.CheckAll(ctx, recs...)
	if cerr != nil {
		c.t.Fatalf("check: %v", cerr)
	}
	r.Result = res
	r.Wall = time.Since(c.started)
	r.Pass = !c.t.Failed() && (res.OK() || r.Dropped > 0)
	if r.Dropped == 0 && !res.OK() {
		c.t.Errorf("delivery contract broken: %s", res)
	}
	if c.t.Failed() {
		r.Pass = false
		c.t.Logf("component logs:\n%s", c.tails())
	}
	c.t.Logf("%s: %s; first live %s, drained %s", r.Scenario, res, fmtDur(r.FirstLive, r.firstLiveM), fmtDur(r.Drain, r.drainM))
	addRow(r)
	return res
}

// seqsByPresence splits the pushes of rec accepted after since into those
// with at least one metric missing from ES and those fully stored.
func (c *cluster) seqsByPresence(rec *load.Record, since time.Time) (missing, stored []int64, err error) {
	var seqs []int64
	for seq, at := range rec.Accepted {
		if !at.Before(since) {
			seqs = append(seqs, seq)
		}
	}
	present, err := c.ES.Present(context.Background(), check.IDs(rec.Stream, seqs))
	if err != nil {
		return nil, nil, err
	}
	for _, seq := range seqs {
		all := true
		for _, id := range check.IDs(rec.Stream, []int64{seq}) {
			if !present[id] {
				all = false
			}
		}
		if all {
			stored = append(stored, seq)
		} else {
			missing = append(missing, seq)
		}
	}
	// Pushes accepted before since but missing count too (dropped while
	// waiting for an ack when the link went down).
	var before []int64
	for seq, at := range rec.Accepted {
		if at.Before(since) {
			before = append(before, seq)
		}
	}
	presentBefore, err := c.ES.Present(context.Background(), check.IDs(rec.Stream, before))
	if err != nil {
		return nil, nil, err
	}
	for _, seq := range before {
		for _, id := range check.IDs(rec.Stream, []int64{seq}) {
			if !presentBefore[id] {
				missing = append(missing, seq)
				break
			}
		}
	}
	return missing, stored, nil
}

func parseProm(r io.Reader, name string) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	found := false
	var sum float64
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("metric %s not exposed", name)
	}
	return sum, sc.Err()
}
