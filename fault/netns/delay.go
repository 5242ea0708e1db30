package netns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The kernels here have no netem, so latency and jitter are added in user
// space: a DelayProxy listens on one address and forwards to a target,
// holding every chunk (TCP) or datagram (UDP) for a one-way delay drawn
// from [Delay-Jitter, Delay+Jitter], in each direction. A round trip
// through it therefore takes 2*Delay ± 2*Jitter on top of the network's own.
//
// TCP keeps order: a chunk is never released before the one read ahead of
// it, so jitter stretches the stream instead of reordering it (as a real
// link's jitter does to one TCP flow). UDP datagrams are delayed
// independently and may be reordered, as on a real link.
//
// The proxy runs inside the test process. It listens inside one namespace
// (nil: the root namespace, which reaches every node through the bridge)
// and dials from another, so a node can be made to reach a service only
// through it: point the node at the proxy's address.

// DelayConfig is a proxy's delay in each direction.
type DelayConfig struct {
	Delay  time.Duration // one-way delay added in each direction
	Jitter time.Duration // each chunk's delay is uniform in Delay ± Jitter
	Seed   uint64        // 0: random
}

// DelayProxy forwards one listening address to one target with delay.
type DelayProxy struct {
	network string
	target  string
	dialIn  *Node

	mu     sync.Mutex
	cfg    DelayConfig
	rng    *rand.Rand
	ln     net.Listener
	pc     net.PacketConn
	conns  map[io.Closer]bool
	closed bool
	wg     sync.WaitGroup

	// udp: one upstream socket per client address.
	udpPeers map[string]net.Conn
}

// StartDelayProxy listens on listen ("ip:port"; port 0 picks one) inside
// listenIn (nil: the root namespace) and forwards every connection (tcp) or
// datagram (udp) to target, dialled from inside dialIn (nil: the root
// namespace). Close stops it and every connection it carries.
func StartDelayProxy(network string, listenIn *Node, listen string, dialIn *Node, target string, cfg DelayConfig) (*DelayProxy, error) {
	if network != "tcp" && network != "udp" {
		return nil, fmt.Errorf("netns: delay proxy: network %q, want tcp or udp", network)
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	p := &DelayProxy{
		network:  network,
		target:   target,
		dialIn:   dialIn,
		cfg:      cfg,
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		conns:    map[io.Closer]bool{},
		udpPeers: map[string]net.Conn{},
	}
	err := inNamespace(listenIn, func() error {
		var err error
		if network == "tcp" {
			p.ln, err = net.Listen("tcp", listen)
		} else {
			p.pc, err = net.ListenPacket("udp", listen)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netns: delay proxy listen %s %s: %w", network, listen, err)
	}
	p.wg.Add(1)
	if network == "tcp" {
		go p.acceptLoop()
	} else {
		go p.udpLoop()
	}
	return p, nil
}

// Addr is the address the proxy listens on.
func (p *DelayProxy) Addr() string {
	if p.ln != nil {
		return p.ln.Addr().String()
	}
	return p.pc.LocalAddr().String()
}

// SetDelay changes the delay for chunks read from now on.
func (p *DelayProxy) SetDelay(cfg DelayConfig) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg.Delay, p.cfg.Jitter = cfg.Delay, cfg.Jitter
}

// Close stops listening, closes every forwarded connection and waits for
// the proxy's goroutines. Idempotent.
func (p *DelayProxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	var err error
	if p.ln != nil {
		err = p.ln.Close()
	}
	if p.pc != nil {
		err = p.pc.Close()
	}
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// oneWay draws one chunk's delay.
func (p *DelayProxy) oneWay() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.cfg.Delay
	if j := p.cfg.Jitter; j > 0 {
		d += time.Duration(p.rng.Int64N(int64(2*j)+1)) - j
	}
	return max(d, 0)
}

// track registers c for Close; false if the proxy is closing.
func (p *DelayProxy) track(c io.Closer) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = true
	return true
}

func (p *DelayProxy) untrack(c io.Closer) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *DelayProxy) dial() (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if p.dialIn != nil {
		return p.dialIn.DialContext(ctx, p.network, p.target)
	}
	var d net.Dialer
	return d.DialContext(ctx, p.network, p.target)
}

func (p *DelayProxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			defer c.Close()
			up, err := p.dial()
			if err != nil {
				return // the client sees the connection close, as with a refused connect
			}
			if !p.track(up) {
				up.Close()
				return
			}
			defer p.untrack(up)
			defer up.Close()
			var pipes sync.WaitGroup
			pipes.Add(2)
			go func() { defer pipes.Done(); p.pipe(up, c) }()
			go func() { defer pipes.Done(); p.pipe(c, up) }()
			pipes.Wait()
		}()
	}
}

type chunk struct {
	data []byte
	due  time.Time
	eof  bool
}

// pipe copies src to dst, each chunk released at its due time, in order.
// When either side fails, both are closed so the other direction ends too
// (a reset, as a real broken path would give).
func (p *DelayProxy) pipe(dst, src net.Conn) {
	queue := make(chan chunk, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		for ch := range queue {
			if wait := time.Until(ch.due); wait > 0 {
				timer.Reset(wait)
				<-timer.C
			}
			if ch.eof {
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				continue
			}
			if _, err := dst.Write(ch.data); err != nil {
				_ = src.Close()
				_ = dst.Close()
				for range queue { // let the reader finish
				}
				return
			}
		}
	}()
	var last time.Time
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			due := time.Now().Add(p.oneWay())
			if due.Before(last) {
				due = last // TCP: never overtake the chunk before
			}
			last = due
			queue <- chunk{data: append([]byte(nil), buf[:n]...), due: due}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				queue <- chunk{eof: true, due: last}
			} else {
				_ = dst.Close()
			}
			break
		}
	}
	close(queue)
	<-done
}

func (p *DelayProxy) udpLoop() {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := p.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		key := from.String()
		p.mu.Lock()
		up := p.udpPeers[key]
		p.mu.Unlock()
		if up == nil {
			up, err = p.dial()
			if err != nil {
				continue
			}
			if !p.track(up) {
				up.Close()
				return
			}
			p.mu.Lock()
			p.udpPeers[key] = up
			p.mu.Unlock()
			p.wg.Add(1)
			go func() { // replies from the target go back to this client
				defer p.wg.Done()
				defer p.untrack(up)
				rb := make([]byte, 64<<10)
				for {
					m, err := up.Read(rb)
					if err != nil {
						return
					}
					p.later(append([]byte(nil), rb[:m]...), func(b []byte) { _, _ = p.pc.WriteTo(b, from) })
				}
			}()
		}
		p.later(append([]byte(nil), buf[:n]...), func(b []byte) { _, _ = up.Write(b) })
	}
}

// later sends one datagram after its own delay (datagrams may reorder).
func (p *DelayProxy) later(b []byte, send func([]byte)) {
	time.AfterFunc(p.oneWay(), func() {
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		if !closed {
			send(b)
		}
	})
}

// inNamespace runs f on a thread inside nd's network namespace (nil: the
// caller's). Sockets created by f stay in that namespace. The thread is
// left locked and dies with the goroutine, so it never returns to the pool
// in the wrong namespace.
func inNamespace(nd *Node, f func() error) error {
	if nd == nil {
		return f()
	}
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the thread leaves the root namespace for good
		fd, err := unix.Open(filepath.Join("/var/run/netns", nd.NS), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- fmt.Errorf("netns: open %s: %w", nd.NS, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			ch <- fmt.Errorf("netns: setns %s: %w", nd.NS, err)
			return
		}
		ch <- f()
	}()
	return <-ch
}
