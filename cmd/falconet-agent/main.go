// Command falconet-agent is the host agent: it collects metrics, takes
// metrics pushed by local applications, keeps them in its durable buffer and
// sends them to a relay. This file is flags and wiring only; the work is in
// package agent.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/falconet/falconet/update"
)

// shutdownBound is how long SIGTERM may take before the process exits anyway.
const shutdownBound = 5 * time.Second

func main() {
	m := NewMain(os.Stdout, os.Stderr)
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		os.Exit(exitCode(err, m))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		stop() // a second signal kills at once
		select {
		case err = <-done:
		case <-time.After(shutdownBound):
			fmt.Fprintf(os.Stderr, "falconet-agent: shutdown took longer than %v; exiting\n", shutdownBound)
			os.Exit(1)
		}
	}
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	var ex *update.Exec
	if errors.As(err, &ex) { // self-update: become another binary (returns only on failure)
		err = ex.Do()
	}
	os.Exit(exitCode(err, m))
}

func exitCode(err error, m *Main) int {
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(m.stderr, ee.msg)
		}
		return ee.code
	}
	fmt.Fprintf(m.stderr, "falconet-agent: %v\n", err)
	return 1
}
