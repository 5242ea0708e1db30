package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/falconet/falconet/agent"
	"github.com/falconet/falconet/agent/sender"
	"github.com/falconet/falconet/buffer"
	"github.com/falconet/falconet/internal/cli"
	"github.com/falconet/falconet/internal/confkit"
	"github.com/falconet/falconet/internal/memtrim"
	"github.com/falconet/falconet/internal/obs"
	"github.com/falconet/falconet/internal/version"
	"github.com/falconet/falconet/update"
)

// exitError carries an exit status; its message, if any, is printed.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// Main is the agent process: flags, config, and the running components. Tests
// start it in-process: NewMain, ParseFlags, Run in a goroutine, wait for
// Ready, use HTTPAddr, cancel the context, Close.
type Main struct {
	ConfigPath  string
	CheckConfig bool
	ShowVersion bool
	TestMode    bool
	WatchDir    string // -update-watch: run the update trial watcher
	updater     *update.Updater

	stdout, stderr io.Writer

	ready    chan struct{}
	mu       sync.Mutex
	httpAddr string
	closers  []func() error
	closed   bool
}

// NewMain returns a Main writing to stdout and stderr.
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{stdout: stdout, stderr: stderr, ready: make(chan struct{})}
}

// ParseFlags reads the command line.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("falconet-agent", flag.ContinueOnError)
	fs.SetOutput(cli.UsageOutput(args, m.stdout, m.stderr))
	fs.StringVar(&m.ConfigPath, "config", agent.DefaultConfigPath, "configuration file (TOML)")
	fs.BoolVar(&m.CheckConfig, "check-config", false, "validate the configuration, print the first problem, exit 1 if any")
	fs.BoolVar(&m.ShowVersion, "version", false, "print the version and exit")
	fs.BoolVar(&m.TestMode, "test", false, "collect every configured collector once, print JSON lines, exit")
	fs.StringVar(&m.WatchDir, update.WatchFlag[1:], "", "internal: watch a self-update trial (state in `DIR`); started by the agent itself")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitError{code: 0}
		}
		return exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return exitError{code: 2, msg: fmt.Sprintf("falconet-agent: unexpected arguments %q", fs.Args())}
	}
	return nil
}

// loadConfig reads the config; a missing file at the default path means the
// defaults (said so in the returned note).
func (m *Main) loadConfig() (agent.Config, string, error) {
	cfg := agent.DefaultConfig()
	note := ""
	if _, err := os.Stat(m.ConfigPath); errors.Is(err, fs.ErrNotExist) {
		if m.ConfigPath != agent.DefaultConfigPath {
			return cfg, "", fmt.Errorf("config %s: no such file", m.ConfigPath)
		}
		note = fmt.Sprintf("no config file at %s; running on the defaults", m.ConfigPath)
	} else if err := confkit.Load(m.ConfigPath, &cfg); err != nil {
		return cfg, "", err
	}
	return cfg, note, cfg.Validate()
}

// Ready is closed once the daemon listens; HTTPAddr is then valid.
func (m *Main) Ready() <-chan struct{} { return m.ready }

// HTTPAddr is the bound address of the push API and /metrics.
func (m *Main) HTTPAddr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.httpAddr
}

// Run does what the flags say; for the daemon it blocks until ctx ends and
// everything it started has stopped.
func (m *Main) Run(ctx context.Context) error {
	if m.ShowVersion {
		fmt.Fprintln(m.stdout, version.String("falconet-agent"))
		return nil
	}
	if m.WatchDir != "" {
		logger, _ := obs.NewLogger(m.stderr, "text", "info")
		return update.Watch(m.WatchDir, logger)
	}
	cfg, note, err := m.loadConfig()
	if m.CheckConfig {
		if err == nil {
			err = bufferConfig(cfg.Buffer).Validate()
		}
		if err == nil {
			_, err = relayTLS(cfg.Relay.TLS) // the files exist and parse
		}
		if err != nil {
			return exitError{code: 1, msg: err.Error()}
		}
		if note != "" {
			fmt.Fprintf(m.stdout, "ok (%s)\n", note) // as -test and the daemon say it
		} else {
			fmt.Fprintln(m.stdout, "ok")
		}
		return nil
	}
	if err != nil {
		return exitError{code: 1, msg: "falconet-agent: " + err.Error()}
	}
	logger, err := obs.NewLogger(m.stderr, cfg.Log.Format, cfg.Log.Level)
	if err != nil {
		return exitError{code: 1, msg: "falconet-agent: " + err.Error()}
	}
	if note != "" {
		logger.Info(note)
	}
	if m.TestMode {
		return m.runTest(ctx, cfg, logger)
	}
	return m.runDaemon(ctx, cfg, logger)
}

// runTest collects once and prints canonical JSON lines.
func (m *Main) runTest(ctx context.Context, cfg agent.Config, logger *slog.Logger) error {
	host, err := cfg.ResolveHostname()
	if err != nil {
		return err
	}
	jobs := agent.Jobs(&cfg, logger, nil)
	ms, cerr := agent.CollectOnce(ctx, jobs, host, time.Second)
	var buf []byte
	for i := range ms {
		buf, err = ms[i].AppendJSON(buf[:0])
		if err != nil {
			logger.Warn("cannot print metric", "err", err)
			continue
		}
		buf = append(buf, '\n')
		if _, err := m.stdout.Write(buf); err != nil {
			return err
		}
	}
	if cerr != nil {
		logger.Warn("some collectors failed", "err", cerr)
	}
	return nil
}

// ackGrace bounds how long shutdown waits for the relay to ack batches
// already sent, before the sender is stopped (unacked ones stay in the
// buffer and are sent again after the restart).
const ackGrace = 2 * time.Second

// The agent's memory defaults (see memtrim). gcPercent: its live heap is
// well under 1 MB, so Go's default (100, with a 4 MB minimum heap goal) lets
// it grow to several times that between collections; 25 keeps the goal near
// the live heap for a collection every few seconds of a small heap (GOGC in
// the environment overrides it). releaseAfter: once start-up is over (the
// first collection rounds, the first relay connection), the binary's pages
// touched only then are released. maxProcs: each P holds its own span caches
// (8 Ps instead of 2 cost 0.8 MB more anonymous memory, measured), and one
// collection round, one commit and one send per interval need no more than
// two; GOMAXPROCS in the environment overrides it.
const (
	gcPercent    = 25
	maxProcs     = 2
	releaseAfter = 30 * time.Second
)

// runDaemon runs the pipeline until ctx ends:
//
//	collectors, push API -> BufferSink -> buffer.Queue (disk) -> sender -> relays
//
// Shutdown: collectors and the HTTP server stop first (no more appends),
// then the sender gets up to ackGrace for acks of batches in flight, then it
// stops and the buffer is closed.
func (m *Main) runDaemon(ctx context.Context, cfg agent.Config, logger *slog.Logger) error {
	host, err := cfg.ResolveHostname()
	if err != nil {
		return err
	}
	memtrim.SetGCPercentDefault(gcPercent)
	memtrim.SetMaxProcsDefault(maxProcs)
	reg := obs.NewRegistry()
	metrics := agent.NewMetrics(reg)

	// Self-update decides first, before the buffer is opened: this process
	// may exec the committed version instead (update.Exec as the error).
	var acks ackClock
	upd, err := newUpdater(cfg, host, &acks, logger, reg)
	if err != nil {
		return err
	}
	if upd != nil {
		m.mu.Lock()
		m.updater = upd
		m.mu.Unlock()
		if err := upd.Boot(); err != nil {
			return err
		}
	}

	q, err := buffer.Open(bufferConfig(cfg.Buffer), logger.With("component", "buffer"), reg)
	if err != nil {
		return err
	}
	m.addCloser(q.Close)
	acks.Queue = q
	if upd != nil {
		upd.BufferOpened()
	}

	scfg := sender.DefaultConfig()
	scfg.Token = cfg.Relay.Token
	scfg.AgentID = host
	scfg.MaxInFlight = cfg.Relay.MaxInFlight
	scfg.Heartbeat = cfg.Relay.Heartbeat.D()
	scfg.IdleHeartbeat = cfg.Relay.IdleHeartbeat.D()
	scfg.ReadTimeout = cfg.Relay.ReadTimeout.D()
	scfg.UserTimeout = scfg.ReadTimeout
	scfg.BackoffMax = cfg.Relay.BackoffMax.D()
	if scfg.TLS, err = relayTLS(cfg.Relay.TLS); err != nil {
		return err
	}
	var snd *sender.Sender
	relays, chooser, err := m.startDiscovery(cfg, host, q, func() *sender.Sender { return snd }, logger, reg)
	if err != nil {
		return err
	}
	snd, err = sender.New(scfg, &acks, relays, logger, reg)
	if err != nil {
		return err
	}
	if len(cfg.Relay.Addresses) == 0 && chooser == nil {
		logger.Warn("no relay addresses configured (relay.addresses): metrics are kept in the buffer until a relay is known",
			"buffer.path", cfg.Buffer.Path)
	}

	sink := agent.NewBufferSink(q, cfg.Buffer.BatchMetrics, metrics)
	a, err := agent.New(cfg, sink, logger, metrics)
	if err != nil {
		return err
	}
	health := func() error {
		if q.Stats().DiskFull {
			return errors.New("buffer: disk full; metrics held in memory")
		}
		return nil
	}
	srv, err := obs.Listen(cfg.HTTP.Listen, reg, health, logger)
	if err != nil {
		return err
	}
	srv.Handle("POST /v1/push", a.PushHandler())
	if cfg.HTTP.Pprof {
		srv.Handle("GET /debug/pprof/", http.HandlerFunc(pprof.Index))
		srv.Handle("GET /debug/pprof/cmdline", http.HandlerFunc(pprof.Cmdline))
		srv.Handle("GET /debug/pprof/profile", http.HandlerFunc(pprof.Profile))
		srv.Handle("GET /debug/pprof/symbol", http.HandlerFunc(pprof.Symbol))
		srv.Handle("GET /debug/pprof/trace", http.HandlerFunc(pprof.Trace))
	}
	m.mu.Lock()
	m.httpAddr = srv.Addr()
	m.mu.Unlock()
	close(m.ready)
	logger.Info("agent started", "version", version.Version, "hostname", a.Hostname(), "http", srv.Addr(),
		"interval", cfg.Interval.D(), "scripts", len(cfg.Scripts), "buffer", cfg.Buffer.Path,
		"relays", cfg.Relay.Addresses)

	// The sender has its own context: it outlives the collectors by up to
	// ackGrace at shutdown.
	senderCtx, stopSender := context.WithCancel(context.Background())
	defer stopSender()
	senderDone := make(chan struct{})
	var senderErr error
	go func() {
		defer close(senderDone)
		senderErr = snd.Run(senderCtx)
	}()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx) })
	g.Go(func() error { return a.Run(gctx) })
	g.Go(func() error { return memtrim.ReleaseAfter(gctx, releaseAfter, logger) })
	if chooser != nil {
		g.Go(func() error { return chooser.Run(gctx) })
	}
	if upd != nil {
		g.Go(func() error { return upd.Run(gctx) })
	}
	g.Go(func() error {
		select {
		case <-senderDone:
			if senderErr == nil {
				return errors.New("sender stopped unexpectedly")
			}
			return fmt.Errorf("sender stopped: %w", senderErr)
		case <-gctx.Done():
			return nil
		}
	})
	err = g.Wait()

	// Collectors and the push API are stopped: nothing appends any more.
	deadline := time.Now().Add(ackGrace)
	for q.Stats().InFlight > 0 && time.Now().Before(deadline) {
		select {
		case <-senderDone:
			deadline = time.Now()
		case <-time.After(20 * time.Millisecond):
		}
	}
	stopSender()
	<-senderDone
	st := q.Stats()
	logger.Info("agent stopped", "buffered_batches", st.Batches, "buffered_metrics", st.Metrics,
		"unacked_in_flight", st.InFlight)
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	return err
}

// bufferConfig maps [buffer] onto buffer.Config.
func bufferConfig(c agent.BufferConfig) buffer.Config {
	b := buffer.DefaultConfig()
	b.Path = c.Path
	b.MaxBytes = int64(c.MaxBytes)
	b.MaxAge = c.MaxAge.D()
	b.CommitWindow = c.CommitWindow.D()
	b.LockTimeout = c.LockTimeout.D()
	b.LiveFirst = c.LiveFirst
	b.LiveAfter = c.LiveAfter.D()
	b.BackfillRate = int64(c.BackfillRate)
	b.MemoryBytes = int64(c.MemoryBytes)
	b.CompactFreeBytes = int64(c.CompactFreeBytes)
	b.CompactFreeRatio = c.CompactFreeRatio
	b.CompactTimeout = c.CompactTimeout.D()
	b.VerifyOnOpen = c.VerifyOnOpen
	return b
}

func (m *Main) addCloser(f func() error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closers = append(m.closers, f)
}

// Close releases what Run opened; it is idempotent.
func (m *Main) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	var errs []error
	for i := len(m.closers) - 1; i >= 0; i-- {
		errs = append(errs, m.closers[i]())
	}
	return errors.Join(errs...)
}
