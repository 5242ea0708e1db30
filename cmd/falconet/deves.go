package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

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
	latency := fs.Duration("fault-latency", 0, "fault: latency added to every request")
	unavailable := fs.Bool("fault-unavailable", false, "fault: every request answers 503")
	closeConns := fs.Bool("fault-close-conns", false, "fault: close connections without answering")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" && !*memory {
		return exitError{code: 2, msg: "dev-es: -data DIR or -memory is required"}
	}
	if *reject < 0 || *reject > 1 {
		return exitError{code: 2, msg: "dev-es: -fault-reject must be within [0, 1]"}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "dev-es")
	es, err := devstack.StartESServer(devstack.ESConfig{Listen: *listen, DataDir: *data, Memory: *memory, Logger: logger})
	if err != nil {
		return err
	}
	es.SetFaults(devstack.ESFaults{RejectFraction: *reject, Latency: *latency, Unavailable: *unavailable, CloseConns: *closeConns})
	logger.Info("dev-es listening", "url", es.URL(), "data", *data, "memory", *memory)
	fmt.Println(es.URL()) // scripts read the URL from the first line of stdout
	<-ctx.Done()
	logger.Info("dev-es stopping")
	return es.Close()
}
