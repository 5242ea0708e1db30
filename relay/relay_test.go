package relay_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/falconet/falconet/agent/sender"
	"github.com/falconet/falconet/agent/sender/sendertest"
	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/metric"
	"github.com/falconet/falconet/relay"
	"github.com/falconet/falconet/relay/relaytest"
	"github.com/falconet/falconet/wire"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// logBuf collects log lines for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestExampleConfigHasEveryKeyWithDefaults(t *testing.T) {
	const path = "../packaging/config/relay.toml"
	got, err := relay.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Auth.Tokens) == 0 && len(got.Discovery.Seeds) == 0 {
		got.Auth.Tokens, got.Discovery.Seeds = nil, nil // [] in the file, nil in the defaults
	}
	if want := relay.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("%s differs from DefaultConfig:\ngot  %+v\nwant %+v", path, got, want)
	}
	var file, defaults map[string]any
	if _, err := toml.DecodeFile(path, &file); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(relay.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	if _, err := toml.Decode(buf.String(), &defaults); err != nil {
		t.Fatal(err)
	}
	var keys func(prefix string, m map[string]any) []string
	keys = func(prefix string, m map[string]any) []string {
		var out []string
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				out = append(out, keys(prefix+k+".", sub)...)
			} else {
				out = append(out, prefix+k)
			}
		}
		return out
	}
	have := map[string]bool{}
	for _, k := range keys("", file) {
		have[k] = true
	}
	for _, k := range keys("", defaults) {
		if !have[k] {
			t.Errorf("key %s missing from %s", k, path)
		}
	}
}

func TestValidateNamesKey(t *testing.T) {
	tests := []struct {
		key    string
		mutate func(c *relay.Config)
	}{
		{"relay.listen.protocol", func(c *relay.Config) { c.Listen.Protocol = "" }},
		{"relay.listen.legacy", func(c *relay.Config) { c.Listen.Legacy = "nohostport" }},
		{"relay.kafka.brokers", func(c *relay.Config) { c.Kafka.Brokers = nil }},
		{"relay.kafka.brokers[1]", func(c *relay.Config) { c.Kafka.Brokers = []string{"a:1", "b"} }},
		{"relay.kafka.topic", func(c *relay.Config) { c.Kafka.Topic = "" }},
		{"relay.kafka.version", func(c *relay.Config) { c.Kafka.Version = "banana" }},
		{"relay.kafka.compression", func(c *relay.Config) { c.Kafka.Compression = "brotli" }},
		{"relay.kafka.compression", func(c *relay.Config) { c.Kafka.Compression = "zstd"; c.Kafka.Version = "1.0.0" }},
		{"relay.kafka.timeout", func(c *relay.Config) { c.Kafka.Timeout = 0 }},
		{"relay.auth.tokens[0]", func(c *relay.Config) { c.Auth.Tokens = []string{""} }},
		{"relay.tls.key", func(c *relay.Config) { c.TLS.Cert = "/x" }},
		{"relay.tls.client_ca", func(c *relay.Config) { c.TLS.ClientCA = "/x" }},
		{"relay.limits.max_frame", func(c *relay.Config) { c.Limits.MaxFrame = 10 }},
		{"relay.limits.conn_inflight_bytes", func(c *relay.Config) { c.Limits.ConnInflightBytes = 2048 }},
		{"relay.limits.max_inflight_bytes", func(c *relay.Config) { c.Limits.MaxInflightBytes = 1 << 20 }},
		{"relay.limits.idle_timeout", func(c *relay.Config) { c.Limits.IdleTimeout = 0 }},
		{"relay.discovery.seeds[0]", func(c *relay.Config) { c.Discovery.Seeds = []string{"x"} }},
		{"relay.log.level", func(c *relay.Config) { c.Log.Level = "loud" }},
	}
	for _, tt := range tests {
		c := relay.DefaultConfig()
		tt.mutate(&c)
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tt.key+":") {
			t.Errorf("got %v, want an error starting with %s:", err, tt.key)
		}
	}
	c := relay.DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// rawConn is a hand-driven agent connection for bad-input tests.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *wire.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, c: c, r: wire.NewReader(c, 0)}
}

func (rc *rawConn) send(b []byte) {
	if _, err := rc.c.Write(b); err != nil {
		rc.t.Fatal(err)
	}
}

func (rc *rawConn) msg(m wire.Message) { rc.send(wire.AppendMessage(nil, m)) }

func (rc *rawConn) read() wire.Message {
	rc.t.Helper()
	m, err := rc.r.ReadMessage()
	if err != nil {
		rc.t.Fatalf("read from relay: %v", err)
	}
	return m
}

// expectClosed reads until EOF, allowing nothing but the connection to end.
func (rc *rawConn) expectClosed() {
	rc.t.Helper()
	if m, err := rc.r.ReadMessage(); err == nil {
		rc.t.Fatalf("got %s frame, want the connection closed", m.Type())
	}
}

func TestBadInputs(t *testing.T) {
	k := devstack.StartKafkaT(t, topic)
	logs := &logBuf{}
	cfg := relaytest.Config(k.Addr())
	cfg.Auth.Tokens = []string{"right"}
	cfg.Limits.MaxFrame = 64 << 10
	cfg.Limits.HandshakeTimeout.UnmarshalText([]byte("300ms"))
	r := relaytest.Start(t, cfg, logs.logger())
	hello := wire.AppendMessage(nil, &wire.Hello{AgentID: "bad-agent", Token: "right"})
	wrongVersion := wire.AppendMessage(nil, &wire.Hello{AgentID: "a", Token: "right"})
	wrongVersion[2] = 9
	oversized := wire.AppendFrame(nil, wire.TypeBatch, make([]byte, 8))
	binary.BigEndian.PutUint32(oversized[4:], 1<<30)
	badCRC := append([]byte{}, hello...)
	badCRC[len(badCRC)-1] ^= 0xff

	tests := []struct {
		name     string
		before   []byte // sent before the hello (nil: a good hello first)
		after    []byte // sent after a good hello
		wantCode wire.RejectCode
		wantLog  string
	}{
		{name: "garbage", before: []byte("GET / HTTP/1.0\r\n\r\n"), wantCode: wire.RejectProtocol, wantLog: "not a falconet frame"},
		{name: "wrong token", before: wire.AppendMessage(nil, &wire.Hello{AgentID: "intruder", Token: "wrong"}), wantCode: wire.RejectAuth, wantLog: "wrong or missing token"},
		{name: "no token", before: wire.AppendMessage(nil, &wire.Hello{AgentID: "intruder"}), wantCode: wire.RejectAuth, wantLog: "agent=intruder"},
		{name: "wrong version", before: wrongVersion, wantCode: wire.RejectVersion, wantLog: "unsupported protocol version"},
		{name: "bad checksum", before: badCRC, wantCode: wire.RejectProtocol, wantLog: "checksum mismatch"},
		{name: "batch before hello", before: wire.AppendMessage(nil, &wire.Batch{Seq: 1}), wantCode: wire.RejectProtocol, wantLog: "expected hello"},
		{name: "silent", before: []byte{}, wantCode: wire.RejectTimeout, wantLog: "nothing received in time"},
		{name: "oversized after hello", after: oversized, wantCode: wire.RejectProtocol, wantLog: "frame too large"},
		{name: "garbage after hello", after: []byte("{\"endpoint\":\"x\"}\n\x00\x00\x00\x00"), wantCode: wire.RejectProtocol, wantLog: "not a falconet frame"},
		{name: "second hello", after: hello, wantCode: wire.RejectProtocol, wantLog: "unexpected hello frame"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, r.ProtocolAddr())
			if tt.before != nil {
				rc.send(tt.before)
			} else {
				rc.send(hello)
				if _, ok := rc.read().(*wire.Welcome); !ok {
					t.Fatal("good hello not welcomed")
				}
				rc.send(tt.after)
			}
			m := rc.read()
			rj, ok := m.(*wire.Reject)
			if !ok {
				t.Fatalf("got %s, want reject", m.Type())
			}
			if rj.Code != tt.wantCode {
				t.Errorf("reject code %s (%s), want %s", rj.Code, rj.Reason, tt.wantCode)
			}
			rc.expectClosed()
			relaytest.WaitFor(t, 5*time.Second, "relay log "+tt.wantLog, func() bool { return strings.Contains(logs.String(), tt.wantLog) })
		})
	}

	t.Run("corrupt and invalid batches answered invalid, connection kept", func(t *testing.T) {
		rc := dialRaw(t, r.ProtocolAddr())
		rc.send(hello)
		rc.read()
		allBad, _ := metric.EncodeBatch(nil, []metric.Metric{{Endpoint: "h", Name: "bad name", Timestamp: 1764000000}})
		mixed, _ := metric.EncodeBatch(nil, []metric.Metric{{Endpoint: "h", Name: "bad name", Timestamp: 1764000000},
			{Endpoint: "h", Name: "good.one", Timestamp: 1764000000, Value: 1}})
		rc.msg(&wire.Batch{Seq: 1, Payload: []byte("FNB\x01garbage")})
		rc.msg(&wire.Batch{Seq: 2, Payload: allBad})
		rc.msg(&wire.Batch{Seq: 3, Payload: mixed})
		rc.msg(&wire.Heartbeat{Nonce: 77})
		got := map[uint64]wire.Status{}
		pong := false
		for len(got) < 3 || !pong {
			switch v := rc.read().(type) {
			case *wire.Ack:
				for _, a := range v.Results {
					got[a.Seq] = a.Status
				}
			case *wire.Pong:
				pong = v.Nonce == 77
			}
		}
		want := map[uint64]wire.Status{1: wire.StatusInvalid, 2: wire.StatusInvalid, 3: wire.StatusOK}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("acks %v, want %v", got, want)
		}
	})

	t.Run("sender with wrong token logs the reason", func(t *testing.T) {
		alogs := &logBuf{}
		q := sendertest.NewMemQueue()
		fillQueue(t, q, 0, 1, 1)
		s, err := sender.New(sender.Config{Token: "wrong", AgentID: "a", BackoffMin: 50 * time.Millisecond, BackoffMax: 100 * time.Millisecond},
			q, sender.StaticRelays(r.ProtocolAddr()), alogs.logger(), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		relaytest.WaitFor(t, 5*time.Second, "agent log of the refusal", func() bool {
			return strings.Contains(alogs.String(), "relay refused: auth: wrong or missing token")
		})
		cancel()
		<-done
		if st := q.Stats(); st.Acked != 0 || st.Stored != 1 || st.InFlight != 0 {
			t.Errorf("queue after refusal: %+v, want the batch stored, not in flight", st)
		}
	})
}

func TestTLSAndMTLS(t *testing.T) {
	k := devstack.StartKafkaT(t, topic)
	dir := t.TempDir()
	ca := relaytest.NewCA(t, "test-ca")
	_, certFile, keyFile := ca.Issue(t, dir, "relay", "127.0.0.1", "localhost")
	clientCert, _, _ := ca.Issue(t, dir, "agent")
	otherCA := relaytest.NewCA(t, "other-ca")
	strangerCert, _, _ := otherCA.Issue(t, dir, "stranger")

	tlsCfg := relaytest.Config(k.Addr())
	tlsCfg.TLS = relay.TLSConfig{Cert: certFile, Key: keyFile}
	plainTLS := relaytest.Start(t, tlsCfg, nil)
	mtlsCfg := tlsCfg
	mtlsCfg.TLS.ClientCA = ca.WriteCA(t, dir)
	mtls := relaytest.Start(t, mtlsCfg, nil)

	tests := []struct {
		name    string
		relay   string
		tls     *tls.Config
		deliver bool
		wantLog string
	}{
		{"tls", plainTLS.ProtocolAddr(), &tls.Config{RootCAs: ca.Pool}, true, ""},
		{"tls untrusted server", plainTLS.ProtocolAddr(), &tls.Config{RootCAs: otherCA.Pool}, false, "certificate signed by unknown authority"},
		{"plain to tls", plainTLS.ProtocolAddr(), nil, false, "cannot use relay"},
		{"mtls", mtls.ProtocolAddr(), &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{clientCert}}, true, ""},
		{"mtls without client cert", mtls.ProtocolAddr(), &tls.Config{RootCAs: ca.Pool}, false, "cannot use relay"},
		{"mtls with a stranger's cert", mtls.ProtocolAddr(), &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{strangerCert}}, false, "cannot use relay"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := sendertest.NewMemQueue()
			fillQueue(t, q, 1000*i, 1000*i+5, 10)
			alogs := &logBuf{}
			s, err := sender.New(sender.Config{TLS: tt.tls, AgentID: "a", BackoffMin: 50 * time.Millisecond, BackoffMax: 100 * time.Millisecond},
				q, sender.StaticRelays(tt.relay), alogs.logger(), nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { s.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			if tt.deliver {
				relaytest.WaitFor(t, 10*time.Second, "delivery over TLS", q.Empty)
				return
			}
			relaytest.WaitFor(t, 10*time.Second, "agent log "+tt.wantLog, func() bool { return strings.Contains(alogs.String(), tt.wantLog) })
			if st := q.Stats(); st.Acked != 0 {
				t.Errorf("%d batches acked through a refused connection", st.Acked)
			}
		})
	}
}

func TestFailoverWhenRelayKilledMidStream(t *testing.T) {
	k := devstack.StartKafkaT(t, topic)
	r1 := relaytest.Start(t, relaytest.Config(k.Addr()), nil)
	r2 := relaytest.Start(t, relaytest.Config(k.Addr()), nil)
	q := sendertest.NewMemQueue()
	want := fillQueue(t, q, 0, 400, 100)
	s, _ := startSender(t, sender.Config{MaxInFlight: 8}, q, r1.ProtocolAddr(), r2.ProtocolAddr())
	relaytest.WaitFor(t, 20*time.Second, "some batches through relay 1", func() bool { return q.Stats().Acked >= 20 })
	if cur := s.Current(); cur != r1.ProtocolAddr() {
		t.Fatalf("sender on %q, want the preferred relay %q", cur, r1.ProtocolAddr())
	}
	r1.Kill() // hard: connections closed without answering in-flight batches
	relaytest.WaitFor(t, 30*time.Second, "queue drained through relay 2", q.Empty)
	if st := q.Stats(); st.Nacked == 0 {
		t.Logf("note: no batch was in flight at the kill (stats %+v)", st)
	}
	got := countRecords(t, relaytest.ReadTopic(t, k.Addr(), topic, len(want), 20*time.Second))
	for id := range want {
		if got[id] < 1 {
			t.Fatalf("metric %s missing after failover", id)
		}
	}
}

func TestGracefulDrainLosesAndDuplicatesNothing(t *testing.T) {
	k := devstack.StartKafkaT(t, topic)
	logs := &logBuf{}
	r1 := relaytest.Start(t, relaytest.Config(k.Addr()), logs.logger())
	r2 := relaytest.Start(t, relaytest.Config(k.Addr()), nil)
	q := sendertest.NewMemQueue()
	want := fillQueue(t, q, 0, 400, 100)
	reg := prometheus.NewRegistry()
	s, err := sender.New(sender.Config{AgentID: "a", MaxInFlight: 16, BackoffMin: 20 * time.Millisecond}, q,
		sender.StaticRelays(r1.ProtocolAddr(), r2.ProtocolAddr()), nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	relaytest.WaitFor(t, 20*time.Second, "some batches through relay 1", func() bool { return q.Stats().Acked >= 20 })
	r1.Stop() // graceful: drain notice, in-flight answered
	relaytest.WaitFor(t, 30*time.Second, "queue drained", q.Empty)
	if !strings.Contains(logs.String(), "msg=drained") {
		t.Errorf("relay 1 did not drain within its timeout; log:\n%s", logs.String())
	}
	if n := counterValue(t, reg, "falconet_agent_sender_batches_nacked_total"); n != 0 {
		t.Errorf("%v in-flight batches nacked during a graceful drain, want 0", n)
	}
	got := countRecords(t, relaytest.ReadTopic(t, k.Addr(), topic, len(want), 20*time.Second))
	for id := range want {
		if got[id] != 1 {
			t.Fatalf("metric %s present %d times after a graceful drain, want 1", id, got[id])
		}
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.Metric {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestKafkaRestartMidStream stops the broker while batches flow and starts
// it again on the same port and data directory: whatever was acked before
// the stop is in Kafka afterwards, and everything arrives in the end.
func TestKafkaRestartMidStream(t *testing.T) {
	dir := t.TempDir()
	k, err := devstack.StartKafka(devstack.KafkaConfig{Listen: "127.0.0.1:0", DataDir: dir, Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	addr := k.Addr()
	cfg := relaytest.Config(addr)
	cfg.Kafka.RetryMax = 2
	r := relaytest.Start(t, cfg, testLogger(t))
	q := sendertest.NewMemQueue()
	want := fillQueue(t, q, 0, 400, 100)
	startSender(t, sender.Config{MaxInFlight: 8}, q, r.ProtocolAddr())
	relaytest.WaitFor(t, 20*time.Second, "some batches acked", func() bool { return q.Stats().Acked >= 30 })
	k.Close()
	ackedAtStop := q.Stats().AckedMetrics
	relaytest.WaitFor(t, 20*time.Second, "relay notices kafka is down", func() bool { return r.Health() != nil })
	resp, err := http.Get("http://" + r.HTTPAddr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/healthz with kafka down: %d %q, want 503", resp.StatusCode, body)
	}
	k2, err := devstack.StartKafka(devstack.KafkaConfig{Listen: addr, DataDir: dir, Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k2.Close)
	relaytest.WaitFor(t, 60*time.Second, "queue drained after the broker came back", q.Empty)
	got := countRecords(t, relaytest.ReadTopic(t, addr, topic, len(want), 30*time.Second))
	missing := 0
	for id := range want {
		if got[id] < 1 {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d metrics missing (acked before the stop: %d)", missing, len(want), ackedAtStop)
	}
}

func TestProduceFailuresAreNeverAcked(t *testing.T) {
	k := devstack.StartKafkaT(t, topic)
	cfg := relaytest.Config(k.Addr())
	cfg.Kafka.RetryMax = 1
	cfg.Kafka.Idempotent = false
	r := relaytest.Start(t, cfg, nil)
	var failing sync.Mutex
	fail := true
	// Every produce request is answered NOT_ENOUGH_REPLICAS (retriable):
	// the records are never stored.
	k.Cluster().ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.Cluster().KeepControl()
		failing.Lock()
		defer failing.Unlock()
		if !fail {
			return nil, nil, false
		}
		preq := req.(*kmsg.ProduceRequest)
		resp := preq.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range preq.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = 19
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	rc := dialRaw(t, r.ProtocolAddr())
	rc.msg(&wire.Hello{AgentID: "a"})
	rc.read()
	payload, _ := metric.EncodeBatch(nil, genBatch(1, 10))
	rc.msg(&wire.Batch{Seq: 5, Payload: payload})
	for {
		m := rc.read()
		if a, ok := m.(*wire.Ack); ok {
			if len(a.Results) != 1 || a.Results[0].Status != wire.StatusRetryLater {
				t.Fatalf("ack %+v with produce failing, want retry-later", a.Results)
			}
			break
		}
	}
	failing.Lock()
	fail = false
	failing.Unlock()
}

func TestLegacyListener(t *testing.T) {
	k := devstack.StartKafkaT(t, topic)
	logs := &logBuf{}
	cfg := relaytest.Config(k.Addr())
	cfg.Legacy.MaxLine = 4096
	r := relaytest.Start(t, cfg, logs.logger())
	c, err := net.Dial("tcp", r.LegacyAddr())
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{
		`{"endpoint":"legacy-1","metric":"cpu.idle","value":99.5,"step":60,"counterType":"GAUGE","tags":"core=0","timestamp":1764000000}`,
		`[{"endpoint":"legacy-1","metric":"mem.free","value":1,"step":60,"counterType":"GAUGE","tags":"","timestamp":1764000000},` +
			`{"endpoint":"legacy-2","metric":"net.in","value":2,"step":60,"counterType":"COUNTER","tags":"if=eth0","timestamp":1764000000}]`,
		`this is not json`,
		`{"endpoint":"bad/endpoint","metric":"x","value":1,"timestamp":1764000000}`,
		`{"endpoint":"legacy-3","metric":"` + strings.Repeat("x", 5000) + `","value":1}`,
		``,
		`{"endpoint":"legacy-3","name":"canonical.form","value":3,"timestamp":1764000000,"step":10,"type":"gauge"}`,
	}
	if _, err := io.WriteString(c, strings.Join(lines, "\n")+"\n"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	recs := relaytest.ReadTopic(t, k.Addr(), topic, 4, 10*time.Second)
	if len(recs) != 4 {
		t.Fatalf("got %d records from legacy lines, want 4", len(recs))
	}
	relaytest.WaitFor(t, 5*time.Second, "bad lines logged with the peer", func() bool {
		s := logs.String()
		return strings.Contains(s, "bad legacy line") && strings.Contains(s, "peer=127.0.0.1:")
	})
	resp, err := http.Get("http://" + r.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"falconet_relay_legacy_bad_lines_total 3", "falconet_relay_legacy_lines_total 6",
		`falconet_relay_metrics_received_total{source="legacy"} 4`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestRefusesAgentsWhileKafkaUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	r := relaytest.StartUnready(t, relaytest.Config(dead), nil)
	rc := dialRaw(t, r.ProtocolAddr())
	rc.msg(&wire.Hello{AgentID: "a"})
	rj, ok := rc.read().(*wire.Reject)
	if !ok || rj.Code != wire.RejectBusy {
		t.Fatalf("got %#v, want a busy reject", rj)
	}
	if err := r.Health(); err == nil || !strings.Contains(err.Error(), "kafka") {
		t.Errorf("health %v, want a kafka error", err)
	}
}

func TestKcatReadsWhatTheRelayWrote(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat not installed (apt-get install kcat)")
	}
	k := devstack.StartKafkaT(t, topic)
	r := relaytest.Start(t, relaytest.Config(k.Addr()), nil)
	q := sendertest.NewMemQueue()
	want := fillQueue(t, q, 0, 10, 10)
	startSender(t, sender.Config{}, q, r.ProtocolAddr())
	relaytest.WaitFor(t, 20*time.Second, "queue drained", q.Empty)
	out, err := exec.Command(kcat, "-C", "-b", k.Addr(), "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	got := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		key, value, ok := strings.Cut(line, "\t")
		var m metric.Metric
		if !ok || m.UnmarshalJSON([]byte(value)) != nil || m.SeriesKey() != key || !want[m.DocID()] {
			t.Fatalf("kcat line %q is not a metric we sent with its series key", line)
		}
		got++
	}
	if got != len(want) {
		t.Errorf("kcat read %d records, want %d", got, len(want))
	}
}

// TestBackpressure holds every produce request in the broker: the relay's
// in-flight budget fills, it stops reading, reports not ready, refuses new
// agents as busy, and acks nothing until Kafka answers; then everything is
// acked.
func TestBackpressure(t *testing.T) {
	k := devstack.StartKafkaT(t, topic)
	var held sync.Mutex
	holding := true
	release := make(chan struct{})
	k.Cluster().ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		k.Cluster().KeepControl()
		held.Lock()
		h := holding
		held.Unlock()
		if h {
			k.Cluster().SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	cfg := relaytest.Config(k.Addr())
	cfg.Limits.MaxFrame = 64 << 10
	cfg.Limits.ConnInflightBytes = 64 << 10
	cfg.Limits.MaxInflightBytes = 128 << 10
	cfg.Kafka.Timeout.UnmarshalText([]byte("20s"))
	r := relaytest.Start(t, cfg, nil)
	payload, _ := metric.EncodeBatch(nil, genBatch(3, 100))
	const agents, batches = 4, 5
	conns := make([]*rawConn, agents)
	for i := range conns {
		conns[i] = dialRaw(t, r.ProtocolAddr())
		conns[i].c.SetDeadline(time.Now().Add(60 * time.Second))
		conns[i].msg(&wire.Hello{AgentID: fmt.Sprint("bp-", i)})
		if m := conns[i].read(); m.Type() != wire.TypeWelcome {
			t.Fatalf("agent %d: got %#v, want welcome", i, m)
		}
	}
	for i := range conns { // all welcomed first: backpressure refuses late agents
		go func(rc *rawConn) {
			for b := range batches {
				if _, err := rc.c.Write(wire.AppendMessage(nil, &wire.Batch{Seq: uint64(b + 1), Payload: payload})); err != nil {
					return
				}
			}
		}(conns[i])
	}
	relaytest.WaitFor(t, 10*time.Second, "relay reports backpressure", func() bool {
		err := r.Health()
		return err != nil && strings.Contains(err.Error(), "backpressure")
	})
	late := dialRaw(t, r.ProtocolAddr())
	late.msg(&wire.Hello{AgentID: "late"})
	if rj, ok := late.read().(*wire.Reject); !ok || rj.Code != wire.RejectBusy {
		t.Errorf("new agent during backpressure got %#v, want a busy reject", rj)
	}
	for i, rc := range conns {
		rc.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if m, err := rc.r.ReadMessage(); err == nil {
			t.Fatalf("agent %d got %s while Kafka held every produce, want nothing", i, m.Type())
		}
		rc.c.SetReadDeadline(time.Now().Add(60 * time.Second))
	}
	held.Lock()
	holding = false
	held.Unlock()
	close(release)
	for i, rc := range conns {
		acked := map[uint64]bool{}
		for len(acked) < batches {
			if a, ok := rc.read().(*wire.Ack); ok {
				for _, res := range a.Results {
					if res.Status != wire.StatusOK {
						t.Fatalf("agent %d batch %d: %s %s, want ok", i, res.Seq, res.Status, res.Reason)
					}
					acked[res.Seq] = true
				}
			}
		}
	}
	relaytest.WaitFor(t, 10*time.Second, "ready again", func() bool { return r.Health() == nil })
}

// TestShutdownTimeoutBoundsDrain: an agent that ignores the drain notice does
// not hold the relay up past limits.shutdown_timeout.
func TestShutdownTimeoutBoundsDrain(t *testing.T) {
	k := devstack.StartKafkaT(t, topic)
	cfg := relaytest.Config(k.Addr())
	cfg.Limits.ShutdownTimeout.UnmarshalText([]byte("500ms"))
	r := relaytest.Start(t, cfg, nil)
	rc := dialRaw(t, r.ProtocolAddr())
	rc.msg(&wire.Hello{AgentID: "stubborn"})
	rc.read()
	start := time.Now()
	stopped := make(chan struct{})
	go func() { r.Stop(); close(stopped) }()
	if d, ok := rc.read().(*wire.Drain); !ok {
		t.Fatalf("got %#v, want a drain notice", d)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("relay still running 10s after shutdown began with a 500ms shutdown timeout")
	}
	t.Logf("stopped after %v", time.Since(start).Round(time.Millisecond))
	rc.expectClosed()
}
