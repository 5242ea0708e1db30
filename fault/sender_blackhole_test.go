//go:build fault

package fault

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/falconet/falconet/agent/sender"
	"github.com/falconet/falconet/agent/sender/sendertest"
	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/fault/netns"
	"github.com/falconet/falconet/metric"
	"github.com/falconet/falconet/relay/relaytest"
)

// TestSenderNoticesBlackholedRelay: the sender streams to relay 1 (the
// falconet-relay binary in its own namespace); relay 1's link then silently
// drops everything. Without heartbeats, read deadlines and TCP_USER_TIMEOUT a
// write would block for ~15 minutes; the sender must give up within seconds,
// resend its in-flight batches to relay 2, and lose nothing.
func TestSenderNoticesBlackholedRelay(t *testing.T) {
	n := netns.New(t, logDir(t))
	k, err := devstack.StartKafka(devstack.KafkaConfig{Listen: n.HostIP() + ":0", Topics: []string{"falconet-metrics"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	conf := filepath.Join(t.TempDir(), "relay.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf("[listen]\nprotocol = \":8433\"\nlegacy = \"\"\nhttp = \":6060\"\n[kafka]\nbrokers = [%q]\n[discovery]\nbind = \"\"\n", k.Addr())), 0o600)
	var addrs []string
	var nodes []*netns.Node
	for i := range 2 {
		nd, err := n.AddNode(fmt.Sprint("bhrelay", i+1))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nd.Start(fmt.Sprint("bhrelay", i+1), nil, bin(t, "falconet-relay"), "-config", conf); err != nil {
			t.Fatal(err)
		}
		if err := netns.WaitTCP(nd.Addr(8433), 20*time.Second); err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, nd.Addr(8433))
		nodes = append(nodes, nd)
	}
	for _, nd := range nodes { // both ready, so the sender starts on relay 1
		relaytest.WaitFor(t, 60*time.Second, nd.Name+" ready", func() bool {
			resp, err := http.Get("http://" + nd.Addr(6060) + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}
	relay1 := nodes[0]
	defer relay1.Unblackhole()

	q := sendertest.NewMemQueue()
	cfg := sender.Config{AgentID: "bh", MaxInFlight: 8, Heartbeat: time.Second, ReadTimeout: 3 * time.Second,
		WriteTimeout: 3 * time.Second, BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second}
	s, err := sender.New(cfg, q, sender.StaticRelays(addrs...), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()

	want := map[string]bool{}
	var wmu sync.Mutex
	feed := func(i int) {
		ms := make([]metric.Metric, 100)
		for j := range ms {
			ms[j] = metric.Metric{Endpoint: "bh-host", Name: fmt.Sprintf("m%d", j), Value: float64(i), Timestamp: 1764000000 + int64(i), Step: 10}
		}
		q.Append(ms)
		wmu.Lock()
		for _, m := range ms {
			want[m.DocID()] = true
		}
		wmu.Unlock()
	}
	feedCtx, stopFeed := context.WithCancel(context.Background())
	var fwg sync.WaitGroup
	fwg.Add(1)
	go func() { // keep batches in flight while the link goes silent
		defer fwg.Done()
		for i := 0; feedCtx.Err() == nil; i++ {
			feed(i)
			select {
			case <-feedCtx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	relaytest.WaitFor(t, 30*time.Second, "streaming through relay 1", func() bool {
		return s.Current() == addrs[0] && q.Stats().Acked >= 50
	})
	if err := relay1.Blackhole(); err != nil {
		t.Fatal(err)
	}
	holed := time.Now()
	relaytest.WaitFor(t, 60*time.Second, "sender on relay 2", func() bool { return s.Current() == addrs[1] })
	t.Logf("blackholed relay left after %v (heartbeat 1s, read timeout 3s, TCP_USER_TIMEOUT 3s)", time.Since(holed).Round(100*time.Millisecond))
	stopFeed()
	fwg.Wait()
	relaytest.WaitFor(t, 60*time.Second, "queue drained through relay 2", q.Empty)
	wmu.Lock()
	defer wmu.Unlock()
	got := map[string]int{}
	for _, r := range relaytest.ReadTopic(t, k.Addr(), "falconet-metrics", len(want), 30*time.Second) {
		var m metric.Metric
		if err := m.UnmarshalJSON(r.Value); err != nil {
			t.Fatal(err)
		}
		got[m.DocID()]++
	}
	for id := range want {
		if got[id] < 1 {
			t.Fatalf("metric %s missing after the blackhole", id)
		}
	}
}
