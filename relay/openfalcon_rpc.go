package relay

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/falconet/falconet/metric"
	"github.com/falconet/falconet/wire"
)

// serveProtocol tells the two protocols of the protocol port apart by the
// first byte a client sends: a falconet frame starts with "FN" (or a TLS
// ClientHello with 0x16), an Open-Falcon JSON-RPC call with '{' (JSON
// whitespace may come first). Both clients speak first, so peeking never
// waits on the relay.
func (s *Server) serveProtocol(nc net.Conn) {
	br := bufio.NewReaderSize(nc, 16) // reads larger than this bypass it after the peek
	_ = nc.SetReadDeadline(time.Now().Add(s.cfg.Limits.HandshakeTimeout.D()))
	stop := context.AfterFunc(s.hardCtx, func() { _ = nc.Close() })
	b, err := br.Peek(1)
	stopped := stop()
	sc := &sniffedConn{Conn: nc, r: br, err: err}
	if !stopped {
		_ = nc.Close()
		return
	}
	if err == nil && isJSONStart(b[0]) {
		s.serveRPC(nc, sc)
		return
	}
	s.serveAgent(sc)
}

func isJSONStart(c byte) bool {
	switch c {
	case '{', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}

// sniffedConn replays the peeked bytes, then reads the connection; a peek
// error is returned by the first Read (bufio forgets it).
type sniffedConn struct {
	net.Conn
	r   *bufio.Reader
	err error
}

func (c *sniffedConn) Read(p []byte) (int, error) {
	if c.err != nil && c.r.Buffered() == 0 {
		err := c.err
		c.err = nil
		return 0, err
	}
	return c.r.Read(p)
}

// SyscallConn exposes the socket, so socket options set through the
// wrapper (TCP_USER_TIMEOUT, wire.SetUserTimeout) reach it.
func (c *sniffedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("relay: connection has no socket")
	}
	return sc.SyscallConn()
}

// rpcHandle is what the server's shutdown sees of a JSON-RPC connection: its
// Close stops reading only, so calls already read are answered before the
// connection closes.
type rpcHandle struct{ net.Conn }

func (h *rpcHandle) Close() error {
	if tc, ok := h.Conn.(*net.TCPConn); ok {
		return tc.CloseRead()
	}
	return h.Conn.SetReadDeadline(time.Unix(1, 0))
}

// rpcConn is one Open-Falcon JSON-RPC connection. Calls are read one after
// another and may be pipelined; each is answered when Kafka acked its items,
// so answers can leave in another order than the calls came (net/rpc matches
// them by id).
type rpcConn struct {
	srv    *Server
	nc     net.Conn
	peer   string
	ctx    context.Context
	cancel context.CancelFunc
	budget *budget

	mu       sync.Mutex
	out      []byte // answers not yet written
	inflight int    // calls read and not yet answered
	readDone bool   // no more calls will be read
	notify   chan struct{}
	drained  *sync.Cond // signalled when the writer took out, or stopped
}

func (s *Server) serveRPC(nc net.Conn, r io.Reader) {
	peer := nc.RemoteAddr().String()
	if !s.cfg.OpenFalcon.Enabled {
		s.refuseUnauthenticated("rpc", "disabled", peer)
		s.refuseRPC(nc, r, "falconet relay: Open-Falcon compatibility is off on this relay ([open_falcon] enabled = false)")
		return
	}
	if !s.of.allowed(peer) {
		s.refuseUnauthenticated("rpc", "not_allowed", peer)
		s.refuseRPC(nc, r, "falconet relay: source address not allowed (open_falcon.allow)")
		return
	}
	lim := &s.cfg.Limits
	h := &rpcHandle{Conn: nc}
	s.mu.Lock()
	if s.draining.Load() || len(s.agents)+len(s.legacyConns) >= lim.MaxConnections {
		s.mu.Unlock()
		s.refuseUnauthenticated("rpc", "limit", peer)
		s.refuseRPC(nc, r, "falconet relay: busy (connection limit) or shutting down")
		return
	}
	s.legacyConns[h] = struct{}{}
	s.mu.Unlock()
	s.of.conns.Inc()
	defer func() {
		s.mu.Lock()
		delete(s.legacyConns, h)
		s.mu.Unlock()
		s.of.conns.Dec()
	}()
	_ = wire.SetUserTimeout(nc, lim.WriteTimeout.D())
	rc := &rpcConn{srv: s, nc: nc, peer: peer, budget: newBudget(int64(lim.ConnInflightBytes)), notify: make(chan struct{}, 1)}
	rc.drained = sync.NewCond(&rc.mu)
	rc.ctx, rc.cancel = context.WithCancel(s.hardCtx)
	stop := context.AfterFunc(rc.ctx, func() { _ = nc.Close() })
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); rc.writeLoop() }()
	s.log.Debug("open-falcon rpc client connected", "peer", peer)

	reason := rc.readLoop(bufio.NewReaderSize(r, 64<<10))
	rc.mu.Lock()
	rc.readDone = true
	left := rc.inflight
	rc.mu.Unlock()
	rc.wake()
	wg.Wait() // the writer returns when every call read was answered, or on a write error or hard close
	rc.cancel()
	stop()
	_ = nc.Close()
	s.log.Debug("open-falcon rpc client disconnected", "peer", peer, "reason", reason, "unanswered_at_close", left)
}

func (rc *rpcConn) readLoop(br *bufio.Reader) string {
	s := rc.srv
	maxCall := int(s.cfg.Limits.MaxFrame)
	var buf []byte
	for {
		if s.draining.Load() {
			return "relay shutting down"
		}
		// A client that sends calls and does not read the answers stops
		// being read once its unwritten answers pass this bound; the
		// writer's deadline (limits.write_timeout) then closes it.
		rc.mu.Lock()
		for len(rc.out) > maxUnwrittenAnswers && rc.ctx.Err() == nil {
			rc.drained.Wait()
		}
		rc.mu.Unlock()
		if rc.ctx.Err() != nil {
			return "closed by relay"
		}
		_ = rc.nc.SetReadDeadline(time.Now().Add(s.cfg.OpenFalcon.IdleTimeout.D()))
		var err error
		buf, err = readRPCMessage(br, buf[:0], maxCall)
		if err != nil {
			var ne net.Error
			switch {
			case errors.Is(err, errRPCTooLarge), errors.Is(err, errRPCSyntax):
				s.m.frameErrors.WithLabelValues("openfalcon_rpc").Inc()
				s.rl.log(s.log, "rpc-bad:"+hostOf(rc.peer), slog.LevelWarn, "bad Open-Falcon JSON-RPC call; closing the connection", "peer", rc.peer, "err", err)
			case errors.As(err, &ne) && ne.Timeout():
				s.log.Debug("open-falcon rpc client idle or too slow; closing", "peer", rc.peer)
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			default:
				s.log.Debug("open-falcon rpc connection error", "peer", rc.peer, "err", err)
			}
			return err.Error()
		}
		if reason := rc.call(buf); reason != "" {
			return reason
		}
		if cap(buf) > 1<<20 {
			buf = nil
		}
	}
}

// call handles one request; a non-empty result closes the connection.
func (rc *rpcConn) call(obj []byte) string {
	s := rc.srv
	start := time.Now()
	// Fast path, the shape falcon-agent sends: one pass over the call.
	var fast rpcUpdateRequest
	if json.Unmarshal(obj, &fast) == nil && fast.Method == "Transfer.Update" && len(fast.Params) > 0 {
		rc.mu.Lock()
		rc.inflight++
		rc.mu.Unlock()
		return rc.update(fast.ID, fast.Params[0], nil, start)
	}
	req, err := parseRPCRequest(obj)
	if err != nil {
		// As net/rpc's server: a message that is not a request ends the
		// connection (there is no id to answer).
		s.m.frameErrors.WithLabelValues("openfalcon_rpc").Inc()
		s.rl.log(s.log, "rpc-bad:"+hostOf(rc.peer), slog.LevelWarn, "bad Open-Falcon JSON-RPC request; closing the connection", "peer", rc.peer, "err", err)
		return err.Error()
	}
	rc.mu.Lock()
	rc.inflight++
	rc.mu.Unlock()
	switch req.Method {
	case "Transfer.Update":
	case "Transfer.Ping":
		rc.answer(req.ID, []byte(`{"Code":0}`), "")
		return ""
	default:
		rc.answer(req.ID, nil, "rpc: can't find method "+req.Method)
		return ""
	}
	items, bad, err := decodeUpdateParams(req.Params)
	if err != nil {
		rc.answer(req.ID, nil, "falconet relay: "+err.Error())
		return ""
	}
	return rc.update(req.ID, items, bad, start)
}

// update converts, produces and answers one Transfer.Update call.
func (rc *rpcConn) update(id json.RawMessage, items []metric.OpenFalconItem, bad []metric.ItemError, start time.Time) string {
	s := rc.srv
	valid, invalid := s.ofConvert(items, bad, "openfalcon_rpc", rc.peer)
	resp := transferResponse{Message: "ok", Total: len(items), Invalid: invalid}
	if len(valid) == 0 {
		resp.Latency = time.Since(start).Milliseconds()
		rc.answer(id, resp.json(), "")
		return ""
	}
	err := s.ofProduce(rc.ctx, rc.budget, valid, "openfalcon_rpc", func(err error) {
		if err != nil {
			rc.answer(id, nil, "falconet relay: kafka did not take the metrics: "+err.Error())
			return
		}
		r := resp
		r.Latency = time.Since(start).Milliseconds()
		rc.answer(id, r.json(), "")
	})
	if err != nil {
		if rc.ctx.Err() != nil {
			return "closed by relay"
		}
		s.rl.log(s.log, "rpc-nokafka", slog.LevelWarn, "Open-Falcon call answered with an error: kafka unavailable", "peer", rc.peer, "err", err)
		rc.answer(id, nil, "falconet relay: kafka unavailable, metrics not stored: "+err.Error())
	}
	return ""
}

// answer queues one reply (result or error) and wakes the writer. It never
// blocks: the producer's callback goroutine calls it.
func (rc *rpcConn) answer(id json.RawMessage, result []byte, errMsg string) {
	res := "ok"
	if errMsg != "" {
		res = "error"
	}
	rc.srv.of.calls.WithLabelValues("rpc", res).Inc()
	rc.mu.Lock()
	rc.out = appendRPCResponse(rc.out, id, result, errMsg)
	rc.inflight--
	rc.mu.Unlock()
	rc.wake()
}

func (rc *rpcConn) wake() {
	select {
	case rc.notify <- struct{}{}:
	default:
	}
}

// maxUnwrittenAnswers bounds the answers queued for one connection.
const maxUnwrittenAnswers = 256 << 10

func (rc *rpcConn) writeLoop() {
	defer func() {
		rc.mu.Lock()
		rc.drained.Broadcast()
		rc.mu.Unlock()
	}()
	var out []byte
	for {
		select {
		case <-rc.ctx.Done():
			return
		case <-rc.notify:
		}
		rc.mu.Lock()
		out, rc.out = rc.out, out[:0]
		finished := rc.readDone && rc.inflight == 0
		rc.drained.Broadcast()
		rc.mu.Unlock()
		if len(out) > 0 {
			_ = rc.nc.SetWriteDeadline(time.Now().Add(rc.srv.cfg.Limits.WriteTimeout.D()))
			if _, err := rc.nc.Write(out); err != nil {
				if rc.ctx.Err() == nil {
					rc.srv.log.Warn("cannot write to Open-Falcon client; closing", "peer", rc.peer, "err", err)
				}
				rc.cancel()
				return
			}
		}
		if finished {
			return
		}
		if cap(out) > 1<<20 {
			out = nil
		}
	}
}

// refuseRPC answers the first call (if it arrives within the handshake
// timeout) with msg, so a falcon-agent logs why, and closes.
func (s *Server) refuseRPC(nc net.Conn, r io.Reader, msg string) {
	defer nc.Close()
	stop := context.AfterFunc(s.hardCtx, func() { _ = nc.Close() })
	defer stop()
	_ = nc.SetDeadline(time.Now().Add(s.cfg.Limits.HandshakeTimeout.D()))
	obj, err := readRPCMessage(bufio.NewReaderSize(r, 4<<10), nil, 64<<10)
	if err != nil {
		return
	}
	req, err := parseRPCRequest(obj)
	if err != nil {
		return
	}
	_, _ = nc.Write(appendRPCResponse(nil, req.ID, nil, msg))
}

func (r transferResponse) json() []byte {
	b := make([]byte, 0, 80)
	b = append(b, `{"Message":`...)
	b = strconv.AppendQuote(b, r.Message) // plain ASCII here; JSON-compatible
	b = append(b, `,"Total":`...)
	b = strconv.AppendInt(b, int64(r.Total), 10)
	b = append(b, `,"Invalid":`...)
	b = strconv.AppendInt(b, int64(r.Invalid), 10)
	b = append(b, `,"Latency":`...)
	b = strconv.AppendInt(b, r.Latency, 10)
	return append(b, '}')
}

// appendRPCResponse writes a JSON-RPC 1.0 response line as Go's
// net/rpc/jsonrpc server does: {"id":ID,"result":R,"error":null} or
// {"id":ID,"result":null,"error":"message"}.
func appendRPCResponse(b []byte, id json.RawMessage, result []byte, errMsg string) []byte {
	b = append(b, `{"id":`...)
	if len(id) == 0 {
		b = append(b, "null"...)
	} else {
		var cb bytes.Buffer
		if json.Compact(&cb, id) == nil {
			b = append(b, cb.Bytes()...)
		} else {
			b = append(b, "null"...)
		}
	}
	if errMsg != "" {
		e, _ := json.Marshal(errMsg)
		b = append(b, `,"result":null,"error":`...)
		b = append(b, e...)
	} else {
		b = append(b, `,"result":`...)
		b = append(b, result...)
		b = append(b, `,"error":null`...)
	}
	return append(b, '}', '\n')
}

// rpcUpdateRequest is a well-formed Transfer.Update call, decoded in one
// pass; anything else takes parseRPCRequest's slower, per-item path.
type rpcUpdateRequest struct {
	Method string                    `json:"method"`
	Params [][]metric.OpenFalconItem `json:"params"`
	ID     json.RawMessage           `json:"id"`
}

type rpcRequest struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	ID     json.RawMessage `json:"id"`
}

// parseRPCRequest reads one JSON-RPC request object.
func parseRPCRequest(obj []byte) (rpcRequest, error) {
	var req rpcRequest
	if err := json.Unmarshal(obj, &req); err != nil {
		return req, fmt.Errorf("%w: %v", errRPCSyntax, err)
	}
	if req.Method == "" {
		return req, fmt.Errorf("%w: no method", errRPCSyntax)
	}
	return req, nil
}

// decodeUpdateParams reads Transfer.Update's params: [[MetricValue...]].
func decodeUpdateParams(params json.RawMessage) ([]metric.OpenFalconItem, []metric.ItemError, error) {
	var args []json.RawMessage
	if err := json.Unmarshal(params, &args); err != nil || len(args) == 0 {
		return nil, nil, errors.New("params must be [[MetricValue, ...]]")
	}
	items, bad, err := metric.DecodeOpenFalconItems(args[0])
	if err != nil {
		return nil, nil, fmt.Errorf("params must be [[MetricValue, ...]]: %w", err)
	}
	return items, bad, nil
}

var (
	errRPCTooLarge = errors.New("relay: open-falcon call larger than limits.max_frame")
	errRPCSyntax   = errors.New("relay: not a JSON-RPC request")
)

// readRPCMessage reads the next JSON object from br into buf (reset by the
// caller) and returns it: JSON whitespace before it is skipped, the object
// ends at its matching '}' (strings and escapes respected), so calls may be
// newline-terminated, as net/rpc/jsonrpc writes them, or back to back. It
// does not validate the JSON inside (json.Unmarshal does); it bounds the
// object to limit bytes (and so its nesting), and fails on a
// first byte other than '{' or a closing bracket of the wrong kind.
func readRPCMessage(br *bufio.Reader, buf []byte, limit int) ([]byte, error) {
	var c byte
	var err error
	for {
		if c, err = br.ReadByte(); err != nil {
			return buf, err
		}
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			break
		}
	}
	if c != '{' {
		return buf, fmt.Errorf("%w: starts with %q, want '{'", errRPCSyntax, c)
	}
	buf = append(buf, c)
	closers := []byte{'}'}
	inString, escaped := false, false
	for len(closers) > 0 {
		// Scan what is buffered in one go instead of byte by byte.
		chunk, perr := br.Peek(max(1, min(br.Buffered(), limit+1-len(buf))))
		if len(chunk) == 0 {
			if perr == nil {
				perr = io.ErrUnexpectedEOF
			}
			if errors.Is(perr, io.EOF) {
				perr = io.ErrUnexpectedEOF
			}
			return buf, perr
		}
		n := 0
		for n < len(chunk) && len(closers) > 0 {
			c := chunk[n]
			n++
			switch {
			case inString:
				switch {
				case escaped:
					escaped = false
				case c == '\\':
					escaped = true
				case c == '"':
					inString = false
				}
			case c == '"':
				inString = true
			case c == '{':
				closers = append(closers, '}')
			case c == '[':
				closers = append(closers, ']')
			case c == '}' || c == ']':
				if closers[len(closers)-1] != c {
					_, _ = br.Discard(n)
					return buf, fmt.Errorf("%w: %q where %q was due", errRPCSyntax, c, closers[len(closers)-1])
				}
				closers = closers[:len(closers)-1]
			}
		}
		buf = append(buf, chunk[:n]...)
		_, _ = br.Discard(n)
		if len(buf) > limit {
			return buf[:0], errRPCTooLarge
		}
	}
	return buf, nil
}
