package discovery

import (
	"log"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// countingTransport wraps memberlist's network transport and counts the
// bytes this member sends: UDP packets (probes, gossip) and TCP stream
// writes (push-pull state exchange, fallback probes), both directions of a
// stream being counted by the side that writes. Packets are counted as
// memberlist hands them over, after encryption.
type countingTransport struct {
	*memberlist.NetTransport
	udpSent, tcpSent atomic.Int64
	streams          chan net.Conn
	stop             chan struct{}
	wg               sync.WaitGroup
}

func newCountingTransport(host string, port int, logger *log.Logger) (*countingTransport, error) {
	var nt *memberlist.NetTransport
	var err error
	for range 10 { // a kernel-chosen TCP port may be taken for UDP: retry
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port, Logger: logger})
		if err == nil || port != 0 {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	t := &countingTransport{NetTransport: nt, streams: make(chan net.Conn), stop: make(chan struct{})}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		for {
			select {
			case c := <-nt.StreamCh():
				select {
				case t.streams <- &countingConn{Conn: c, n: &t.tcpSent}:
				case <-t.stop:
					_ = c.Close()
					return
				}
			case <-t.stop:
				return
			}
		}
	}()
	return t, nil
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.udpSent.Add(int64(len(b)))
	return t.NetTransport.WriteTo(b, addr)
}

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.udpSent.Add(int64(len(b)))
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &t.tcpSent}, nil
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &t.tcpSent}, nil
}

func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *countingTransport) Shutdown() error {
	err := t.NetTransport.Shutdown()
	close(t.stop)
	t.wg.Wait()
	return err
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// Traffic is what a member has sent since it started.
type Traffic struct {
	UDPBytes, TCPBytes int64
}

// Traffic returns the bytes this member has sent (gossip, probes, RTT pings,
// state exchanges).
func (n *Node) Traffic() Traffic {
	return Traffic{UDPBytes: n.tr.udpSent.Load(), TCPBytes: n.tr.tcpSent.Load()}
}
