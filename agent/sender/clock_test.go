package sender_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/falconet/falconet/agent/sender"
	"github.com/falconet/falconet/buffer"
	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/metric"
	"github.com/falconet/falconet/relay/relaytest"
)

// gate forwards one loopback port to a relay and can be cut (every
// connection closed, the port refusing) and restored on the same port: a
// relay outage the sender sees without the relay losing anything.
type gate struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]bool
	wg           sync.WaitGroup
}

func startGate(t *testing.T, target string) *gate {
	g := &gate{addr: "127.0.0.1:0", target: target, conns: map[net.Conn]bool{}}
	g.open(t)
	g.addr = g.ln.Addr().String()
	t.Cleanup(func() { g.cut(); g.wg.Wait() })
	return g
}

func (g *gate) open(t *testing.T) {
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	g.ln = ln
	g.mu.Unlock()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", g.target)
			if err != nil {
				c.Close()
				continue
			}
			g.mu.Lock()
			if g.ln != ln { // cut while this one was being set up
				g.mu.Unlock()
				c.Close()
				up.Close()
				return
			}
			g.conns[c], g.conns[up] = true, true
			g.mu.Unlock()
			g.wg.Add(2)
			go func() { defer g.wg.Done(); _, _ = io.Copy(up, c); up.Close(); c.Close() }()
			go func() { defer g.wg.Done(); _, _ = io.Copy(c, up); up.Close(); c.Close() }()
		}
	}()
}

func (g *gate) cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln != nil {
		g.ln.Close()
		g.ln = nil
	}
	for c := range g.conns {
		c.Close()
	}
	clear(g.conns)
}

// steppedClock is real time plus an offset the test changes: the wall clock
// of a host whose time is set by hand. The buffer reads only the wall time
// through it; elapsed time comes from the monotonic clock.
type steppedClock struct{ off atomic.Int64 }

func (c *steppedClock) Now() time.Time       { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *steppedClock) step(d time.Duration) { c.off.Add(int64(d)) }

// TestClockStepsWhileBufferingAndSending runs the agent's real buffer and
// sender against a real relay and Kafka while the host's clock is stepped
// back an hour during an outage and forward an hour while sending. Nothing
// may be lost or dropped (max_age is 30 minutes), the backlog of the outage
// must still be recognised as one (live first), and delivery must not stall.
func TestClockStepsWhileBufferingAndSending(t *testing.T) {
	k := devstack.StartKafkaT(t, "falconet-metrics")
	rl := relaytest.Start(t, relaytest.Config(k.Addr()), nil)
	g := startGate(t, rl.ProtocolAddr())

	clk := &steppedClock{}
	bcfg := buffer.DefaultConfig()
	bcfg.Path = t.TempDir() + "/buffer.db"
	bcfg.LiveAfter = 500 * time.Millisecond
	bcfg.MaxAge = 30 * time.Minute
	bcfg.Clock = clk.Now
	q, err := buffer.Open(bcfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	s, err := sender.New(sender.Config{AgentID: "clock", BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond},
		q, sender.StaticRelays(g.addr), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sent := make(chan error, 1)
	go func() { sent <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-sent; err != nil {
			t.Errorf("sender Run: %v", err)
		}
	}()

	// The host's collector: a batch of 10 metrics every 10 ms, stamped by
	// the stepped clock like the agent's collectors.
	var appended atomic.Int64
	appendCtx, stopAppend := context.WithCancel(context.Background())
	appendDone := make(chan error, 1)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for id := 0; ; id++ {
			select {
			case <-appendCtx.Done():
				appendDone <- nil
				return
			case <-tick.C:
			}
			ms := make([]metric.Metric, 10)
			for j := range ms {
				ms[j] = metric.Metric{Endpoint: "clock-host", Name: fmt.Sprintf("b%d.m%d", id, j), Value: float64(id),
					Timestamp: clk.Now().Unix(), Type: metric.Gauge}
			}
			p, err := metric.EncodeBatch(nil, ms)
			if err == nil {
				_, err = q.Append(context.Background(), p, len(ms))
			}
			if err != nil {
				appendDone <- err
				return
			}
			appended.Add(10)
		}
	}()
	waitDelivered := func(what string) {
		t.Helper()
		relaytest.WaitFor(t, 20*time.Second, what, func() bool {
			st := q.Stats()
			return st.Mode == buffer.ModeLive && st.Batches < 20
		})
	}
	waitDelivered("sending before the outage")

	// Outage; the clock steps back an hour in the middle of it.
	steps := 0
	step := func(d time.Duration) { // one step at a time: two within one commit would be seen as one
		t.Helper()
		clk.step(d)
		steps++
		relaytest.WaitFor(t, 10*time.Second, "the step to be seen", func() bool { return q.Stats().ClockSteps == steps })
	}
	g.cut()
	relaytest.WaitFor(t, 10*time.Second, "a backlog to build", func() bool { return q.Stats().Batches > 60 })
	step(-time.Hour)
	relaytest.WaitFor(t, 10*time.Second, "more batches after the step", func() bool { return q.Stats().Batches > 120 })
	g.open(t)
	// The batches stored before the step look an hour younger to a naive
	// reader; the queue must still see a backlog older than live_after.
	relaytest.WaitFor(t, 10*time.Second, "backfill mode after the outage", func() bool { return q.Stats().Mode == buffer.ModeBackfill })
	waitDelivered("the backlog to drain after the step back")

	// Forward an hour (back to the real time) while sending, then an hour more.
	step(time.Hour)
	relaytest.WaitFor(t, 10*time.Second, "sending after the step forward", func() bool { return q.Stats().Batches < 20 })
	step(time.Hour)
	waitDelivered("sending after the second step forward")

	stopAppend()
	if err := <-appendDone; err != nil {
		t.Fatalf("Append: %v", err)
	}
	relaytest.WaitFor(t, 20*time.Second, "the queue to empty", func() bool { return q.Stats().Batches == 0 })
	st := q.Stats()
	if st.DroppedBatches != 0 || st.ClockSteps != 3 {
		t.Errorf("dropped %d batches, %d clock steps seen; want 0 and 3", st.DroppedBatches, st.ClockSteps)
	}
	want := int(appended.Load())
	recs := relaytest.ReadTopic(t, k.Addr(), "falconet-metrics", want, 30*time.Second)
	seen := map[string]int{}
	for _, r := range recs {
		var m metric.Metric
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("record %q: %v", r.Value, err)
		}
		seen[m.Name]++
	}
	if len(seen) != want {
		t.Fatalf("Kafka holds %d distinct metrics (%d records), %d were appended: lost %d", len(seen), len(recs), want, want-len(seen))
	}
	t.Logf("%d metrics appended, all in Kafka (%d records: resends after the cut are duplicates the ids absorb)", want, len(recs))
}
