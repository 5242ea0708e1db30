package relay

import (
	"bufio"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/falconet/falconet/internal/version"
	"github.com/falconet/falconet/metric"
	"github.com/falconet/falconet/wire"
)

// msgOverhead approximates the memory of one record besides its key and
// value (sarama.ProducerMessage and bookkeeping), for the in-flight budget.
const msgOverhead = 192

// agentConn is one agent protocol connection.
type agentConn struct {
	srv     *Server
	nc      net.Conn
	peer    string
	agentID string
	ctx     context.Context
	cancel  context.CancelFunc
	budget  *budget

	wmu sync.Mutex
	w   *wire.Writer

	mu       sync.Mutex
	acks     []wire.AckResult
	pongs    []uint64
	drain    *wire.Drain
	closed   bool
	notify   chan struct{}
	inflight atomic.Int64 // batches read and not yet answered
	reader   metric.BatchReader
}

func (s *Server) serveAgent(nc net.Conn) {
	peer := nc.RemoteAddr().String()
	lim := &s.cfg.Limits
	_ = wire.SetUserTimeout(nc, lim.WriteTimeout.D())
	_ = nc.SetDeadline(time.Now().Add(lim.HandshakeTimeout.D()))
	conn := nc
	if s.tlsConf != nil {
		tc := tls.Server(nc, s.tlsConf)
		hctx, cancel := context.WithTimeout(s.hardCtx, lim.HandshakeTimeout.D())
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			s.m.connsRefused.WithLabelValues("tls").Inc()
			s.rl.log(s.log, "tls:"+hostOf(peer), slog.LevelWarn, "agent refused: TLS handshake failed", "peer", peer, "err", err)
			_ = nc.Close()
			return
		}
		conn = tc
	}
	r := wire.NewReader(bufio.NewReaderSize(conn, 4<<10), int(lim.MaxFrame))
	m, err := r.ReadMessage()
	if err != nil {
		s.refuseFrameError(conn, peer, "", err)
		_ = conn.Close()
		return
	}
	hello, ok := m.(*wire.Hello)
	if !ok {
		s.refuse(conn, peer, "", wire.RejectProtocol, fmt.Sprintf("expected hello, got %s", m.Type()))
		return
	}
	if !s.tokenOK(hello.Token) {
		s.refuse(conn, peer, hello.AgentID, wire.RejectAuth, "wrong or missing token")
		return
	}
	if s.draining.Load() {
		s.refuse(conn, peer, hello.AgentID, wire.RejectShutdown, "relay shutting down")
		return
	}
	if err := s.Health(); err != nil {
		s.refuse(conn, peer, hello.AgentID, wire.RejectBusy, err.Error())
		return
	}
	ac := &agentConn{
		srv: s, nc: conn, peer: peer, agentID: hello.AgentID,
		budget: newBudget(int64(lim.ConnInflightBytes)),
		w:      wire.NewWriterSize(conn, 4<<10),
		notify: make(chan struct{}, 1),
	}
	ac.ctx, ac.cancel = context.WithCancel(s.hardCtx)
	s.mu.Lock()
	if len(s.agents)+len(s.legacyConns) >= lim.MaxConnections {
		s.mu.Unlock()
		s.refuse(conn, peer, hello.AgentID, wire.RejectBusy, fmt.Sprintf("connection limit %d reached", lim.MaxConnections))
		return
	}
	s.agents[ac] = struct{}{}
	s.mu.Unlock()
	s.m.agentConns.Inc()
	defer func() {
		s.mu.Lock()
		delete(s.agents, ac)
		s.mu.Unlock()
		s.m.agentConns.Dec()
	}()

	err = ac.writeNow(&wire.Welcome{RelayID: s.cfg.ID, RelayVersion: version.Version, MaxInFlight: lim.MaxInFlightBatches,
		MaxFrame: int(lim.MaxFrame), IdleTimeout: lim.IdleTimeout.D()})
	if err != nil {
		s.log.Warn("agent lost during hello", "peer", peer, "agent", hello.AgentID, "err", err)
		_ = conn.Close()
		return
	}
	_ = conn.SetDeadline(time.Time{})
	s.log.Debug("agent connected", "peer", peer, "agent", hello.AgentID, "agent_version", hello.AgentVersion)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); ac.writeLoop() }()
	stop := context.AfterFunc(ac.ctx, func() { conn.Close() })
	reason := ac.readLoop(r)
	ac.mu.Lock()
	ac.closed = true
	ac.mu.Unlock()
	ac.cancel()
	stop()
	_ = conn.Close()
	wg.Wait()
	s.log.Debug("agent disconnected", "peer", peer, "agent", hello.AgentID, "reason", reason, "unanswered", ac.inflight.Load())
}

func (s *Server) tokenOK(tok string) bool {
	if len(s.tokens) == 0 {
		return true
	}
	ok := 0
	for _, t := range s.tokens {
		ok |= subtle.ConstantTimeCompare(t, []byte(tok))
	}
	return ok == 1
}

// refuse sends a Reject, logs why, and closes.
func (s *Server) refuse(conn net.Conn, peer, agent string, code wire.RejectCode, reason string) {
	s.m.connsRefused.WithLabelValues(code.String()).Inc()
	lvl := slog.LevelWarn
	if code == wire.RejectBusy || code == wire.RejectShutdown {
		lvl = slog.LevelInfo
	}
	key := "refuse:" + code.String()
	if lvl == slog.LevelWarn { // per host: one misconfigured agent must not hide another
		key += hostOf(peer) + reason[:min(len(reason), 24)]
	}
	s.rl.log(s.log, key, lvl, "agent refused", "peer", peer, "agent", agent, "code", code, "reason", reason)
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = conn.Write(wire.AppendMessage(nil, &wire.Reject{Code: code, Reason: reason, Redirect: s.redirects()}))
	_ = conn.Close()
}

// refuseFrameError handles a read error: bad frames get a Reject with the
// reason; EOF and timeouts are just logged.
func (s *Server) refuseFrameError(conn net.Conn, peer, agent string, err error) {
	var ne net.Error
	switch {
	case errors.Is(err, wire.ErrVersion):
		s.m.frameErrors.WithLabelValues("version").Inc()
		s.refuse(conn, peer, agent, wire.RejectVersion, err.Error())
	case errors.Is(err, wire.ErrBadMagic), errors.Is(err, wire.ErrFrameTooLarge), errors.Is(err, wire.ErrChecksum),
		errors.Is(err, wire.ErrUnknownType), errors.Is(err, wire.ErrMalformed):
		kind := "garbage"
		switch {
		case errors.Is(err, wire.ErrFrameTooLarge):
			kind = "oversized"
		case errors.Is(err, wire.ErrChecksum):
			kind = "checksum"
		case errors.Is(err, wire.ErrMalformed), errors.Is(err, wire.ErrUnknownType):
			kind = "malformed"
		}
		s.m.frameErrors.WithLabelValues(kind).Inc()
		s.refuse(conn, peer, agent, wire.RejectProtocol, err.Error())
	case errors.As(err, &ne) && ne.Timeout():
		s.refuse(conn, peer, agent, wire.RejectTimeout, "nothing received in time")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
	default:
		s.log.Debug("agent connection error", "peer", peer, "agent", agent, "err", err)
	}
}

func (ac *agentConn) writeNow(m wire.Message) error {
	ac.wmu.Lock()
	defer ac.wmu.Unlock()
	_ = ac.nc.SetWriteDeadline(time.Now().Add(ac.srv.cfg.Limits.WriteTimeout.D()))
	if err := ac.w.WriteMessage(m); err != nil {
		return err
	}
	return ac.w.Flush()
}

func (ac *agentConn) readLoop(r *wire.Reader) string {
	s := ac.srv
	lim := &s.cfg.Limits
	for {
		_ = ac.nc.SetReadDeadline(time.Now().Add(lim.IdleTimeout.D()))
		h, err := r.ReadHeader()
		if err == nil && h.Type == wire.TypeBatch {
			// Reserve before reading the payload: a full budget stops
			// reading, and TCP pushes back on the agent.
			err = ac.handleBatch(r, h)
			if err == nil {
				continue
			}
		} else if err == nil {
			var p []byte
			if p, err = r.ReadPayload(h); err == nil {
				var m wire.Message
				if m, err = wire.Decode(h.Type, p); err == nil {
					switch v := m.(type) {
					case *wire.Heartbeat:
						ac.queue(func() { ac.pongs = append(ac.pongs, v.Nonce) })
						continue
					case *wire.Reject:
						s.log.Info("agent closed the connection", "peer", ac.peer, "agent", ac.agentID, "code", v.Code, "reason", v.Reason)
						return "agent: " + v.Reason
					default:
						s.refuse(ac.nc, ac.peer, ac.agentID, wire.RejectProtocol, fmt.Sprintf("unexpected %s frame", m.Type()))
						return "unexpected frame"
					}
				}
			}
		}
		if ac.ctx.Err() != nil {
			return "closed by relay"
		}
		s.refuseFrameError(ac.nc, ac.peer, ac.agentID, err)
		return err.Error()
	}
}

// handleBatch reads one batch frame's payload, decodes it and hands its
// records to the producer; the ack is sent when Kafka answered them all.
func (ac *agentConn) handleBatch(r *wire.Reader, h wire.Header) error {
	s := ac.srv
	est := int64(h.Length)*4 + 1024
	connN, err := ac.budget.acquire(ac.ctx, est)
	if err != nil {
		return err
	}
	globalN, err := s.global.acquire(ac.ctx, est)
	if err != nil {
		ac.budget.release(connN)
		return err
	}
	release := func() {
		ac.budget.release(connN)
		s.global.release(globalN)
	}
	payload, err := r.ReadPayload(h)
	if err != nil {
		release()
		return err
	}
	m, err := wire.Decode(wire.TypeBatch, payload)
	if err != nil {
		release()
		return err
	}
	b := m.(*wire.Batch)
	ac.inflight.Add(1)
	msgs, size, total, firstBad, err := s.buildFromBatch(&ac.reader, b.Payload)
	if err != nil {
		release()
		s.rl.log(s.log, "corrupt:"+hostOf(ac.peer), slog.LevelWarn, "agent sent a corrupt batch", "peer", ac.peer, "agent", ac.agentID, "batch", b.Seq, "err", err)
		ac.answer(wire.AckResult{Seq: b.Seq, Status: wire.StatusInvalid, Reason: err.Error()})
		return nil
	}
	if bad := total - len(msgs); bad > 0 {
		s.m.invalidMetrics.WithLabelValues("protocol").Add(float64(bad))
		s.rl.log(s.log, "invalid:"+hostOf(ac.peer), slog.LevelWarn, "dropping invalid metrics from agent", "peer", ac.peer, "agent", ac.agentID,
			"batch", b.Seq, "invalid", bad, "of", total, "first", firstBad)
	}
	if len(msgs) == 0 {
		release()
		reason := "empty batch"
		if firstBad != nil {
			reason = fmt.Sprintf("all %d metrics invalid: %v", total, firstBad)
		}
		ac.answer(wire.AckResult{Seq: b.Seq, Status: wire.StatusInvalid, Reason: reason})
		return nil
	}
	// Swap the estimate for the real size. Nothing is held while waiting
	// for the global budget except this connection's own, so connections
	// cannot deadlock holding parts of it.
	ac.budget.release(connN)
	s.global.release(globalN)
	connN, globalN = 0, 0
	if connN, err = ac.budget.acquire(ac.ctx, size); err != nil {
		return err
	}
	if globalN, err = s.global.acquire(ac.ctx, size); err != nil {
		ac.budget.release(connN)
		return err
	}
	s.m.metricsIn.WithLabelValues("protocol").Add(float64(len(msgs)))
	p := &pending{srv: s, ac: ac, seq: b.Seq, release: release, start: time.Now()}
	p.remaining.Store(int64(len(msgs)))
	for i := range msgs {
		msgs[i].Metadata = p
	}
	prod := s.prod.Load()
	if prod == nil {
		p.abandon(len(msgs), errors.New("kafka: not connected"))
		return nil
	}
	sent, err := prod.send(msgs, ac.ctx.Done())
	if err != nil {
		p.abandon(len(msgs)-sent, err)
	}
	return nil
}

// buildFromBatch turns an agent's encoded batch into records (key =
// series key, value = canonical JSON) without building a Metric and tag map
// per metric, skipping invalid metrics. It returns the records, the bytes
// they hold, how many metrics the batch had and the first validation error;
// err is set, and nothing is to be sent, when the batch is corrupt.
func (s *Server) buildFromBatch(r *metric.BatchReader, payload []byte) (msgs []sarama.ProducerMessage, size int64, total int, firstBad, err error) {
	if err := r.Reset(payload); err != nil {
		return nil, 0, 0, nil, err
	}
	n := r.Len()
	chunk := min(max(n*320, 4<<10), 64<<10)
	msgs = make([]sarama.ProducerMessage, 0, n)
	size = int64(n) * msgOverhead
	var buf []byte
	for r.Next() {
		rec := r.Record()
		total++
		if err := rec.Validate(); err != nil {
			if firstBad == nil {
				firstBad = err
			}
			continue
		}
		if cap(buf)-len(buf) < 2048 {
			buf = make([]byte, 0, chunk)
			size += int64(chunk)
		}
		start := len(buf)
		buf = rec.AppendSeriesKey(buf)
		keyEnd := len(buf)
		buf, _ = rec.AppendJSON(buf) // a valid metric always encodes
		if c := cap(buf); c > chunk {
			size += int64(c) // a huge metric grew the chunk
		}
		// Slices taken after the appends stay valid even if a later append
		// moves buf: the old array is never written again.
		msgs = append(msgs, sarama.ProducerMessage{Topic: s.cfg.Kafka.Topic,
			Key: sarama.ByteEncoder(buf[start:keyEnd:keyEnd]), Value: sarama.ByteEncoder(buf[keyEnd:len(buf):len(buf)])})
	}
	if err := r.Err(); err != nil {
		return nil, 0, total, firstBad, err
	}
	return msgs, size, total, firstBad, nil
}

// buildMessages turns metrics into records: key = series key, value =
// canonical JSON, packed into chunks of at most 64 KiB. It returns the records and the
// bytes they hold.
func (s *Server) buildMessages(ms []metric.Metric) ([]sarama.ProducerMessage, int64) {
	chunk := min(max(len(ms)*320, 4<<10), 64<<10)
	msgs := make([]sarama.ProducerMessage, len(ms))
	var buf []byte
	size := int64(len(msgs)) * msgOverhead
	for i := range ms {
		m := &ms[i]
		if cap(buf)-len(buf) < 2048 {
			buf = make([]byte, 0, chunk)
			size += int64(chunk)
		}
		start := len(buf)
		buf = m.AppendSeriesKey(buf)
		keyEnd := len(buf)
		buf, _ = m.AppendJSON(buf) // a valid metric always encodes
		if c := cap(buf); c > chunk {
			size += int64(c) // a huge metric grew the chunk
		}
		// Slices taken after the appends stay valid even if a later append
		// moves buf: the old array is never written again.
		msgs[i].Topic = s.cfg.Kafka.Topic
		msgs[i].Key = sarama.ByteEncoder(buf[start:keyEnd:keyEnd])
		msgs[i].Value = sarama.ByteEncoder(buf[keyEnd:len(buf):len(buf)])
	}
	return msgs, size
}

// queue changes the pending output under the lock and wakes the writer.
func (ac *agentConn) queue(f func()) {
	ac.mu.Lock()
	if ac.closed {
		ac.mu.Unlock()
		return
	}
	f()
	ac.mu.Unlock()
	select {
	case ac.notify <- struct{}{}:
	default:
	}
}

func (ac *agentConn) answer(r wire.AckResult) {
	ac.inflight.Add(-1)
	ac.srv.m.batches.WithLabelValues(statusLabel(r.Status)).Inc()
	ac.queue(func() { ac.acks = append(ac.acks, r) })
}

func statusLabel(s wire.Status) string {
	switch s {
	case wire.StatusOK:
		return "ok"
	case wire.StatusInvalid:
		return "invalid"
	}
	return "retry_later"
}

func (ac *agentConn) sendDrain(reason string) {
	ac.queue(func() { ac.drain = &wire.Drain{Reason: reason, Redirect: ac.srv.redirects()} })
}

func (ac *agentConn) writeLoop() {
	for {
		select {
		case <-ac.ctx.Done():
			return
		case <-ac.notify:
		}
		ac.mu.Lock()
		acks, pongs, drain := ac.acks, ac.pongs, ac.drain
		ac.acks, ac.pongs, ac.drain = nil, nil, nil
		ac.mu.Unlock()
		ac.wmu.Lock()
		_ = ac.nc.SetWriteDeadline(time.Now().Add(ac.srv.cfg.Limits.WriteTimeout.D()))
		var err error
		for len(acks) > 0 && err == nil {
			n := min(len(acks), 4096)
			err = ac.w.WriteMessage(&wire.Ack{Results: acks[:n]})
			acks = acks[n:]
		}
		for _, p := range pongs {
			if err == nil {
				err = ac.w.WriteMessage(&wire.Pong{Nonce: p})
			}
		}
		if drain != nil && err == nil {
			err = ac.w.WriteMessage(drain)
		}
		if err == nil {
			err = ac.w.Flush()
		}
		ac.wmu.Unlock()
		if err != nil {
			if ac.ctx.Err() == nil {
				ac.srv.log.Warn("cannot write to agent; closing", "peer", ac.peer, "agent", ac.agentID, "err", err)
			}
			ac.cancel()
			return
		}
	}
}

// pending tracks one batch's records in the producer.
type pending struct {
	srv       *Server
	ac        *agentConn // nil on the legacy path
	seq       uint64
	release   func()
	remaining atomic.Int64
	err       atomic.Pointer[error]
	start     time.Time // when the batch went to the producer (agents only)
}

func (p *pending) recordDone(err error) {
	if err != nil {
		p.err.CompareAndSwap(nil, &err)
	}
	if p.remaining.Add(-1) == 0 {
		p.finish()
	}
}

// abandon counts n records that never reached the producer as failed.
func (p *pending) abandon(n int, err error) {
	if n <= 0 {
		return
	}
	p.err.CompareAndSwap(nil, &err)
	if p.remaining.Add(-int64(n)) == 0 {
		p.finish()
	}
}

func (p *pending) finish() {
	p.release()
	if p.ac == nil {
		return
	}
	r := wire.AckResult{Seq: p.seq, Status: wire.StatusOK}
	if e := p.err.Load(); e != nil {
		r.Status = wire.StatusRetryLater
		r.Reason = (*e).Error()
	} else {
		p.srv.observeProduce(time.Since(p.start))
	}
	p.ac.answer(r)
}

// hostOf strips the port: rate-limit keys are per host, not per connection.
func hostOf(peer string) string {
	if h, _, err := net.SplitHostPort(peer); err == nil {
		return h
	}
	return peer
}
