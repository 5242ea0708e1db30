package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/metric"
	"github.com/falconet/falconet/relay/relaytest"
)

// runningAgent is a daemon Main started in-process.
type runningAgent struct {
	m      *Main
	cancel context.CancelFunc
	done   chan error
	base   string
	stderr *bytes.Buffer
}

func startAgent(t *testing.T, cfgPath string) *runningAgent {
	t.Helper()
	a := &runningAgent{stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	a.m = NewMain(io.Discard, a.stderr)
	if err := a.m.ParseFlags([]string{"-config", cfgPath}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func() { a.done <- a.m.Run(ctx) }()
	select {
	case <-a.m.Ready():
	case err := <-a.done:
		t.Fatalf("agent ended early: %v\n%s", err, a.stderr)
	case <-time.After(20 * time.Second):
		t.Fatal("agent not ready after 20 s")
	}
	a.base = "http://" + a.m.HTTPAddr()
	return a
}

func (a *runningAgent) stop(t *testing.T) {
	t.Helper()
	a.cancel()
	select {
	case err := <-a.done:
		if err != nil {
			t.Errorf("agent Run: %v\n%s", err, a.stderr)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("agent did not stop within 5 s\n%s", a.stderr)
	}
	_ = a.m.Close()
}

// scrape returns the value of an unlabelled sample on /metrics, or -1.
func scrape(t *testing.T, base, name string) float64 {
	t.Helper()
	_, body := get(t, base+"/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return -1
}

// pushN pushes n distinct metrics in Open-Falcon form, in requests of 50.
func pushN(t *testing.T, base string, from, n int) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for start := from; start < from+n; start += 50 {
		var items []string
		for i := start; i < min(start+50, from+n); i++ {
			ts := int64(1_700_000_000 + i)
			items = append(items, fmt.Sprintf(`{"endpoint":"e2e","metric":"app.seq","value":%d,"step":10,"counterType":"GAUGE","tags":"run=e2e","timestamp":%d}`, i, ts))
			m := metric.Metric{Endpoint: "e2e", Name: "app.seq", Timestamp: ts, Tags: map[string]string{"run": "e2e"}}
			ids[m.DocID()] = true
		}
		resp, err := http.Post(base+"/v1/push", "application/json", strings.NewReader("["+strings.Join(items, ",")+"]"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("push: %d %s", resp.StatusCode, b)
		}
	}
	return ids
}

// TestEndToEndThroughRelay: metrics pushed while no relay is reachable are
// kept on disk across an agent restart and delivered to Kafka, each once,
// when the relay comes up; the buffer is then empty.
func TestEndToEndThroughRelay(t *testing.T) {
	const topic = "falconet-metrics"
	const n = 300
	k := devstack.StartKafkaT(t, topic)
	relayAddr := freeAddr(t)
	dir := t.TempDir()
	cfg := writeFile(t, "agent.toml", fmt.Sprintf(`hostname = "e2e-host"
interval = "1s"
jitter = "0s"
[http]
listen = "127.0.0.1:0"
[buffer]
path = %q
[relay]
addresses = [%q]
[collectors]
cpu = false
load = false
memory = false
filesystem = false
diskio = false
net = false
processes = false
uptime = false
`, filepath.Join(dir, "buffer.db"), relayAddr), 0o644)

	// Phase 1: no relay. Pushes are answered 200: they are on disk.
	a := startAgent(t, cfg)
	want := pushN(t, a.base, 0, n)
	if got := scrape(t, a.base, "falconet_buffer_metrics"); got != n {
		t.Fatalf("buffer holds %v metrics, want %d", got, n)
	}
	a.stop(t)

	// Phase 2: the relay is up; a restarted agent delivers the backlog.
	rcfg := relaytest.Config(k.Addr())
	rcfg.Listen.Protocol = relayAddr
	relaytest.Start(t, rcfg, slog.New(slog.DiscardHandler))
	a = startAgent(t, cfg)
	defer a.stop(t)
	recs := relaytest.ReadTopic(t, k.Addr(), topic, n, 30*time.Second)
	seen := map[string]int{}
	for _, r := range recs {
		var m metric.Metric
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("record %q: %v", r.Value, err)
		}
		seen[m.DocID()]++
	}
	for id := range want {
		if seen[id] == 0 {
			t.Errorf("metric %s missing from Kafka", id)
		}
	}
	if len(recs) != n {
		// Replays after a lost ack are allowed (ids dedupe them in ES),
		// but this run had no fault: expect each exactly once.
		t.Errorf("Kafka holds %d records, want %d", len(recs), n)
	}
	relaytest.WaitFor(t, 10*time.Second, "buffer drained after acks", func() bool {
		return scrape(t, a.base, "falconet_buffer_metrics") == 0
	})
}

// TestEndToEndMutualTLSAndToken: [relay.tls] and [relay] token reach the
// sender: a relay requiring a client certificate and a token gets the
// metrics; with a wrong token nothing is delivered and the buffer keeps them.
func TestEndToEndMutualTLSAndToken(t *testing.T) {
	const topic = "falconet-metrics"
	k := devstack.StartKafkaT(t, topic)
	dir := t.TempDir()
	ca := relaytest.NewCA(t, "falconet-test-ca")
	_, serverCert, serverKey := ca.Issue(t, dir, "relay", "127.0.0.1")
	_, clientCert, clientKey := ca.Issue(t, dir, "agent")
	caFile := ca.WriteCA(t, dir)

	rcfg := relaytest.Config(k.Addr())
	rcfg.TLS.Cert, rcfg.TLS.Key, rcfg.TLS.ClientCA = serverCert, serverKey, caFile
	rcfg.Auth.Tokens = []string{"s3cret"}
	r := relaytest.Start(t, rcfg, slog.New(slog.DiscardHandler))

	agentCfg := func(name, token string) string {
		return writeFile(t, name, fmt.Sprintf(`hostname = "tls-host"
[http]
listen = "127.0.0.1:0"
[buffer]
path = %q
[relay]
addresses = [%q]
token = %q
[relay.tls]
enabled = true
ca = %q
cert = %q
key = %q
[collectors]
cpu = false
load = false
memory = false
filesystem = false
diskio = false
net = false
processes = false
uptime = false
`, filepath.Join(dir, name+".db"), r.ProtocolAddr(), token, caFile, clientCert, clientKey), 0o644)
	}

	bad := startAgent(t, agentCfg("bad.toml", "wrong"))
	pushN(t, bad.base, 0, 20)
	good := startAgent(t, agentCfg("good.toml", "s3cret"))
	want := pushN(t, good.base, 1000, 50)
	recs := relaytest.ReadTopic(t, k.Addr(), topic, 50, 30*time.Second)
	got := map[string]bool{}
	for _, rec := range recs {
		var m metric.Metric
		if err := json.Unmarshal(rec.Value, &m); err != nil {
			t.Fatal(err)
		}
		got[m.DocID()] = true
	}
	if len(recs) != 50 {
		t.Errorf("Kafka holds %d records, want the good agent's 50 only", len(recs))
	}
	for id := range want {
		if !got[id] {
			t.Errorf("metric %s of the good agent missing", id)
		}
	}
	if n := scrape(t, bad.base, "falconet_buffer_metrics"); n != 20 {
		t.Errorf("agent with the wrong token buffers %v metrics, want all 20 kept", n)
	}
	good.stop(t)
	bad.stop(t)
}

// TestPushDurableAcrossKill9: every push answered 200 survives SIGKILL of the
// agent process right after the answer, and reaches Kafka after a restart.
func TestPushDurableAcrossKill9(t *testing.T) {
	const topic = "falconet-metrics"
	const n = 200
	k := devstack.StartKafkaT(t, topic)
	relayAddr := freeAddr(t)
	httpAddr := freeAddr(t)
	dir := t.TempDir()
	cfg := writeFile(t, "agent.toml", fmt.Sprintf(`hostname = "kill-host"
[http]
listen = %q
[buffer]
path = %q
[relay]
addresses = [%q]
[collectors]
cpu = false
load = false
memory = false
filesystem = false
diskio = false
net = false
processes = false
uptime = false
`, httpAddr, filepath.Join(dir, "buffer.db"), relayAddr), 0o644)

	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "FALCONET_AGENT_TEST_MAIN=1", "FALCONET_AGENT_TEST_ARGS=-config "+cfg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	relaytest.WaitFor(t, 20*time.Second, "agent serving", func() bool {
		resp, err := http.Get("http://" + httpAddr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	want := pushN(t, "http://"+httpAddr, 5000, n)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	rcfg := relaytest.Config(k.Addr())
	rcfg.Listen.Protocol = relayAddr
	relaytest.Start(t, rcfg, slog.New(slog.DiscardHandler))
	a := startAgent(t, cfg)
	defer a.stop(t)
	recs := relaytest.ReadTopic(t, k.Addr(), topic, n, 30*time.Second)
	got := map[string]bool{}
	for _, r := range recs {
		var m metric.Metric
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatal(err)
		}
		got[m.DocID()] = true
	}
	missing := 0
	for id := range want {
		if !got[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d metrics answered 200 before SIGKILL are missing from Kafka\n%s", missing, n, stderr.String())
	}
}
