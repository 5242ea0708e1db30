package sender

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/falconet/falconet/buffer"
	"github.com/falconet/falconet/internal/version"
	"github.com/prometheus/client_golang/prometheus"
)

// Queue is what the sender needs from the agent's buffer (buffer.Queue
// satisfies it).
type Queue interface {
	// Next blocks until at least one batch that is not in flight is
	// available or ctx ends, and returns up to max of them, oldest first.
	Next(ctx context.Context, max int) ([]buffer.Batch, error)
	// Ack deletes delivered batches.
	Ack(seqs ...uint64) error
	// Nack hands in-flight batches back, to be returned by Next again.
	Nack(seqs ...uint64)
}

// RelaySource lists relay addresses ("host:port"), best first.
type RelaySource interface{ Relays() []string }

// Steering is a RelaySource whose first relay is a decision (discovery's
// Chooser): when it names a relay other than the one in use, and the sender
// is not avoiding that relay, the sender stops sending on the current
// connection, waits for the answers to what is in flight (at most
// DrainTimeout; unanswered batches are resent) and moves. Changed is closed
// when the choice changes; the sender also checks every SteerInterval.
type Steering interface {
	RelaySource
	Changed() <-chan struct{}
}

type staticRelays []string

func (s staticRelays) Relays() []string { return s }

// StaticRelays is a fixed RelaySource.
func StaticRelays(addrs ...string) RelaySource { return staticRelays(slices.Clone(addrs)) }

// Config tunes a Sender. Zero durations and sizes take the defaults.
type Config struct {
	// Token is the shared secret relays may require.
	Token string
	// TLS, when set, wraps every connection (set Certificates for mTLS).
	// ServerName defaults to the relay address's host.
	TLS *tls.Config
	// AgentID names this host to relays; default the OS host name.
	AgentID string
	// AgentVersion is reported in Hello; default version.Version.
	AgentVersion string
	// MaxInFlight is the most unacked batches on one connection (the relay
	// may ask for fewer). Default 32.
	MaxInFlight int
	// Heartbeat is the interval between heartbeats while batches wait for
	// an answer and nothing was heard for that long (a relay slow to ack
	// proves itself alive with pongs). Default 5s.
	Heartbeat time.Duration
	// IdleHeartbeat: with nothing in flight, a heartbeat goes out after this
	// long without writing anything. An agent sending every interval sends
	// none. Default 15s; shortened to half the relay's idle timeout if that
	// is smaller.
	IdleHeartbeat time.Duration
	// ReadTimeout closes a connection when batches (or an idle heartbeat)
	// wait for an answer and nothing arrived for this long since the
	// waiting began or since the last frame. An idle connection is not
	// timed out: a blackhole is noticed within ReadTimeout of the next
	// batch (or IdleHeartbeat + ReadTimeout when nothing is sent).
	// Default 3 × Heartbeat.
	ReadTimeout time.Duration
	// WriteTimeout bounds each write. Default 10s.
	WriteTimeout time.Duration
	// UserTimeout is TCP_USER_TIMEOUT. Default ReadTimeout.
	UserTimeout time.Duration
	// DialTimeout bounds connecting, TLS and the hello exchange. Default 5s.
	DialTimeout time.Duration
	// BackoffMin and BackoffMax bound the wait between rounds of connection
	// attempts (doubling, with ±50 % jitter). Defaults 250ms and 30s.
	BackoffMin, BackoffMax time.Duration
	// DrainTimeout is how long to wait for answers to in-flight batches
	// after a drain notice or a retry-later. Default 30s.
	DrainTimeout time.Duration
	// MaxFrame is the largest frame accepted from a relay. Default 1 MiB.
	MaxFrame int
	// SteerInterval: how often a Steering source's choice is checked
	// besides its Changed signal. Default 2s.
	SteerInterval time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		MaxInFlight:   32,
		Heartbeat:     5 * time.Second,
		IdleHeartbeat: 15 * time.Second,
		WriteTimeout:  10 * time.Second,
		DialTimeout:   5 * time.Second,
		BackoffMin:    250 * time.Millisecond,
		BackoffMax:    30 * time.Second,
		DrainTimeout:  30 * time.Second,
		MaxFrame:      1 << 20,
	}
}

func (c *Config) fill() error {
	d := DefaultConfig()
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = d.MaxInFlight
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = d.Heartbeat
	}
	if c.IdleHeartbeat <= 0 {
		c.IdleHeartbeat = max(d.IdleHeartbeat, c.Heartbeat)
	}
	if c.IdleHeartbeat < c.Heartbeat {
		return fmt.Errorf("sender: idle heartbeat %v must not be below heartbeat %v", c.IdleHeartbeat, c.Heartbeat)
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 3 * c.Heartbeat
	}
	if c.ReadTimeout <= c.Heartbeat {
		return fmt.Errorf("sender: read timeout %v must exceed heartbeat %v", c.ReadTimeout, c.Heartbeat)
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.UserTimeout <= 0 {
		c.UserTimeout = c.ReadTimeout
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = d.DialTimeout
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = d.BackoffMin
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = max(d.BackoffMax, c.BackoffMin)
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = d.DrainTimeout
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = d.MaxFrame
	}
	if c.SteerInterval <= 0 {
		c.SteerInterval = 2 * time.Second
	}
	if c.AgentID == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("sender: agent id: %w", err)
		}
		c.AgentID = h
	}
	if c.AgentVersion == "" {
		c.AgentVersion = version.Version
	}
	return nil
}

// Sender delivers the queue's batches to relays. Create it with New and run
// it with Run.
type Sender struct {
	cfg    Config
	q      Queue
	relays RelaySource
	log    *slog.Logger
	m      senderMetrics

	mu       sync.Mutex
	current  string               // relay address while connected
	avoid    map[string]time.Time // relays that refused or were troubled, until
	redirect []string             // addresses a relay suggested, tried first once
}

// New returns a Sender. reg may be nil.
func New(cfg Config, q Queue, relays RelaySource, logger *slog.Logger, reg prometheus.Registerer) (*Sender, error) {
	if q == nil || relays == nil {
		return nil, errors.New("sender: nil queue or relay source")
	}
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Sender{cfg: cfg, q: q, relays: relays, log: logger.With("component", "sender"), avoid: map[string]time.Time{}}
	s.m = newMetrics()
	if reg != nil {
		if err := s.m.register(reg); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Current returns the address of the relay the sender is connected to, or
// "" while disconnected.
func (s *Sender) Current() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// Run delivers batches until ctx ends; then it closes the connection, Nacks
// whatever is unanswered and returns nil. It returns an error only when the
// queue fails.
func (s *Sender) Run(ctx context.Context) error {
	backoff := s.cfg.BackoffMin
	var lastFail string
	for ctx.Err() == nil {
		addrs := s.candidates()
		if len(addrs) == 0 {
			if lastFail != "none" {
				s.log.Warn("no relay addresses known; waiting")
				lastFail = "none"
			}
		}
		progressed := false
		for _, addr := range addrs {
			res := s.session(ctx, addr)
			if res.acked > 0 {
				progressed = true
			}
			if ctx.Err() != nil {
				return nil
			}
			if res.queueErr != nil {
				return res.queueErr
			}
			if res.welcomed {
				if res.err != nil {
					// Try the others first: a relay whose link just died
					// would only cost a dial timeout.
					s.avoidRelay(addr, s.cfg.BackoffMax, nil)
					s.log.Warn("connection to relay ended", "relay", addr, "acked_batches", res.acked, "err", res.err)
				} else {
					s.log.Info("connection to relay ended", "relay", addr, "acked_batches", res.acked, "reason", res.reason)
				}
				lastFail = ""
				break
			}
			s.m.connects.WithLabelValues(res.result).Inc()
			if msg := addr + res.err.Error(); msg != lastFail {
				s.log.Warn("cannot use relay", "relay", addr, "err", res.err)
				lastFail = msg
			}
		}
		if progressed {
			backoff = s.cfg.BackoffMin
		}
		// ±50 % jitter keeps a fleet that lost the same relay from coming back in step.
		wait := backoff/2 + rand.N(backoff)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, s.cfg.BackoffMax)
	}
	return nil
}

// candidates orders the relays: suggested redirects first (once), then the
// source's order with avoided relays moved to the end.
func (s *Sender) candidates() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var good, bad []string
	seen := map[string]bool{}
	add := func(a string) {
		if a == "" || seen[a] {
			return
		}
		seen[a] = true
		if until, ok := s.avoid[a]; ok && now.Before(until) {
			bad = append(bad, a)
			return
		}
		delete(s.avoid, a)
		good = append(good, a)
	}
	for _, a := range s.redirect {
		add(a)
	}
	s.redirect = nil
	for _, a := range s.relays.Relays() {
		add(a)
	}
	return append(good, bad...)
}

// avoided reports whether addr is being avoided after a failure or refusal.
func (s *Sender) avoided(addr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.avoid[addr]
	return ok && time.Now().Before(until)
}

func (s *Sender) avoidRelay(addr string, d time.Duration, redirect []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.avoid[addr] = time.Now().Add(d)
	if len(redirect) > 0 {
		s.redirect = slices.Clone(redirect)
	}
}

func (s *Sender) setCurrent(addr string) {
	s.mu.Lock()
	s.current = addr
	s.mu.Unlock()
	s.m.relay.Reset()
	if addr != "" {
		s.m.connected.Set(1)
		s.m.relay.WithLabelValues(addr).Set(1)
	} else {
		s.m.connected.Set(0)
	}
}
