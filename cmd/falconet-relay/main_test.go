package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/falconet/falconet/agent/sender"
	"github.com/falconet/falconet/agent/sender/sendertest"
	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/metric"
	"github.com/falconet/falconet/relay/relaytest"
	"github.com/prometheus/client_golang/prometheus"
)

func TestFlags(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[kafka]\nbrokers = []\n"), 0o600)
	unknown := filepath.Join(dir, "unknown.toml")
	os.WriteFile(unknown, []byte("[kafka]\nbrokerz = [\"x:1\"]\n"), 0o600)
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not a certificate"), 0o600)
	badTLS := filepath.Join(dir, "badtls.toml")
	os.WriteFile(badTLS, []byte(fmt.Sprintf("[tls]\ncert = %q\nkey = %q\n", junk, junk)), 0o600)
	tests := []struct {
		args     []string
		wantCode int
		wantOut  string
	}{
		{[]string{"-version"}, 0, "falconet-relay "},
		{[]string{"-check-config", "-config", "../../packaging/config/relay.toml"}, 0, "is valid"},
		{[]string{"-check-config", "-config", bad}, 1, "relay.kafka.brokers: empty"},
		{[]string{"-check-config", "-config", unknown}, 1, "unknown key kafka.brokerz"},
		{[]string{"-check-config", "-config", filepath.Join(dir, "missing.toml")}, 1, "no such file"},
		{[]string{"-nonsense"}, 2, "flag provided but not defined"},
		{[]string{"-check-config", "-config", badTLS}, 1, "relay.tls.cert"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		code := run(context.Background(), tt.args, &out, &out)
		if code != tt.wantCode || !strings.Contains(out.String(), tt.wantOut) {
			t.Errorf("%v: exit %d, output %q; want exit %d with %q", tt.args, code, out.String(), tt.wantCode, tt.wantOut)
		}
	}
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestSIGKILLMidStream runs the built binary, kills it with SIGKILL while an
// agent streams through it, and checks the agent resends everything to a
// second relay.
func TestSIGKILLMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "falconet-relay")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	k := devstack.StartKafkaT(t, "falconet-metrics")
	protoAddr := freePort(t)
	conf := filepath.Join(t.TempDir(), "relay.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`[listen]
protocol = %q
legacy = ""
http = ""
[kafka]
brokers = [%q]
[discovery]
bind = ""
`, protoAddr, k.Addr())), 0o600)
	cmd := exec.Command(bin, "-config", conf)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			if !once && strings.Contains(sc.Text(), "connected to kafka") {
				close(ready)
				once = true
			}
		}
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("relay binary not connected to kafka in 20s")
	}
	backup := relaytest.Start(t, relaytest.Config(k.Addr()), nil)

	q := sendertest.NewMemQueue()
	want := map[string]bool{}
	for i := range 300 {
		ms := make([]metric.Metric, 100)
		for j := range ms {
			ms[j] = metric.Metric{Endpoint: "kill-host", Name: fmt.Sprintf("m%d", j), Value: float64(i), Timestamp: 1764000000 + int64(i), Step: 10}
			want[ms[j].DocID()] = true
		}
		q.Append(ms)
	}
	s, err := sender.New(sender.Config{AgentID: "a", MaxInFlight: 8, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond},
		q, sender.StaticRelays(protoAddr, backup.ProtocolAddr()), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	relaytest.WaitFor(t, 20*time.Second, "batches through the binary", func() bool { return q.Stats().Acked >= 30 })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	relaytest.WaitFor(t, 30*time.Second, "queue drained through the backup relay", q.Empty)
	got := map[string]int{}
	for _, r := range relaytest.ReadTopic(t, k.Addr(), "falconet-metrics", len(want), 20*time.Second) {
		var m metric.Metric
		if err := m.UnmarshalJSON(r.Value); err != nil {
			t.Fatal(err)
		}
		got[m.DocID()]++
	}
	for id := range want {
		if got[id] < 1 {
			t.Fatalf("metric %s missing after SIGKILL", id)
		}
	}
}

// TestSIGTERMDrains: SIGTERM makes the binary drain (agents' in-flight
// batches answered, agents moved on), then exit 0 quickly.
func TestSIGTERMDrains(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "falconet-relay")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	k := devstack.StartKafkaT(t, "falconet-metrics")
	protoAddr := freePort(t)
	conf := filepath.Join(t.TempDir(), "relay.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf("[listen]\nprotocol = %q\nlegacy = \"\"\nhttp = \"\"\n[kafka]\nbrokers = [%q]\n[discovery]\nbind = \"\"\n", protoAddr, k.Addr())), 0o600)
	cmd := exec.Command(bin, "-config", conf)
	var logs safeBuf
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	relaytest.WaitFor(t, 20*time.Second, "relay binary connected to kafka", func() bool { return strings.Contains(logs.String(), "connected to kafka") })
	backup := relaytest.Start(t, relaytest.Config(k.Addr()), nil)
	q := sendertest.NewMemQueue()
	want := map[string]bool{}
	for i := range 300 {
		ms := make([]metric.Metric, 100)
		for j := range ms {
			ms[j] = metric.Metric{Endpoint: "term-host", Name: fmt.Sprintf("m%d", j), Value: float64(i), Timestamp: 1764000000 + int64(i), Step: 10}
			want[ms[j].DocID()] = true
		}
		q.Append(ms)
	}
	reg := prometheus.NewRegistry()
	s, err := sender.New(sender.Config{AgentID: "a", MaxInFlight: 8, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond},
		q, sender.StaticRelays(protoAddr, backup.ProtocolAddr()), nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	relaytest.WaitFor(t, 20*time.Second, "batches through the binary", func() bool { return q.Stats().Acked >= 30 })
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v, want status 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("relay did not exit within 30s of SIGTERM")
	}
	t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(logs.String(), "msg=drained") {
		t.Errorf("no drain in the log:\n%s", logs.String())
	}
	relaytest.WaitFor(t, 30*time.Second, "queue drained through the backup relay", q.Empty)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "falconet_agent_sender_batches_nacked_total" {
			if v := mf.Metric[0].GetCounter().GetValue(); v != 0 {
				t.Errorf("%v in-flight batches nacked across a SIGTERM drain, want 0", v)
			}
		}
	}
	got := map[string]int{}
	for _, r := range relaytest.ReadTopic(t, k.Addr(), "falconet-metrics", len(want), 20*time.Second) {
		var m metric.Metric
		if err := m.UnmarshalJSON(r.Value); err != nil {
			t.Fatal(err)
		}
		got[m.DocID()]++
	}
	for id := range want {
		if got[id] != 1 {
			t.Fatalf("metric %s stored %d times across a SIGTERM drain, want 1", id, got[id])
		}
	}
}

type safeBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
