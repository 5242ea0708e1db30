package netns

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// echoTCP serves an echo server on loopback until the test ends.
func echoTCP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func TestDelayProxyTCP(t *testing.T) {
	const delay, jitter = 40 * time.Millisecond, 20 * time.Millisecond
	p, err := StartDelayProxy("tcp", nil, "127.0.0.1:0", nil, echoTCP(t), DelayConfig{Delay: delay, Jitter: jitter, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Round trips: each one is at least 2*(delay-jitter), whatever the machine.
	for i := range 5 {
		start := time.Now()
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		if rtt := time.Since(start); rtt < 2*(delay-jitter) {
			t.Errorf("round trip %d took %v, want >= %v", i, rtt, 2*(delay-jitter))
		}
		if b[0] != byte(i) {
			t.Errorf("round trip %d: got byte %d, want %d", i, b[0], i)
		}
	}
	// A stream written in many small pieces comes back whole and in order
	// despite the jitter.
	const n = 2000
	go func() {
		for i := range n {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], uint32(i))
			if _, err := c.Write(b[:]); err != nil {
				return
			}
		}
	}()
	got := make([]byte, 4*n)
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the echoed stream: %v", err)
	}
	for i := range n {
		if v := binary.BigEndian.Uint32(got[4*i:]); v != uint32(i) {
			t.Fatalf("echoed word %d is %d: stream reordered or corrupted", i, v)
		}
	}
	// Close ends the carried connection.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after the proxy closed")
	}
}

func TestDelayProxyUDP(t *testing.T) {
	srv, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		b := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFrom(b)
			if err != nil {
				return
			}
			_, _ = srv.WriteTo(b[:n], from)
		}
	}()
	const delay = 30 * time.Millisecond
	p, err := StartDelayProxy("udp", nil, "127.0.0.1:0", nil, srv.LocalAddr().String(), DelayConfig{Delay: delay})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("udp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 16)
	n, err := c.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[:n], []byte("ping")) {
		t.Errorf("got %q, want ping", b[:n])
	}
	if rtt := time.Since(start); rtt < 2*delay {
		t.Errorf("udp round trip %v, want >= %v", rtt, 2*delay)
	}
}
