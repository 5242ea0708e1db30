package relay_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"net/rpc/jsonrpc"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/falconet/falconet/agent/sender"
	"github.com/falconet/falconet/agent/sender/sendertest"
	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/relay"
	"github.com/falconet/falconet/relay/relaytest"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestOpenFalconOnTLSPort: with [tls] set, falconet agents speak TLS and
// falcon-agents plain JSON-RPC on the same port (the first byte tells).
func TestOpenFalconOnTLSPort(t *testing.T) {
	k := devstack.StartKafkaT(t, topic)
	dir := t.TempDir()
	ca := relaytest.NewCA(t, "test-ca")
	_, certFile, keyFile := ca.Issue(t, dir, "relay", "127.0.0.1", "localhost")
	cfg := relaytest.Config(k.Addr())
	cfg.TLS = relay.TLSConfig{Cert: certFile, Key: keyFile}
	cfg.OpenFalcon.Enabled = true
	r := relaytest.Start(t, cfg, nil)
	q := sendertest.NewMemQueue()
	want := fillQueue(t, q, 0, 5, 10)
	startSender(t, sender.Config{TLS: &tls.Config{RootCAs: ca.Pool}}, q, r.ProtocolAddr())
	c, err := jsonrpc.Dial("tcp", r.ProtocolAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if resp, err := rpcCall(c, []*ofMetricValue{gauge("tls-of", "m", 1, 1764000000)}); err != nil || resp.Message != "ok" {
		t.Fatalf("rpc beside TLS agents: %+v, %v", resp, err)
	}
	relaytest.WaitFor(t, 20*time.Second, "TLS agent's queue drained", q.Empty)
	if recs := relaytest.ReadTopic(t, k.Addr(), topic, len(want)+1, 15*time.Second); len(recs) != len(want)+1 {
		t.Errorf("%d records, want %d", len(recs), len(want)+1)
	}
}

// TestOpenFalconShutdownAnswersCallsInFlight: on SIGTERM the relay stops
// reading calls but answers the ones it read once Kafka acked them, then
// closes.
func TestOpenFalconShutdownAnswersCallsInFlight(t *testing.T) {
	k := devstack.StartKafkaT(t, topic)
	var mu sync.Mutex
	holding := true
	release := make(chan struct{})
	k.Cluster().ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		k.Cluster().KeepControl()
		mu.Lock()
		h := holding
		mu.Unlock()
		if h {
			k.Cluster().SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	cfg := relaytest.Config(k.Addr())
	cfg.OpenFalcon.Enabled = true
	r := relaytest.Start(t, cfg, nil)
	c, err := jsonrpc.Dial("tcp", r.ProtocolAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var resp ofTransferResponse
	items := []*ofMetricValue{gauge("sd", "a", 1, 1764000000), gauge("sd", "b", 2, 1764000000), gauge("sd", "c", 3, 1764000000)}
	call := c.Go("Transfer.Update", items, &resp, make(chan *rpc.Call, 1))
	relaytest.WaitFor(t, 10*time.Second, "call handed to the producer", func() bool {
		return strings.Contains(metricsText(t, r), `falconet_relay_metrics_received_total{source="openfalcon_rpc"} 3`)
	})
	select {
	case <-call.Done:
		t.Fatalf("answered %+v, %v before Kafka acked", resp, call.Error)
	default:
	}
	stopped := make(chan struct{})
	go func() { r.Stop(); close(stopped) }()
	relaytest.WaitFor(t, 10*time.Second, "relay draining", func() bool { return r.Health() != nil })
	mu.Lock()
	holding = false
	mu.Unlock()
	close(release)
	select {
	case <-call.Done:
	case <-time.After(15 * time.Second):
		t.Fatal("call read before shutdown never answered")
	}
	if call.Error != nil || resp.Message != "ok" || resp.Total != 3 {
		t.Fatalf("call in flight at shutdown: %+v, %v; want ok", resp, call.Error)
	}
	select {
	case <-stopped:
	case <-time.After(15 * time.Second):
		t.Fatal("relay did not stop after answering")
	}
	if _, err := rpcCall(c, items); err == nil {
		t.Error("call after shutdown succeeded, want the connection closed")
	}
	counts, _ := recordsBySeries(t, k.Addr(), 3)
	if counts["sd/a/"] != 1 || counts["sd/b/"] != 1 || counts["sd/c/"] != 1 || len(counts) != 3 {
		t.Errorf("series in Kafka %v, want a, b, c once each", counts)
	}
}

// TestOpenFalconIdleAndConnectionLimit: a silent JSON-RPC client is closed
// after open_falcon.idle_timeout, and JSON-RPC connections count against
// limits.max_connections (the refused one is told why).
func TestOpenFalconIdleAndConnectionLimit(t *testing.T) {
	_, r, logs := startOpenFalcon(t, func(c *relay.Config) {
		_ = c.OpenFalcon.IdleTimeout.UnmarshalText([]byte("500ms"))
		c.Limits.MaxConnections = 1
	})
	call := `{"method":"Transfer.Update","params":[[{"endpoint":"idle","metric":"m","value":1,"step":60,"counterType":"GAUGE","tags":"","timestamp":1764000000}]],"id":1}` + "\n"
	first, err := net.Dial("tcp", r.ProtocolAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	io.WriteString(first, call)
	br := bufio.NewReader(first)
	if line := readLine(t, first, br); !strings.Contains(line, `"Message":"ok"`) {
		t.Fatalf("first connection: %q", line)
	}
	second, err := net.Dial("tcp", r.ProtocolAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	io.WriteString(second, call)
	_ = second.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, _ := io.ReadAll(second); !strings.Contains(string(b), `"error":"falconet relay: busy (connection limit) or shutting down"`) {
		t.Errorf("second connection over the limit: got %q, want the busy error", b)
	}
	// The first one is closed once silent for idle_timeout.
	_ = first.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(br); err != nil || len(b) != 0 {
		t.Errorf("silent connection: got %q, %v; want it closed", b, err)
	}
	relaytest.WaitFor(t, 5*time.Second, "refusal logged", func() bool {
		return strings.Contains(logs.String(), "connection limit reached")
	})
	wantMetrics(t, r, `falconet_relay_unauthenticated_refused_total{input="rpc",reason="limit"} 1`)
	// The slot is free again.
	third, err := jsonrpc.Dial("tcp", r.ProtocolAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	relaytest.WaitFor(t, 5*time.Second, "connection slot freed", func() bool {
		return strings.Contains(metricsText(t, r), "falconet_relay_openfalcon_connections 0")
	})
	if resp, err := rpcCall(third, []*ofMetricValue{gauge("idle", "again", 1, 1764000000)}); err != nil || resp.Message != "ok" {
		t.Errorf("after the idle close: %+v, %v", resp, err)
	}
}

// TestOpenFalconClientNotReadingIsClosed: a client that keeps sending calls
// and never reads the answers is no longer read once its answers pile up,
// and is closed after limits.write_timeout.
func TestOpenFalconClientNotReadingIsClosed(t *testing.T) {
	_, r, logs := startOpenFalcon(t, func(c *relay.Config) { _ = c.Limits.WriteTimeout.UnmarshalText([]byte("500ms")) })
	c, err := net.Dial("tcp", r.ProtocolAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var pings strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&pings, `{"method":"Transfer.Ping","params":[null],"id":%d}`+"\n", i)
	}
	werr := make(chan error, 1)
	go func() {
		for {
			_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.WriteString(c, pings.String()); err != nil {
				werr <- err
				return
			}
		}
	}()
	select {
	case err := <-werr:
		t.Logf("client's write failed as the relay closed: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("relay still reading a client that never reads its answers")
	}
	relaytest.WaitFor(t, 5*time.Second, "close logged", func() bool {
		return strings.Contains(logs.String(), "cannot write to Open-Falcon client; closing")
	})
	relaytest.WaitFor(t, 5*time.Second, "connection released", func() bool {
		return strings.Contains(metricsText(t, r), "falconet_relay_openfalcon_connections 0")
	})
}

// TestOpenFalconBackpressure: with Kafka holding every produce, pipelined
// calls fill the in-flight budget; the relay stops reading, reports
// backpressure, answers nothing, and once Kafka answers every call is "ok"
// and every item is in Kafka once.
func TestOpenFalconBackpressure(t *testing.T) {
	k := devstack.StartKafkaT(t, topic)
	var mu sync.Mutex
	holding := true
	release := make(chan struct{})
	k.Cluster().ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		k.Cluster().KeepControl()
		mu.Lock()
		h := holding
		mu.Unlock()
		if h {
			k.Cluster().SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	cfg := relaytest.Config(k.Addr())
	cfg.OpenFalcon.Enabled = true
	cfg.Limits.MaxFrame = 64 << 10
	cfg.Limits.ConnInflightBytes = 64 << 10
	cfg.Limits.MaxInflightBytes = 128 << 10
	_ = cfg.Kafka.Timeout.UnmarshalText([]byte("20s"))
	r := relaytest.Start(t, cfg, nil)
	const conns, calls, per = 3, 20, 50
	var wg sync.WaitGroup
	results := make(chan error, conns*calls)
	for ci := range conns {
		c, err := jsonrpc.Dial("tcp", r.ProtocolAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for i := range calls {
			var items []*ofMetricValue
			for j := range per {
				items = append(items, gauge("bp", fmt.Sprintf("m.%d.%d.%d", ci, i, j), j, 1764000000))
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				var resp ofTransferResponse
				err := c.Call("Transfer.Update", items, &resp)
				if err == nil && (resp.Message != "ok" || resp.Total != per) {
					err = fmt.Errorf("answer %+v", resp)
				}
				results <- err
			}()
		}
	}
	relaytest.WaitFor(t, 20*time.Second, "relay reports backpressure", func() bool {
		err := r.Health()
		return err != nil && strings.Contains(err.Error(), "backpressure")
	})
	if n := len(results); n != 0 {
		t.Fatalf("%d calls answered while Kafka held every produce", n)
	}
	mu.Lock()
	holding = false
	mu.Unlock()
	close(release)
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Fatalf("call after release: %v", err)
		}
	}
	counts, _ := recordsBySeries(t, k.Addr(), conns*calls*per)
	if len(counts) != conns*calls*per {
		t.Errorf("%d series in Kafka, want %d", len(counts), conns*calls*per)
	}
	for s, n := range counts {
		if n != 1 {
			t.Fatalf("%s in Kafka %d times, want once", s, n)
		}
	}
}
