package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/falconet/falconet/internal/confkit"
	"github.com/falconet/falconet/metric"
	"github.com/prometheus/client_golang/prometheus"
)

// OpenFalconConfig switches on Open-Falcon transfer compatibility
// ([open_falcon] in relay.toml) and limits every unauthenticated input.
type OpenFalconConfig struct {
	// Enabled serves Open-Falcon's JSON-RPC (Transfer.Update) on the
	// protocol port, `update` lines on the legacy port and POST /api/push on
	// the HTTP port. Off by default.
	Enabled bool `toml:"enabled"`
	// Allow lists the source networks (CIDR, or single addresses) allowed on
	// the unauthenticated inputs: the legacy port (always, enabled or not),
	// JSON-RPC and /api/push. Loopback is always allowed; empty: loopback
	// only.
	Allow []string `toml:"allow"`
	// IdleTimeout closes a JSON-RPC connection that sent no call this long.
	// falcon-agent keeps one connection and calls once per interval (60 s by
	// default) and loses the batch if its connection was closed meanwhile,
	// so keep it well above the agents' interval.
	IdleTimeout confkit.Duration `toml:"idle_timeout"`
}

// DefaultOpenFalconConfig is off, loopback only.
func DefaultOpenFalconConfig() OpenFalconConfig {
	return OpenFalconConfig{Allow: []string{}, IdleTimeout: confkit.Duration(10 * time.Minute)}
}

func (c *OpenFalconConfig) validate() error {
	for i, a := range c.Allow {
		if _, err := parseAllow(a); err != nil {
			return fmt.Errorf("relay.open_falcon.allow[%d]: %w", i, err)
		}
	}
	if c.IdleTimeout.D() <= 0 {
		return errors.New("relay.open_falcon.idle_timeout: must be positive")
	}
	return nil
}

func parseAllow(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR network (10.0.0.0/8, fd00::/8): %v", s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR network or an address: %v", s, err)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// openFalcon holds the compatibility layer's state and metrics.
type openFalcon struct {
	allow   []netip.Prefix
	calls   *prometheus.CounterVec
	conns   prometheus.Gauge
	fixed   prometheus.Counter
	refused *prometheus.CounterVec
}

func newOpenFalcon(cfg OpenFalconConfig, reg prometheus.Registerer) (*openFalcon, error) {
	of := &openFalcon{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "falconet_relay_openfalcon_calls_total",
			Help: "Open-Falcon Transfer.Update calls and /api/push requests answered, by input (rpc, http) and result (ok, error)."}, []string{"input", "result"}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{Name: "falconet_relay_openfalcon_connections",
			Help: "Open Open-Falcon JSON-RPC connections."}),
		fixed: prometheus.NewCounter(prometheus.CounterOpts{Name: "falconet_relay_openfalcon_timestamps_fixed_total",
			Help: "Open-Falcon items whose timestamp (<= 0 or > 2×now) was replaced by the relay's clock, as Open-Falcon's transfer does."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "falconet_relay_unauthenticated_refused_total",
			Help: "Connections or requests refused on unauthenticated inputs, by input (legacy, rpc, http) and reason (not_allowed, disabled, limit)."}, []string{"input", "reason"}),
	}
	for i, a := range cfg.Allow {
		p, err := parseAllow(a)
		if err != nil {
			return nil, fmt.Errorf("relay.open_falcon.allow[%d]: %w", i, err)
		}
		of.allow = append(of.allow, p)
	}
	for _, c := range []prometheus.Collector{of.calls, of.conns, of.fixed, of.refused} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("relay: metrics: %w", err)
		}
	}
	return of, nil
}

// allowed reports whether a peer ("ip:port") may use an unauthenticated
// input: loopback always, otherwise only inside open_falcon.allow.
func (of *openFalcon) allowed(peer string) bool {
	ap, err := netip.ParseAddrPort(peer)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	if a.IsLoopback() {
		return true
	}
	for _, p := range of.allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// refuse counts and logs (rate-limited per host) a refused unauthenticated
// input.
func (s *Server) refuseUnauthenticated(input, reason, peer string) {
	s.of.refused.WithLabelValues(input, reason).Inc()
	msg := "unauthenticated input refused: peer not in open_falcon.allow (loopback is always allowed)"
	switch reason {
	case "disabled":
		msg = "Open-Falcon input refused: [open_falcon] enabled = false"
	case "limit":
		msg = "Open-Falcon input refused: connection limit reached or shutting down"
	}
	s.rl.log(s.log, "unauth:"+input+reason+hostOf(peer), slog.LevelWarn, msg, "input", input, "peer", peer)
}

// transferResponse is Open-Falcon's TransferResponse (no JSON tags there:
// the field names are the keys).
type transferResponse struct {
	Message string
	Total   int
	Invalid int
	Latency int64
}

// ofConvert applies Open-Falcon's rules and falconet's validation to items
// (bad lists the items that did not even decode). Invalid items are
// counted under source and logged with the peer (rate-limited).
func (s *Server) ofConvert(items []metric.OpenFalconItem, bad []metric.ItemError, source, peer string) ([]metric.Metric, int) {
	now := time.Now().Unix()
	valid := make([]metric.Metric, 0, len(items))
	invalid := len(bad)
	var firstBad error
	if len(bad) > 0 {
		firstBad = bad[0]
	}
	var skip map[int]bool
	if len(bad) > 0 {
		skip = make(map[int]bool, len(bad))
		for _, b := range bad {
			skip[b.Index] = true
		}
	}
	fixed := 0
	for i := range items {
		if skip[i] {
			continue
		}
		m, fx, err := items[i].ToMetric(now)
		if fx {
			fixed++
		}
		if err != nil {
			invalid++
			if firstBad == nil {
				firstBad = metric.ItemError{Index: i, Err: err}
			}
			continue
		}
		valid = append(valid, m)
	}
	if fixed > 0 {
		s.of.fixed.Add(float64(fixed))
	}
	if invalid > 0 {
		s.m.invalidMetrics.WithLabelValues(source).Add(float64(invalid))
		s.rl.log(s.log, "invalid:"+source+hostOf(peer), slog.LevelWarn, "invalid Open-Falcon items dropped", "peer", peer, "input", source,
			"invalid", invalid, "of", len(items), "first", firstBad)
	}
	return valid, invalid
}

// kafkaReady reports why metrics cannot be produced now (Kafka not connected,
// unreachable or failing), so callers without a resend (Open-Falcon's) get
// an error at once instead of after the producer's retries.
func (s *Server) kafkaReady() error {
	p := s.prod.Load()
	if e := s.kafkaErr.Load(); e != nil {
		return errors.New(*e)
	}
	if p == nil {
		return errors.New("kafka: not connected")
	}
	return p.health()
}

// ofProduce produces ms and calls done once Kafka answered every record (nil:
// all acked with acks=all). conn, if not nil, is the connection's own
// budget. It blocks while the budgets are full, which stops the caller
// reading. An error means nothing was handed to Kafka and done is not called.
func (s *Server) ofProduce(ctx context.Context, conn *budget, ms []metric.Metric, source string, done func(error)) error {
	if err := s.kafkaReady(); err != nil {
		return err
	}
	msgs, size := s.buildMessages(ms)
	var connN int64
	if conn != nil {
		var err error
		if connN, err = conn.acquire(ctx, size); err != nil {
			return err
		}
	}
	globalN, err := s.global.acquire(ctx, size)
	if err != nil {
		if conn != nil {
			conn.release(connN)
		}
		return err
	}
	prod := s.prod.Load()
	if prod == nil { // cannot happen after kafkaReady; keep the invariant anyway
		if conn != nil {
			conn.release(connN)
		}
		s.global.release(globalN)
		return errors.New("kafka: not connected")
	}
	s.m.metricsIn.WithLabelValues(source).Add(float64(len(ms)))
	p := &pending{srv: s}
	p.release = func() {
		if conn != nil {
			conn.release(connN)
		}
		s.global.release(globalN)
		var err error
		if e := p.err.Load(); e != nil {
			err = *e
		}
		done(err)
	}
	p.remaining.Store(int64(len(msgs)))
	for i := range msgs {
		msgs[i].Metadata = p
	}
	sent, err := prod.send(msgs, ctx.Done())
	if err != nil {
		p.abandon(len(msgs)-sent, err)
	}
	return nil
}
