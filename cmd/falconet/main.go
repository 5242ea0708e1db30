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
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/falconet/falconet/internal/cli"
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

// Exit statuses, the same for every subcommand (README: "Exit status").
const (
	exitOK       = 0
	exitFailed   = 1 // the command ran and found a problem (corrupt file, broken contract, ...) or failed
	exitUsage    = 2 // bad flags or arguments
	exitInUse    = 3 // the file is locked by another process (a running agent)
	exitNotFound = 4 // the named file does not exist
)

// exitError carries an exit status; its message, if any, is printed.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

const exitCodesHelp = `exit status: 0 ok; 1 failed or found a problem; 2 usage error;
3 file in use (locked by a running agent); 4 file not found.
`

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: falconet <command> [flags]\n\ncommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "\nfalconet help <command> (or falconet <command> -h) shows a command's flags;\nfalconet -version the build.\n\n%s", exitCodesHelp)
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "--h", "help":
		return true
	}
	return false
}

// parseFlags parses args with fs and accepts flags after operands too
// (`falconet buffer inspect FILE -json`); "--" ends the flags. It returns
// the operands in order.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return operands, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(operands, rest...), nil
		}
		operands = append(operands, rest[0])
		args = rest[1:]
	}
}

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(exitUsage)
	}
	args := os.Args[1:]
	if isHelp(args[0]) {
		if len(args) == 1 {
			usage(os.Stdout)
			return
		}
		// falconet help CMD: CMD's own help.
		args = []string{args[1], "-h"}
	}
	if args[0] == "-version" || args[0] == "--version" || args[0] == "version" {
		fmt.Println(version.String("falconet"))
		return
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "falconet: unknown command %q\n\n", args[0])
		usage(os.Stderr)
		os.Exit(exitUsage)
	}
	if cli.HelpRequested(args[1:]) {
		// Asked-for help is output, not an error: the flag package and the
		// commands print usage to os.Stderr, so point it at stdout
		// (`falconet buffer -h | less`).
		os.Stderr = os.Stdout
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cmd.run(ctx, args[1:])
	stop()
	var ee exitError
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(exitOK)
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintf(os.Stderr, "falconet %s: %s\n", args[0], ee.msg)
		}
		os.Exit(ee.code)
	default:
		fmt.Fprintf(os.Stderr, "falconet %s: %v\n", args[0], err)
		os.Exit(exitFailed)
	}
}
