package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/falconet/falconet/fault/load"
)

func init() {
	register("load", "push a deterministic metric stream to an agent (or a relay's legacy port) and log what was accepted", runLoad)
}

func runLoad(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:1988/v1/push", "the agent's push API")
	legacy := fs.String("legacy", "", "a relay's legacy line-JSON address (host:4444) instead of -url; no acks: records say sent")
	endpoint := fs.String("endpoint", "", "endpoint of the generated metrics (default: load-<hostname>)")
	name := fs.String("name", "fault.load", "metric name")
	series := fs.Int("series", 20, "metrics per push (one per series, tag s=000..)")
	rate := fs.Float64("rate", 10, "pushes per second")
	count := fs.Int64("count", 0, "stop after this many accepted pushes (0: until interrupted)")
	start := fs.Int64("start", 0, "timestamp of push 0 (default: now - 6h, so a fast stream stays in the past)")
	logPath := fs.String("log", "", "append the record of attempted/accepted pushes to this file (read it with the fault checker)")
	duration := fs.Duration("duration", 0, "stop after this long (0: no limit)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *endpoint == "" {
		h, _ := os.Hostname()
		*endpoint = "load-" + h
	}
	if *start == 0 {
		*start = time.Now().Add(-6 * time.Hour).Unix()
	}
	cfg := load.Config{
		Stream: load.Stream{Endpoint: *endpoint, Name: *name, Series: *series, Start: *start},
		URL:    *url, Legacy: *legacy, Rate: *rate, Count: *count,
	}
	if *logPath != "" {
		f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return exitError{code: 1, msg: err.Error()}
		}
		defer f.Close()
		cfg.Log = f
	}
	g, err := load.New(cfg)
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	err = g.Run(ctx)
	st, _ := json.Marshal(g.Stats())
	fmt.Println(string(st))
	if err != nil {
		return exitError{code: 1, msg: err.Error()}
	}
	return nil
}
