package relay

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/falconet/falconet/metric"
)

// serveLegacy reads newline JSON (one metric or an array per line, canonical
// or Open-Falcon form) and, with [open_falcon] enabled, Open-Falcon's socket
// lines ("update endpoint metric timestamp value [type] [step]", "quit"), and
// produces the valid metrics line by line. Only loopback and
// open_falcon.allow may connect: nothing authenticates this port. There are
// no acks on this path: the client cannot know what was stored, as with
// Open-Falcon's transfer.
func (s *Server) serveLegacy(nc net.Conn) {
	peer := nc.RemoteAddr().String()
	if !s.of.allowed(peer) {
		s.refuseUnauthenticated("legacy", "not_allowed", peer)
		_ = nc.Close()
		return
	}
	s.mu.Lock()
	if s.draining.Load() || len(s.agents)+len(s.legacyConns) >= s.cfg.Limits.MaxConnections {
		s.mu.Unlock()
		s.m.connsRefused.WithLabelValues("legacy_limit").Inc()
		s.rl.log(s.log, "legacy-limit", slog.LevelWarn, "legacy connection refused: connection limit or shutting down", "peer", peer)
		_ = nc.Close()
		return
	}
	s.legacyConns[nc] = struct{}{}
	s.mu.Unlock()
	s.m.legacyConns.Inc()
	stop := make(chan struct{})
	defer func() {
		close(stop)
		_ = nc.Close()
		s.mu.Lock()
		delete(s.legacyConns, nc)
		s.mu.Unlock()
		s.m.legacyConns.Dec()
	}()
	go func() {
		select {
		case <-s.hardCtx.Done():
			_ = nc.Close()
		case <-stop:
		}
	}()
	lr := newLineReader(nc, int(s.cfg.Legacy.MaxLine))
	for {
		_ = nc.SetReadDeadline(time.Now().Add(s.cfg.Legacy.IdleTimeout.D()))
		line, tooLong, err := lr.next()
		if tooLong {
			s.m.legacyLines.Inc()
			s.m.legacyBadLines.Inc()
			s.rl.log(s.log, "legacy-bad:"+hostOf(peer), slog.LevelWarn, "legacy line too long; skipped", "peer", peer, "max_line", lr.max)
		} else if tl := bytes.TrimSpace(line); len(tl) > 0 {
			if string(tl) == "quit" { // Open-Falcon's socket protocol ends with it
				return
			}
			s.m.legacyLines.Inc()
			if fields := bytes.Fields(tl); string(fields[0]) == "update" {
				s.legacyUpdate(peer, fields[1:], tl)
			} else {
				s.legacyLine(peer, line)
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				s.log.Debug("legacy connection idle; closing", "peer", peer)
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("legacy connection error", "peer", peer, "err", err)
			}
			return
		}
	}
}

func (s *Server) legacyLine(peer string, line []byte) {
	ms, bad := metric.DecodeJSON(line, time.Now().Unix())
	if len(bad) > 0 {
		s.m.legacyBadLines.Inc()
		s.m.invalidMetrics.WithLabelValues("legacy").Add(float64(len(bad)))
		s.rl.log(s.log, "legacy-bad:"+hostOf(peer), slog.LevelWarn, "bad legacy line items dropped", "peer", peer,
			"bad", len(bad), "good", len(ms), "first", bad[0].Error(), "line", truncate(line, 200))
	}
	s.legacyProduce(peer, ms)
}

// legacyUpdate handles Open-Falcon's socket line "update endpoint metric
// timestamp value [counterType] [step]" with the same rules as its RPC.
func (s *Server) legacyUpdate(peer string, fields [][]byte, line []byte) {
	var err error
	var m metric.Metric
	if !s.cfg.OpenFalcon.Enabled {
		err = errors.New("update lines need [open_falcon] enabled = true")
	} else {
		f := make([]string, len(fields))
		for i := range fields {
			f[i] = string(fields[i])
		}
		var it metric.OpenFalconItem
		if it, err = metric.ParseOpenFalconUpdate(f); err == nil {
			var fixed bool
			m, fixed, err = it.ToMetric(time.Now().Unix())
			if fixed {
				s.of.fixed.Inc()
			}
		}
	}
	if err != nil {
		s.m.legacyBadLines.Inc()
		s.m.invalidMetrics.WithLabelValues("legacy").Inc()
		s.rl.log(s.log, "legacy-bad:"+hostOf(peer), slog.LevelWarn, "bad legacy update line dropped", "peer", peer,
			"err", err, "line", truncate(line, 200))
		return
	}
	s.legacyProduce(peer, []metric.Metric{m})
}

// legacyProduce hands valid metrics to Kafka; nobody waits for the answer.
func (s *Server) legacyProduce(peer string, ms []metric.Metric) {
	if len(ms) == 0 {
		return
	}
	msgs, size := s.buildMessages(ms)
	n, err := s.global.acquire(s.hardCtx, size)
	if err != nil {
		return
	}
	s.m.metricsIn.WithLabelValues("legacy").Add(float64(len(ms)))
	p := &pending{srv: s, release: func() { s.global.release(n) }}
	p.remaining.Store(int64(len(msgs)))
	for i := range msgs {
		msgs[i].Metadata = p
	}
	prod := s.prod.Load()
	if prod == nil {
		s.rl.log(s.log, "legacy-nokafka", slog.LevelError, "legacy metrics dropped: kafka not connected", "peer", peer, "metrics", len(msgs))
		p.abandon(len(msgs), errors.New("kafka: not connected"))
		return
	}
	sent, err := prod.send(msgs, s.hardCtx.Done())
	if err != nil {
		p.abandon(len(msgs)-sent, err)
	}
}

func truncate(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// lineReader splits a stream into newline-terminated lines of at most max
// bytes (newline included); longer lines are skipped whole and reported.
type lineReader struct {
	br   *bufio.Reader
	max  int
	line []byte
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, min(max, 64<<10)), max: max}
}

// next returns the next line (valid until the following call), or tooLong
// for a line over the limit (its bytes are dropped). err is the stream's
// error; a final line without a newline is returned with it.
func (lr *lineReader) next() (line []byte, tooLong bool, err error) {
	lr.line = lr.line[:0]
	for {
		chunk, err := lr.br.ReadSlice('\n')
		if !tooLong {
			if len(lr.line)+len(chunk) > lr.max {
				tooLong = true
				lr.line = lr.line[:0]
			} else {
				lr.line = append(lr.line, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if cap(lr.line) > 1<<20 {
			defer func() { lr.line = nil }()
		}
		return lr.line, tooLong, err
	}
}
