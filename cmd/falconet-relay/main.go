// Command falconet-relay accepts agents' batches and legacy JSON lines and
// produces them to Kafka. See package relay.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

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
	srv, err := relay.New(cfg, logger, nil)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	logger.Info("starting", "version", version.String("falconet-relay"))
	if err := srv.Run(ctx); err != nil {
		logger.Error("relay failed", "err", err)
		return 1
	}
	return 0
}
