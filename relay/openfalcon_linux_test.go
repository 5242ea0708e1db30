package relay

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/falconet/falconet/wire"
	"golang.org/x/sys/unix"
)

// TestSniffedConnKeepsSocketOptions: agents' connections pass through the
// sniffing wrapper; TCP_USER_TIMEOUT set through it must reach the socket.
func TestSniffedConnKeepsSocketOptions(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	sc := &sniffedConn{Conn: server, r: bufio.NewReaderSize(server, 16)}
	if err := wire.SetUserTimeout(sc, 7*time.Second); err != nil {
		t.Fatal(err)
	}
	raw, err := server.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	if err := raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT) }); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if got != 7000 {
		t.Errorf("TCP_USER_TIMEOUT through the sniffing wrapper = %d ms, want 7000", got)
	}
}
