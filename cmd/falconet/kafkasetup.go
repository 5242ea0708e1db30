package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/falconet/falconet/relay"
)

func init() {
	register("kafka-setup", "create the metrics and dead-letter topics on a Kafka cluster", runKafkaSetup)
}

func runKafkaSetup(ctx context.Context, args []string) error {
	return kafkaSetup(args, os.Stdout, os.Stderr)
}

func kafkaSetup(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kafka-setup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "relay.toml: brokers, topic, [kafka.tls] and [kafka.sasl] come from it (required)")
	partitions := fs.Int("partitions", 0, "partitions of the metrics topic (required): at least the number of savers you will run")
	replication := fs.Int("replication", 0, "replication factor (required): 3 on a production cluster, 1 on a single broker")
	retention := fs.String("retention", "", "retention of both topics, e.g. 7d or 72h (empty: the cluster default)")
	dlq := fs.String("dlq-topic", "falconet-metrics-dlq", "dead-letter topic (saver.toml kafka.dlq_topic); empty: skip")
	dlqPartitions := fs.Int("dlq-partitions", 1, "partitions of the dead-letter topic")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: falconet kafka-setup -config relay.toml -partitions N -replication R [-retention D]\n"+
			"Creates the metrics topic and the dead-letter topic if they do not exist; existing topics are left as they are.\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *config == "" || *partitions <= 0 || *replication <= 0 {
		fs.Usage()
		return exitError{code: 2, msg: "-config, -partitions and -replication are required"}
	}
	if *replication > 32767 || *partitions > 1<<20 || *dlqPartitions <= 0 {
		return exitError{code: 2, msg: "-partitions, -dlq-partitions or -replication out of range"}
	}
	var keep time.Duration
	if *retention != "" {
		d, err := parseRetention(*retention)
		if err != nil {
			return exitError{code: 2, msg: "-retention: " + err.Error()}
		}
		keep = d
	}
	cfg, err := relay.LoadConfig(*config)
	if err != nil {
		return exitError{code: 1, msg: err.Error()}
	}
	specs := []relay.TopicSpec{{Name: cfg.Kafka.Topic, Partitions: int32(*partitions), Replication: int16(*replication), Retention: keep}}
	if *dlq != "" {
		specs = append(specs, relay.TopicSpec{Name: *dlq, Partitions: int32(*dlqPartitions), Replication: int16(*replication), Retention: keep})
	}
	want := map[string]int32{}
	for _, s := range specs {
		want[s.Name] = s.Partitions
	}
	err = relay.SetupTopics(cfg.Kafka, specs, func(r relay.TopicReport) {
		switch {
		case r.Created:
			ret := "cluster default"
			if keep > 0 {
				ret = keep.String()
			}
			fmt.Fprintf(stdout, "created topic %s: %d partitions, replication %d, retention %s\n", r.Name, r.Partitions, *replication, ret)
		case r.Partitions < want[r.Name]:
			fmt.Fprintf(stdout, "topic %s exists with %d partitions (fewer than the %d asked; left as it is: at most %d savers share it)\n",
				r.Name, r.Partitions, want[r.Name], r.Partitions)
		default:
			fmt.Fprintf(stdout, "topic %s exists with %d partitions; left as it is\n", r.Name, r.Partitions)
		}
	})
	if err != nil {
		return exitError{code: 1, msg: err.Error()}
	}
	return nil
}

// parseRetention reads a Go duration or a number of days ("7d").
func parseRetention(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%q: want a positive number of days (7d) or a duration (72h)", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q: want a positive number of days (7d) or a duration (72h)", s)
	}
	return d, nil
}
