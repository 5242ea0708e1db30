package update

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/falconet/falconet/internal/version"
	"github.com/falconet/falconet/update/feed"
)

// BaseEnv names the environment variable that carries the installed
// binary's path into versions started by exec.
const BaseEnv = "FALCONET_UPDATE_BASE"

// BinaryName is the file name of an agent binary inside Dir/<version>/.
const BinaryName = "falconet-agent"

// Config configures an Updater. Zero values take the defaults.
type Config struct {
	// Feed is the URL of the feed directory (manifest.json inside).
	Feed string
	// PublicKeys are trusted minisign public keys ("RW...").
	PublicKeys []string
	// Interval between feed checks (jittered ±10 %). Default 1h.
	Interval time.Duration
	// HealthTimeout: a new version not healthy by then is rolled back.
	// Default 60s.
	HealthTimeout time.Duration
	// Dir holds the versions (Dir/<version>/falconet-agent) and state.json.
	Dir string
	// AgentID picks the rollout bucket (the agent's host name).
	AgentID string
	// Version is the running version; default the stamped one.
	Version string
	// Platform is "os/arch"; default this binary's.
	Platform string
	// MaxDownload bounds an artifact's size. Default 256 MiB.
	MaxDownload int64
	// DownloadTimeout bounds one artifact download. Default 5m.
	DownloadTimeout time.Duration
	// DeliveringWindow: a release is applied only if a relay acked a batch
	// within this window. Default 30s.
	DeliveringWindow time.Duration
	// Args are the process's arguments, used to restart it (default
	// os.Args[1:]).
	Args []string
	// Client fetches the feed; default an http.Client with timeouts.
	Client *http.Client
}

// DefaultConfig returns the defaults (Feed, PublicKeys, Dir and AgentID
// must still be set).
func DefaultConfig() Config {
	return Config{
		Interval:         time.Hour,
		HealthTimeout:    60 * time.Second,
		MaxDownload:      256 << 20,
		DownloadTimeout:  5 * time.Minute,
		DeliveringWindow: 30 * time.Second,
	}
}

// Delivery tells the updater when a relay last acked a batch.
type Delivery interface {
	LastAck() time.Time
}

// Updater checks the feed, applies releases, and runs the health gate of
// a version on trial. Create it with New, call Boot before opening the
// buffer, then Run.
type Updater struct {
	cfg     Config
	kr      feed.Keyring
	st      store
	d       Delivery
	log     *slog.Logger
	m       *metrics
	exe     string // this binary
	base    string // the installed binary
	start   time.Time
	client  *http.Client
	trialMu sync.Mutex
	trial   *Trial // set while this process is on trial
	opened  bool   // buffer opened (health step)

	mu        sync.Mutex
	state     string // installed, committed, trial
	lastCheck time.Time
	lastErr   string
	logged    map[string]bool
}

// New returns an Updater. reg may be nil.
func New(cfg Config, d Delivery, logger *slog.Logger, reg prometheus.Registerer) (*Updater, error) {
	def := DefaultConfig()
	if cfg.Interval <= 0 {
		cfg.Interval = def.Interval
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = def.HealthTimeout
	}
	if cfg.MaxDownload <= 0 {
		cfg.MaxDownload = def.MaxDownload
	}
	if cfg.DownloadTimeout <= 0 {
		cfg.DownloadTimeout = def.DownloadTimeout
	}
	if cfg.DeliveringWindow <= 0 {
		cfg.DeliveringWindow = def.DeliveringWindow
	}
	if cfg.Version == "" {
		cfg.Version = version.Version
	}
	if cfg.Platform == "" {
		cfg.Platform = feed.Platform(runtime.GOOS, runtime.GOARCH)
	}
	if cfg.Args == nil {
		cfg.Args = os.Args[1:]
	}
	if cfg.Feed == "" {
		return nil, errors.New("update.feed: empty")
	}
	if cfg.Dir == "" {
		return nil, errors.New("update.dir: empty")
	}
	if cfg.AgentID == "" {
		return nil, errors.New("update: empty agent id")
	}
	kr, err := feed.ParseKeyring(cfg.PublicKeys)
	if err != nil {
		return nil, fmt.Errorf("update.public_keys: %w", err)
	}
	if len(kr) == 0 {
		return nil, errors.New("update.public_keys: empty")
	}
	if d == nil {
		return nil, errors.New("update: nil Delivery")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("update: own executable: %w", err)
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	base := os.Getenv(BaseEnv)
	if base == "" {
		base = exe
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			ResponseHeaderTimeout: 30 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			IdleConnTimeout:       90 * time.Second,
		}}
	}
	u := &Updater{cfg: cfg, kr: kr, st: store{dir: cfg.Dir}, d: d, log: logger.With("component", "update"),
		m: newMetrics(), exe: exe, base: base, start: time.Now(), client: client,
		state: "installed", logged: map[string]bool{}}
	if reg != nil {
		if err := u.m.register(reg); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// Exec is returned, as an error, by Boot and Run when this process must
// replace itself with another binary; the caller shuts down, closes the
// buffer, and calls Do.
type Exec struct {
	Path   string
	Reason string
	u      *Updater
	trial  *Trial
	args   []string // arguments for the installed binary; nil: this process's
}

func (e *Exec) Error() string { return fmt.Sprintf("update: exec %s (%s)", e.Path, e.Reason) }

// IsBase reports whether this process runs the installed binary.
func (u *Updater) IsBase() bool { return u.exe == u.base }

func (u *Updater) versionPath(v string) string { return filepath.Join(u.cfg.Dir, v, BinaryName) }

// Boot decides at start, before the buffer is opened, what this process
// runs. The installed binary resolves a trial that did not commit (it
// failed: the version is marked bad), and execs the committed version if
// it is newer than itself. A version started by exec learns whether it is
// on trial. Boot returns an *Exec when the process must become another
// binary.
func (u *Updater) Boot() error {
	now := time.Now()
	var target string
	var failed *Failure
	var tr, mismatch *Trial
	s, err := u.st.update(func(s *State) error {
		failed, target, tr, mismatch = nil, "", nil, nil
		if u.IsBase() {
			if t := s.Trial; t != nil {
				if t.Stopped {
					u.log.Info("the last trial was stopped before it proved itself; it will be tried again", "version", t.Version)
				} else {
					f := s.markBad(t.Version, "exited", fmt.Sprintf("exited or was killed before it became healthy (last stage: %s)", t.Stage), now)
					failed = &f
				}
				s.Trial = nil
			}
			if c := s.Current; c != "" {
				_, statErr := os.Stat(u.versionPath(c))
				switch {
				case s.IsBad(c):
					s.Current = s.Previous
					s.Previous = ""
				case feed.CompareVersions(c, u.cfg.Version) <= 0:
					u.log.Info("the installed binary is not older than the committed version: running the installed one",
						"installed", u.cfg.Version, "committed", c)
					s.Current, s.Previous = "", ""
				case statErr != nil:
					u.log.Warn("the committed version's binary is missing: running the installed one", "committed", c, "err", statErr)
					s.Current, s.Previous = "", ""
				}
			}
			if c := s.Current; c != "" && feed.CompareVersions(c, u.cfg.Version) > 0 {
				target = c
			}
			return nil
		}
		if t := s.Trial; t != nil && t.Version != u.cfg.Version && u.exe == u.versionPath(t.Version) {
			// Published as t.Version but reports another version: it
			// would be taken again at every check.
			f := s.markBad(t.Version, "wrong_version", fmt.Sprintf("the binary reports version %s", u.cfg.Version), now)
			failed = &f
			mismatch = t
			s.Trial = nil
			return nil
		}
		if t := s.Trial; t != nil && t.Version == u.cfg.Version && !t.Stopped {
			t.Stage = "started"
			t.PID = os.Getpid()
			c := *t
			tr = &c
		}
		return nil
	})
	if err != nil {
		return err
	}
	if s.Watcher != 0 {
		// The watcher of the last trial may be this process's child (the
		// PID survives exec): reap it when it ends. Wait4 on a PID that is
		// not our child returns at once (ECHILD); ours cannot be reused
		// while unreaped.
		go func(pid int) {
			var ws syscall.WaitStatus
			_, _ = syscall.Wait4(pid, &ws, 0, nil)
		}(s.Watcher)
	}
	u.m.showState(&s)
	if failed != nil {
		u.m.rollbacks.WithLabelValues(failed.Reason).Inc()
		u.log.Error("update rolled back: the new version did not become healthy; marked bad on this host",
			"version", failed.Version, "reason", failed.Reason, "detail", failed.Detail)
	}
	if target != "" {
		return &Exec{Path: u.versionPath(target), Reason: "run the committed version " + target, u: u}
	}
	if mismatch != nil {
		return &Exec{Path: u.base, Reason: "roll back " + mismatch.Version, u: u, args: mismatch.Args}
	}
	u.mu.Lock()
	switch {
	case tr != nil:
		u.state = "trial"
	case !u.IsBase():
		u.state = "committed"
	}
	state := u.state
	u.mu.Unlock()
	if tr != nil {
		u.trialMu.Lock()
		u.trial = tr
		u.trialMu.Unlock()
		u.m.trial.Set(1)
		u.log.Info("running a new version on trial", "version", u.cfg.Version, "from", tr.From,
			"deadline", tr.Deadline.Format(time.RFC3339))
	}
	u.m.running.WithLabelValues(u.cfg.Version, state).Set(1)
	return nil
}

// BufferOpened records the health step "buffer opened".
func (u *Updater) BufferOpened() {
	u.trialMu.Lock()
	defer u.trialMu.Unlock()
	u.opened = true
	if u.trial == nil {
		return
	}
	v := u.trial.Version
	if _, err := u.st.update(func(s *State) error {
		if s.Trial != nil && s.Trial.Version == v {
			s.Trial.Stage = "buffer opened"
		}
		return nil
	}); err != nil {
		u.log.Warn("cannot record the health step", "err", err)
	}
}

// Run checks the feed every interval until ctx ends. On trial it first
// runs the health gate: it commits the version once a relay acked a batch,
// or marks it bad and returns an *Exec back to the installed binary when
// the deadline passes. It also returns an *Exec when a release was staged
// (the caller then starts it on trial) or when the running version was
// halted.
func (u *Updater) Run(ctx context.Context) error {
	u.trialMu.Lock()
	onTrial := u.trial != nil
	u.trialMu.Unlock()
	if onTrial {
		if err := u.runTrial(ctx); err != nil || ctx.Err() != nil {
			return err
		}
	} else if err := u.recheckNoAck(ctx); err != nil || ctx.Err() != nil {
		return err
	}
	// First check soon after start, spread over a minute (or the interval).
	wait := time.Duration(rand.Int64N(int64(min(u.cfg.Interval, time.Minute)))) + time.Second
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		if err := u.check(ctx); err != nil {
			var ex *Exec
			if errors.As(err, &ex) {
				return ex
			}
			if ctx.Err() != nil {
				return nil
			}
			u.m.checks.WithLabelValues("error").Inc()
			u.setErr(err)
			if u.once("check:" + err.Error()) {
				u.log.Warn("update check failed", "feed", u.cfg.Feed, "err", err)
			}
		} else {
			u.m.checks.WithLabelValues("ok").Inc()
			u.setErr(nil)
		}
		f := 0.9 + 0.2*rand.Float64()
		wait = time.Duration(float64(u.cfg.Interval) * f)
	}
}

func (u *Updater) setErr(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.lastCheck = time.Now()
	u.lastErr = ""
	if err != nil {
		u.lastErr = err.Error()
	}
}

// once reports true the first time key is seen (rate-limits repeated logs).
func (u *Updater) once(key string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.logged[key] {
		return false
	}
	if len(u.logged) > 1000 {
		clear(u.logged)
	}
	u.logged[key] = true
	return true
}

// runTrial waits for the health gate.
func (u *Updater) runTrial(ctx context.Context) error {
	u.trialMu.Lock()
	t := *u.trial
	u.trialMu.Unlock()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		u.trialMu.Lock()
		opened := u.opened
		u.trialMu.Unlock()
		if opened && u.d.LastAck().After(u.start) {
			return u.commit(t)
		}
		if time.Now().After(t.Deadline.Add(-SelfCheckLead(u.cfg.HealthTimeout))) {
			return u.failTrial(t, opened)
		}
		select {
		case <-ctx.Done():
			// Stopped on purpose: not a failure. The next start runs the
			// previous version and the release is tried again later.
			if _, err := u.st.update(func(s *State) error {
				if s.Trial != nil && s.Trial.Version == t.Version {
					s.Trial.Stopped = true
				}
				return nil
			}); err != nil {
				u.log.Warn("cannot record the stopped trial", "err", err)
			}
			u.log.Info("stopped while on trial; the previous version runs at the next start", "version", t.Version)
			return nil
		case <-tick.C:
		}
	}
}

func (u *Updater) commit(t Trial) error {
	s, err := u.st.update(func(s *State) error {
		if s.Trial == nil || s.Trial.Version != t.Version {
			return fmt.Errorf("update: trial of %s is no longer recorded (the watcher gave up on it)", t.Version)
		}
		s.Previous = t.From
		s.Current = t.Version
		s.Trial = nil
		return nil
	})
	if err != nil {
		return err
	}
	u.trialMu.Lock()
	u.trial = nil
	u.trialMu.Unlock()
	u.mu.Lock()
	u.state = "committed"
	u.mu.Unlock()
	u.m.trial.Set(0)
	u.m.committed.Inc()
	u.m.running.Reset()
	u.m.running.WithLabelValues(u.cfg.Version, "committed").Set(1)
	u.m.showState(&s)
	u.log.Info("update committed: the new version is healthy", "version", t.Version, "from", t.From,
		"after", time.Since(t.Started).Round(time.Millisecond))
	return nil
}

func (u *Updater) failTrial(t Trial, opened bool) error {
	waited := time.Since(t.Started).Round(100 * time.Millisecond)
	reason, detail := "no_ack", fmt.Sprintf("no relay acked a batch within %s (health_timeout %s)", waited, u.cfg.HealthTimeout)
	if !opened {
		reason, detail = "hung", fmt.Sprintf("the buffer was not opened within %s (health_timeout %s)", waited, u.cfg.HealthTimeout)
	}
	s, err := u.st.update(func(s *State) error {
		if s.Trial != nil && s.Trial.Version == t.Version {
			s.Trial = nil
		}
		s.markBad(t.Version, reason, detail, time.Now())
		return nil
	})
	if err != nil {
		return err
	}
	u.m.rollbacks.WithLabelValues(reason).Inc()
	u.m.showState(&s)
	u.log.Error("update rolled back: the new version failed its health gate; marked bad on this host",
		"version", t.Version, "reason", reason, "detail", detail, "back_to", t.From)
	return &Exec{Path: u.base, Reason: "roll back " + t.Version, u: u, args: t.Args}
}

// Status is what the agent reports about updates (for `falconet status`).
type Status struct {
	Version string `json:"version"`
	// State: off (updates disabled), installed (running the package's
	// binary), committed (a self-updated version), trial (proving itself).
	State       string    `json:"state"`
	Feed        string    `json:"feed"`
	LastCheck   time.Time `json:"last_check,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastFailure *Failure  `json:"last_failure,omitempty"`
	Bad         []string  `json:"bad,omitempty"`
}

// Status returns the running version, the update state and the last
// failure. On a nil Updater (updates off) the state is "off".
func (u *Updater) Status() Status {
	if u == nil {
		return Status{Version: version.Version, State: "off"}
	}
	s, _ := u.st.load()
	u.mu.Lock()
	defer u.mu.Unlock()
	st := Status{Version: u.cfg.Version, State: u.state, Feed: u.cfg.Feed, LastCheck: u.lastCheck,
		LastError: u.lastErr, LastFailure: s.LastFailure}
	for v := range s.Bad {
		st.Bad = append(st.Bad, v)
	}
	slices.Sort(st.Bad)
	return st
}

// delivering reports whether a relay acked a batch recently.
func (u *Updater) delivering() bool {
	return time.Since(u.d.LastAck()) < u.cfg.DeliveringWindow
}

func (u *Updater) feedURL(rel string) string {
	return strings.TrimSuffix(u.cfg.Feed, "/") + "/" + rel
}

func (u *Updater) get(ctx context.Context, url string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("GET %s: %d bytes, more than the %d allowed", url, resp.ContentLength, limit)
	}
	return io.ReadAll(io.LimitReader(resp.Body, limit+1))
}

// recheckNoAck runs in the version a "no_ack" trial rolled back to. If this
// version gets an ack within health_timeout, the verdict stands (the
// release could not deliver where the old version can). If it gets none
// either, the network was down, not the release at fault: the version is
// no longer marked bad (once per version) and is tried again when the
// agent delivers again.
func (u *Updater) recheckNoAck(ctx context.Context) error {
	s, err := u.st.load()
	if err != nil {
		return err
	}
	f := s.LastFailure
	if f == nil || f.Reason != "no_ack" || f.Confirmed || time.Since(f.At) > u.cfg.HealthTimeout+time.Minute {
		return nil
	}
	if b, bad := s.Bad[f.Version]; !bad || b.At != f.At {
		return nil
	}
	deadline := time.NewTimer(u.cfg.HealthTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if !u.d.LastAck().After(u.start) {
				continue
			}
			s, err := u.st.update(func(s *State) error {
				if s.LastFailure != nil && s.LastFailure.Version == f.Version && s.LastFailure.At.Equal(f.At) {
					s.LastFailure.Confirmed = true
					if b, bad := s.Bad[f.Version]; bad {
						b.Confirmed = true
						s.Bad[f.Version] = b
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			u.m.showState(&s)
			u.log.Info("rollback confirmed: this version delivers where the new one did not", "version", f.Version)
			return nil
		case <-deadline.C:
			withdrawn := false
			s, err := u.st.update(func(s *State) error {
				if s.Rechecked[f.Version] >= 1 {
					return nil
				}
				if s.Rechecked == nil {
					s.Rechecked = map[string]int{}
				}
				s.Rechecked[f.Version]++
				delete(s.Bad, f.Version)
				withdrawn = true
				return nil
			})
			if err != nil {
				return err
			}
			u.m.showState(&s)
			if withdrawn {
				u.log.Warn("no ack for this version either: the network, not the release, failed the trial; "+
					"it is tried again once the agent delivers", "version", f.Version)
			} else {
				u.log.Warn("no ack for this version either, but the release was given a second chance before; it stays marked bad",
					"version", f.Version)
			}
			return nil
		}
	}
}
