package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/falconet/falconet/devstack"
)

func init() {
	register("dev-kafka", "run the development Kafka-protocol broker (kfake)", runDevKafka)
}

func runDevKafka(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev-kafka", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9092", "address to listen on")
	data := fs.String("data", "", "data directory (empty: in memory only)")
	partitions := fs.Int("partitions", 10, "partitions of auto-created topics")
	topics := fs.String("topics", "falconet-metrics,falconet-metrics-dlq", "comma-separated topics to create at start")
	sync := fs.Bool("sync", false, "fsync every produced batch")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var ts []string
	for t := range strings.SplitSeq(*topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			ts = append(ts, t)
		}
	}
	k, err := devstack.StartKafka(devstack.KafkaConfig{Listen: *listen, DataDir: *data, Partitions: int32(*partitions),
		Topics: ts, SyncWrites: *sync, Logger: logger.With("component", "dev-kafka")})
	if err != nil {
		return err
	}
	logger.Info("dev-kafka listening", "addr", k.Addr(), "data", *data, "topics", ts)
	fmt.Println(k.Addr()) // scripts read the address from the first line of stdout
	<-ctx.Done()
	logger.Info("dev-kafka stopping")
	k.Close()
	return nil
}
