package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/falconet/falconet/internal/obs"
	"github.com/prometheus/client_golang/prometheus"
)

// Server is a running relay: the protocol listener, the legacy listener, the
// HTTP endpoint and the Kafka producer.
type Server struct {
	cfg     Config
	log     *slog.Logger
	reg     *prometheus.Registry
	m       relayMetrics
	tlsConf *tls.Config
	tokens  [][]byte

	protoLn, legacyLn net.Listener
	http              *obs.Server

	global   *budget
	prod     atomic.Pointer[producer]
	kafkaErr atomic.Pointer[string]
	draining atomic.Bool
	redirect atomic.Pointer[[]string]

	produceNs atomic.Int64 // recent produce latency (EWMA), see advertise.go

	mu          sync.Mutex
	agents      map[*agentConn]struct{}
	legacyConns map[net.Conn]struct{}

	hardCtx    context.Context // ends on Close or after the shutdown timeout
	hardCancel context.CancelFunc
	closeOnce  sync.Once
	closing    chan struct{}
	running    atomic.Bool
	runDone    chan struct{}
	connWG     sync.WaitGroup // connection handlers
	rl         rateLog

	of *openFalcon // Open-Falcon compatibility and the unauthenticated inputs' allow list
}

// New validates cfg and binds the listeners; Run serves. reg may be nil (a
// fresh registry with the Go and process collectors).
func New(cfg Config, logger *slog.Logger, reg *prometheus.Registry) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = obs.NewRegistry()
	}
	if cfg.ID == "" {
		cfg.ID, _ = os.Hostname()
	}
	s := &Server{
		cfg:         cfg,
		log:         logger.With("component", "relay"),
		reg:         reg,
		global:      newBudget(int64(cfg.Limits.MaxInflightBytes)),
		agents:      map[*agentConn]struct{}{},
		legacyConns: map[net.Conn]struct{}{},
		closing:     make(chan struct{}),
		runDone:     make(chan struct{}),
	}
	s.hardCtx, s.hardCancel = context.WithCancel(context.Background())
	for _, t := range cfg.Auth.Tokens {
		s.tokens = append(s.tokens, []byte(t))
	}
	s.m = newRelayMetrics(s)
	if err := s.m.register(reg); err != nil {
		return nil, fmt.Errorf("relay: metrics: %w", err)
	}
	of, oerr := newOpenFalcon(cfg.OpenFalcon, reg)
	if oerr != nil {
		return nil, oerr
	}
	s.of = of
	logKafkaSecurity(s.log, cfg.Kafka)
	msg := "kafka: not connected yet"
	s.kafkaErr.Store(&msg)
	if cfg.TLS.Cert != "" {
		tc, err := cfg.TLS.Load()
		if err != nil {
			return nil, err
		}
		s.tlsConf = tc
	}
	var err error
	if s.protoLn, err = net.Listen("tcp", cfg.Listen.Protocol); err != nil {
		return nil, fmt.Errorf("relay.listen.protocol: %w", err)
	}
	if cfg.Listen.Legacy != "" {
		if s.legacyLn, err = net.Listen("tcp", cfg.Listen.Legacy); err != nil {
			_ = s.protoLn.Close()
			return nil, fmt.Errorf("relay.listen.legacy: %w", err)
		}
	}
	if cfg.Listen.HTTP != "" {
		if s.http, err = obs.Listen(cfg.Listen.HTTP, reg, s.Health, s.log); err != nil {
			_ = s.protoLn.Close()
			if s.legacyLn != nil {
				_ = s.legacyLn.Close()
			}
			return nil, fmt.Errorf("relay.listen.http: %w", err)
		}
		s.registerOpenFalconRoutes()
		if cfg.Listen.Pprof {
			s.http.Handle("GET /debug/pprof/", http.HandlerFunc(pprof.Index))
			s.http.Handle("GET /debug/pprof/profile", http.HandlerFunc(pprof.Profile))
			s.http.Handle("GET /debug/pprof/symbol", http.HandlerFunc(pprof.Symbol))
			s.http.Handle("GET /debug/pprof/trace", http.HandlerFunc(pprof.Trace))
		}
	}
	return s, nil
}

// Load reads the certificate, key and client CA files into a server TLS
// configuration (nil, nil when TLS is off). -check-config uses it too.
func (c TLSConfig) Load() (*tls.Config, error) {
	if c.Cert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, fmt.Errorf("relay.tls.cert: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCA != "" {
		pem, err := os.ReadFile(c.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("relay.tls.client_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("relay.tls.client_ca: %s holds no PEM certificate", c.ClientCA)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// ProtocolAddr is the bound protocol address.
func (s *Server) ProtocolAddr() string { return s.protoLn.Addr().String() }

// LegacyAddr is the bound legacy address, "" when disabled.
func (s *Server) LegacyAddr() string {
	if s.legacyLn == nil {
		return ""
	}
	return s.legacyLn.Addr().String()
}

// HTTPAddr is the bound HTTP address, "" when disabled.
func (s *Server) HTTPAddr() string {
	if s.http == nil {
		return ""
	}
	return s.http.Addr()
}

// SetRedirect sets the addresses offered to agents in Reject and Drain
// frames (discovery fills it; empty by default).
func (s *Server) SetRedirect(addrs []string) {
	a := append([]string(nil), addrs...)
	s.redirect.Store(&a)
}

func (s *Server) redirects() []string {
	if p := s.redirect.Load(); p != nil {
		return *p
	}
	return nil
}

// Health returns nil when the relay accepts agents, or why not: Kafka not
// reachable or failing, in-flight memory nearly full, or draining.
func (s *Server) Health() error {
	if s.draining.Load() {
		return errors.New("relay: shutting down")
	}
	p := s.prod.Load()
	if p == nil {
		if e := s.kafkaErr.Load(); e != nil {
			return errors.New(*e)
		}
		return errors.New("kafka: not connected")
	}
	if e := s.kafkaErr.Load(); e != nil {
		return errors.New(*e)
	}
	if err := p.health(); err != nil {
		return err
	}
	if used := s.global.used.Load(); used*10 >= s.global.size*9 || s.global.waiting.Load() > 0 {
		return fmt.Errorf("relay: backpressure: %d of %d in-flight bytes used", used, s.global.size)
	}
	return nil
}

// Run serves until ctx ends, then shuts down gracefully: stop accepting,
// send drain notices, let agents' in-flight batches reach Kafka and be
// acked (at most limits.shutdown_timeout), close. Close ends it abruptly.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("relay: Run called twice")
	}
	defer close(s.runDone)
	var bg sync.WaitGroup
	httpCtx, httpCancel := context.WithCancel(context.Background())
	defer httpCancel()
	bg.Add(1)
	go func() { defer bg.Done(); s.kafkaLoop(s.hardCtx) }()
	bg.Add(1)
	go func() { defer bg.Done(); s.acceptLoop(s.protoLn, s.serveProtocol) }()
	if s.legacyLn != nil {
		bg.Add(1)
		go func() { defer bg.Done(); s.acceptLoop(s.legacyLn, s.serveLegacy) }()
	}
	if s.http != nil {
		bg.Add(1)
		go func() {
			defer bg.Done()
			if err := s.http.Serve(httpCtx); err != nil {
				s.log.Error("http server", "err", err)
			}
		}()
	}
	s.log.Info("relay listening", "protocol", s.ProtocolAddr(), "legacy", s.LegacyAddr(), "http", s.HTTPAddr(),
		"tls", s.tlsConf != nil, "mtls", s.cfg.TLS.ClientCA != "", "kafka", s.cfg.Kafka.Brokers, "topic", s.cfg.Kafka.Topic)

	select {
	case <-ctx.Done():
		s.shutdown()
	case <-s.closing:
	}
	s.draining.Store(true)
	s.closeListeners()
	s.hardCancel()
	s.connWG.Wait()
	if p := s.prod.Load(); p != nil {
		p.close()
	}
	httpCancel()
	bg.Wait()
	s.log.Info("relay stopped")
	return nil
}

func (s *Server) closeListeners() {
	_ = s.protoLn.Close()
	if s.legacyLn != nil {
		_ = s.legacyLn.Close()
	}
}

// shutdown is the graceful part of Run's exit.
func (s *Server) shutdown() {
	start := time.Now()
	s.draining.Store(true)
	s.closeListeners()
	s.mu.Lock()
	agents := len(s.agents)
	for ac := range s.agents {
		ac.sendDrain("relay shutting down")
	}
	for c := range s.legacyConns {
		_ = c.Close() // no acks on the legacy path: lines already read are still produced
	}
	s.mu.Unlock()
	s.log.Info("draining", "agents", agents, "timeout", s.cfg.Limits.ShutdownTimeout.D())
	done := make(chan struct{})
	go func() { s.connWG.Wait(); close(done) }()
	t := time.NewTimer(s.cfg.Limits.ShutdownTimeout.D())
	defer t.Stop()
	select {
	case <-done:
		s.log.Info("drained", "took", time.Since(start).Round(time.Millisecond))
	case <-s.closing:
	case <-t.C:
		s.mu.Lock()
		left := len(s.agents)
		s.mu.Unlock()
		s.log.Warn("shutdown timeout: closing connections with batches unanswered (agents will resend)", "agents", left)
	}
}

// Close stops the relay at once: listeners and connections are closed
// without waiting for acks (agents resend what was unanswered). It waits for
// Run to return and is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.hardCancel()
		s.closeListeners()
	})
	if s.running.Load() {
		<-s.runDone
	} else if s.http != nil {
		// Run never started: release the HTTP listener.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = s.http.Serve(ctx)
	}
	return nil
}

func (s *Server) acceptLoop(ln net.Listener, serve func(net.Conn)) {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off instead of spinning
			delay = min(max(delay*2, 5*time.Millisecond), time.Second)
			s.rl.log(s.log, "accept", slog.LevelError, "accept failed", "err", err)
			select {
			case <-time.After(delay):
			case <-s.hardCtx.Done():
				return
			}
			continue
		}
		delay = 0
		s.connWG.Add(1)
		go func() {
			defer s.connWG.Done()
			serve(c)
		}()
	}
}

func (s *Server) kafkaLoop(ctx context.Context) {
	backoff := 250 * time.Millisecond
	var p *producer
	for p == nil {
		var err error
		p, err = newProducer(s)
		if err != nil {
			msg := "kafka: not connected: " + err.Error()
			s.kafkaErr.Store(&msg)
			s.rl.log(s.log, "kafka-connect", slog.LevelError, "cannot connect to kafka; retrying", "brokers", s.cfg.Kafka.Brokers, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 10*time.Second)
		}
	}
	s.prod.Store(p)
	s.kafkaErr.Store(nil)
	s.log.Info("connected to kafka", "brokers", s.cfg.Kafka.Brokers)
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		s.m.inflight.Set(float64(s.global.used.Load()))
		if s.Health() == nil {
			s.m.kafka.Set(1)
		} else {
			s.m.kafka.Set(0)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := p.refresh(); err != nil {
			msg := "kafka: " + err.Error()
			if s.kafkaErr.Swap(&msg) == nil {
				s.log.Error("kafka unreachable", "err", err)
			}
			continue
		}
		wasDown := s.kafkaErr.Swap(nil) != nil
		// Produce failed and nothing has been produced since (agents are
		// refused meanwhile): with the brokers answering again, let agents
		// back in; their next batches tell whether produce works. Without
		// this a relay whose produce failed would refuse agents forever.
		if le := p.lastErr.Load(); wasDown || (le > p.lastOK.Load() && time.Since(time.Unix(0, le)) > time.Second) {
			s.log.Info("kafka reachable; accepting agents again")
			p.lastOK.Store(time.Now().UnixNano())
		}
	}
}

func (s *Server) logProduceError(err error) {
	s.rl.log(s.log, "produce", slog.LevelError, "kafka produce failed after retries", "err", err)
}

// rateLog logs at most once per interval per key, counting what it held back.
type rateLog struct {
	mu         sync.Mutex
	last       map[string]time.Time
	suppressed map[string]int
}

func (r *rateLog) log(l *slog.Logger, key string, level slog.Level, msg string, args ...any) {
	r.mu.Lock()
	if r.last == nil {
		r.last, r.suppressed = map[string]time.Time{}, map[string]int{}
	}
	now := time.Now()
	if now.Sub(r.last[key]) < 10*time.Second {
		r.suppressed[key]++
		r.mu.Unlock()
		return
	}
	if len(r.last) > 1024 { // keys hold peers: forget the quiet ones
		for k, t := range r.last {
			if now.Sub(t) >= 10*time.Second && r.suppressed[k] == 0 {
				delete(r.last, k)
				delete(r.suppressed, k)
			}
		}
	}
	n := r.suppressed[key]
	r.last[key] = now
	r.suppressed[key] = 0
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	l.Log(context.Background(), level, msg, args...)
}
