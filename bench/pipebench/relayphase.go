package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/falconet/falconet/relay/relaybench"
)

// rawMain is the child process "pipebench raw": the raw sarama anchor in
// its own process, so its CPU is its own.
func rawMain(args []string) error {
	fs := flag.NewFlagSet("raw", flag.ContinueOnError)
	brokers := fs.String("brokers", "", "broker address")
	n := fs.Int("n", 1_000_000, "records")
	series := fs.Int("series", 10_000, "series of the generator")
	base := fs.Int64("base", 0, "generator base timestamp")
	compression := fs.String("compression", "lz4", "compression")
	linger := fs.Duration("linger", 10*time.Millisecond, "Producer.Flush.Frequency")
	idem := fs.Bool("idempotent", true, "idempotent producer")
	client := fs.String("client", "sarama", "sarama, or kgo (franz-go, a reference)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	keys, values := gen{series: *series, base: *base}.records(*n)
	produce := relaybench.RawProduce
	if *client == "kgo" {
		produce = relaybench.KgoProduce
	}
	res, err := produce(context.Background(), relaybench.RawConfig{Brokers: []string{*brokers}, Topic: "falconet-metrics",
		Compression: *compression, Idempotent: *idem, Linger: *linger}, keys, values, *n)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// relayRun is one measured run of the relay or the raw producer.
type relayRun struct {
	Round      int     `json:"round"`
	Kind       string  `json:"kind"` // relay, raw (sarama) or raw-kgo (franz-go, a reference)
	Metrics    int     `json:"metrics"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"metrics_per_s"`
	CPUPer100k float64 `json:"cpu_ms_per_100k"`
	RSSMB      float64 `json:"rss_mb,omitempty"`
	Errors     int     `json:"errors,omitempty"`
}

func runRaw(b bins, broker string, g gen, n int, client string) (relayRun, error) {
	var out bytes.Buffer
	cmd := exec.Command(b.self, "raw", "-brokers", broker, "-n", strconv.Itoa(n), "-series", strconv.Itoa(g.series),
		"-base", strconv.FormatInt(g.base, 10), "-client", client)
	// PIPEBENCH_RAW_ARGS: extra flags of the raw producer for experiments ("-linger 25ms").
	cmd.Args = append(cmd.Args, strings.Fields(os.Getenv("PIPEBENCH_RAW_ARGS"))...)
	cmd.Stdout = &out
	var errb safeBuf
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return relayRun{}, fmt.Errorf("raw producer: %v: %s", err, errb.String())
	}
	var res relaybench.RawResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return relayRun{}, fmt.Errorf("raw producer output %q: %w", out.String(), err)
	}
	kind := "raw"
	if client != "sarama" {
		kind = "raw-" + client
	}
	return relayRun{Kind: kind, Metrics: res.Records, Seconds: res.Elapsed.Seconds(), PerSecond: res.PerSecond(),
		CPUPer100k: res.CPUPer100k(), Errors: res.Errors}, nil
}

// runRelay pushes the same metrics through 4 agents' senders into the relay
// binary, and times it until every batch was acked (after Kafka's acks=all).
func runRelay(b bins, dir, broker string, g gen, n int) (relayRun, error) {
	r, err := startRelay(b, dir, broker, "")
	if err != nil {
		return relayRun{}, err
	}
	defer r.stop()
	f, err := newFeeder(r.addr, 4)
	if err != nil {
		return relayRun{}, err
	}
	defer f.close()
	payloads := g.payloads(n, 1000)
	// Let the senders connect first: one small batch each.
	warm := gen{series: 10, base: g.base}.payloads(40, 10)
	for _, p := range warm {
		f.add(p, 10)
	}
	if err := f.waitEmpty(30 * time.Second); err != nil {
		return relayRun{}, err
	}
	if path := os.Getenv("PIPEBENCH_PROFILE"); path != "" {
		profile(r.http, path, 3) // the relay, for the first seconds of the run
	}
	cpu0, start := r.cpu(), time.Now()
	for i, p := range payloads {
		f.add(p, min(1000, n-i*1000))
	}
	if err := f.waitEmpty(5 * time.Minute); err != nil {
		return relayRun{}, err
	}
	el := time.Since(start)
	cpu := r.cpu() - cpu0
	return relayRun{Kind: "relay", Metrics: n, Seconds: el.Seconds(), PerSecond: float64(n) / el.Seconds(),
		CPUPer100k: float64(cpu) / float64(time.Millisecond) / (float64(n) / 1e5), RSSMB: r.rssMB()}, nil
}

// relayVsRaw alternates raw and relay runs, each on a fresh dev Kafka.
func relayVsRaw(b bins, dir string, rounds, n int, logf func(string, ...any)) ([]relayRun, error) {
	g := gen{series: 10_000, base: time.Now().Add(-2 * time.Hour).Unix()}
	var runs []relayRun
	for r := range rounds {
		order := []string{"raw", "relay"}
		if r%2 == 1 {
			order = []string{"relay", "raw"}
		}
		order = append(order, "raw-kgo") // a reference, after the pair
		for _, kind := range order {
			k, addr, err := startDevKafka(b)
			if err != nil {
				return runs, err
			}
			var run relayRun
			switch kind {
			case "raw":
				run, err = runRaw(b, addr, g, n, "sarama")
			case "raw-kgo":
				run, err = runRaw(b, addr, g, n, "kgo")
			default:
				run, err = runRelay(b, dir, addr, g, n)
			}
			k.stop()
			if err != nil {
				return runs, err
			}
			run.Round = r + 1
			logf("relay vs raw: round %d %s: %.0f metrics/s, %.0f CPU-ms/100k", r+1, kind, run.PerSecond, run.CPUPer100k)
			runs = append(runs, run)
		}
	}
	return runs, nil
}
