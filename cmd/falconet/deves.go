package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/devstack/esserver"
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
	tlsCert := fs.String("tls-cert", "", "PEM certificate: serve HTTPS only (with -tls-key)")
	tlsKey := fs.String("tls-key", "", "PEM private key of -tls-cert")
	auth := &esserver.Auth{Users: map[string]string{}, APIKeys: map[string]string{}}
	fs.Func("user", "require authentication; accept basic auth as USER:PASSWORD (repeatable)", func(v string) error {
		u, p, ok := strings.Cut(v, ":")
		if !ok || u == "" || p == "" {
			return errors.New("want USER:PASSWORD")
		}
		auth.Users[u] = p
		return nil
	})
	fs.Func("api-key", "require authentication; accept the API key ID:KEY, sent as \"Authorization: ApiKey base64(ID:KEY)\" (repeatable)", func(v string) error {
		id, k, ok := strings.Cut(v, ":")
		if !ok || id == "" || k == "" {
			return errors.New("want ID:KEY")
		}
		auth.APIKeys[id] = k
		return nil
	})
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
	if len(auth.Users) == 0 && len(auth.APIKeys) == 0 {
		auth = nil
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "dev-es")
	es, err := devstack.StartESServer(devstack.ESConfig{Listen: *listen, DataDir: *data, Memory: *memory, Logger: logger, TLS: tc, Auth: auth})
	if err != nil {
		return err
	}
	es.SetFaults(devstack.ESFaults{RejectFraction: *reject, RejectRequestFraction: *rejectReq, Latency: *latency, Unavailable: *unavailable, CloseConns: *closeConns})
	var users, keys []string // names and ids, never secrets
	if auth != nil {
		for u := range auth.Users {
			users = append(users, u)
		}
		for id := range auth.APIKeys {
			keys = append(keys, id)
		}
	}
	logger.Info("dev-es listening", "url", es.URL(), "data", *data, "memory", *memory, "tls", tc != nil, "users", users, "api_key_ids", keys)
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
