package relay

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/falconet/falconet/internal/confkit"
	"github.com/falconet/falconet/internal/secret"
	"github.com/falconet/falconet/internal/tlsconf"
)

// Config is the relay's configuration (relay.toml).
type Config struct {
	// ID names this relay in Welcome frames and logs; default the host name.
	ID        string          `toml:"id"`
	Listen    ListenConfig    `toml:"listen"`
	Kafka     KafkaConfig     `toml:"kafka"`
	Auth      AuthConfig      `toml:"auth"`
	TLS       TLSConfig       `toml:"tls"`
	Limits    LimitsConfig    `toml:"limits"`
	Legacy    LegacyConfig    `toml:"legacy"`
	Discovery DiscoveryConfig `toml:"discovery"`
	Log       LogConfig       `toml:"log"`

	// OpenFalcon switches on Open-Falcon transfer compatibility and limits
	// the unauthenticated inputs ([open_falcon]).
	OpenFalcon OpenFalconConfig `toml:"open_falcon"`

	// Update mirrors the agents' release feed ([update]).
	Update UpdateConfig `toml:"update"`
}

// ListenConfig holds the listen addresses. Legacy or HTTP may be "" to
// disable them.
type ListenConfig struct {
	Protocol string `toml:"protocol"`
	Legacy   string `toml:"legacy"`
	HTTP     string `toml:"http"`
	// Pprof serves Go's profiler at /debug/pprof/ on the HTTP port (off by
	// default), as the agent's [http] pprof does.
	Pprof bool `toml:"pprof"`
}

// KafkaConfig configures the producer.
type KafkaConfig struct {
	Brokers []string `toml:"brokers"`
	Topic   string   `toml:"topic"`
	// Version is the Kafka protocol version sarama speaks ("2.1.0").
	Version string `toml:"version"`
	// Compression: "lz4", "zstd", "snappy", "gzip" or "none".
	Compression string `toml:"compression"`
	// Idempotent enables the idempotent producer (one open request per
	// broker, no duplicates from producer retries).
	Idempotent bool `toml:"idempotent"`
	// Linger is how long the producer waits to fill a request.
	Linger confkit.Duration `toml:"linger"`
	// MaxMessageBytes bounds one produce request's message set.
	MaxMessageBytes confkit.Size `toml:"max_message_bytes"`
	// RetryMax and RetryBackoff: the producer's own retries before a batch
	// is answered "retry later".
	RetryMax     int              `toml:"retry_max"`
	RetryBackoff confkit.Duration `toml:"retry_backoff"`
	// Timeout bounds a produce request and the network operations.
	Timeout  confkit.Duration `toml:"timeout"`
	ClientID string           `toml:"client_id"`
	// SASL and TLS secure the connections to the brokers ([kafka.sasl],
	// [kafka.tls]; the same keys as saver.toml).
	SASL secret.SASL   `toml:"sasl"`
	TLS  tlsconf.Kafka `toml:"tls"`
}

// AuthConfig lists accepted agent tokens.
type AuthConfig struct {
	// Tokens accepted in Hello; empty: no token needed.
	Tokens []string `toml:"tokens"`
}

// TLSConfig enables TLS on the protocol listener.
type TLSConfig struct {
	Cert string `toml:"cert"` // PEM certificate chain; with Key enables TLS
	Key  string `toml:"key"`
	// ClientCA, when set, requires agents to present a certificate signed by
	// one of these CAs (mTLS).
	ClientCA string `toml:"client_ca"`
}

// LimitsConfig bounds memory and time.
type LimitsConfig struct {
	// MaxInflightBytes bounds the memory of batches read and not yet acked
	// by Kafka, over all connections. When it is full the relay stops
	// reading and reports not ready.
	MaxInflightBytes confkit.Size `toml:"max_inflight_bytes"`
	// ConnInflightBytes is the same bound per agent connection.
	ConnInflightBytes confkit.Size `toml:"conn_inflight_bytes"`
	// MaxFrame is the largest frame payload accepted from an agent.
	MaxFrame confkit.Size `toml:"max_frame"`
	// MaxInFlightBatches is the pipelining window offered to agents.
	MaxInFlightBatches int `toml:"max_inflight_batches"`
	// MaxConnections bounds agent plus legacy connections; beyond it new
	// agents are refused as busy.
	MaxConnections int `toml:"max_connections"`
	// IdleTimeout closes an agent connection silent this long (agents
	// heartbeat at a third of it).
	IdleTimeout confkit.Duration `toml:"idle_timeout"`
	// HandshakeTimeout bounds TLS and the hello exchange.
	HandshakeTimeout confkit.Duration `toml:"handshake_timeout"`
	// WriteTimeout bounds each write to an agent (and is TCP_USER_TIMEOUT).
	WriteTimeout confkit.Duration `toml:"write_timeout"`
	// ShutdownTimeout bounds the graceful drain on SIGTERM.
	ShutdownTimeout confkit.Duration `toml:"shutdown_timeout"`
}

// LegacyConfig tunes the newline-JSON listener.
type LegacyConfig struct {
	// MaxLine is the longest line accepted; longer lines are counted bad.
	MaxLine     confkit.Size     `toml:"max_line"`
	IdleTimeout confkit.Duration `toml:"idle_timeout"`
}

// DiscoveryConfig is [discovery]: the gossip pool in which the relay
// advertises itself to agents (package discovery). Bind "" turns it off.
type DiscoveryConfig struct {
	Bind  string   `toml:"bind"`
	Seeds []string `toml:"seeds"`
	// Advertise is the gossip address others reach this relay at, when it
	// differs from bind. Empty: the bound address.
	Advertise string `toml:"advertise"`
	// ProtocolAddress is the address agents dial, advertised in the pool.
	// Empty: the gossip address's host with listen.protocol's port.
	ProtocolAddress string `toml:"protocol_address"`
	// Keys are base64 gossip keys (16, 24 or 32 bytes): the first encrypts,
	// all decrypt.
	Keys []string `toml:"keys"`
}

// LogConfig selects the log format ("text", "json") and level.
type LogConfig struct {
	Format string `toml:"format"`
	Level  string `toml:"level"`
}

// DefaultConfig returns the defaults (DESIGN.md's ports and topic).
func DefaultConfig() Config {
	return Config{
		Listen: ListenConfig{Protocol: ":8433", Legacy: ":4444", HTTP: ":6060"},
		Kafka: KafkaConfig{
			Brokers:         []string{"127.0.0.1:9092"},
			Topic:           "falconet-metrics",
			Version:         "2.1.0",
			Compression:     "lz4",
			Idempotent:      true,
			Linger:          confkit.Duration(10 * time.Millisecond),
			MaxMessageBytes: 1 << 20,
			RetryMax:        5,
			RetryBackoff:    confkit.Duration(250 * time.Millisecond),
			Timeout:         confkit.Duration(10 * time.Second),
			ClientID:        "falconet-relay",
		},
		Limits: LimitsConfig{
			MaxInflightBytes:   256 << 20,
			ConnInflightBytes:  16 << 20,
			MaxFrame:           16 << 20,
			MaxInFlightBatches: 64,
			MaxConnections:     10000,
			IdleTimeout:        confkit.Duration(30 * time.Second),
			HandshakeTimeout:   confkit.Duration(10 * time.Second),
			WriteTimeout:       confkit.Duration(10 * time.Second),
			ShutdownTimeout:    confkit.Duration(30 * time.Second),
		},
		Legacy:    LegacyConfig{MaxLine: 1 << 20, IdleTimeout: confkit.Duration(10 * time.Minute)},
		Discovery: DiscoveryConfig{Bind: ":7946", Keys: []string{}},
		Log:       LogConfig{Format: "text", Level: "info"},

		OpenFalcon: DefaultOpenFalconConfig(),
		Update:     DefaultUpdateConfig(),
	}
}

// LoadConfig reads a relay.toml over the defaults and validates it.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	if err := confkit.Load(path, &cfg); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// Validate reports the first problem, naming its key.
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("relay.%s: %s", key, fmt.Sprintf(format, args...))
	}
	addr := func(key, v string, required bool) error {
		if v == "" {
			if required {
				return bad(key, "empty")
			}
			return nil
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			return bad(key, "%q is not host:port: %v", v, err)
		}
		return nil
	}
	if err := addr("listen.protocol", c.Listen.Protocol, true); err != nil {
		return err
	}
	if err := addr("listen.legacy", c.Listen.Legacy, false); err != nil {
		return err
	}
	if err := addr("listen.http", c.Listen.HTTP, false); err != nil {
		return err
	}
	if len(c.Kafka.Brokers) == 0 {
		return bad("kafka.brokers", "empty")
	}
	for i, b := range c.Kafka.Brokers {
		if err := addr(fmt.Sprintf("kafka.brokers[%d]", i), b, true); err != nil {
			return err
		}
	}
	if c.Kafka.Topic == "" {
		return bad("kafka.topic", "empty")
	}
	if strings.ContainsAny(c.Kafka.Topic, " /\\,:") || len(c.Kafka.Topic) > 249 {
		return bad("kafka.topic", "%q is not a valid topic name", c.Kafka.Topic)
	}
	v, err := sarama.ParseKafkaVersion(c.Kafka.Version)
	if err != nil {
		return bad("kafka.version", "%v", err)
	}
	if _, err := CompressionCodec(c.Kafka.Compression); err != nil {
		return bad("kafka.compression", "%v", err)
	}
	if c.Kafka.Compression == "zstd" && !v.IsAtLeast(sarama.V2_1_0_0) {
		return bad("kafka.compression", "zstd needs kafka.version >= 2.1.0, have %s", c.Kafka.Version)
	}
	if c.Kafka.Idempotent && !v.IsAtLeast(sarama.V0_11_0_0) {
		return bad("kafka.idempotent", "needs kafka.version >= 0.11.0, have %s", c.Kafka.Version)
	}
	if c.Kafka.Linger < 0 || c.Kafka.Linger.D() > time.Second {
		return bad("kafka.linger", "%v outside [0, 1s]", c.Kafka.Linger.D())
	}
	if c.Kafka.MaxMessageBytes < 1024 {
		return bad("kafka.max_message_bytes", "%d is less than 1KiB", c.Kafka.MaxMessageBytes)
	}
	if c.Kafka.RetryMax < 0 {
		return bad("kafka.retry_max", "negative")
	}
	if c.Kafka.RetryBackoff < 0 {
		return bad("kafka.retry_backoff", "negative")
	}
	if c.Kafka.Timeout.D() < 100*time.Millisecond {
		return bad("kafka.timeout", "%v is less than 100ms", c.Kafka.Timeout.D())
	}
	if _, _, err := c.Kafka.SASL.Check("relay.kafka.sasl"); err != nil {
		return err
	}
	if _, err := c.Kafka.TLS.Check("relay.kafka.tls"); err != nil {
		return err
	}
	for i, t := range c.Auth.Tokens {
		if t == "" {
			return bad(fmt.Sprintf("auth.tokens[%d]", i), "empty token")
		}
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		if c.TLS.Cert == "" {
			return bad("tls.cert", "empty while tls.key is set")
		}
		return bad("tls.key", "empty while tls.cert is set")
	}
	if c.TLS.ClientCA != "" && c.TLS.Cert == "" {
		return bad("tls.client_ca", "set without tls.cert and tls.key")
	}
	for key, p := range map[string]string{"tls.cert": c.TLS.Cert, "tls.key": c.TLS.Key, "tls.client_ca": c.TLS.ClientCA} {
		if p != "" {
			if _, err := os.Stat(p); err != nil {
				return bad(key, "%v", err)
			}
		}
	}
	l := &c.Limits
	if l.MaxFrame < 1024 || l.MaxFrame > 256<<20 {
		return bad("limits.max_frame", "%d outside [1KiB, 256MiB]", l.MaxFrame)
	}
	if l.ConnInflightBytes < l.MaxFrame {
		return bad("limits.conn_inflight_bytes", "%d is less than limits.max_frame %d", l.ConnInflightBytes, l.MaxFrame)
	}
	if l.MaxInflightBytes < l.ConnInflightBytes {
		return bad("limits.max_inflight_bytes", "%d is less than limits.conn_inflight_bytes %d", l.MaxInflightBytes, l.ConnInflightBytes)
	}
	if l.MaxInFlightBatches < 1 {
		return bad("limits.max_inflight_batches", "%d, want at least 1", l.MaxInFlightBatches)
	}
	if l.MaxConnections < 1 {
		return bad("limits.max_connections", "%d, want at least 1", l.MaxConnections)
	}
	for key, d := range map[string]confkit.Duration{"limits.idle_timeout": l.IdleTimeout, "limits.handshake_timeout": l.HandshakeTimeout,
		"limits.write_timeout": l.WriteTimeout, "limits.shutdown_timeout": l.ShutdownTimeout, "legacy.idle_timeout": c.Legacy.IdleTimeout} {
		if d.D() <= 0 {
			return bad(key, "must be positive")
		}
	}
	if c.Legacy.MaxLine < 1024 {
		return bad("legacy.max_line", "%d is less than 1KiB", c.Legacy.MaxLine)
	}
	if err := addr("discovery.bind", c.Discovery.Bind, false); err != nil {
		return err
	}
	for i, s := range c.Discovery.Seeds {
		if err := addr(fmt.Sprintf("discovery.seeds[%d]", i), s, true); err != nil {
			return err
		}
	}
	if err := addr("discovery.advertise", c.Discovery.Advertise, false); err != nil {
		return err
	}
	if err := addr("discovery.protocol_address", c.Discovery.ProtocolAddress, false); err != nil {
		return err
	}
	for i, k := range c.Discovery.Keys {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k))
		if err != nil {
			return bad(fmt.Sprintf("discovery.keys[%d]", i), "not base64: %v", err)
		}
		if l := len(b); l != 16 && l != 24 && l != 32 {
			return bad(fmt.Sprintf("discovery.keys[%d]", i), "%d bytes, want 16, 24 or 32", l)
		}
	}
	if err := c.OpenFalcon.validate(); err != nil {
		return err
	}
	if err := c.Update.validate(c.Listen.HTTP); err != nil {
		return err
	}
	switch strings.ToLower(c.Log.Format) {
	case "", "text", "json":
	default:
		return bad("log.format", "%q: want text or json", c.Log.Format)
	}
	switch strings.ToLower(c.Log.Level) {
	case "", "debug", "info", "warn", "error":
	default:
		return bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	return nil
}

// CompressionCodec maps a [kafka] compression name to sarama's codec.
func CompressionCodec(s string) (sarama.CompressionCodec, error) {
	switch strings.ToLower(s) {
	case "lz4":
		return sarama.CompressionLZ4, nil
	case "zstd":
		return sarama.CompressionZSTD, nil
	case "snappy":
		return sarama.CompressionSnappy, nil
	case "gzip":
		return sarama.CompressionGZIP, nil
	case "none", "":
		return sarama.CompressionNone, nil
	}
	return 0, errors.New("want lz4, zstd, snappy, gzip or none")
}
