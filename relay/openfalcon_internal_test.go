package relay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// FuzzRPCDecoder feeds arbitrary bytes to the Open-Falcon JSON-RPC call
// reader and the request decoding behind it. Properties: nothing panics; no
// call comes out longer than the limit; every call starts with '{' and ends
// with '}'; and wherever encoding/json's stream decoder reads a sequence of
// objects, the reader returns exactly the same objects.
func FuzzRPCDecoder(f *testing.F) {
	f.Add([]byte(`{"method":"Transfer.Update","params":[[{"endpoint":"h","metric":"m","value":1,"step":60,"counterType":"GAUGE","tags":"a=1","timestamp":1764000000}]],"id":0}` + "\n"))
	f.Add([]byte(`{"method":"Transfer.Update","params":[[{"endpoint":"h","metric":"m","value":"1.5","step":60,"counterType":"DERIVE","tags":"","timestamp":0}]],"id":1}{"method":"Transfer.Ping","params":[null],"id":2}`))
	f.Add([]byte(" \r\n\t{\"method\":\"x\",\"params\":[[\"}]\\\"{\"]],\"id\":\"a\\\\\"}\n"))
	f.Add([]byte(`{"a":[}`))
	f.Add([]byte(`{"a":"\u00`))
	f.Add([]byte(`[1]`))
	f.Add([]byte(`{"method":"Transfer.Update","params":[[null,7,{"step":"60"},{"value":true}]],"id":null}`))
	f.Add([]byte(`{"method":"Transfer.Update","params":[[` + strings.Repeat(`{"endpoint":"e","metric":"m","value":1,"step":60,"counterType":"GAUGE"},`, 40) + `{}]],"id":3}`))
	const limit = 2048
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), 64)
		var got [][]byte
		for {
			obj, err := readRPCMessage(br, nil, limit)
			if err != nil {
				if len(obj) > limit {
					t.Fatalf("error %v with %d bytes held, limit %d", err, len(obj), limit)
				}
				break
			}
			if len(obj) > limit || obj[0] != '{' || obj[len(obj)-1] != '}' {
				t.Fatalf("call %q: longer than %d or not an object", obj, limit)
			}
			got = append(got, append([]byte(nil), obj...))
			if req, err := parseRPCRequest(obj); err == nil {
				items, bad, err := decodeUpdateParams(req.Params)
				if err == nil && len(bad) > len(items) {
					t.Fatalf("%d bad of %d items", len(bad), len(items))
				}
				for i := range items {
					_, _, _ = items[i].ToMetric(1764000000)
				}
				resp := appendRPCResponse(nil, req.ID, []byte(`{"Code":0}`), "")
				if !json.Valid(bytes.TrimSpace(resp)) {
					t.Fatalf("response %q is not JSON", resp)
				}
			}
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil || len(raw) == 0 || raw[0] != '{' || len(raw) > limit {
				return
			}
			if i >= len(got) || !bytes.Equal(got[i], raw) {
				var g []byte
				if i < len(got) {
					g = got[i]
				}
				t.Fatalf("object %d: reader gave %q, encoding/json %q", i, g, raw)
			}
		}
	})
}

func TestReadRPCMessage(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr error
	}{
		{in: `{"a":1}` + "\n" + `{"b":"}"}`, want: []string{`{"a":1}`, `{"b":"}"}`}, wantErr: io.EOF},
		{in: `  {"a":"\"}"}{}`, want: []string{`{"a":"\"}"}`, `{}`}, wantErr: io.EOF},
		{in: `{"a":[1,{"b":[]}]}x`, want: []string{`{"a":[1,{"b":[]}]}`}, wantErr: errRPCSyntax},
		{in: `{"a":[}`, wantErr: errRPCSyntax},
		{in: `{"a":1`, wantErr: io.ErrUnexpectedEOF},
		{in: `{"a":"` + strings.Repeat("x", 100) + `"}`, wantErr: errRPCTooLarge},
		{in: ``, wantErr: io.EOF},
	}
	for _, tt := range tests {
		br := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
		var got []string
		var err error
		for {
			var obj []byte
			if obj, err = readRPCMessage(br, nil, 64); err != nil {
				break
			}
			got = append(got, string(obj))
		}
		if strings.Join(got, "|") != strings.Join(tt.want, "|") || !errors.Is(err, tt.wantErr) {
			t.Errorf("%q: got %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestAllowList(t *testing.T) {
	cfg := DefaultOpenFalconConfig()
	cfg.Allow = []string{"10.1.0.0/16", "192.0.2.7", "2001:db8::/32"}
	of, err := newOpenFalcon(cfg, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	empty, err := newOpenFalcon(DefaultOpenFalconConfig(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		peer        string
		want, empty bool
	}{
		{"127.0.0.1:5000", true, true},
		{"127.3.4.5:5000", true, true},
		{"[::1]:5000", true, true},
		{"[::ffff:127.0.0.1]:5000", true, true},
		{"10.1.200.3:5000", true, false},
		{"[::ffff:10.1.200.3]:5000", true, false},
		{"10.2.0.1:5000", false, false},
		{"192.0.2.7:1", true, false},
		{"192.0.2.8:1", false, false},
		{"[2001:db8:1::5]:80", true, false},
		{"[2001:db9::5]:80", false, false},
		{"not-an-address", false, false},
	} {
		if got := of.allowed(tt.peer); got != tt.want {
			t.Errorf("allowed(%s) with %v = %v, want %v", tt.peer, cfg.Allow, got, tt.want)
		}
		if got := empty.allowed(tt.peer); got != tt.empty {
			t.Errorf("allowed(%s) with allow = [] = %v, want %v", tt.peer, got, tt.empty)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0.0/8x", ""} {
		c := DefaultOpenFalconConfig()
		c.Allow = []string{"127.0.0.1", bad}
		if err := c.validate(); err == nil || !strings.HasPrefix(err.Error(), "relay.open_falcon.allow[1]:") {
			t.Errorf("allow %q: got %v, want an error naming relay.open_falcon.allow[1]", bad, err)
		}
	}
	c := DefaultOpenFalconConfig()
	c.IdleTimeout = 0
	if err := c.validate(); err == nil || !strings.HasPrefix(err.Error(), "relay.open_falcon.idle_timeout:") {
		t.Errorf("idle_timeout 0: got %v", err)
	}
}

// remoteAs is a real loopback connection that reports another peer address,
// to drive the allow list without a second network.
type remoteAs struct {
	net.Conn
	addr net.Addr
}

func (c remoteAs) RemoteAddr() net.Addr { return c.addr }

// TestNotAllowedPeersRefused drives the legacy, JSON-RPC and /api/push
// handlers with a peer outside open_falcon.allow: each is refused, counted
// and logged; a peer inside it is served.
func TestNotAllowedPeersRefused(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Listen = ListenConfig{Protocol: "127.0.0.1:0", Legacy: "127.0.0.1:0", HTTP: "127.0.0.1:0"}
	cfg.Discovery.Bind = ""
	cfg.OpenFalcon.Enabled = true
	cfg.OpenFalcon.Allow = []string{"10.1.0.0/16"}
	var logs strings.Builder
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil))
	reg := prometheus.NewRegistry()
	s, err := New(cfg, logger, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stranger := &net.TCPAddr{IP: net.ParseIP("10.2.0.9"), Port: 4000}
	pair := func() (client, server net.Conn) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		client, err = net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err = ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close(); server.Close() })
		return client, server
	}

	client, server := pair()
	done := make(chan struct{})
	go func() { s.serveLegacy(remoteAs{server, stranger}); close(done) }()
	<-done
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(client); len(b) != 0 || err != nil {
		t.Errorf("legacy from a stranger: got %q, %v; want closed", b, err)
	}

	client, server = pair()
	go func() {
		_, _ = io.WriteString(client, `{"method":"Transfer.Update","params":[[]],"id":4}`+"\n")
	}()
	done = make(chan struct{})
	go func() { s.serveProtocol(remoteAs{server, stranger}); close(done) }()
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(client)
	<-done
	if string(b) != `{"id":4,"result":null,"error":"falconet relay: source address not allowed (open_falcon.allow)"}`+"\n" {
		t.Errorf("rpc from a stranger: got %q", b)
	}

	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/api/push", strings.NewReader(`[]`))
	req.RemoteAddr = stranger.String()
	s.servePush(rec, req)
	if rec.Code != 403 || !strings.Contains(rec.Body.String(), "not allowed") {
		t.Errorf("/api/push from a stranger: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	req = httptest.NewRequest("POST", "/api/push", strings.NewReader(`[]`))
	req.RemoteAddr = "10.1.7.7:5000"
	s.servePush(rec, req)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"msg":"success"`) {
		t.Errorf("/api/push from an allowed network: %d %s", rec.Code, rec.Body)
	}

	refused := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "falconet_relay_unauthenticated_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var input, reason string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "input":
					input = l.GetValue()
				case "reason":
					reason = l.GetValue()
				}
			}
			refused[input+"/"+reason] = m.GetCounter().GetValue()
		}
	}
	if want := map[string]float64{"legacy/not_allowed": 1, "rpc/not_allowed": 1, "http/not_allowed": 1}; fmt.Sprint(refused) != fmt.Sprint(want) {
		t.Errorf("falconet_relay_unauthenticated_refused_total %v, want %v", refused, want)
	}
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	if n := strings.Count(out, "peer not in open_falcon.allow"); n != 3 || !strings.Contains(out, "peer=10.2.0.9:4000") {
		t.Errorf("refusal logs (%d, want 3 with the peer):\n%s", n, out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
