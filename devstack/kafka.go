package devstack

import (
	"context"
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
	Logger     *slog.Logger
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
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(int(cfg.Partitions)),
		// kfake binds 127.0.0.1; bind the requested host instead, and the
		// broker advertises what it bound.
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, port))
		}),
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
	if cfg.Logger != nil {
		opts = append(opts, kfake.WithLogger(kfakeLogger{cfg.Logger}))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("devstack: start kafka on %s: %w", cfg.Listen, err)
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
