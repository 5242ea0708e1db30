package agent

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/falconet/falconet/internal/confkit"
	"github.com/falconet/falconet/metric"
)

// DefaultConfigPath is where the agent looks for its configuration.
const DefaultConfigPath = "/etc/falconet/agent.toml"

// Config is the agent's configuration (agent.toml). The buffer and relay
// sections are plain values read by cmd/falconet-agent, which builds the
// buffer and sender configs from them; this package imports neither.
type Config struct {
	Hostname   string           `toml:"hostname"`
	Interval   confkit.Duration `toml:"interval"`
	Jitter     confkit.Duration `toml:"jitter"`
	HTTP       HTTPConfig       `toml:"http"`
	Buffer     BufferConfig     `toml:"buffer"`
	Relay      RelayConfig      `toml:"relay"`
	Discovery  DiscoveryConfig  `toml:"discovery"`
	Scripts    []ScriptConfig   `toml:"script"`
	Collectors CollectorsConfig `toml:"collectors"`
	Log        LogConfig        `toml:"log"`
	Update     UpdateConfig     `toml:"update"`
}

// HTTPConfig is [http]: the push API, /metrics and /healthz.
type HTTPConfig struct {
	Listen       string       `toml:"listen"`
	MaxPushBytes confkit.Size `toml:"max_push_bytes"`
	// Pprof serves Go's profiler at /debug/pprof/ (off by default).
	Pprof bool `toml:"pprof"`
}

// BufferConfig is [buffer]: the durable on-disk queue. All but
// batch_metrics map one to one onto buffer.Config (see its field docs); the
// defaults here equal buffer.DefaultConfig() (a test in cmd/falconet-agent
// keeps them in step).
type BufferConfig struct {
	Path             string           `toml:"path"`
	MaxBytes         confkit.Size     `toml:"max_bytes"`
	MaxAge           confkit.Duration `toml:"max_age"`
	CommitWindow     confkit.Duration `toml:"commit_window"`
	BatchMetrics     int              `toml:"batch_metrics"`
	LockTimeout      confkit.Duration `toml:"lock_timeout"`
	LiveFirst        bool             `toml:"live_first"`
	LiveAfter        confkit.Duration `toml:"live_after"`
	BackfillRate     confkit.Size     `toml:"backfill_rate"` // bytes per second; 0: no limit
	MemoryBytes      confkit.Size     `toml:"memory_bytes"`
	CompactFreeBytes confkit.Size     `toml:"compact_free_bytes"`
	CompactFreeRatio float64          `toml:"compact_free_ratio"`
	CompactTimeout   confkit.Duration `toml:"compact_timeout"`
	VerifyOnOpen     bool             `toml:"verify_on_open"`
}

// RelayConfig is [relay]: where batches go when discovery finds no relay.
type RelayConfig struct {
	Addresses   []string `toml:"addresses"`
	Token       string   `toml:"token"`
	MaxInFlight int      `toml:"max_in_flight"`
	// Heartbeat: while batches wait for an answer and nothing was heard for
	// this long, a heartbeat goes out; a silent (blackholed) relay is left
	// after ReadTimeout.
	Heartbeat confkit.Duration `toml:"heartbeat"`
	// IdleHeartbeat: with nothing in flight, a heartbeat goes out after
	// this long without sending anything.
	IdleHeartbeat confkit.Duration `toml:"idle_heartbeat"`
	// ReadTimeout: batches (or a heartbeat) unanswered and nothing heard
	// for this long closes the connection (and sets TCP_USER_TIMEOUT).
	// 0: three heartbeats.
	ReadTimeout confkit.Duration `toml:"read_timeout"`
	// BackoffMax caps the jittered exponential wait between reconnection
	// rounds when no relay takes batches.
	BackoffMax confkit.Duration `toml:"backoff_max"`
	TLS        RelayTLSConfig   `toml:"tls"`
}

// RelayTLSConfig is [relay.tls].
type RelayTLSConfig struct {
	Enabled    bool   `toml:"enabled"`
	CA         string `toml:"ca"`
	Cert       string `toml:"cert"`
	Key        string `toml:"key"`
	ServerName string `toml:"server_name"`
}

// DiscoveryConfig is [discovery]: the gossip pool through which the agent
// finds relays (package discovery). Empty seeds: no gossip, static relays.
type DiscoveryConfig struct {
	Seeds []string `toml:"seeds"`
	Bind  string   `toml:"bind"`
	// Advertise is the address other members reach this agent at, when it
	// differs from bind (NAT). Empty: the bound address.
	Advertise string `toml:"advertise"`
	// Keys are base64 gossip keys (16, 24 or 32 bytes): the first encrypts,
	// all decrypt.
	Keys []string `toml:"keys"`
}

// ScriptConfig is one [[script]] table.
type ScriptConfig struct {
	Path     string           `toml:"path"`
	Interval confkit.Duration `toml:"interval"` // 0: the global interval
	Timeout  confkit.Duration `toml:"timeout"`  // 0: min(10s, interval)
}

// CollectorsConfig is [collectors]: each built-in on (default) or off.
type CollectorsConfig struct {
	CPU        bool `toml:"cpu"`
	Load       bool `toml:"load"`
	Memory     bool `toml:"memory"`
	Filesystem bool `toml:"filesystem"`
	DiskIO     bool `toml:"diskio"`
	Net        bool `toml:"net"`
	Processes  bool `toml:"processes"`
	Uptime     bool `toml:"uptime"`
}

// Enabled reports whether the built-in collector name is on.
func (c CollectorsConfig) Enabled(name string) bool {
	switch name {
	case "cpu":
		return c.CPU
	case "load":
		return c.Load
	case "memory":
		return c.Memory
	case "filesystem":
		return c.Filesystem
	case "diskio":
		return c.DiskIO
	case "net":
		return c.Net
	case "processes":
		return c.Processes
	case "uptime":
		return c.Uptime
	}
	return false
}

// UpdateConfig is [update]: self-update from a signed release feed (off
// by default; see package update).
type UpdateConfig struct {
	Enabled bool `toml:"enabled"`
	// Feed is the URL of the release feed directory (manifest.json inside).
	Feed string `toml:"feed"`
	// PublicKeys are minisign public keys ("RW..."); a release signed by any
	// one of them is accepted.
	PublicKeys    []string         `toml:"public_keys"`
	Interval      confkit.Duration `toml:"interval"`
	HealthTimeout confkit.Duration `toml:"health_timeout"`
	// Dir holds downloaded versions and the update state; empty: a
	// "versions" directory beside the buffer file.
	Dir string `toml:"dir"`
}

// UpdateDir is update.dir, or "versions" beside the buffer file.
func (c *Config) UpdateDir() string {
	if c.Update.Dir != "" {
		return c.Update.Dir
	}
	return filepath.Join(filepath.Dir(c.Buffer.Path), "versions")
}

// LogConfig is [log].
type LogConfig struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text, json
}

// DefaultConfig returns the configuration an empty file gives.
func DefaultConfig() Config {
	return Config{
		Interval: confkit.Duration(10 * time.Second),
		Jitter:   confkit.Duration(10 * time.Second),
		HTTP:     HTTPConfig{Listen: "127.0.0.1:1988", MaxPushBytes: DefaultMaxPushBytes},
		Buffer: BufferConfig{
			Path:             "/var/lib/falconet/agent/buffer.db",
			MaxBytes:         256 << 20,
			CommitWindow:     confkit.Duration(10 * time.Millisecond),
			BatchMetrics:     DefaultBatchMetrics,
			LockTimeout:      confkit.Duration(2 * time.Second),
			LiveFirst:        true,
			LiveAfter:        confkit.Duration(time.Minute),
			MemoryBytes:      8 << 20,
			CompactFreeBytes: 64 << 20,
			CompactFreeRatio: 0.5,
			CompactTimeout:   confkit.Duration(30 * time.Second),
			VerifyOnOpen:     true,
		},
		Relay: RelayConfig{Addresses: []string{}, MaxInFlight: 32,
			Heartbeat: confkit.Duration(2 * time.Second), IdleHeartbeat: confkit.Duration(15 * time.Second),
			ReadTimeout: confkit.Duration(6 * time.Second),
			BackoffMax:  confkit.Duration(10 * time.Second)},
		Discovery: DiscoveryConfig{Seeds: []string{}, Keys: []string{}},
		Collectors: CollectorsConfig{
			CPU: true, Load: true, Memory: true, Filesystem: true,
			DiskIO: true, Net: true, Processes: true, Uptime: true,
		},
		Log: LogConfig{Level: "info", Format: "text"},
		Update: UpdateConfig{PublicKeys: []string{}, Interval: confkit.Duration(time.Hour),
			HealthTimeout: confkit.Duration(60 * time.Second)},
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
var ErrConfig = errors.New("agent: config")

func bad(key, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrConfig, key, fmt.Sprintf(format, args...))
}

// Validate returns the first problem, naming its key
// ("script[2].timeout: ...").
func (c *Config) Validate() error {
	if c.Hostname != "" {
		probe := metric.Metric{Endpoint: c.Hostname, Name: "x", Timestamp: time.Now().Unix()}
		if err := probe.Validate(); err != nil {
			return bad("hostname", "%q cannot be a metric endpoint: %v", c.Hostname, err)
		}
	}
	if c.Interval.D() < time.Second {
		return bad("interval", "%v: at least 1s", c.Interval.D())
	}
	if c.Jitter.D() < 0 {
		return bad("jitter", "%v: negative", c.Jitter.D())
	}
	if err := checkHostPort("http.listen", c.HTTP.Listen, false); err != nil {
		return err
	}
	if c.HTTP.MaxPushBytes < 1024 || c.HTTP.MaxPushBytes > 1<<30 {
		return bad("http.max_push_bytes", "%d: want between 1KiB and 1GiB", c.HTTP.MaxPushBytes)
	}
	if c.Buffer.Path == "" {
		return bad("buffer.path", "empty")
	}
	if c.Buffer.MaxBytes < 1<<20 {
		return bad("buffer.max_bytes", "%d: at least 1MiB", c.Buffer.MaxBytes)
	}
	if c.Buffer.MaxAge.D() < 0 {
		return bad("buffer.max_age", "%v: negative (0 means no age limit)", c.Buffer.MaxAge.D())
	}
	if w := c.Buffer.CommitWindow.D(); w < 0 || w > time.Second {
		return bad("buffer.commit_window", "%v: want between 0 and 1s", w)
	}
	if n := c.Buffer.BatchMetrics; n < 1 || n > metric.MaxBatchMetrics {
		return bad("buffer.batch_metrics", "%d: want between 1 and %d", n, metric.MaxBatchMetrics)
	}
	b := c.Buffer
	switch {
	case b.LockTimeout.D() < 0:
		return bad("buffer.lock_timeout", "%v: negative", b.LockTimeout.D())
	case b.LiveFirst && b.LiveAfter.D() <= 0:
		return bad("buffer.live_after", "%v: must be positive when live_first is on", b.LiveAfter.D())
	case b.CompactFreeRatio < 0 || b.CompactFreeRatio > 1:
		return bad("buffer.compact_free_ratio", "%g: want between 0 and 1", b.CompactFreeRatio)
	case b.CompactTimeout.D() < 0:
		return bad("buffer.compact_timeout", "%v: negative", b.CompactTimeout.D())
	}
	for i, a := range c.Relay.Addresses {
		if err := checkHostPort(fmt.Sprintf("relay.addresses[%d]", i), a, true); err != nil {
			return err
		}
	}
	if c.Relay.MaxInFlight < 1 || c.Relay.MaxInFlight > 1024 {
		return bad("relay.max_in_flight", "%d: want between 1 and 1024", c.Relay.MaxInFlight)
	}
	if hb := c.Relay.Heartbeat.D(); hb < 100*time.Millisecond || hb > time.Minute {
		return bad("relay.heartbeat", "%s: want between 100ms and 1m", hb)
	}
	if ih := c.Relay.IdleHeartbeat.D(); ih < c.Relay.Heartbeat.D() || ih > 10*time.Minute {
		return bad("relay.idle_heartbeat", "%s: want between relay.heartbeat (%s) and 10m", ih, c.Relay.Heartbeat.D())
	}
	if bm := c.Relay.BackoffMax.D(); bm < time.Second || bm > 10*time.Minute {
		return bad("relay.backoff_max", "%s: want between 1s and 10m", bm)
	}
	if rt := c.Relay.ReadTimeout.D(); rt != 0 && rt < 2*c.Relay.Heartbeat.D() {
		return bad("relay.read_timeout", "%s: want 0 (three heartbeats) or at least two heartbeats (%s)", rt, 2*c.Relay.Heartbeat.D())
	}
	t := c.Relay.TLS
	if (t.Cert == "") != (t.Key == "") {
		return bad("relay.tls.cert", "cert and key go together (cert %q, key %q)", t.Cert, t.Key)
	}
	if !t.Enabled && (t.CA != "" || t.Cert != "" || t.ServerName != "") {
		return bad("relay.tls.enabled", "false, but ca/cert/server_name are set; set enabled = true or remove them")
	}
	for i, s := range c.Discovery.Seeds {
		if err := checkHostPort(fmt.Sprintf("discovery.seeds[%d]", i), s, true); err != nil {
			return err
		}
	}
	if c.Discovery.Bind != "" {
		if err := checkHostPort("discovery.bind", c.Discovery.Bind, false); err != nil {
			return err
		}
	}
	if c.Discovery.Advertise != "" {
		if err := checkHostPort("discovery.advertise", c.Discovery.Advertise, true); err != nil {
			return err
		}
	}
	if key, msg := checkGossipKeys(c.Discovery.Keys); key != "" {
		return bad("discovery."+key, "%s", msg)
	}
	seen := make(map[string]int)
	for i, s := range c.Scripts {
		key := fmt.Sprintf("script[%d]", i)
		if s.Path == "" {
			return bad(key+".path", "empty")
		}
		if !filepath.IsAbs(s.Path) {
			return bad(key+".path", "%q: must be an absolute path", s.Path)
		}
		if j, dup := seen[s.Path]; dup {
			return bad(key+".path", "%q: already configured as script[%d]", s.Path, j)
		}
		seen[s.Path] = i
		iv := c.ScriptInterval(i)
		if iv < time.Second {
			return bad(key+".interval", "%v: at least 1s", iv)
		}
		to := c.ScriptTimeout(i)
		if to <= 0 {
			return bad(key+".timeout", "%v: must be positive", to)
		}
		if to > iv {
			return bad(key+".timeout", "%v is longer than the interval %v", to, iv)
		}
	}
	if err := c.Update.validate(); err != nil {
		return err
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		return bad("log.level", "%v", err)
	}
	switch strings.ToLower(c.Log.Format) {
	case "text", "json":
	default:
		return bad("log.format", "%q: want text or json", c.Log.Format)
	}
	return nil
}

func parseLevel(s string) (string, error) {
	switch strings.ToLower(s) {
	case "debug", "info", "warn", "error":
		return s, nil
	}
	return "", fmt.Errorf("%q: want debug, info, warn or error", s)
}

// checkHostPort checks "host:port"; needHost requires a host part.
func checkHostPort(key, addr string, needHost bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return bad(key, "%q is not host:port: %v", addr, err)
	}
	if needHost && host == "" {
		return bad(key, "%q has no host", addr)
	}
	if port == "" {
		return bad(key, "%q has no port", addr)
	}
	return nil
}

// ScriptInterval is script i's interval (the global one when unset).
func (c *Config) ScriptInterval(i int) time.Duration {
	if d := c.Scripts[i].Interval.D(); d != 0 {
		return d
	}
	return c.Interval.D()
}

// ScriptTimeout is script i's timeout (min(10s, interval) when unset).
func (c *Config) ScriptTimeout(i int) time.Duration {
	if d := c.Scripts[i].Timeout.D(); d != 0 {
		return d
	}
	return min(10*time.Second, c.ScriptInterval(i))
}

// ResolveHostname is the endpoint stamped on collected metrics: hostname,
// or the OS host name when it is empty.
func (c *Config) ResolveHostname() (string, error) {
	if c.Hostname != "" {
		return c.Hostname, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("agent: hostname: %w (set hostname in the config)", err)
	}
	probe := metric.Metric{Endpoint: h, Name: "x", Timestamp: time.Now().Unix()}
	if err := probe.Validate(); err != nil {
		return "", fmt.Errorf("agent: the OS host name %q cannot be a metric endpoint (%v); set hostname in the config", h, err)
	}
	return h, nil
}

// validate checks [update]; the feed and keys are required only when
// enabled.
func (u *UpdateConfig) validate() error {
	if u.Interval.D() < time.Second {
		return bad("update.interval", "%v: at least 1s", u.Interval.D())
	}
	if h := u.HealthTimeout.D(); h < time.Second || h > 10*time.Minute {
		return bad("update.health_timeout", "%v: want between 1s and 10m", h)
	}
	if u.Dir != "" && !filepath.IsAbs(u.Dir) {
		return bad("update.dir", "%q: must be an absolute path", u.Dir)
	}
	for i, k := range u.PublicKeys {
		if !strings.HasPrefix(strings.TrimSpace(k), "RW") {
			return bad(fmt.Sprintf("update.public_keys[%d]", i), "%q is not a minisign public key (\"RW...\")", k)
		}
	}
	if !u.Enabled {
		return nil
	}
	if u.Feed == "" {
		return bad("update.feed", "empty while update.enabled is true")
	}
	if pu, err := url.Parse(u.Feed); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return bad("update.feed", "%q: want an http:// or https:// URL", u.Feed)
	}
	if len(u.PublicKeys) == 0 {
		return bad("update.public_keys", "empty while update.enabled is true")
	}
	return nil
}

// checkGossipKeys checks base64 gossip keys of 16, 24 or 32 bytes and
// returns the bad key's name ("keys[1]") and the problem.
func checkGossipKeys(keys []string) (string, string) {
	for i, k := range keys {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k))
		if err != nil {
			return fmt.Sprintf("keys[%d]", i), fmt.Sprintf("not base64: %v", err)
		}
		if l := len(b); l != 16 && l != 24 && l != 32 {
			return fmt.Sprintf("keys[%d]", i), fmt.Sprintf("%d bytes, want 16, 24 or 32", l)
		}
	}
	return "", ""
}
