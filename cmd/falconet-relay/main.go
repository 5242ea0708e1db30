// Command falconet-relay accepts agents' batches and legacy JSON lines and
// produces them to Kafka. See package relay.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/falconet/falconet/discovery"
	"github.com/falconet/falconet/internal/cli"
	"github.com/falconet/falconet/internal/obs"
	"github.com/falconet/falconet/internal/version"
	"github.com/falconet/falconet/relay"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("falconet-relay", flag.ContinueOnError)
	fs.SetOutput(cli.UsageOutput(args, stdout, stderr))
	configPath := fs.String("config", "", "TOML configuration file (empty: built-in defaults)")
	check := fs.Bool("check-config", false, "validate the configuration, print the first problem and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.String("falconet-relay"))
		return 0
	}
	cfg := relay.DefaultConfig()
	var err error
	if *configPath != "" {
		cfg, err = relay.LoadConfig(*configPath)
	} else {
		err = cfg.Validate()
	}
	if err == nil {
		_, err = cfg.TLS.Load() // certificates that do not parse fail the check, not the start
	}
	if err != nil {
		fmt.Fprintf(stderr, "falconet-relay: %v\n", err)
		return 1
	}
	if *check {
		if *configPath == "" {
			fmt.Fprintln(stdout, "falconet-relay: no -config given; running on the defaults, which are valid")
		} else {
			fmt.Fprintf(stdout, "falconet-relay: configuration %s is valid\n", *configPath)
		}
		return 0
	}
	logger, err := obs.NewLogger(stderr, cfg.Log.Format, cfg.Log.Level)
	if err != nil {
		fmt.Fprintf(stderr, "falconet-relay: relay.log: %v\n", err)
		return 1
	}
	reg := obs.NewRegistry()
	srv, err := relay.New(cfg, logger, reg)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	logger.Info("starting", "version", version.String("falconet-relay"))
	stopGossip, err := startDiscovery(cfg, srv, logger, reg)
	if err != nil {
		logger.Error("cannot start", "err", err)
		_ = srv.Close()
		return 1
	}
	mirrorCtx, stopMirror := context.WithCancel(ctx)
	defer stopMirror()
	waitMirror, err := startMirror(mirrorCtx, cfg, srv, logger) // [update] mirror, served at /update/
	if err != nil {
		logger.Error("cannot start", "err", fmt.Errorf("relay.update.mirror: %w", err))
		stopGossip()
		_ = srv.Close()
		return 1
	}
	err = srv.Run(ctx) // on SIGTERM: drains while still advertised as draining
	stopGossip()       // then leaves the pool
	stopMirror()
	waitMirror()
	if err != nil {
		logger.Error("relay failed", "err", err)
		return 1
	}
	return 0
}

// startDiscovery joins the gossip pool (unless discovery.bind is "") and
// advertises the relay's address, readiness and load; it fills the relay's
// redirect list from the pool. The returned function leaves the pool.
func startDiscovery(cfg relay.Config, srv *relay.Server, logger *slog.Logger, reg prometheus.Registerer) (func(), error) {
	d := cfg.Discovery
	if d.Bind == "" {
		return func() {}, nil
	}
	id := cfg.ID
	if id == "" {
		id, _ = os.Hostname()
	}
	node, err := discovery.New(discovery.Config{Name: "relay/" + id, Role: discovery.RoleRelay, Bind: d.Bind,
		Advertise: d.Advertise, Seeds: d.Seeds, Keys: d.Keys, Version: version.Version}, logger, reg)
	if err != nil {
		return nil, fmt.Errorf("relay.discovery: %w", err)
	}
	addr := d.ProtocolAddress
	if addr == "" {
		gh, _, _ := net.SplitHostPort(node.Addr())
		_, pp, _ := net.SplitHostPort(srv.ProtocolAddr())
		addr = net.JoinHostPort(gh, pp)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		node.AdvertiseRelay(ctx, addr, 500*time.Millisecond, func() discovery.RelayStatus {
			a := srv.Advert()
			return discovery.RelayStatus{Ready: a.Ready, Draining: a.Draining, Agents: a.Agents, MaxAgents: a.MaxAgents,
				InflightBytes: a.InflightBytes, InflightMax: a.InflightMax, ProduceLatency: a.ProduceLatency}
		}, srv.SetRedirect)
	}()
	logger.Info("advertising in the gossip pool", "gossip", node.Addr(), "protocol_address", addr, "seeds", d.Seeds)
	return func() {
		cancel()
		<-done
		_ = node.Close()
	}, nil
}
