package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/falconet/falconet/buffer"
)

func init() {
	register("buffer", "inspect or verify an agent's buffer file (inspect|verify FILE)", runBuffer)
}

const bufferUsage = `usage: falconet buffer inspect|verify [-json] [-timeout 1s] [FILE]

  inspect  batches, metrics, bytes, append times, the oldest and newest metric
           timestamps in the file, free pages
  verify   inspect plus every checksum and payload; exit 1 with details if corrupt

Flags may come before or after FILE. Both take the file's lock shared: while an
agent has the file open they refuse after -timeout instead of waiting.
Default FILE: %s

exit status: 0 ok; 1 corrupt (verify: the problems are printed) or unreadable;
2 usage error; 3 in use (locked by a running agent): stop the agent or copy the
file; 4 no such file.
`

func runBuffer(ctx context.Context, args []string) error {
	printUsage := func() { fmt.Fprintf(os.Stderr, bufferUsage, buffer.DefaultConfig().Path) }
	if len(args) > 0 && isHelp(args[0]) {
		printUsage() // stdout: main points os.Stderr there for help
		return flag.ErrHelp
	}
	if len(args) == 0 || (args[0] != "inspect" && args[0] != "verify") {
		printUsage()
		if len(args) == 0 {
			return exitError{code: exitUsage, msg: "inspect or verify?"}
		}
		return exitError{code: exitUsage, msg: fmt.Sprintf("unknown verb %q: inspect or verify", args[0])}
	}
	verb := args[0]
	fs := flag.NewFlagSet("buffer "+verb, flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	timeout := fs.Duration("timeout", time.Second, "how long to wait for the file lock")
	fs.Usage = printUsage
	operands, err := parseFlags(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return exitError{code: exitUsage} // the flag package printed the error and the usage
	}
	path := buffer.DefaultConfig().Path
	switch len(operands) {
	case 0:
	case 1:
		path = operands[0]
	default:
		return exitError{code: exitUsage, msg: fmt.Sprintf("one FILE, got %d: %q", len(operands), operands)}
	}
	var rep *buffer.FileReport
	if verb == "inspect" {
		rep, err = buffer.Inspect(path, *timeout)
	} else {
		rep, err = buffer.Verify(path, *timeout)
	}
	switch {
	case buffer.IsLocked(err):
		return exitError{code: exitInUse, msg: fmt.Sprintf("%s is in use (locked by a running agent?); stop the agent or copy the file first", path)}
	case errors.Is(err, os.ErrNotExist):
		return exitError{code: exitNotFound, msg: fmt.Sprintf("%s: no such file", path)}
	case err != nil && !errors.Is(err, buffer.ErrCorrupt):
		return exitError{code: exitFailed, msg: err.Error()}
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(rep); jerr != nil {
			return jerr
		}
	} else {
		printFileReport(os.Stdout, rep)
	}
	if err != nil {
		return exitError{code: exitFailed, msg: fmt.Sprintf("%s is corrupt: %v (on start the agent quarantines bad batches, or moves a damaged file aside and salvages what it can)", path, err)}
	}
	if verb == "verify" {
		fmt.Println("ok: structure, checksums and payloads verified")
	}
	return nil
}

func printFileReport(w io.Writer, r *buffer.FileReport) {
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "file:            %s\n", r.Path)
	fmt.Fprintf(w, "file size:       %d bytes (%d pages of %d)\n", r.FileBytes, r.Pages, r.PageSize)
	fmt.Fprintf(w, "free pages:      %d (%d bytes)\n", r.FreePages, r.FreePages*int64(r.PageSize))
	fmt.Fprintf(w, "batches:         %d (seq %d..%d)\n", r.Batches, r.FirstSeq, r.LastSeq)
	fmt.Fprintf(w, "metrics:         %d\n", r.Metrics)
	fmt.Fprintf(w, "bytes:           %d\n", r.Bytes)
	fmt.Fprintf(w, "quarantined:     %d\n", r.Quarantined)
	fmt.Fprintf(w, "oldest batch:    appended %s\n", ts(r.OldestAppended))
	fmt.Fprintf(w, "newest batch:    appended %s\n", ts(r.NewestAppended))
	fmt.Fprintf(w, "oldest metric:   %s  (earliest timestamp in the file)\n", ts(r.OldestMetric))
	fmt.Fprintf(w, "newest metric:   %s  (latest timestamp in the file)\n", ts(r.NewestMetric))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "problem:         %s\n", p)
	}
}
