package saver

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/falconet/falconet/internal/confkit"
	"github.com/falconet/falconet/internal/secret"
	"github.com/falconet/falconet/internal/tlsconf"
)

// Config is the saver's configuration, read from saver.toml. Every key is
// documented in packaging/config/saver.toml.
type Config struct {
	// ShutdownTimeout bounds SIGTERM handling: finish in-flight bulks,
	// commit, leave the group.
	ShutdownTimeout confkit.Duration `toml:"shutdown_timeout"`
	// FutureSkew is how far ahead of the saver's clock a metric's timestamp
	// may be; later ones go to the dead-letter topic.
	FutureSkew confkit.Duration `toml:"future_skew"`

	Log           LogConfig           `toml:"log"`
	HTTP          HTTPConfig          `toml:"http"`
	Kafka         KafkaConfig         `toml:"kafka"`
	Elasticsearch ElasticsearchConfig `toml:"elasticsearch"`
	Rollup        RollupConfig        `toml:"rollup"`
}

// LogConfig chooses the log format and level.
type LogConfig struct {
	Format string `toml:"format"` // text or json
	Level  string `toml:"level"`  // debug, info, warn, error
}

// HTTPConfig is the /metrics and /healthz endpoint.
type HTTPConfig struct {
	Listen string `toml:"listen"`
	// Pprof serves Go's profiler at /debug/pprof/ (off by default).
	Pprof bool `toml:"pprof"`
}

// KafkaConfig is the consumer group and the dead-letter producer.
type KafkaConfig struct {
	Brokers        []string         `toml:"brokers"`
	Topic          string           `toml:"topic"`
	Group          string           `toml:"group"`
	DLQTopic       string           `toml:"dlq_topic"`
	ClientID       string           `toml:"client_id"`
	Version        string           `toml:"version"`         // Kafka protocol version, "2.1.0"
	InitialOffset  string           `toml:"initial_offset"`  // oldest or newest, for a group without commits
	CommitInterval confkit.Duration `toml:"commit_interval"` // how often marked offsets are committed
	SessionTimeout confkit.Duration `toml:"session_timeout"`
	// RebalanceDrain bounds how long a revoked partition waits for its
	// in-flight records before it is released without committing them (the
	// next owner re-reads them; the document ids make that harmless).
	RebalanceDrain confkit.Duration `toml:"rebalance_drain"`
	// FetchBufferRecords is sarama's per-partition channel buffer.
	FetchBufferRecords int `toml:"fetch_buffer_records"`
	// SASL and TLS secure the connections to the brokers ([kafka.sasl],
	// [kafka.tls]; the same keys as relay.toml).
	SASL secret.SASL   `toml:"sasl"`
	TLS  tlsconf.Kafka `toml:"tls"`
}

// ElasticsearchConfig is where and how documents are written.
type ElasticsearchConfig struct {
	URLs []string `toml:"urls"`
	// Username and a password (inline, from a file or an environment
	// variable) for basic authentication; or an API key ("id:key" or the
	// encoded key) sent as "Authorization: ApiKey ...". Never logged.
	Username     string `toml:"username"`
	Password     string `toml:"password"`
	PasswordFile string `toml:"password_file"`
	PasswordEnv  string `toml:"password_env"`
	APIKey       string `toml:"api_key"`
	APIKeyFile   string `toml:"api_key_file"`
	APIKeyEnv    string `toml:"api_key_env"`
	// TLS applies to https:// URLs: CA file (an ES 8 node's http_ca.crt),
	// client certificate, server name.
	TLS tlsconf.Files `toml:"tls"`

	// OpType is the bulk action: "create" (a redelivered document answers
	// 409 and counts as stored) or "index" (it overwrites).
	OpType string `toml:"op_type"`

	BulkDocs       int              `toml:"bulk_docs"`       // flush at this many documents
	BulkBytes      confkit.Size     `toml:"bulk_bytes"`      // or this many body bytes
	FlushInterval  confkit.Duration `toml:"flush_interval"`  // or this long after the first document
	MaxInFlight    int              `toml:"max_in_flight"`   // concurrent bulk requests
	RequestTimeout confkit.Duration `toml:"request_timeout"` // one bulk request
	RetryInitial   confkit.Duration `toml:"retry_initial"`   // first back-off
	RetryMax       confkit.Duration `toml:"retry_max"`       // longest back-off
	Gzip           bool             `toml:"gzip"`            // compress bulk bodies

	InstallTemplate bool   `toml:"install_template"`
	TemplateName    string `toml:"template_name"`
	Shards          int    `toml:"shards"`
	Replicas        int    `toml:"replicas"`
	RefreshInterval string `toml:"refresh_interval"` // index.refresh_interval in the template, "30s"

	// RetentionDays deletes daily indices whose date is older than this many
	// days (0: keep forever).
	RetentionDays     int              `toml:"retention_days"`
	RetentionInterval confkit.Duration `toml:"retention_interval"`
	// RollupRetentionMonths deletes monthly rollup indices older than this
	// many months (0: keep forever).
	RollupRetentionMonths int `toml:"rollup_retention_months"`
}

// RollupConfig controls the rollups of raw data.
type RollupConfig struct {
	Enabled bool `toml:"enabled"`
	// Steps are the window widths, e.g. ["5m", "1h"]; each divides a day.
	Steps []confkit.Duration `toml:"steps"`
	// Lateness is how long after a window closes late data still updates
	// its rollup; a window is first computed when it closed plus Delay.
	Lateness confkit.Duration `toml:"lateness"`
	Delay    confkit.Duration `toml:"delay"`
	// Interval is how often the rollup scheduler looks for work.
	Interval confkit.Duration `toml:"interval"`
	// Lookback is how far back the first run after start recomputes
	// windows (they are idempotent); 0 means Lateness plus the largest step.
	Lookback confkit.Duration `toml:"lookback"`
}

// DefaultConfig returns the defaults documented in packaging/config/saver.toml.
func DefaultConfig() Config {
	return Config{
		ShutdownTimeout: confkit.Duration(20 * time.Second),
		FutureSkew:      confkit.Duration(10 * time.Minute),
		Log:             LogConfig{Format: "text", Level: "info"},
		HTTP:            HTTPConfig{Listen: ":6061"},
		Kafka: KafkaConfig{
			Brokers:            []string{"127.0.0.1:9092"},
			Topic:              "falconet-metrics",
			Group:              "falconet-saver",
			DLQTopic:           "falconet-metrics-dlq",
			ClientID:           "falconet-saver",
			Version:            "2.1.0",
			InitialOffset:      "oldest",
			CommitInterval:     confkit.Duration(time.Second),
			SessionTimeout:     confkit.Duration(10 * time.Second),
			RebalanceDrain:     confkit.Duration(10 * time.Second),
			FetchBufferRecords: 1024,
		},
		Elasticsearch: ElasticsearchConfig{
			URLs:                  []string{"http://127.0.0.1:9200"},
			OpType:                "create",
			BulkDocs:              5000,
			BulkBytes:             confkit.Size(5 << 20),
			FlushInterval:         confkit.Duration(500 * time.Millisecond),
			MaxInFlight:           4,
			RequestTimeout:        confkit.Duration(30 * time.Second),
			RetryInitial:          confkit.Duration(100 * time.Millisecond),
			RetryMax:              confkit.Duration(10 * time.Second),
			InstallTemplate:       true,
			TemplateName:          "falconet-metrics",
			Shards:                1,
			Replicas:              1,
			RefreshInterval:       "30s",
			RetentionDays:         30,
			RetentionInterval:     confkit.Duration(time.Hour),
			RollupRetentionMonths: 0,
		},
		Rollup: RollupConfig{
			Enabled:  false,
			Steps:    []confkit.Duration{confkit.Duration(5 * time.Minute), confkit.Duration(time.Hour)},
			Lateness: confkit.Duration(10 * time.Minute),
			Delay:    confkit.Duration(time.Minute),
			Interval: confkit.Duration(30 * time.Second),
		},
	}
}

// LoadConfig reads path over the defaults and validates the result.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	if err := confkit.Load(path, &cfg); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// ErrConfig is wrapped by every Validate error.
var ErrConfig = errors.New("saver: config")

func cfgErr(key, format string, args ...any) error {
	return fmt.Errorf("%w: saver.%s: %s", ErrConfig, key, fmt.Sprintf(format, args...))
}

// Validate reports the first problem, naming its key.
func (c *Config) Validate() error {
	if c.ShutdownTimeout <= 0 {
		return cfgErr("shutdown_timeout", "must be positive")
	}
	if c.FutureSkew < 0 {
		return cfgErr("future_skew", "must not be negative")
	}
	if f := strings.ToLower(c.Log.Format); f != "text" && f != "json" {
		return cfgErr("log.format", "%q: want text or json", c.Log.Format)
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		return cfgErr("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	if c.HTTP.Listen != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
			return cfgErr("http.listen", "%q: %v", c.HTTP.Listen, err)
		}
	}
	k := &c.Kafka
	if len(k.Brokers) == 0 {
		return cfgErr("kafka.brokers", "empty")
	}
	for _, b := range k.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return cfgErr("kafka.brokers", "%q: want host:port", b)
		}
	}
	if k.Topic == "" {
		return cfgErr("kafka.topic", "empty")
	}
	if k.Group == "" {
		return cfgErr("kafka.group", "empty")
	}
	if k.DLQTopic == "" {
		return cfgErr("kafka.dlq_topic", "empty")
	}
	if k.DLQTopic == k.Topic {
		return cfgErr("kafka.dlq_topic", "must differ from kafka.topic")
	}
	if _, err := parseKafkaVersion(k.Version); err != nil {
		return cfgErr("kafka.version", "%v", err)
	}
	if k.InitialOffset != "oldest" && k.InitialOffset != "newest" {
		return cfgErr("kafka.initial_offset", "%q: want oldest or newest", k.InitialOffset)
	}
	if k.CommitInterval <= 0 {
		return cfgErr("kafka.commit_interval", "must be positive")
	}
	if k.SessionTimeout < confkit.Duration(time.Second) {
		return cfgErr("kafka.session_timeout", "at least 1s")
	}
	if k.RebalanceDrain <= 0 {
		return cfgErr("kafka.rebalance_drain", "must be positive")
	}
	if k.FetchBufferRecords <= 0 {
		return cfgErr("kafka.fetch_buffer_records", "must be positive")
	}
	if _, _, err := k.SASL.Check("saver.kafka.sasl"); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if _, err := k.TLS.Check("saver.kafka.tls"); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	e := &c.Elasticsearch
	if len(e.URLs) == 0 {
		return cfgErr("elasticsearch.urls", "empty")
	}
	for _, u := range e.URLs {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return cfgErr("elasticsearch.urls", "%q: want http(s)://host:port", u)
		}
	}
	if err := e.checkSecurity(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if e.OpType != "create" && e.OpType != "index" {
		return cfgErr("elasticsearch.op_type", "%q: want create or index", e.OpType)
	}
	if e.BulkDocs <= 0 {
		return cfgErr("elasticsearch.bulk_docs", "must be positive")
	}
	if e.BulkBytes < 1024 {
		return cfgErr("elasticsearch.bulk_bytes", "at least 1KiB")
	}
	if e.FlushInterval <= 0 {
		return cfgErr("elasticsearch.flush_interval", "must be positive")
	}
	if e.MaxInFlight <= 0 || e.MaxInFlight > 256 {
		return cfgErr("elasticsearch.max_in_flight", "%d: want 1..256", e.MaxInFlight)
	}
	if e.RequestTimeout <= 0 {
		return cfgErr("elasticsearch.request_timeout", "must be positive")
	}
	if e.RetryInitial <= 0 {
		return cfgErr("elasticsearch.retry_initial", "must be positive")
	}
	if e.RetryMax < e.RetryInitial {
		return cfgErr("elasticsearch.retry_max", "smaller than retry_initial")
	}
	if e.InstallTemplate && e.TemplateName == "" {
		return cfgErr("elasticsearch.template_name", "empty")
	}
	if e.Shards <= 0 {
		return cfgErr("elasticsearch.shards", "must be positive")
	}
	if e.Replicas < 0 {
		return cfgErr("elasticsearch.replicas", "must not be negative")
	}
	if e.RefreshInterval != "" && e.RefreshInterval != "-1" {
		if _, err := time.ParseDuration(e.RefreshInterval); err != nil {
			return cfgErr("elasticsearch.refresh_interval", "%q is not a duration", e.RefreshInterval)
		}
	}
	if e.RetentionDays < 0 {
		return cfgErr("elasticsearch.retention_days", "must not be negative")
	}
	if e.RetentionInterval <= 0 {
		return cfgErr("elasticsearch.retention_interval", "must be positive")
	}
	if e.RollupRetentionMonths < 0 {
		return cfgErr("elasticsearch.rollup_retention_months", "must not be negative")
	}
	r := &c.Rollup
	if r.Enabled && len(r.Steps) == 0 {
		return cfgErr("rollup.steps", "empty while rollup.enabled")
	}
	for _, s := range r.Steps {
		d := s.D()
		if d < time.Minute || d%time.Minute != 0 || (24*time.Hour)%d != 0 {
			return cfgErr("rollup.steps", "%s: want whole minutes dividing a day (1m, 5m, 1h, ...)", d)
		}
	}
	if slices.ContainsFunc(r.Steps, func(s confkit.Duration) bool {
		return len(slices.DeleteFunc(slices.Clone(r.Steps), func(o confkit.Duration) bool { return o != s })) > 1
	}) {
		return cfgErr("rollup.steps", "duplicate step")
	}
	if r.Lateness < 0 {
		return cfgErr("rollup.lateness", "must not be negative")
	}
	if r.Delay < 0 {
		return cfgErr("rollup.delay", "must not be negative")
	}
	if r.Interval <= 0 {
		return cfgErr("rollup.interval", "must be positive")
	}
	if r.Lookback < 0 {
		return cfgErr("rollup.lookback", "must not be negative")
	}
	return nil
}
