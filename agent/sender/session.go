package sender

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/falconet/falconet/buffer"
	"github.com/falconet/falconet/wire"
)

type sessionResult struct {
	welcomed bool
	acked    int
	result   string // connects_total label when not welcomed
	reason   string // why a good session ended
	err      error
	queueErr error
}

var errDrained = errors.New("sender: relay drained")

// session runs one connection to addr until it fails, drains or ctx ends.
// Every batch it took from the queue is acked or nacked before it returns.
func (s *Sender) session(ctx context.Context, addr string) (res sessionResult) {
	conn, welcome, err := s.connect(ctx, addr)
	if err != nil {
		res.err = err
		res.result = "error"
		var rj *rejectError
		if errors.As(err, &rj) {
			res.result = "rejected"
			s.avoidRelay(addr, s.cfg.BackoffMax, rj.r.Redirect)
		} else {
			s.avoidRelay(addr, s.cfg.BackoffMin*4, nil)
		}
		return res
	}
	s.m.connects.WithLabelValues("ok").Inc()
	res.welcomed = true
	window := s.cfg.MaxInFlight
	if welcome.MaxInFlight > 0 && welcome.MaxInFlight < window {
		window = welcome.MaxInFlight
	}
	// The relay closes a connection silent for its idle timeout: an idle
	// agent says something at least every half of it.
	idle := s.cfg.IdleHeartbeat
	if welcome.IdleTimeout > 0 && welcome.IdleTimeout/2 < idle {
		idle = max(welcome.IdleTimeout/2, 10*time.Millisecond)
	}
	heartbeat := min(s.cfg.Heartbeat, idle)
	s.log.Info("connected to relay", "relay", addr, "relay_id", welcome.RelayID, "window", window, "heartbeat", heartbeat, "idle_heartbeat", idle)
	s.setCurrent(addr)
	defer s.setCurrent("")

	c := &link{
		s: s, addr: addr, conn: conn, window: window, maxFrame: welcome.MaxFrame,
		w:        wire.NewWriter(conn),
		r:        wire.NewReader(conn, s.cfg.MaxFrame),
		inflight: map[uint64]buffer.Batch{},
		freed:    make(chan struct{}, 1),
		kick:     make(chan struct{}, 1),
	}
	now := time.Now()
	c.lastRecv.Store(now.UnixNano())
	c.lastWrite.Store(now.UnixNano())
	sctx, cancel := context.WithCancel(ctx)
	c.cancel = cancel
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); c.fail(c.readLoop()) }()
	go func() { defer wg.Done(); c.fail(c.writeLoop(sctx)) }()
	go func() { defer wg.Done(); c.fail(c.watchdog(sctx, heartbeat, idle)) }()
	if st, ok := s.relays.(Steering); ok {
		wg.Add(1)
		go func() { defer wg.Done(); c.steerLoop(sctx, st) }()
	}
	<-sctx.Done()
	c.fail(nil)
	wg.Wait()

	c.mu.Lock()
	var back []uint64
	for seq := range c.inflight {
		back = append(back, seq)
	}
	clear(c.inflight)
	c.closed = true
	c.mu.Unlock()
	if len(back) > 0 {
		s.q.Nack(back...)
		s.m.nacked.Add(float64(len(back)))
	}
	s.m.inflight.Set(0)
	res.acked = c.acked
	res.queueErr = c.queueErr
	if errors.Is(c.err, errDrained) {
		res.reason = c.drainReason
	} else if ctx.Err() == nil {
		res.err = c.err
	}
	return res
}

type rejectError struct{ r *wire.Reject }

func (e *rejectError) Error() string {
	return fmt.Sprintf("relay refused: %s: %s", e.r.Code, e.r.Reason)
}

// connect dials, does TLS and the hello exchange, all within DialTimeout.
func (s *Sender) connect(ctx context.Context, addr string) (net.Conn, *wire.Welcome, error) {
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	d := net.Dialer{Control: wire.DialControl(s.cfg.UserTimeout), KeepAlive: -1}
	raw, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	conn := raw
	deadline, _ := dctx.Deadline()
	_ = raw.SetDeadline(deadline)
	if s.cfg.TLS != nil {
		tc := s.cfg.TLS.Clone()
		if tc.ServerName == "" {
			host, _, _ := net.SplitHostPort(addr)
			tc.ServerName = host
		}
		tconn := tls.Client(raw, tc)
		if err := tconn.HandshakeContext(dctx); err != nil {
			_ = raw.Close()
			return nil, nil, fmt.Errorf("tls: %w", err)
		}
		conn = tconn
	}
	w := wire.NewWriter(conn)
	err = w.WriteMessage(&wire.Hello{AgentID: s.cfg.AgentID, AgentVersion: s.cfg.AgentVersion, Token: s.cfg.Token})
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("send hello: %w", err)
	}
	m, err := wire.NewReader(conn, s.cfg.MaxFrame).ReadMessage()
	if err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("read welcome: %w", err)
	}
	switch v := m.(type) {
	case *wire.Welcome:
		_ = conn.SetDeadline(time.Time{})
		return conn, v, nil
	case *wire.Reject:
		_ = conn.Close()
		return nil, nil, &rejectError{v}
	}
	sendReject(conn, s.cfg.WriteTimeout, wire.RejectProtocol, fmt.Sprintf("expected welcome, got %s", m.Type()))
	_ = conn.Close()
	return nil, nil, fmt.Errorf("relay answered hello with %s", m.Type())
}

func sendReject(conn net.Conn, timeout time.Duration, code wire.RejectCode, reason string) {
	_ = conn.SetWriteDeadline(time.Now().Add(min(timeout, time.Second)))
	_, _ = conn.Write(wire.AppendMessage(nil, &wire.Reject{Code: code, Reason: reason}))
}

// link is one live session's state.
type link struct {
	s        *Sender
	addr     string
	conn     net.Conn
	window   int
	maxFrame int // the relay's, from Welcome
	cancel   context.CancelFunc

	wmu sync.Mutex // serializes w
	w   *wire.Writer
	r   *wire.Reader // readLoop only

	mu          sync.Mutex
	inflight    map[uint64]buffer.Batch
	closed      bool
	draining    bool
	drainAt     time.Time
	drainReason string
	acked       int
	freed       chan struct{}
	// awaitSince: when the sender began waiting for an answer (the first
	// batch in flight after none, or an idle heartbeat); probeOut: an idle
	// heartbeat not yet answered by any frame.
	awaitSince time.Time
	probeOut   bool
	lastProbe  time.Time     // watchdog only
	kick       chan struct{} // wakes the watchdog: waiting began, or a drain
	lastRecv   atomic.Int64  // UnixNano of the last frame read
	lastWrite  atomic.Int64  // UnixNano of the last frame written

	once     sync.Once
	err      error
	queueErr error
}

func (c *link) setQueueErr(err error) {
	c.mu.Lock()
	if c.queueErr == nil {
		c.queueErr = err
	}
	c.mu.Unlock()
}

// fail ends the session with err (the first one wins).
func (c *link) fail(err error) {
	c.once.Do(func() {
		c.err = err
		c.cancel()
		_ = c.conn.Close()
	})
}

func (c *link) write(f func(w *wire.Writer) error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	if err := f(c.w); err != nil {
		return err
	}
	err := c.w.Flush()
	c.lastWrite.Store(time.Now().UnixNano())
	return err
}

func (c *link) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *link) writeLoop(ctx context.Context) error {
	for {
		c.mu.Lock()
		free := c.window - len(c.inflight)
		draining := c.draining
		c.mu.Unlock()
		if free <= 0 || draining {
			select {
			case <-ctx.Done():
				return nil
			case <-c.freed:
			}
			continue
		}
		batches, err := c.s.q.Next(ctx, free)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.setQueueErr(err)
			return fmt.Errorf("queue: %w", err)
		}
		batches, err = c.dropOversized(batches)
		if err != nil {
			return err
		}
		if len(batches) == 0 {
			continue
		}
		c.mu.Lock()
		if c.closed || c.draining {
			c.mu.Unlock()
			seqs := make([]uint64, len(batches))
			for i, b := range batches {
				seqs[i] = b.Seq
			}
			c.s.q.Nack(seqs...)
			continue
		}
		began := len(c.inflight) == 0 && !c.probeOut
		if began {
			c.awaitSince = time.Now()
		}
		for _, b := range batches {
			c.inflight[b.Seq] = b
		}
		n := len(c.inflight)
		c.mu.Unlock()
		if began {
			c.wake()
		}
		c.s.m.inflight.Set(float64(n))
		bytes := 0
		err = c.write(func(w *wire.Writer) error {
			for _, b := range batches {
				if err := w.WriteBatch(b.Seq, b.Payload); err != nil {
					return err
				}
				bytes += len(b.Payload) + wire.HeaderSize + 8
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("send batch: %w", err)
		}
		c.s.m.sent.Add(float64(len(batches)))
		c.s.m.bytes.Add(float64(bytes))
	}
}

// dropOversized removes batches larger than the relay's maximum frame: no
// relay configured alike could ever take them, and resending would kill the
// connection every time. They are deleted with an error log and counted.
func (c *link) dropOversized(batches []buffer.Batch) ([]buffer.Batch, error) {
	if c.maxFrame <= 0 {
		return batches, nil
	}
	kept := batches[:0]
	var drop []uint64
	for _, b := range batches {
		if len(b.Payload)+8 > c.maxFrame {
			drop = append(drop, b.Seq)
			c.s.m.rejected.WithLabelValues("too_large").Inc()
			c.s.log.Error("batch larger than the relay accepts; dropping it", "relay", c.addr, "batch", b.Seq,
				"bytes", len(b.Payload), "relay_max_frame", c.maxFrame, "metrics", b.Metrics)
			continue
		}
		kept = append(kept, b)
	}
	if len(drop) > 0 {
		if err := c.s.q.Ack(drop...); err != nil {
			c.s.q.Nack(drop...)
			c.s.q.Nack(seqsOf(kept)...)
			c.setQueueErr(err)
			return nil, fmt.Errorf("queue ack: %w", err)
		}
	}
	return kept, nil
}

func seqsOf(bs []buffer.Batch) []uint64 {
	out := make([]uint64, len(bs))
	for i, b := range bs {
		out[i] = b.Seq
	}
	return out
}

// watchdog notices a dead link cheaply. While batches are in flight (or
// an idle heartbeat is unanswered), the relay must be heard from within
// ReadTimeout of the sender starting to wait or of its last frame, whichever
// is later; a heartbeat goes out when nothing was heard for `heartbeat`
// while batches wait, so a relay that is alive but slow to ack (Kafka slow)
// keeps proving itself with pongs. While nothing is in flight, a heartbeat
// goes out only after `idle` without writing anything: an agent sending a
// batch every interval sends no heartbeats at all. It also ends a drain that
// outlived DrainTimeout.
func (c *link) watchdog(ctx context.Context, heartbeat, idle time.Duration) error {
	cfg := &c.s.cfg
	timer := time.NewTimer(idle)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-c.kick:
		}
		now := time.Now()
		lastRecv := time.Unix(0, c.lastRecv.Load())
		c.mu.Lock()
		n := len(c.inflight)
		awaiting := n > 0 || c.probeOut
		since := c.awaitSince
		draining, drainAt := c.draining, c.drainAt
		c.mu.Unlock()
		if lastRecv.After(since) {
			since = lastRecv
		}
		if draining && n > 0 && !now.Before(drainAt) {
			return fmt.Errorf("relay did not answer in-flight batches within %v of draining", cfg.DrainTimeout)
		}
		if awaiting && now.Sub(since) >= cfg.ReadTimeout {
			return fmt.Errorf("nothing from relay for %v with %d batches in flight", now.Sub(since).Round(time.Millisecond), n)
		}
		var next time.Time
		probe := false
		if awaiting {
			next = since.Add(cfg.ReadTimeout)
			if n > 0 {
				p := since
				if c.lastProbe.After(p) {
					p = c.lastProbe
				}
				if now.Sub(p) >= heartbeat {
					probe = true
					p = now
				}
				next = earliest(next, p.Add(heartbeat))
			}
		} else {
			lastWrite := time.Unix(0, c.lastWrite.Load())
			if now.Sub(lastWrite) >= idle {
				probe = true
				c.mu.Lock()
				if len(c.inflight) == 0 && !c.probeOut {
					c.awaitSince = now
				}
				c.probeOut = true
				c.mu.Unlock()
				next = now.Add(cfg.ReadTimeout)
			} else {
				next = lastWrite.Add(idle)
			}
		}
		if draining {
			next = earliest(next, drainAt)
		}
		if probe {
			c.lastProbe = now
			if err := c.probe(now, next); err != nil {
				return fmt.Errorf("send heartbeat: %w", err)
			}
		}
		timer.Reset(max(time.Until(next), time.Millisecond))
	}
}

// probe writes a heartbeat unless a write is in progress (then the
// connection is busy anyway and the deadline still applies); it never blocks
// past the watchdog's next deadline, so a full send buffer on a dead link
// cannot delay noticing it.
func (c *link) probe(now, deadline time.Time) error {
	if !c.wmu.TryLock() {
		return nil
	}
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(earliest(now.Add(c.s.cfg.WriteTimeout), deadline))
	if err := c.w.WriteMessage(&wire.Heartbeat{Nonce: uint64(now.UnixNano())}); err != nil {
		return err
	}
	err := c.w.Flush()
	c.lastWrite.Store(time.Now().UnixNano())
	c.s.m.heartbeats.Inc()
	return err
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func (c *link) readLoop() error {
	cfg := &c.s.cfg
	for {
		// No read deadline: the watchdog closes a silent connection.
		m, err := c.r.ReadMessage()
		if err != nil {
			switch {
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
				return fmt.Errorf("relay closed the connection: %w", err)
			case errors.Is(err, wire.ErrBadMagic), errors.Is(err, wire.ErrVersion), errors.Is(err, wire.ErrFrameTooLarge),
				errors.Is(err, wire.ErrChecksum), errors.Is(err, wire.ErrUnknownType), errors.Is(err, wire.ErrMalformed):
				c.s.log.Error("closing connection: bad frame from relay", "relay", c.addr, "err", err)
				c.wmu.Lock()
				sendReject(c.conn, cfg.WriteTimeout, wire.RejectProtocol, err.Error())
				c.wmu.Unlock()
			}
			return err
		}
		c.lastRecv.Store(time.Now().UnixNano())
		c.mu.Lock()
		c.probeOut = false
		c.mu.Unlock()
		switch v := m.(type) {
		case *wire.Ack:
			if err := c.handleAck(v); err != nil {
				return err
			}
		case *wire.Pong, *wire.Heartbeat:
		case *wire.Drain:
			c.s.log.Info("relay is draining", "relay", c.addr, "reason", v.Reason, "redirect", v.Redirect)
			c.startDrain(v.Reason, v.Redirect)
		case *wire.Reject:
			c.s.log.Warn("relay closed the connection", "relay", c.addr, "code", v.Code, "reason", v.Reason)
			c.s.avoidRelay(c.addr, cfg.BackoffMax, v.Redirect)
			return &rejectError{v}
		default:
			err := fmt.Errorf("unexpected %s frame from relay", m.Type())
			c.s.log.Error("closing connection", "relay", c.addr, "err", err)
			c.wmu.Lock()
			sendReject(c.conn, cfg.WriteTimeout, wire.RejectProtocol, err.Error())
			c.wmu.Unlock()
			return err
		}
		c.mu.Lock()
		done := c.draining && len(c.inflight) == 0
		c.mu.Unlock()
		if done {
			return errDrained
		}
	}
}

// steerLoop moves the sender when the Steering source prefers another
// relay: no new batches go out, and the session ends once every in-flight
// batch is answered (or DrainTimeout passes; then they are resent).
func (c *link) steerLoop(ctx context.Context, st Steering) {
	t := time.NewTicker(c.s.cfg.SteerInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-st.Changed():
		case <-t.C:
		}
		rs := st.Relays()
		if len(rs) == 0 || rs[0] == c.addr || c.s.avoided(rs[0]) {
			continue
		}
		c.s.log.Info("moving to the preferred relay", "relay", c.addr, "to", rs[0])
		c.s.m.moves.Inc()
		c.mu.Lock()
		if !c.draining {
			c.draining = true
			c.drainAt = time.Now().Add(c.s.cfg.DrainTimeout)
			c.drainReason = "moving to " + rs[0]
		}
		idle := len(c.inflight) == 0
		c.mu.Unlock()
		c.wake()
		select {
		case c.freed <- struct{}{}:
		default:
		}
		if idle {
			c.fail(errDrained)
		}
		return
	}
}

func (c *link) startDrain(reason string, redirect []string) {
	c.mu.Lock()
	if !c.draining {
		c.draining = true
		c.drainAt = time.Now().Add(c.s.cfg.DrainTimeout)
		c.drainReason = reason
	}
	c.mu.Unlock()
	c.wake()
	c.s.avoidRelay(c.addr, c.s.cfg.BackoffMax, redirect)
	select {
	case c.freed <- struct{}{}:
	default:
	}
}

func (c *link) handleAck(a *wire.Ack) error {
	var done, retry []uint64
	metrics := 0
	var retryReason string
	c.mu.Lock()
	for _, r := range a.Results {
		b, ok := c.inflight[r.Seq]
		if !ok {
			continue // answered twice, or from before a reconnect: nothing to do
		}
		delete(c.inflight, r.Seq)
		switch r.Status {
		case wire.StatusOK:
			done = append(done, r.Seq)
			metrics += b.Metrics
		case wire.StatusInvalid:
			done = append(done, r.Seq)
			c.s.m.rejected.WithLabelValues("invalid").Inc()
			c.s.log.Error("relay refused a batch as undeliverable; dropping it", "relay", c.addr, "batch", r.Seq, "metrics", b.Metrics, "reason", r.Reason)
		default:
			retry = append(retry, r.Seq)
			retryReason = r.Reason
		}
	}
	c.acked += len(done)
	n := len(c.inflight)
	c.mu.Unlock()
	c.s.m.inflight.Set(float64(n))
	if len(done) > 0 {
		if err := c.s.q.Ack(done...); err != nil {
			c.s.q.Nack(done...) // not deleted: hand them back, they will be sent again
			c.setQueueErr(err)
			return fmt.Errorf("queue ack: %w", err)
		}
		c.s.m.acked.Add(float64(len(done)))
		c.s.m.ackedMetrics.Add(float64(metrics))
	}
	if len(retry) > 0 {
		c.s.q.Nack(retry...)
		c.s.m.rejected.WithLabelValues("retry_later").Add(float64(len(retry)))
		c.s.m.nacked.Add(float64(len(retry)))
		c.s.log.Warn("relay cannot store batches now; finishing in-flight and trying another relay", "relay", c.addr, "batches", len(retry), "reason", retryReason)
		c.startDrain("retry later: "+retryReason, nil)
	}
	select {
	case c.freed <- struct{}{}:
	default:
	}
	return nil
}
