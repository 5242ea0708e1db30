// Command pipebench measures the falconet pipeline side by side with its
// anchors, in one bounded run (issue 15): the relay against a raw sarama
// producer into the same dev Kafka, the saver's encode rate and end-to-end
// rate beside dev-es's own bulk ceiling, latency from generation to
// searchable, recovery after an outage, and how relay and saver CPU scale
// with rate and series cardinality (PNG plots). It builds and starts the
// real binaries and dev servers, prints progress and writes
// bench/pipeline.json. make bench runs it through bench/run.py.
//
// Environment (all optional):
//
//	PIPEBENCH_PHASES   comma list of relay,saver,latency,recovery,scaling (default all)
//	PIPEBENCH_OUTAGE   outage length of the recovery phase (default 10m); the
//	                   other phases run while the link is down, so they add
//	                   nothing unless they take longer
//	PIPEBENCH_ROUNDS   relay vs raw rounds (default 3)
//	PIPEBENCH_METRICS  metrics per relay vs raw run (default 1000000)
//	PIPEBENCH_OUT      output directory (default bench/ of this checkout)
//	PIPEBENCH_PROFILE, PIPEBENCH_PROFILE_SAVER  write a CPU profile of the relay
//	                   (relay phase) or the saver (saver phase) to this file
//	PIPEBENCH_RELAY_KAFKA, PIPEBENCH_RAW_ARGS, PIPEBENCH_RELAY_ENV  experiments:
//	                   extra [kafka] lines for the relay, extra flags for the raw
//	                   producer, extra environment for the relay ("GOGC=200")
//
// Each relay-vs-raw round also runs a raw franz-go (kgo) producer with the
// same records and settings, as a reference for sarama's own cost.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// figure is one row of the results table: falconet's figure beside its
// anchor measured in the same run.
type figure struct {
	Name      string   `json:"name"`
	Value     float64  `json:"value"`
	Unit      string   `json:"unit"`
	Anchor    string   `json:"anchor,omitempty"`
	AnchorVal float64  `json:"anchor_value,omitempty"`
	Ratio     float64  `json:"ratio,omitempty"`
	Goal      string   `json:"goal,omitempty"`
	Met       *bool    `json:"met,omitempty"`
	Note      string   `json:"note,omitempty"`
	Runs      []string `json:"runs,omitempty"`
}

type results struct {
	Started   string         `json:"started"`
	Seconds   float64        `json:"seconds"`
	Machine   map[string]any `json:"machine"`
	Figures   []figure       `json:"figures"`
	RelayRuns []relayRun     `json:"relay_runs,omitempty"`
	Saver     any            `json:"saver,omitempty"`
	Latency   any            `json:"latency,omitempty"`
	Recovery  any            `json:"recovery,omitempty"`
	Scaling   any            `json:"scaling,omitempty"`
	Errors    []string       `json:"errors,omitempty"`
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDur(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func boolp(b bool) *bool { return &b }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pipebench %s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "raw" {
		if err := rawMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "pipebench raw:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pipebench:", err)
		os.Exit(1)
	}
}

func run() error {
	rootOut, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return fmt.Errorf("not in a git checkout: %w", err)
	}
	root := strings.TrimSpace(string(rootOut))
	out := os.Getenv("PIPEBENCH_OUT")
	if out == "" {
		out = filepath.Join(root, "bench")
	}
	phases := map[string]bool{}
	for p := range strings.SplitSeq(os.Getenv("PIPEBENCH_PHASES"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			phases[p] = true
		}
	}
	want := func(p string) bool { return len(phases) == 0 || phases[p] }
	dir, err := os.MkdirTemp("", "pipebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	started := time.Now()
	res := &results{Started: started.UTC().Format(time.RFC3339), Machine: map[string]any{
		"cpus": runtime.NumCPU(), "arch": runtime.GOARCH, "loadavg_at_start": loadavg(),
	}}
	logf("building binaries")
	b, err := buildBinaries(root, dir)
	if err != nil {
		return err
	}
	fail := func(phase string, err error) {
		logf("%s: FAILED: %v", phase, err)
		res.Errors = append(res.Errors, phase+": "+err.Error())
	}

	var rec *recovery
	if want("recovery") {
		outage := envDur("PIPEBENCH_OUTAGE", 10*time.Minute)
		logf("recovery: starting the agent's stack; outage of %v begins after a live period, other phases run meanwhile", outage)
		if rec, err = startRecovery(b, dir, outage); err != nil {
			fail("recovery", err)
			rec = nil
		}
	}

	if want("relay") {
		logf("relay vs raw sarama: %d rounds", envInt("PIPEBENCH_ROUNDS", 3))
		runs, err := relayVsRaw(b, dir, envInt("PIPEBENCH_ROUNDS", 3), envInt("PIPEBENCH_METRICS", 1_000_000), logf)
		res.RelayRuns = runs
		if err != nil {
			fail("relay", err)
		}
		res.Figures = append(res.Figures, relayFigures(runs)...)
	}
	if want("saver") {
		sv, figs, err := saverPhase(root, b, dir)
		res.Saver = sv
		res.Figures = append(res.Figures, figs...)
		if err != nil {
			fail("saver", err)
		}
	}
	if want("latency") {
		lat, figs, err := latencyPhase(b, dir)
		res.Latency = lat
		res.Figures = append(res.Figures, figs...)
		if err != nil {
			fail("latency", err)
		}
	}
	if want("scaling") {
		sc, figs, err := scalingPhase(b, dir, out)
		res.Scaling = sc
		res.Figures = append(res.Figures, figs...)
		if err != nil {
			fail("scaling", err)
		}
	}
	if rec != nil {
		r, figs, err := rec.finish()
		res.Recovery = r
		res.Figures = append(res.Figures, figs...)
		if err != nil {
			fail("recovery", err)
		}
	}

	res.Seconds = time.Since(started).Seconds()
	res.Machine["loadavg_at_end"] = loadavg()
	js, _ := json.MarshalIndent(res, "", "  ")
	path := filepath.Join(out, "pipeline.json")
	if err := os.WriteFile(path, append(js, '\n'), 0o644); err != nil {
		return err
	}
	logf("wrote %s (%.0f s)", path, res.Seconds)
	for _, f := range res.Figures {
		met := "-"
		if f.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*f.Met]
		}
		fmt.Fprintf(os.Stdout, "%-48s %12.4g %-14s anchor %12.4g ratio %6.3f goal %-28s met %s\n", f.Name, f.Value, f.Unit, f.AnchorVal, f.Ratio, f.Goal, met)
	}
	if len(res.Errors) > 0 {
		return fmt.Errorf("%d phase(s) failed: %s", len(res.Errors), strings.Join(res.Errors, "; "))
	}
	return nil
}

// relayFigures: the relay's throughput as a ratio of the raw sarama
// producer's in the same round (the worst round counts), and its CPU per
// 100k metrics; kgo's runs are a reference.
func relayFigures(runs []relayRun) []figure {
	byRound := map[int]map[string]relayRun{}
	rounds := 0
	for _, r := range runs {
		if byRound[r.Round] == nil {
			byRound[r.Round] = map[string]relayRun{}
		}
		byRound[r.Round][r.Kind] = r
		rounds = max(rounds, r.Round)
	}
	var ratios, relayRates, rawRates, cpus, rawCPU, kgoRates, kgoCPU []float64
	var lines []string
	for i := 1; i <= rounds; i++ {
		rel, okRel := byRound[i]["relay"]
		raw, okRaw := byRound[i]["raw"]
		if !okRel || !okRaw {
			continue
		}
		ratios = append(ratios, rel.PerSecond/raw.PerSecond)
		relayRates, rawRates = append(relayRates, rel.PerSecond), append(rawRates, raw.PerSecond)
		cpus, rawCPU = append(cpus, rel.CPUPer100k), append(rawCPU, raw.CPUPer100k)
		line := fmt.Sprintf("round %d: relay %.0f/s %.0f CPU-ms/100k, raw sarama %.0f/s %.0f CPU-ms/100k", i, rel.PerSecond, rel.CPUPer100k, raw.PerSecond, raw.CPUPer100k)
		if k, ok := byRound[i]["raw-kgo"]; ok {
			kgoRates, kgoCPU = append(kgoRates, k.PerSecond), append(kgoCPU, k.CPUPer100k)
			line += fmt.Sprintf(", raw kgo %.0f/s %.0f CPU-ms/100k", k.PerSecond, k.CPUPer100k)
		}
		lines = append(lines, line)
	}
	if len(ratios) == 0 {
		return nil
	}
	w := argMin(ratios)
	maxCPU := maxOf(cpus)
	figs := []figure{
		{Name: "relay → Kafka throughput (worst round)", Value: relayRates[w], Unit: "metrics/s",
			Anchor: "raw sarama async producer, same records, same round", AnchorVal: rawRates[w], Ratio: ratios[w],
			Goal: "≥ 0.85 of raw in every run", Met: boolp(ratios[w] >= 0.85),
			Note: fmt.Sprintf("ratio per round %s; relay %s/s, raw %s/s", fmtList(ratios, "%.2f"), fmtList(relayRates, "%.0f"), fmtList(rawRates, "%.0f")), Runs: lines},
		{Name: "relay CPU per 100k metrics (worst round)", Value: maxCPU, Unit: "CPU-ms/100k",
			Anchor: "raw sarama producer's own CPU (worst round)", AnchorVal: maxOf(rawCPU), Ratio: maxCPU / maxOf(rawCPU),
			Goal: "≤ 300 CPU-ms per 100k", Met: boolp(maxCPU <= 300),
			Note: "relay per round " + fmtList(cpus, "%.0f") + "; raw sarama " + fmtList(rawCPU, "%.0f")},
	}
	if len(kgoCPU) > 0 {
		figs = append(figs, figure{Name: "reference: raw franz-go (kgo) producer CPU per 100k", Value: maxOf(kgoCPU), Unit: "CPU-ms/100k",
			Anchor: "raw sarama producer's own CPU", AnchorVal: maxOf(rawCPU), Ratio: maxOf(kgoCPU) / maxOf(rawCPU), Goal: "none (a reference)",
			Note: fmt.Sprintf("same records and settings; kgo %s/s, CPU per round %s", fmtList(kgoRates, "%.0f"), fmtList(kgoCPU, "%.0f"))})
	}
	return figs
}

func argMin(xs []float64) int {
	j := 0
	for i := range xs {
		if xs[i] < xs[j] {
			j = i
		}
	}
	return j
}
func maxOf(xs []float64) float64 {
	m := 0.0
	for i, x := range xs {
		if i == 0 || x > m {
			m = x
		}
	}
	return m
}
func fmtList(xs []float64, f string) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf(f, x)
	}
	return strings.Join(s, ", ")
}
