package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/falconet/falconet/agent/sender"
	"github.com/falconet/falconet/agent/sender/sendertest"
	"github.com/falconet/falconet/metric"
)

// gen makes a deterministic metric stream over a number of series: metric k
// belongs to series k % series and is that series' k/series-th sample (10 s
// apart, starting at base), so every metric has its own document id.
type gen struct {
	series int
	base   int64
}

var ifaces = [...]string{"eth0", "eth1", "eth2", "eth3"}

func (g gen) metric(k int) metric.Metric {
	s := k % g.series
	return metric.Metric{
		Endpoint:  "edge-host-" + strconv.Itoa(s/200),
		Name:      "net.if.in.bytes." + strconv.Itoa(s/4%50),
		Value:     float64(k) * 1.5,
		Timestamp: g.base + int64(k/g.series)*10,
		Step:      10, Type: metric.Counter,
		Tags: map[string]string{"iface": ifaces[s%4], "dc": "fra1"},
	}
}

// payloads encodes metrics [0, n) into agent batches of per metrics.
func (g gen) payloads(n, per int) [][]byte {
	var out [][]byte
	ms := make([]metric.Metric, 0, per)
	for k := 0; k < n; k++ {
		ms = append(ms, g.metric(k))
		if len(ms) == per || k == n-1 {
			p, err := metric.EncodeBatch(nil, ms)
			if err != nil {
				panic(err)
			}
			out = append(out, p)
			ms = ms[:0]
		}
	}
	return out
}

// records returns the Kafka keys and values the relay writes for metrics [0, n).
func (g gen) records(n int) (keys, values [][]byte) {
	keys, values = make([][]byte, n), make([][]byte, n)
	var buf []byte
	for k := 0; k < n; k++ {
		m := g.metric(k)
		if cap(buf)-len(buf) < 1024 {
			buf = make([]byte, 0, 1<<20)
		}
		s := len(buf)
		buf = m.AppendSeriesKey(buf)
		e := len(buf)
		buf, _ = m.AppendJSON(buf)
		keys[k], values[k] = buf[s:e:e], buf[e:len(buf):len(buf)]
	}
	return keys, values
}

// feeder is a set of agents' senders (the agent's own sender code, each
// with an in-memory queue) connected to one relay.
type feeder struct {
	queues []*sendertest.MemQueue
	cancel context.CancelFunc
	wg     sync.WaitGroup
	next   int
}

func newFeeder(relayAddr string, agents int) (*feeder, error) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &feeder{cancel: cancel}
	for i := range agents {
		q := sendertest.NewMemQueue()
		s, err := sender.New(sender.Config{AgentID: fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)}, q, sender.StaticRelays(relayAddr), nil, nil)
		if err != nil {
			cancel()
			return nil, err
		}
		f.queues = append(f.queues, q)
		f.wg.Add(1)
		go func() { defer f.wg.Done(); _ = s.Run(ctx) }()
	}
	return f, nil
}

// add hands one batch to the next agent, round robin.
func (f *feeder) add(p []byte, metrics int) {
	f.queues[f.next%len(f.queues)].AppendPayload(p, metrics)
	f.next++
}

func (f *feeder) empty() bool {
	for _, q := range f.queues {
		if !q.Empty() {
			return false
		}
	}
	return true
}

// waitEmpty waits until every batch was acked (the relay had Kafka's ack).
func (f *feeder) waitEmpty(d time.Duration) error {
	return waitFor(d, "agents' queues acked", f.empty)
}

func (f *feeder) close() {
	f.cancel()
	f.wg.Wait()
}

// paced feeds batches at rate metrics/s for d (ticks every 20 ms); mk
// builds a batch of about n metrics at the moment it is sent and returns it
// with its metric count, or nil when it has no more. It returns how many
// metrics it handed over.
func (f *feeder) paced(ctx context.Context, rate float64, d time.Duration, per int, mk func(n int) ([]byte, int)) int {
	start := time.Now()
	sent := 0
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		el := time.Since(start)
		if el >= d || ctx.Err() != nil {
			return sent
		}
		due := int(rate * el.Seconds())
		for due-sent >= per || (due > sent && el+20*time.Millisecond >= d) {
			p, k := mk(min(per, due-sent))
			if p == nil {
				return sent
			}
			f.add(p, k)
			sent += k
		}
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
}
