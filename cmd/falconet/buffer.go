package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/falconet/falconet/buffer"
)

func init() {
	register("buffer", "inspect or verify an agent's buffer file (inspect|verify FILE)", runBuffer)
}

const bufferUsage = `usage: falconet buffer inspect|verify [-json] [-timeout 1s] FILE

  inspect  batches, metrics, bytes, oldest/newest times, free pages
  verify   inspect plus every checksum and payload; exit 1 with details if corrupt

Both take the file's lock shared: while an agent has the file open they
refuse after -timeout (exit 3) instead of waiting. Default FILE: %s
`

func runBuffer(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "inspect" && args[0] != "verify") {
		fmt.Fprintf(os.Stderr, bufferUsage, buffer.DefaultConfig().Path)
		return exitError{code: 2}
	}
	verb := args[0]
	fs := flag.NewFlagSet("buffer "+verb, flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	timeout := fs.Duration("timeout", time.Second, "how long to wait for the file lock")
	fs.Usage = func() { fmt.Fprintf(fs.Output(), bufferUsage, buffer.DefaultConfig().Path) }
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	path := buffer.DefaultConfig().Path
	switch fs.NArg() {
	case 0:
	case 1:
		path = fs.Arg(0)
	default:
		fs.Usage()
		return exitError{code: 2}
	}
	var rep *buffer.FileReport
	var err error
	if verb == "inspect" {
		rep, err = buffer.Inspect(path, *timeout)
	} else {
		rep, err = buffer.Verify(path, *timeout)
	}
	switch {
	case buffer.IsLocked(err):
		return exitError{code: 3, msg: fmt.Sprintf("%s is in use (locked by a running agent?); stop the agent or copy the file first", path)}
	case err != nil && !errors.Is(err, buffer.ErrCorrupt):
		return exitError{code: 3, msg: err.Error()}
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(rep); jerr != nil {
			return jerr
		}
	} else {
		printFileReport(rep)
	}
	if err != nil {
		return exitError{code: 1, msg: fmt.Sprintf("%s is corrupt: %v (on start the agent quarantines bad batches, or moves a damaged file aside and salvages what it can)", path, err)}
	}
	if verb == "verify" {
		fmt.Println("ok: structure, checksums and payloads verified")
	}
	return nil
}

func printFileReport(r *buffer.FileReport) {
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	fmt.Printf("file:            %s\n", r.Path)
	fmt.Printf("file size:       %d bytes (%d pages of %d)\n", r.FileBytes, r.Pages, r.PageSize)
	fmt.Printf("free pages:      %d (%d bytes)\n", r.FreePages, r.FreePages*int64(r.PageSize))
	fmt.Printf("batches:         %d (seq %d..%d)\n", r.Batches, r.FirstSeq, r.LastSeq)
	fmt.Printf("metrics:         %d\n", r.Metrics)
	fmt.Printf("bytes:           %d\n", r.Bytes)
	fmt.Printf("quarantined:     %d\n", r.Quarantined)
	fmt.Printf("oldest appended: %s  (metric time %s)\n", ts(r.OldestAppended), ts(r.OldestMetric))
	fmt.Printf("newest appended: %s  (metric time %s)\n", ts(r.NewestAppended), ts(r.NewestMetric))
	for _, p := range r.Problems {
		fmt.Printf("problem:         %s\n", p)
	}
}
