package main

// falconet demo: flags and wiring; the orchestration is package demo.

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/falconet/falconet/demo"
	"github.com/falconet/falconet/internal/promtext"
)

func init() {
	register("demo", "run the whole pipeline on this machine (dev Kafka, dev ES, 2 relays, a saver, agents) with a live summary", runDemo)
}

func runDemo(ctx context.Context, args []string) error {
	cfg := demo.DefaultConfig()
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop after this long and print generated/stored/missing/duplicates (0: until Ctrl-C)")
	fs.IntVar(&cfg.Agents, "agents", cfg.Agents, "agents: the first collects this host's real metrics, the others push a synthetic stream")
	fs.StringVar(&cfg.Fault, "fault", "", "inject a fault mid-run: relay-kill (SIGKILL the busiest relay, restart it -restart-after later)")
	fs.DurationVar(&cfg.FaultAt, "fault-at", 0, "when to inject the fault (0: a third of -duration, or 20s)")
	fs.DurationVar(&cfg.RestartAfter, "restart-after", cfg.RestartAfter, "how long a killed relay stays down")
	fs.StringVar(&cfg.Dir, "dir", cfg.Dir, "working directory (configs, data, logs, state.json); created, or emptied at start if an earlier demo created it (anything else is refused)")
	fs.StringVar(&cfg.BinDir, "bin", cfg.BinDir, "directory with falconet-agent, falconet-relay, falconet-saver (default: next to this binary)")
	fs.IntVar(&cfg.PortBase, "port-base", cfg.PortBase, "loopback ports: Kafka base+92, ES base+200, relays base+433.., saver base+161, agents base+988..")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "pushes per second per synthetic agent")
	fs.IntVar(&cfg.Series, "series", cfg.Series, "series per synthetic agent")
	fs.DurationVar(&cfg.Every, "every", cfg.Every, "summary line interval")
	fs.BoolVar(&cfg.Secure, "secure", false, "TLS and authentication on every link: agent→relay TLS + token, relay/saver→Kafka TLS + SCRAM-SHA-512, saver→ES HTTPS + API key")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q (flags only)", fs.Arg(0))}
	}
	d, err := demo.New(cfg)
	switch {
	case errors.Is(err, demo.ErrStartup):
		return exitError{code: 1, msg: err.Error()}
	case err != nil:
		return exitError{code: 2, msg: err.Error()}
	}
	_, err = d.Run(ctx)
	if errors.Is(err, demo.ErrContractBroken) {
		return exitError{code: 1, msg: "delivery contract broken (see above)"}
	}
	return err
}

// What `falconet status` shares with the demo.
type (
	demoState  = demo.State
	demoMember = demo.Member
)

func defaultDemoDir() string { return demo.DefaultDir() }

func fetch(url string) (string, error) { return promtext.Get(context.Background(), url) }

func promSum(page, name string) float64 { return promtext.Sum(page, name) }

func promLabeled(page, name string) map[string]float64 { return promtext.Labeled(page, name) }
