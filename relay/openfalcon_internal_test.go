package relay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

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
