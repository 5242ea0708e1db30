package update_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/fault/check"
	"github.com/falconet/falconet/fault/load"
	"github.com/falconet/falconet/internal/confkit"
	"github.com/falconet/falconet/metric"
	"github.com/falconet/falconet/relay/relaytest"
	"github.com/falconet/falconet/saver"
	"github.com/falconet/falconet/update/feed"
)

// TestFleetRollout is the fleet run: 50 agents as processes against one
// relay and the feed; 1.1.0 rolled out 10 % → 50 % → 100 %, then 1.2.0 at
// 30 %, halted, and rolled back everywhere it landed. Metrics are pushed to
// every agent throughout; each accepted one must be in Kafka (copies may
// only be replays of the same document id), and a saver writing the topic
// into dev-es must hold each exactly once: none missing, no duplicates.
// Not in CI (about two minutes of 50 processes):
// FALCONET_FLEET_TEST=1 go test -run TestFleetRollout -v ./update/
func TestFleetRollout(t *testing.T) {
	if os.Getenv("FALCONET_FLEET_TEST") == "" {
		t.Skip("the fleet run: FALCONET_FLEET_TEST=1")
	}
	const n = 50
	e := newFleetEnv(t)
	es := startFleetSaver(t, e.kafka.Addr())
	start := time.Now()
	var timeline []string
	mark := func(format string, args ...any) {
		line := fmt.Sprintf("%6.1fs  %s", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
		timeline = append(timeline, line)
		t.Log(line)
	}
	agents := make([]*agentProc, n)
	hosts := make([]string, n)
	ports := freePorts(t, n)
	for i := range agents {
		hosts[i] = fmt.Sprintf("edge-%02d", i)
		agents[i] = e.startAgentAt(hosts[i], "1.0.0", "20s", ports[i])
	}
	for _, a := range agents {
		a.waitRunning(60*time.Second, "1.0.0", "installed")
	}
	for _, a := range agents {
		a.waitDelivering(60 * time.Second)
	}
	mark("%d agents on 1.0.0, delivering", n)

	// Push numbered metrics round-robin to all agents for the whole run:
	// agent i gets the stream of endpoint fleet-i (one series, value seq,
	// timestamp start+seq), recorded as fault/check expects.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	t0 := time.Now().Unix()
	recs := make([]*load.Record, n)
	for i := range recs {
		recs[i] = &load.Record{
			Stream:    load.Stream{Endpoint: fmt.Sprintf("fleet-%02d", i), Name: "fleet.seq", Series: 1, Start: t0},
			Accepted:  map[int64]time.Time{},
			Attempted: map[int64]bool{},
			Sent:      map[int64]time.Time{},
		}
	}
	accepted := map[string]bool{} // document ids
	var attempts, failed int
	codes := map[int]int{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := http.Client{Timeout: 2 * time.Second}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			a, rec, seq := agents[i%n], recs[i%n], int64(i/n)
			m := rec.Metric(seq, 0)
			body := fmt.Sprintf(`[{"endpoint":%q,"metric":%q,"value":%d,"timestamp":%d,"step":1,"counterType":"GAUGE","tags":"s=%s"}]`,
				m.Endpoint, m.Name, seq, m.Timestamp, m.Tags["s"])
			mu.Lock()
			rec.Attempted[seq] = true
			mu.Unlock()
			resp, err := c.Post("http://"+a.httpAddr+"/v1/push", "application/json", strings.NewReader(body))
			mu.Lock()
			attempts++
			if err != nil {
				failed++
			} else {
				codes[resp.StatusCode]++
			}
			mu.Unlock()
			if err != nil {
				continue
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				mu.Lock()
				rec.Accepted[seq] = time.Now()
				accepted[m.DocID()] = true
				mu.Unlock()
			}
		}
	}()

	on := func(version, state string) []string {
		var out []string
		for i, a := range agents {
			if v, s := a.running(); v == version && s == state {
				out = append(out, hosts[i])
			}
		}
		return out
	}
	eligible := func(version string, pct int) []string {
		var out []string
		for _, h := range hosts {
			if feed.Eligible(h, version, pct) {
				out = append(out, h)
			}
		}
		return out
	}
	waitSet := func(what string, want []string, got func() []string) {
		t.Helper()
		waitFor(t, 3*time.Minute, what, func() bool { return equalSets(got(), want) },
			func() string { return fmt.Sprintf("got %v, want %v", got(), want) })
	}

	e.publish("1.1.0", bin(t, "agent-1.1.0"), "", 10)
	for _, pct := range []int{10, 50, 100} {
		if pct != 10 {
			if _, err := feed.SetPercent(e.feedDir, e.key, pct, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		mark("1.1.0 at %d %%: %d agents eligible", pct, len(eligible("1.1.0", pct)))
		want := eligible("1.1.0", pct)
		waitSet(fmt.Sprintf("the %d %% wave of 1.1.0", pct), want, func() []string { return on("1.1.0", "committed") })
		mark("1.1.0 committed on %d agents (the %d %% wave)", len(want), pct)
	}

	// A release that passes its health gate but the operator finds bad:
	// 2.2.0 to 30 %, then halted.
	e.publish("2.2.0", bin(t, "agent-2.2.0"), "", 30)
	wave := eligible("2.2.0", 30)
	mark("2.2.0 published at 30 %%: %d agents eligible", len(wave))
	waitSet("the 30 % wave of 2.2.0", wave, func() []string { return on("2.2.0", "committed") })
	mark("2.2.0 committed on %d agents", len(wave))
	if _, err := feed.Halt(e.feedDir, e.key, time.Now()); err != nil {
		t.Fatal(err)
	}
	mark("2.2.0 halted")
	waitSet("every agent back on 1.1.0", hosts, func() []string { return on("1.1.0", "committed") })
	mark("2.2.0 rolled back on all %d agents it reached; all %d agents on 1.1.0", len(wave), n)
	for i, a := range agents {
		_, bad := a.state().Bad["2.2.0"]
		if in := containsStr(wave, hosts[i]); bad != in {
			t.Errorf("%s: 2.2.0 marked bad %v, took it %v", hosts[i], bad, in)
		}
	}
	for _, a := range agents {
		a.waitDelivering(30 * time.Second)
	}
	close(stop)
	wg.Wait()

	// Every accepted push is in Kafka; extra copies are replays of the same
	// document id (Elasticsearch keeps one).
	var missing []string
	var records, copies int
	waitFor(t, 60*time.Second, "every accepted push in Kafka", func() bool {
		krecs := relaytest.ReadTopic(t, e.kafka.Addr(), "falconet-metrics", 1, 5*time.Second)
		seen := map[string]int{}
		records = 0
		for _, r := range krecs {
			if !bytes.Contains(r.Value, []byte("fleet.seq")) {
				continue
			}
			var m metric.Metric
			if err := m.UnmarshalJSON(r.Value); err != nil {
				t.Fatalf("record %s: %v", r.Value, err)
			}
			records++
			seen[m.DocID()]++
		}
		missing = missing[:0]
		copies = 0
		for id := range accepted {
			if seen[id] == 0 {
				missing = append(missing, id)
			}
		}
		for _, c := range seen {
			copies += c - 1
		}
		return len(missing) == 0
	}, func() string { return fmt.Sprintf("%d of %d accepted pushes missing", len(missing), len(accepted)) })
	mark("pushes: %d attempts, %d failed to connect (agent between processes), answers %v", attempts, failed, codes)
	mark("%d pushes accepted, all in Kafka (%d records, %d replayed copies with the same document id); %d distinct documents",
		len(accepted), records, copies, records-copies)

	// The contract, where it is kept: every accepted push stored in
	// Elasticsearch exactly once (by document id = series and timestamp, in
	// the index of its day, no further document of the endpoint).
	ec := &check.ES{URL: es.URL()}
	var res check.Result
	var cerr error
	waitFor(t, 90*time.Second, "every accepted push in Elasticsearch exactly once", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, cerr = ec.CheckAll(ctx, recs...)
		return cerr == nil && res.OK()
	}, func() string { return fmt.Sprintf("check: %v; %s", cerr, res) })
	if res.Generated != len(accepted) {
		t.Fatalf("check counted %d accepted pushes, the pusher %d", res.Generated, len(accepted))
	}
	mark("Elasticsearch: %s", res)
	t.Logf("timeline:\n%s", strings.Join(timeline, "\n"))
}

// startFleetSaver runs a saver from the fleet's Kafka topic into dev-es
// for the test's lifetime.
func startFleetSaver(t *testing.T, broker string) *devstack.ES {
	t.Helper()
	es := devstack.StartES(t)
	cfg := saver.DefaultConfig()
	cfg.HTTP.Listen = ""
	cfg.Kafka.Brokers = []string{broker}
	cfg.Elasticsearch.URLs = []string{es.URL()}
	cfg.Elasticsearch.RefreshInterval = "1s"
	cfg.Elasticsearch.Replicas = 0
	cfg.Elasticsearch.FlushInterval = confkit.Duration(50 * time.Millisecond)
	cfg.Kafka.CommitInterval = confkit.Duration(200 * time.Millisecond)
	sv, err := saver.New(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return es
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func equalSets(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
