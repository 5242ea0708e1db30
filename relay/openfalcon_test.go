package relay_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/rpc"
	"net/rpc/jsonrpc"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/falconet/falconet/agent/sender"
	"github.com/falconet/falconet/agent/sender/sendertest"
	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/metric"
	"github.com/falconet/falconet/relay"
	"github.com/falconet/falconet/relay/relaytest"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ofMetricValue and ofTransferResponse are Open-Falcon's common/model types,
// field for field, as falcon-agent sends and reads them.
type ofMetricValue struct {
	Endpoint  string      `json:"endpoint"`
	Metric    string      `json:"metric"`
	Value     interface{} `json:"value"`
	Step      int64       `json:"step"`
	Type      string      `json:"counterType"`
	Tags      string      `json:"tags"`
	Timestamp int64       `json:"timestamp"`
}

type ofTransferResponse struct {
	Message string
	Total   int
	Invalid int
	Latency int64
}

func startOpenFalcon(t *testing.T, mutate func(*relay.Config)) (*devstack.Kafka, *relaytest.Relay, *logBuf) {
	t.Helper()
	k := devstack.StartKafkaT(t, topic)
	logs := &logBuf{}
	cfg := relaytest.Config(k.Addr())
	cfg.OpenFalcon.Enabled = true
	if mutate != nil {
		mutate(&cfg)
	}
	return k, relaytest.Start(t, cfg, logs.logger()), logs
}

// rpcCall calls Transfer.Update as falcon-agent does: one call, 10 s to
// answer.
func rpcCall(c *rpc.Client, items []*ofMetricValue) (ofTransferResponse, error) {
	var resp ofTransferResponse
	call := c.Go("Transfer.Update", items, &resp, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
		return resp, call.Error
	case <-time.After(10 * time.Second):
		return resp, fmt.Errorf("rpc call timeout (falcon-agent gives up after 10 s)")
	}
}

func gauge(endpoint, name string, v any, ts int64) *ofMetricValue {
	return &ofMetricValue{Endpoint: endpoint, Metric: name, Value: v, Step: 60, Type: "GAUGE", Tags: "", Timestamp: ts}
}

// recordsBySeries reads the topic and counts records per series key,
// returning the decoded metrics too.
func recordsBySeries(t *testing.T, broker string, want int) (map[string]int, map[string]metric.Metric) {
	t.Helper()
	counts, ms := map[string]int{}, map[string]metric.Metric{}
	for _, r := range relaytest.ReadTopic(t, broker, topic, want, 15*time.Second) {
		var m metric.Metric
		if err := m.UnmarshalJSON(r.Value); err != nil {
			t.Fatalf("record %s is not a metric: %v", r.Value, err)
		}
		if string(r.Key) != m.SeriesKey() {
			t.Fatalf("record key %q, want the series key %q", r.Key, m.SeriesKey())
		}
		counts[m.SeriesKey()]++
		ms[m.SeriesKey()] = m
	}
	return counts, ms
}

func metricsText(t *testing.T, r *relaytest.Relay) string {
	t.Helper()
	resp, err := http.Get("http://" + r.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func wantMetrics(t *testing.T, r *relaytest.Relay, lines ...string) {
	t.Helper()
	body := metricsText(t, r)
	for _, want := range lines {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestOpenFalconRPC drives the relay's protocol port with Go's
// net/rpc/jsonrpc client, the codec falcon-agent uses: valid and invalid
// items, string values, DERIVE, empty tags, timestamps fixed up or refused,
// a 16 KB call, and many calls pipelined on one connection. Every item
// answered "ok" is in Kafka exactly once.
func TestOpenFalconRPC(t *testing.T) {
	k, r, logs := startOpenFalcon(t, nil)
	c, err := jsonrpc.Dial("tcp", r.ProtocolAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const ts = 1764000000
	wantSeries := map[string]bool{} // series keys answered "ok"
	before := time.Now().Unix()

	mixed := []*ofMetricValue{
		{Endpoint: "of-1", Metric: "cpu.idle", Value: 97.5, Step: 60, Type: "GAUGE", Tags: "core=0, dc = fra", Timestamp: ts},
		{Endpoint: "of-1", Metric: "net.if.in.bytes", Value: "123456789", Step: 60, Type: "COUNTER", Tags: "iface=eth0", Timestamp: ts},
		{Endpoint: "of-1", Metric: "disk.io.read", Value: 5, Step: 30, Type: "DERIVE", Tags: "", Timestamp: ts},
		{Endpoint: "of-1", Metric: "ts.zero", Value: 1, Step: 60, Type: "GAUGE", Timestamp: 0},
		{Endpoint: "of-1", Metric: "ts.millis", Value: 1, Step: 60, Type: "GAUGE", Timestamp: ts * 1000},
		{Endpoint: "of-1", Metric: "tags.junk", Value: 1, Step: 60, Type: "GAUGE", Tags: "a=1,junk,b=", Timestamp: ts},
		// invalid as in Open-Falcon
		{Endpoint: "", Metric: "no.endpoint", Value: 1, Step: 60, Type: "GAUGE", Timestamp: ts},
		{Endpoint: "of-1", Metric: "lower.type", Value: 1, Step: 60, Type: "gauge", Timestamp: ts},
		{Endpoint: "of-1", Metric: "step.zero", Value: 1, Step: 0, Type: "GAUGE", Timestamp: ts},
		{Endpoint: "of-1", Metric: "not.number", Value: "abc", Step: 60, Type: "GAUGE", Timestamp: ts},
		{Endpoint: "of-1", Metric: "kernel.hostname", Value: "h", Step: 60, Type: "GAUGE", Timestamp: ts},
		{Endpoint: "of-1", Metric: "long.tags", Value: 1, Step: 60, Type: "GAUGE", Tags: "k=" + strings.Repeat("v", 510), Timestamp: ts},
		// invalid because falconet is stricter
		{Endpoint: "of-1", Metric: "has space", Value: 1, Step: 60, Type: "GAUGE", Timestamp: ts},
		{Endpoint: "of/1", Metric: "slash.endpoint", Value: 1, Step: 60, Type: "GAUGE", Timestamp: ts},
		{Endpoint: "of-1", Metric: "ts.1970", Value: 1, Step: 60, Type: "GAUGE", Timestamp: 86400},
		{Endpoint: "of-1", Metric: "nan", Value: "NaN", Step: 60, Type: "GAUGE", Timestamp: ts},
	}
	resp, err := rpcCall(c, mixed)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Message != "ok" || resp.Total != len(mixed) || resp.Invalid != 10 {
		t.Fatalf("mixed call: got %+v, want Message ok, Total %d, Invalid 10", resp, len(mixed))
	}
	for _, s := range []string{"of-1/cpu.idle/core=0,dc=fra", "of-1/net.if.in.bytes/iface=eth0", "of-1/disk.io.read/",
		"of-1/ts.zero/", "of-1/ts.millis/", "of-1/tags.junk/a=1,b="} {
		wantSeries[s] = true
	}

	// A 120-metric call, about 16 KB on one line, as falcon-agent sends.
	var big []*ofMetricValue
	for i := range 120 {
		big = append(big, &ofMetricValue{Endpoint: "of-big", Metric: fmt.Sprintf("big.metric.number.%03d", i), Value: float64(i) * 1.5,
			Step: 60, Type: "GAUGE", Tags: fmt.Sprintf("host=of-big,mount=/data/%03d,fstype=ext4", i), Timestamp: ts})
		wantSeries[fmt.Sprintf("of-big/big.metric.number.%03d/fstype=ext4,host=of-big,mount=/data/%03d", i, i)] = true
	}
	if b, _ := json.Marshal(map[string]any{"method": "Transfer.Update", "params": []any{big}, "id": 1}); len(b) < 16<<10 {
		t.Fatalf("big call is %d bytes, want >= 16 KiB", len(b))
	}
	if resp, err = rpcCall(c, big); err != nil || resp.Message != "ok" || resp.Total != 120 || resp.Invalid != 0 {
		t.Fatalf("16 KB call: got %+v, %v; want 120 ok", resp, err)
	}

	// Many calls pipelined on the one connection.
	const calls, per = 200, 5
	pending := make([]*rpc.Call, calls)
	resps := make([]ofTransferResponse, calls)
	for i := range calls {
		var items []*ofMetricValue
		for j := range per {
			name := fmt.Sprintf("pipe.%d.%d", i, j)
			items = append(items, gauge("of-pipe", name, i*per+j, ts))
			wantSeries["of-pipe/"+name+"/"] = true
		}
		pending[i] = c.Go("Transfer.Update", items, &resps[i], make(chan *rpc.Call, 1))
	}
	deadline := time.After(30 * time.Second)
	for i, call := range pending {
		select {
		case <-call.Done:
		case <-deadline:
			t.Fatalf("pipelined call %d not answered", i)
		}
		if call.Error != nil || resps[i].Message != "ok" || resps[i].Total != per {
			t.Fatalf("pipelined call %d: %+v, %v", i, resps[i], call.Error)
		}
	}
	after := time.Now().Unix()

	counts, ms := recordsBySeries(t, k.Addr(), len(wantSeries))
	for s := range wantSeries {
		if counts[s] != 1 {
			t.Errorf("series %s in Kafka %d times, want once", s, counts[s])
		}
	}
	if len(counts) != len(wantSeries) {
		t.Errorf("%d series in Kafka, want %d", len(counts), len(wantSeries))
	}
	for _, s := range []string{"of-1/ts.zero/", "of-1/ts.millis/"} {
		if got := ms[s].Timestamp; got < before || got > after {
			t.Errorf("%s stored at %d, want the relay's now in [%d, %d]", s, got, before, after)
		}
	}
	if m := ms["of-1/net.if.in.bytes/iface=eth0"]; m.Value != 123456789 || m.Type != metric.Counter || m.Step != 60 {
		t.Errorf("string value: stored %+v", m)
	}
	if m := ms["of-1/disk.io.read/"]; m.Type != metric.Derive || m.Step != 30 || len(m.Tags) != 0 {
		t.Errorf("DERIVE with empty tags: stored %+v", m)
	}
	relaytest.WaitFor(t, 5*time.Second, "invalid items logged with the peer and a reason", func() bool {
		s := logs.String()
		return strings.Contains(s, "invalid Open-Falcon items dropped") && strings.Contains(s, "peer=127.0.0.1:") && strings.Contains(s, "endpoint is empty")
	})
	wantMetrics(t, r,
		`falconet_relay_invalid_metrics_total{source="openfalcon_rpc"} 10`,
		`falconet_relay_openfalcon_timestamps_fixed_total 2`,
		fmt.Sprintf(`falconet_relay_metrics_received_total{source="openfalcon_rpc"} %d`, len(wantSeries)),
		fmt.Sprintf(`falconet_relay_openfalcon_calls_total{input="rpc",result="ok"} %d`, calls+2),
		`falconet_relay_openfalcon_connections 1`)
}

// readLine reads one response line with a deadline.
func readLine(t *testing.T, c net.Conn, br *bufio.Reader) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading a response: %v (got %q)", err, line)
	}
	return line
}

// TestOpenFalconRPCRawLines writes requests by hand: back-to-back calls
// without newlines, any id type, Ping, an unknown method, bad params, and
// the answers' exact shape; a malformed or oversized call closes the
// connection.
func TestOpenFalconRPCRawLines(t *testing.T) {
	k, r, _ := startOpenFalcon(t, func(c *relay.Config) { c.Limits.MaxFrame = 64 << 10; c.Limits.ConnInflightBytes = 64 << 10 })
	c, err := net.Dial("tcp", r.ProtocolAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	item := `{"endpoint":"raw-1","metric":"m.%d","value":%d,"step":60,"counterType":"GAUGE","tags":"","timestamp":1764000000}`
	send := func(s string) {
		if _, err := io.WriteString(c, s); err != nil {
			t.Fatal(err)
		}
	}
	// Leading whitespace, two calls back to back, a string id.
	send(" \n{\"method\":\"Transfer.Update\",\"params\":[[" + fmt.Sprintf(item, 1, 1) + "]],\"id\":7}" +
		`{"method":"Transfer.Update","params":[[` + fmt.Sprintf(item, 2, 2) + "," + fmt.Sprintf(item, 3, 3) + `,{"endpoint":"x"}]],"id":"s-1"}` + "\n")
	got := map[string]string{}
	for range 2 {
		line := readLine(t, c, br)
		var resp struct {
			ID     json.RawMessage `json:"id"`
			Result *ofTransferResponse
			Error  *string `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &resp); err != nil {
			t.Fatalf("response %q is not JSON: %v", line, err)
		}
		if !strings.Contains(line, `"result":{"Message":"ok","Total":`) || !strings.HasSuffix(line, `},"error":null}`+"\n") {
			t.Errorf("response %q lacks net/rpc's shape", line)
		}
		got[string(resp.ID)] = fmt.Sprintf("%d/%d", resp.Result.Total, resp.Result.Invalid)
	}
	if got["7"] != "1/0" || got[`"s-1"`] != "3/1" {
		t.Errorf("answers by id %v, want 7: 1/0 and \"s-1\": 3/1", got)
	}
	send(`{"method":"Transfer.Ping","params":[null],"id":8}` + "\n")
	if line := readLine(t, c, br); line != `{"id":8,"result":{"Code":0},"error":null}`+"\n" {
		t.Errorf("ping: got %q", line)
	}
	send(`{"method":"Agent.ReportStatus","params":[{}],"id":9}` + "\n")
	if line := readLine(t, c, br); line != `{"id":9,"result":null,"error":"rpc: can't find method Agent.ReportStatus"}`+"\n" {
		t.Errorf("unknown method: got %q", line)
	}
	send(`{"method":"Transfer.Update","params":{"a":1},"id":10}` + "\n")
	if line := readLine(t, c, br); !strings.HasPrefix(line, `{"id":10,"result":null,"error":"falconet relay: params must be`) {
		t.Errorf("bad params: got %q", line)
	}
	// All invalid: answered ok with Invalid = Total, as Open-Falcon does.
	send(`{"method":"Transfer.Update","params":[[{"endpoint":"e","metric":"m","value":1,"step":0,"counterType":"GAUGE"}]],"id":11}` + "\n")
	if line := readLine(t, c, br); !strings.HasPrefix(line, `{"id":11,"result":{"Message":"ok","Total":1,"Invalid":1,"Latency":`) {
		t.Errorf("all invalid: got %q", line)
	}
	if recs := relaytest.ReadTopic(t, k.Addr(), topic, 3, 10*time.Second); len(recs) != 3 {
		t.Errorf("%d records, want 3", len(recs))
	}

	for _, tt := range []struct{ name, call string }{
		{"mismatched brackets", `{"method":"Transfer.Update","params":[[}]` + "\n"},
		{"not an object", " [\"Transfer.Update\"]\n"},
		{"no method", `{"params":[[]],"id":1}` + "\n"},
		{"oversized", `{"method":"Transfer.Update","params":[["` + strings.Repeat("x", 70<<10) + `"]],"id":1}` + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", r.ProtocolAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			send := tt.call
			go func() { _, _ = io.WriteString(c, send) }()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			// A reset is a close too: the relay does not read the rest.
			if b, err := io.ReadAll(c); len(b) != 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
				t.Errorf("got %q, %v; want the connection closed without an answer", b, err)
			}
		})
	}
	wantMetrics(t, r, `falconet_relay_frame_errors_total{kind="openfalcon_rpc"} 4`)
}

// TestProtocolPortSpeaksBoth runs a falconet agent's sender and an
// Open-Falcon JSON-RPC client against the same port at the same time.
func TestProtocolPortSpeaksBoth(t *testing.T) {
	k, r, _ := startOpenFalcon(t, nil)
	q := sendertest.NewMemQueue()
	want := fillQueue(t, q, 0, 20, 50)
	startSender(t, sender.Config{MaxInFlight: 4}, q, r.ProtocolAddr())
	c, err := jsonrpc.Dial("tcp", r.ProtocolAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 20 {
		var items []*ofMetricValue
		for j := range 10 {
			items = append(items, gauge("both-of", fmt.Sprintf("m.%d.%d", i, j), j, 1764000000))
		}
		if resp, err := rpcCall(c, items); err != nil || resp.Message != "ok" || resp.Invalid != 0 {
			t.Fatalf("call %d: %+v, %v", i, resp, err)
		}
	}
	relaytest.WaitFor(t, 20*time.Second, "agent queue drained", q.Empty)
	recs := relaytest.ReadTopic(t, k.Addr(), topic, len(want)+200, 15*time.Second)
	agentGot := countRecords(t, recs)
	for id := range want {
		if agentGot[id] != 1 {
			t.Fatalf("agent metric %s in Kafka %d times, want once", id, agentGot[id])
		}
	}
	if len(recs) != len(want)+200 {
		t.Errorf("%d records, want %d from the agent and 200 from Open-Falcon", len(recs), len(want)+200)
	}
}

// TestOpenFalconOffByDefault: without [open_falcon] enabled, a falcon-agent
// is told why, update lines and /api/push are refused, and JSON lines on the
// legacy port still work from loopback.
func TestOpenFalconOffByDefault(t *testing.T) {
	k := devstack.StartKafkaT(t, topic)
	logs := &logBuf{}
	r := relaytest.Start(t, relaytest.Config(k.Addr()), logs.logger())
	c, err := jsonrpc.Dial("tcp", r.ProtocolAddr())
	if err != nil {
		t.Fatal(err)
	}
	_, err = rpcCall(c, []*ofMetricValue{gauge("off", "m", 1, 1764000000)})
	c.Close()
	if err == nil || !strings.Contains(err.Error(), "[open_falcon] enabled = false") {
		t.Errorf("rpc with open_falcon off: got %v, want the reason", err)
	}
	resp, err := http.Post("http://"+r.HTTPAddr()+"/api/push", "application/json", strings.NewReader(`[]`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "enabled = false") {
		t.Errorf("/api/push with open_falcon off: %d %s", resp.StatusCode, body)
	}
	lc, err := net.Dial("tcp", r.LegacyAddr())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(lc, "update off-host cpu.idle 1764000000 1 GAUGE 60\n"+
		`{"endpoint":"off-host","metric":"json.line","value":1,"step":60,"counterType":"GAUGE","tags":"","timestamp":1764000000}`+"\nquit\n")
	_ = lc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(lc); err != nil || len(b) != 0 { // quit: the relay closes
		t.Errorf("after quit: %q, %v; want EOF", b, err)
	}
	lc.Close()
	if recs := relaytest.ReadTopic(t, k.Addr(), topic, 1, 10*time.Second); len(recs) != 1 || !bytes.Contains(recs[0].Value, []byte("json.line")) {
		t.Errorf("records %v, want only the JSON line", recs)
	}
	relaytest.WaitFor(t, 5*time.Second, "refusals logged", func() bool {
		s := logs.String()
		return strings.Contains(s, "update lines need [open_falcon] enabled = true") && strings.Contains(s, "Open-Falcon input refused")
	})
	wantMetrics(t, r, `falconet_relay_unauthenticated_refused_total{input="rpc",reason="disabled"} 1`,
		`falconet_relay_unauthenticated_refused_total{input="http",reason="disabled"} 1`)
}

// TestOpenFalconUpdateLines sends Open-Falcon socket lines with 4, 5 and 6
// fields, bad lines and JSON lines on one legacy connection; each good line
// is produced as it arrives, before the connection ends.
func TestOpenFalconUpdateLines(t *testing.T) {
	k, r, logs := startOpenFalcon(t, nil)
	c, err := net.Dial("tcp", r.LegacyAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "update up-1 four.fields 1764000000 1.5\n")
	// Produced line by line: visible while the connection is still open.
	if recs := relaytest.ReadTopic(t, k.Addr(), topic, 1, 10*time.Second); len(recs) != 1 {
		t.Fatalf("%d records while the connection is open, want 1", len(recs))
	}
	lines := []string{
		"update up-1 five.fields 1764000000 2 GAUGE",
		"update up-1 six.fields 1764000000 3 DERIVE 30",
		"  update   up-1   rrd.step   1764000000   4   GAUGE   120:U:U:15  ",
		"update up-1 ts.zero 0 5 GAUGE 60",
		`{"endpoint":"up-1","metric":"json.line","value":6,"step":60,"counterType":"GAUGE","tags":"","timestamp":1764000000}`,
		"update up-1 three.fields 1764000000",
		"update up-1 bad.ts soon 1",
		"update up-1 bad.value 1764000000 lots",
		"update up-1 bad.type 1764000000 1 gauge",
		"update up-1 bad.step 1764000000 1 GAUGE 0",
		"update up/1 bad.endpoint 1764000000 1",
		"update up-1 seven.fields 1764000000 1 GAUGE 60 x",
		"",
		"quit",
		"update up-1 after.quit 1764000000 1",
	}
	io.WriteString(c, strings.Join(lines, "\n")+"\n")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Errorf("after quit: %q, %v; want EOF and nothing written", b, err)
	}
	counts, ms := recordsBySeries(t, k.Addr(), 6)
	want := map[string]metric.Metric{
		"up-1/four.fields/": {Type: metric.Counter, Step: 60, Value: 1.5},
		"up-1/five.fields/": {Type: metric.Gauge, Step: 60, Value: 2},
		"up-1/six.fields/":  {Type: metric.Derive, Step: 30, Value: 3},
		"up-1/rrd.step/":    {Type: metric.Gauge, Step: 15, Value: 4},
		"up-1/ts.zero/":     {Type: metric.Gauge, Step: 60, Value: 5},
		"up-1/json.line/":   {Type: metric.Gauge, Step: 60, Value: 6},
	}
	for s, w := range want {
		m := ms[s]
		if counts[s] != 1 || m.Type != w.Type || m.Step != w.Step || m.Value != w.Value {
			t.Errorf("%s: %d records, %+v; want once with %+v", s, counts[s], m, w)
		}
	}
	if len(counts) != len(want) {
		t.Errorf("%d series, want %d: %v", len(counts), len(want), counts)
	}
	if ts := ms["up-1/ts.zero/"].Timestamp; ts < time.Now().Unix()-60 {
		t.Errorf("timestamp 0 stored as %d, want now", ts)
	}
	relaytest.WaitFor(t, 5*time.Second, "bad update line logged", func() bool {
		return strings.Contains(logs.String(), "bad legacy update line dropped")
	})
	wantMetrics(t, r, "falconet_relay_legacy_bad_lines_total 7", "falconet_relay_legacy_lines_total 13",
		`falconet_relay_metrics_received_total{source="legacy"} 6`)
}

// TestOpenFalconHTTPPush posts to /api/push as Open-Falcon scripts do.
func TestOpenFalconHTTPPush(t *testing.T) {
	k, r, _ := startOpenFalcon(t, func(c *relay.Config) { c.Limits.MaxFrame = 64 << 10; c.Limits.ConnInflightBytes = 64 << 10 })
	post := func(body string) (int, string) {
		resp, err := http.Post("http://"+r.HTTPAddr()+"/api/push", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	items := []*ofMetricValue{gauge("push-1", "a", 1, 1764000000), gauge("push-1", "b", "2.5", 1764000000),
		{Endpoint: "push-1", Metric: "c", Value: 3, Step: 60, Type: "DERIVE", Tags: "k=v", Timestamp: 0}, gauge("push-1", "bad", nil, 1764000000)}
	b, _ := json.Marshal(items)
	code, body := post(string(b))
	var ans struct {
		Msg  string              `json:"msg"`
		Data *ofTransferResponse `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &ans); err != nil || code != 200 || ans.Msg != "success" || ans.Data == nil ||
		ans.Data.Message != "ok" || ans.Data.Total != 4 || ans.Data.Invalid != 1 {
		t.Fatalf("push: %d %s, want 200 success with Total 4, Invalid 1", code, body)
	}
	for _, tt := range []struct {
		body string
		code int
	}{{`{"endpoint":"x"}`, 400}, {`not json`, 400}, {``, 400}, {`[` + strings.Repeat(`{"endpoint":"x"},`, 8000) + `{}]`, 413}} {
		if code, body := post(tt.body); code != tt.code || !strings.Contains(body, `"data":null`) {
			t.Errorf("push %.30q: %d %s, want %d with msg and null data", tt.body, code, body, tt.code)
		}
	}
	counts, _ := recordsBySeries(t, k.Addr(), 3)
	for _, s := range []string{"push-1/a/", "push-1/b/", "push-1/c/k=v"} {
		if counts[s] != 1 {
			t.Errorf("%s in Kafka %d times, want once", s, counts[s])
		}
	}
	if len(counts) != 3 {
		t.Errorf("series %v, want 3", counts)
	}
}

// TestOpenFalconKafkaDown: with the broker gone, calls are answered with an
// error well within falcon-agent's 10 s, nothing is answered "ok", and once
// Kafka is back calls succeed; Kafka then holds exactly the items answered
// "ok".
func TestOpenFalconKafkaDown(t *testing.T) {
	dir := t.TempDir()
	k, err := devstack.StartKafka(devstack.KafkaConfig{Listen: "127.0.0.1:0", DataDir: dir, Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	addr := k.Addr()
	cfg := relaytest.Config(addr)
	cfg.OpenFalcon.Enabled = true
	cfg.Kafka.RetryMax = 1
	r := relaytest.Start(t, cfg, testLogger(t))
	c, err := jsonrpc.Dial("tcp", r.ProtocolAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if resp, err := rpcCall(c, []*ofMetricValue{gauge("kd", "before", 1, 1764000000)}); err != nil || resp.Message != "ok" {
		t.Fatalf("before: %+v, %v", resp, err)
	}
	k.Close()
	relaytest.WaitFor(t, 20*time.Second, "relay notices kafka is down", func() bool { return r.Health() != nil })
	for i := range 3 {
		resp, err := rpcCall(c, []*ofMetricValue{gauge("kd", fmt.Sprint("down.", i), 1, 1764000000)})
		if err == nil || !strings.Contains(err.Error(), "kafka") || strings.Contains(err.Error(), "timeout") {
			t.Fatalf("call %d with kafka down: %+v, %v; want an error naming kafka, answered in time", i, resp, err)
		}
	}
	resp, err := http.Post("http://"+r.HTTPAddr()+"/api/push", "application/json",
		strings.NewReader(`[{"endpoint":"kd","metric":"down.push","value":1,"step":60,"counterType":"GAUGE","tags":"","timestamp":1764000000}]`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(string(body), "success") {
		t.Errorf("/api/push with kafka down: %d %s, want 503", resp.StatusCode, body)
	}
	k2, err := devstack.StartKafka(devstack.KafkaConfig{Listen: addr, DataDir: dir, Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k2.Close)
	relaytest.WaitFor(t, 30*time.Second, "relay ready again", func() bool { return r.Health() == nil })
	// The same connection keeps working (falcon-agent keeps it too).
	if resp, err := rpcCall(c, []*ofMetricValue{gauge("kd", "after", 1, 1764000000)}); err != nil || resp.Message != "ok" {
		t.Fatalf("after: %+v, %v", resp, err)
	}
	counts, _ := recordsBySeries(t, addr, 2)
	if counts["kd/before/"] != 1 || counts["kd/after/"] != 1 || len(counts) != 2 {
		t.Errorf("series in Kafka %v, want kd/before/ and kd/after/ once each, nothing refused", counts)
	}
	wantMetrics(t, r, `falconet_relay_openfalcon_calls_total{input="rpc",result="error"} 3`,
		`falconet_relay_openfalcon_calls_total{input="http",result="error"} 1`)
}

// TestOpenFalconProduceFailing: the brokers answer but refuse every produce
// (NOT_ENOUGH_REPLICAS): calls are answered an error, never "ok"; once
// produce works again calls succeed, and Kafka holds only what was "ok".
func TestOpenFalconProduceFailing(t *testing.T) {
	k := devstack.StartKafkaT(t, topic)
	cfg := relaytest.Config(k.Addr())
	cfg.OpenFalcon.Enabled = true
	cfg.Kafka.RetryMax = 1
	cfg.Kafka.Idempotent = false
	r := relaytest.Start(t, cfg, nil)
	var mu sync.Mutex
	fail := true
	k.Cluster().ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.Cluster().KeepControl()
		mu.Lock()
		defer mu.Unlock()
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
				sp.ErrorCode = 19 // NOT_ENOUGH_REPLICAS
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	c, err := jsonrpc.Dial("tcp", r.ProtocolAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		resp, err := rpcCall(c, []*ofMetricValue{gauge("pf", fmt.Sprint("refused.", i), 1, 1764000000)})
		if err == nil || !strings.Contains(err.Error(), "kafka") || strings.Contains(err.Error(), "timeout") {
			t.Fatalf("call %d with produce failing: %+v, %v; want an error naming kafka, in time", i, resp, err)
		}
		t.Logf("call %d: %v", i, err)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	relaytest.WaitFor(t, 20*time.Second, "relay ready again", func() bool { return r.Health() == nil })
	if resp, err := rpcCall(c, []*ofMetricValue{gauge("pf", "ok", 1, 1764000000)}); err != nil || resp.Message != "ok" {
		t.Fatalf("after produce recovered: %+v, %v", resp, err)
	}
	counts, _ := recordsBySeries(t, k.Addr(), 1)
	if counts["pf/ok/"] != 1 || len(counts) != 1 {
		t.Errorf("series in Kafka %v, want only pf/ok/ once", counts)
	}
}
