package devstack

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// KafkaConfig configures the development Kafka broker.
type KafkaConfig struct {
	// Listen is host:port; port 0 picks a free port. Default "127.0.0.1:9092".
	Listen string
	// DataDir persists topics and offsets across restarts; empty keeps
	// everything in memory.
	DataDir string
	// Partitions is the partition count of auto-created and seeded topics
	// (default 10).
	Partitions int32
	// Topics are created at start.
	Topics []string
	// SyncWrites fsyncs every produced batch (slower, crash-safe).
	SyncWrites bool
	// NoAutoCreate makes the broker refuse to create topics on request
	// (as most production clusters do); topics come from Topics or
	// CreateTopics (falconet kafka-setup).
	NoAutoCreate bool
	Logger       *slog.Logger
	// TLS, when set, makes the broker speak TLS only (the server
	// certificate and, for mTLS, ClientAuth and ClientCAs).
	TLS *tls.Config
	// SASL, when not empty, requires every client to authenticate as one of
	// these users before any other request.
	SASL []SASLUser
}

// SASLUser is a user of a broker with SASL on.
type SASLUser struct {
	// Mechanism is "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512".
	Mechanism string
	User      string
	Password  string
}

// ParseSASLUser reads "MECHANISM:USER:PASSWORD" (the password may contain
// colons).
func ParseSASLUser(s string) (SASLUser, error) {
	parts := strings.SplitN(s, ":", 3)
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return SASLUser{}, fmt.Errorf("devstack: sasl user %q: want MECHANISM:USER:PASSWORD", redactSASL(s))
	}
	u := SASLUser{Mechanism: strings.ToUpper(parts[0]), User: parts[1], Password: parts[2]}
	switch u.Mechanism {
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		return SASLUser{}, fmt.Errorf("devstack: sasl mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", parts[0])
	}
	return u, nil
}

// redactSASL keeps the mechanism and user of "MECHANISM:USER:PASSWORD".
func redactSASL(s string) string {
	if parts := strings.SplitN(s, ":", 3); len(parts) == 3 {
		return parts[0] + ":" + parts[1] + ":..."
	}
	return s
}

// Kafka is a running development broker.
type Kafka struct {
	cluster *kfake.Cluster
	addr    string
}

// StartKafka starts a single-broker Kafka-protocol cluster.
func StartKafka(cfg KafkaConfig) (*Kafka, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:9092"
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 10
	}
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("devstack: kafka listen %q: %w", cfg.Listen, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(int(cfg.Partitions)),
		// kfake binds 127.0.0.1; bind the requested host instead, and the
		// broker advertises what it bound.
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, port))
		}),
	}
	if !cfg.NoAutoCreate {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if cfg.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	if len(cfg.Topics) > 0 {
		opts = append(opts, kfake.SeedTopics(cfg.Partitions, cfg.Topics...))
	}
	if cfg.TLS != nil && len(cfg.SASL) == 0 {
		opts = append(opts, kfake.TLS(cfg.TLS))
	}
	if len(cfg.SASL) > 0 {
		// TLS is done by saslListener then, so it sees the Kafka bytes.
		opts = append(opts, kfake.EnableSASL(), kfake.ListenFn(func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, net.JoinHostPort(host, port))
			if err != nil {
				return nil, err
			}
			return saslListener{Listener: ln, tc: cfg.TLS}, nil
		}))
		for _, u := range cfg.SASL {
			if _, err := ParseSASLUser(u.Mechanism + ":" + u.User + ":" + u.Password); err != nil {
				return nil, err
			}
			opts = append(opts, kfake.Superuser(strings.ToUpper(u.Mechanism), u.User, u.Password))
		}
	}
	if cfg.Logger != nil {
		opts = append(opts, kfake.WithLogger(kfakeLogger{cfg.Logger}))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("devstack: start kafka on %s: %w", cfg.Listen, err)
	}
	if len(cfg.SASL) > 0 {
		if err := saslApiVersions(c); err != nil {
			c.Close()
			return nil, fmt.Errorf("devstack: start kafka on %s: %w", cfg.Listen, err)
		}
	}
	return &Kafka{cluster: c, addr: c.ListenAddrs()[0]}, nil
}

// Addr is the broker's host:port, for sarama's broker list.
func (k *Kafka) Addr() string { return k.addr }

// Cluster exposes kfake's control hooks to tests (fault injection).
func (k *Kafka) Cluster() *kfake.Cluster { return k.cluster }

// Close stops the broker (flushing its data directory, if any).
func (k *Kafka) Close() { k.cluster.Close() }

// StartKafkaT starts an in-memory broker on a free loopback port for a test
// and stops it when the test ends. It returns the broker address.
func StartKafkaT(t testing.TB, topics ...string) *Kafka {
	t.Helper()
	k, err := StartKafka(KafkaConfig{Listen: "127.0.0.1:0", Topics: topics})
	if err != nil {
		t.Fatalf("devstack: %v", err)
	}
	t.Cleanup(k.Close)
	return k
}

type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	lv := slog.LevelDebug
	switch level {
	case kfake.LogLevelError:
		lv = slog.LevelError
	case kfake.LogLevelWarn:
		lv = slog.LevelWarn
	case kfake.LogLevelInfo:
		lv = slog.LevelInfo
	}
	k.l.Log(context.Background(), lv, strings.TrimSpace(fmt.Sprintf(format, args...)), "component", "dev-kafka")
}
