// Command falconet is the operator's tool: the demo, status, buffer tools,
// release signing, the development Kafka and Elasticsearch servers, and the
// load generator. Each subcommand lives in its own file and registers itself;
// this file only dispatches.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/falconet/falconet/internal/version"
)

// command is one subcommand. run gets the arguments after the subcommand's
// name and a context that ends on SIGINT or SIGTERM. It returns an exitError
// to choose the exit status.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{}

func register(name, summary string, run func(ctx context.Context, args []string) error) {
	commands[name] = command{summary: summary, run: run}
}

// exitError carries an exit status; its message, if any, is printed.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func usage() {
	fmt.Fprintf(os.Stderr, "usage: falconet <command> [flags]\n\ncommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(os.Stderr, "\nfalconet <command> -h shows a command's flags; falconet -version the build.\n")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		os.Exit(2)
	}
	if os.Args[1] == "-version" || os.Args[1] == "--version" || os.Args[1] == "version" {
		fmt.Println(version.String("falconet"))
		return
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "falconet: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cmd.run(ctx, os.Args[2:])
	stop()
	var ee exitError
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintf(os.Stderr, "falconet %s: %s\n", os.Args[1], ee.msg)
		}
		os.Exit(ee.code)
	default:
		fmt.Fprintf(os.Stderr, "falconet %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
