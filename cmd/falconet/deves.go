package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/falconet/falconet/devstack"
)

func init() {
	register("dev-es", "run the development Elasticsearch-compatible server", runDevES)
}

func runDevES(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev-es", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9200", "address to listen on")
	data := fs.String("data", "", "data directory (required unless -memory)")
	memory := fs.Bool("memory", false, "keep everything in memory")
	reject := fs.Float64("fault-reject", 0, "fault: fraction of bulk items answered 429 es_rejected_execution_exception")
	rejectReq := fs.Float64("fault-reject-requests", 0, "fault: fraction of whole _bulk requests answered HTTP 429")
	latency := fs.Duration("fault-latency", 0, "fault: latency added to every request")
	unavailable := fs.Bool("fault-unavailable", false, "fault: every request answers 503")
	closeConns := fs.Bool("fault-close-conns", false, "fault: close connections without answering")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: falconet dev-es -listen ADDR (-data DIR | -memory) [faults]\n"+
			"Faults can also be set at run time: PUT /_falconet/faults {\"reject_fraction\":0.1,\"reject_request_fraction\":0,\"latency\":\"200ms\",\"unavailable\":false,\"close_conns\":false},\n"+
			"POST /_falconet/go_away?duration=5s, or signals: SIGUSR1 stops listening, SIGUSR2 listens again.\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" && !*memory {
		return exitError{code: 2, msg: "-data DIR or -memory is required"}
	}
	if *reject < 0 || *reject > 1 {
		return exitError{code: 2, msg: "-fault-reject must be within [0, 1]"}
	}
	if *rejectReq < 0 || *rejectReq > 1 {
		return exitError{code: 2, msg: "-fault-reject-requests must be within [0, 1]"}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "dev-es")
	es, err := devstack.StartESServer(devstack.ESConfig{Listen: *listen, DataDir: *data, Memory: *memory, Logger: logger})
	if err != nil {
		return err
	}
	es.SetFaults(devstack.ESFaults{RejectFraction: *reject, RejectRequestFraction: *rejectReq, Latency: *latency, Unavailable: *unavailable, CloseConns: *closeConns})
	logger.Info("dev-es listening", "url", es.URL(), "data", *data, "memory", *memory)
	// SIGUSR1 stops listening (the "go away" fault), SIGUSR2 listens again
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	fmt.Println(es.URL()) // scripts read the URL from the first line of stdout
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case sig := <-sigs:
			var err error
			if sig == syscall.SIGUSR1 {
				logger.Info("dev-es stops listening (SIGUSR1)")
				err = es.Stop()
			} else {
				logger.Info("dev-es listens again (SIGUSR2)")
				err = es.Start()
			}
			if err != nil {
				logger.Error("dev-es listener", "err", err)
			}
		}
	}
	logger.Info("dev-es stopping")
	return es.Close()
}
