package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/falconet/falconet/agent/sender"
	"github.com/falconet/falconet/agent/sender/sendertest"
	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/metric"
	"github.com/falconet/falconet/relay"
	"github.com/falconet/falconet/relay/relaytest"
)

const topic = "falconet-metrics"

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("FALCONET_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// genBatch makes n distinct metrics for batch i.
func genBatch(i, n int) []metric.Metric {
	ms := make([]metric.Metric, n)
	for j := range ms {
		ms[j] = metric.Metric{Endpoint: fmt.Sprintf("host-%d", i%7), Name: fmt.Sprintf("test.m%d", j), Value: float64(i*100000 + j),
			Timestamp: 1764000000 + int64(i), Step: 10, Type: metric.Gauge, Tags: map[string]string{"batch": fmt.Sprint(i), "k": "v"}}
	}
	return ms
}

// fillQueue appends batches [from, to) of n metrics and returns the ids.
func fillQueue(t testing.TB, q *sendertest.MemQueue, from, to, n int) map[string]bool {
	want := map[string]bool{}
	for i := from; i < to; i++ {
		ms := genBatch(i, n)
		if _, err := q.Append(ms); err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			want[m.DocID()] = true
		}
	}
	return want
}

func startSender(t testing.TB, cfg sender.Config, q sender.Queue, addrs ...string) (*sender.Sender, func()) {
	t.Helper()
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 200 * time.Millisecond
	}
	cfg.BackoffMin = 20 * time.Millisecond
	cfg.BackoffMax = 300 * time.Millisecond
	cfg.AgentID = "test-agent"
	s, err := sender.New(cfg, q, sender.StaticRelays(addrs...), testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.Run(ctx); err != nil {
			t.Errorf("sender Run: %v", err)
		}
	}()
	stop := func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return s, stop
}

// countRecords decodes records and counts each metric's document id.
func countRecords(t testing.TB, recs []relaytest.Record) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, r := range recs {
		var m metric.Metric
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("record value %q is not a metric: %v", r.Value, err)
		}
		if k := m.SeriesKey(); k != string(r.Key) {
			t.Fatalf("record key %q, want series key %q", r.Key, k)
		}
		got[m.DocID()]++
	}
	return got
}

func TestEndToEnd(t *testing.T) {
	k := devstack.StartKafkaT(t, topic)
	r := relaytest.Start(t, relaytest.Config(k.Addr()), testLogger(t))
	q := sendertest.NewMemQueue()
	want := fillQueue(t, q, 0, 200, 50)
	startSender(t, sender.DefaultConfig(), q, r.ProtocolAddr())
	relaytest.WaitFor(t, 30*time.Second, "queue drained", q.Empty)
	got := countRecords(t, relaytest.ReadTopic(t, k.Addr(), topic, len(want), 20*time.Second))
	for id := range want {
		if got[id] != 1 {
			t.Fatalf("metric %s present %d times, want 1", id, got[id])
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d distinct metrics in kafka, want %d", len(got), len(want))
	}
	if st := q.Stats(); st.Nacked != 0 {
		t.Errorf("%d batches nacked on a healthy path, want 0", st.Nacked)
	}
}

var _ = relay.DefaultConfig
