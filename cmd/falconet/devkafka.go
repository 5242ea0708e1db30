package main

import (
	"context"
	"crypto/tls"
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
	noAuto := fs.Bool("no-auto-create", false, "do not create topics on request (like most production clusters); create them with falconet kafka-setup")
	tlsCert := fs.String("tls-cert", "", "PEM certificate: speak TLS only (with -tls-key)")
	tlsKey := fs.String("tls-key", "", "PEM private key of -tls-cert")
	var sasl []devstack.SASLUser
	fs.Func("sasl", "require SASL: MECHANISM:USER:PASSWORD, MECHANISM PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (repeatable)", func(v string) error {
		u, err := devstack.ParseSASLUser(v)
		if err != nil {
			return err
		}
		sasl = append(sasl, u)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return exitError{code: 2, msg: "-tls-cert and -tls-key go together"}
	}
	var tc *tls.Config
	if *tlsCert != "" {
		var err error
		if tc, err = devstack.ServerTLS(*tlsCert, *tlsKey); err != nil {
			return exitError{code: 2, msg: err.Error()}
		}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var ts []string
	for t := range strings.SplitSeq(*topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			ts = append(ts, t)
		}
	}
	k, err := devstack.StartKafka(devstack.KafkaConfig{Listen: *listen, DataDir: *data, Partitions: int32(*partitions),
		Topics: ts, SyncWrites: *sync, NoAutoCreate: *noAuto, TLS: tc, SASL: sasl, Logger: logger.With("component", "dev-kafka")})
	if err != nil {
		return err
	}
	users := make([]string, len(sasl))
	for i, u := range sasl {
		users[i] = u.Mechanism + ":" + u.User // never the password
	}
	logger.Info("dev-kafka listening", "addr", k.Addr(), "data", *data, "topics", ts, "tls", tc != nil, "sasl_users", users, "auto_create", !*noAuto)
	fmt.Println(k.Addr()) // scripts read the address from the first line of stdout
	<-ctx.Done()
	logger.Info("dev-kafka stopping")
	k.Close()
	return nil
}
