// Command falconet-saver moves metrics from Kafka into Elasticsearch. See
// package saver for what it guarantees; this file is flags and wiring.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/falconet/falconet/internal/cli"
	"github.com/falconet/falconet/internal/obs"
	"github.com/falconet/falconet/internal/version"
	"github.com/falconet/falconet/saver"
)

// Main is the program: flags, then Run. Tests start it in-process.
type Main struct {
	ConfigPath      string
	CheckConfig     bool
	Version         bool
	DryRunRetention bool

	Stdout, Stderr io.Writer
	// exit ends the process when shutdown overruns its bound (os.Exit).
	exit func(code int)

	mu      sync.Mutex
	httpURL string
}

// ParseFlags reads the command line.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("falconet-saver", flag.ContinueOnError)
	fs.SetOutput(cli.UsageOutput(args, m.Stdout, m.Stderr))
	fs.StringVar(&m.ConfigPath, "config", "/etc/falconet/saver.toml", "configuration file (TOML)")
	fs.BoolVar(&m.CheckConfig, "check-config", false, "validate the configuration, print the first problem and exit 1 if any")
	fs.BoolVar(&m.Version, "version", false, "print the version and exit")
	fs.BoolVar(&m.DryRunRetention, "dry-run-retention", false, "list the indices retention would delete now, and exit")
	return fs.Parse(args)
}

// exitCode is an error with a process exit status.
type exitCode struct {
	code int
	err  error
}

func (e exitCode) Error() string { return e.err.Error() }

// Run does what the flags say; for the daemon it returns after ctx ended and
// the saver shut down.
func (m *Main) Run(ctx context.Context) error {
	if m.Version {
		fmt.Fprintln(m.Stdout, version.String("falconet-saver"))
		return nil
	}
	cfg, err := saver.LoadConfig(m.ConfigPath)
	if err != nil {
		return exitCode{1, err}
	}
	if m.CheckConfig {
		fmt.Fprintf(m.Stdout, "%s: ok\n", m.ConfigPath)
		return nil
	}
	logger, err := obs.NewLogger(m.Stderr, cfg.Log.Format, cfg.Log.Level)
	if err != nil {
		return exitCode{1, err}
	}
	if m.DryRunRetention {
		return m.dryRunRetention(ctx, &cfg)
	}

	if m.exit == nil {
		m.exit = os.Exit
	}
	reg := obs.NewRegistry()
	s, err := saver.New(cfg, logger, reg)
	if err != nil {
		return exitCode{1, err}
	}
	defer func() { _ = s.Close() }()
	var srv *obs.Server
	if cfg.HTTP.Listen != "" {
		srv, err = obs.Listen(cfg.HTTP.Listen, reg, s.Health, logger)
		if err != nil {
			return exitCode{1, err}
		}
		if cfg.HTTP.Pprof {
			srv.Handle("GET /debug/pprof/", http.HandlerFunc(pprof.Index))
			srv.Handle("GET /debug/pprof/profile", http.HandlerFunc(pprof.Profile))
			srv.Handle("GET /debug/pprof/symbol", http.HandlerFunc(pprof.Symbol))
			srv.Handle("GET /debug/pprof/trace", http.HandlerFunc(pprof.Trace))
		}
		m.mu.Lock()
		m.httpURL = "http://" + srv.Addr()
		m.mu.Unlock()
		logger.Info("http listening", "addr", srv.Addr())
	}
	logger.Info("falconet-saver starting", "version", version.Version, "brokers", cfg.Kafka.Brokers,
		"topic", cfg.Kafka.Topic, "group", cfg.Kafka.Group, "elasticsearch", cfg.Elasticsearch.URLs, "http", cfg.HTTP.Listen)

	httpCtx, stopHTTP := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if srv != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(httpCtx); err != nil {
				logger.Warn("http server", "err", err)
			}
		}()
	}
	// A last resort for the shutdown bound: the saver bounds its own work by
	// shutdown_timeout, but leaving the group waits on the network.
	finished := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-finished:
			return
		}
		t := time.NewTimer(cfg.ShutdownTimeout.D() + 10*time.Second)
		defer t.Stop()
		select {
		case <-t.C:
			logger.Error("shutdown did not finish in time, exiting", "shutdown_timeout", cfg.ShutdownTimeout.D())
			m.exit(1)
		case <-finished:
		}
	}()
	runErr := s.Run(ctx)
	close(finished)
	stopHTTP()
	wg.Wait()
	logger.Info("falconet-saver stopped", "err", runErr)
	return runErr
}

func (m *Main) dryRunRetention(ctx context.Context, cfg *saver.Config) error {
	es, err := saver.NewESClient(&cfg.Elasticsearch)
	if err != nil {
		return exitCode{1, err}
	}
	defer es.Stop()
	rctx, cancel := context.WithTimeout(ctx, cfg.Elasticsearch.RequestTimeout.D())
	defer cancel()
	now := time.Now().UTC()
	plan, err := saver.RetentionPlan(rctx, es, &cfg.Elasticsearch, now)
	if err != nil {
		return exitCode{1, err}
	}
	fmt.Fprintf(m.Stderr, "retention at %s: retention_days=%d rollup_retention_months=%d: %d indices would be deleted\n",
		now.Format(time.RFC3339), cfg.Elasticsearch.RetentionDays, cfg.Elasticsearch.RollupRetentionMonths, len(plan))
	for _, name := range plan {
		fmt.Fprintln(m.Stdout, name)
	}
	return nil
}

// HTTPURL is the bound /metrics and /healthz base URL once Run started.
func (m *Main) HTTPURL() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.httpURL
}

func main() {
	m := &Main{Stdout: os.Stdout, Stderr: os.Stderr, exit: os.Exit}
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.Run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "falconet-saver: %v\n", err)
		var ec exitCode
		if errors.As(err, &ec) {
			os.Exit(ec.code)
		}
		os.Exit(1)
	}
}
