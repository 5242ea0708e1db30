package sender_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/falconet/falconet/agent/sender"
	"github.com/falconet/falconet/agent/sender/sendertest"
	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/metric"
	"github.com/falconet/falconet/relay/relaytest"
	"github.com/falconet/falconet/wire"
)

// peer is a relay-side TCP endpoint driven by the test: it answers hello
// with reply and then reads frames forever without answering (a relay whose
// process hangs, or a link that drops everything one way).
type peer struct {
	ln      net.Listener
	reply   wire.Message
	ack     bool // answer every batch OK at once, and every heartbeat
	batches atomic.Int64
	hearts  atomic.Int64 // heartbeats received
	conns   atomic.Int64 // connections accepted
	wg      sync.WaitGroup
}

func startPeer(t *testing.T, reply wire.Message) *peer { return startPeerAck(t, reply, false) }

func startPeerAck(t *testing.T, reply wire.Message, ack bool) *peer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{ln: ln, reply: reply, ack: ack}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.conns.Add(1)
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer c.Close()
				r := wire.NewReader(c, 0)
				if _, err := r.ReadMessage(); err != nil {
					return
				}
				c.Write(wire.AppendMessage(nil, p.reply))
				for {
					m, err := r.ReadMessage()
					if err != nil {
						return
					}
					if h, ok := m.(*wire.Heartbeat); ok {
						p.hearts.Add(1)
						if p.ack {
							c.Write(wire.AppendMessage(nil, &wire.Pong{Nonce: h.Nonce}))
						}
					}
					if b, ok := m.(*wire.Batch); ok {
						p.batches.Add(1)
						if p.ack {
							c.Write(wire.AppendMessage(nil, &wire.Ack{Results: []wire.AckResult{{Seq: b.Seq}}}))
						}
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func fill(t *testing.T, q *sendertest.MemQueue, n int) {
	for i := range n {
		ms := []metric.Metric{{Endpoint: "h", Name: fmt.Sprintf("m%d", i), Value: 1, Timestamp: 1764000000 + int64(i)}}
		if _, err := q.Append(ms); err != nil {
			t.Fatal(err)
		}
	}
}

func run(t *testing.T, cfg sender.Config, q sender.Queue, addrs ...string) (*sender.Sender, func()) {
	cfg.AgentID = "t"
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin, cfg.BackoffMax = 20*time.Millisecond, 100*time.Millisecond
	}
	s, err := sender.New(cfg, q, sender.StaticRelays(addrs...), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return s, stop
}

func TestSilentRelayIsDroppedWithinReadTimeout(t *testing.T) {
	p := startPeer(t, &wire.Welcome{RelayID: "silent", MaxInFlight: 4})
	q := sendertest.NewMemQueue()
	fill(t, q, 10)
	s, _ := run(t, sender.Config{Heartbeat: 100 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, MaxInFlight: 4}, q, p.ln.Addr().String())
	relaytest.WaitFor(t, 5*time.Second, "batches sent to the silent relay", func() bool { return p.batches.Load() >= 4 })
	if st := q.Stats(); st.InFlight != 4 {
		t.Errorf("in flight %d, want the window of 4", st.InFlight)
	}
	start := time.Now()
	relaytest.WaitFor(t, 5*time.Second, "sender gives up on the silent relay and nacks", func() bool {
		return q.Stats().Nacked >= 4
	})
	t.Logf("silent relay noticed after %v (read timeout 500ms)", time.Since(start).Round(time.Millisecond))
	if st := q.Stats(); st.Acked != 0 || st.Stored != 10 {
		t.Errorf("stats %+v: want nothing acked, all 10 stored", st)
	}
	_ = s
}

func TestRunNacksEverythingOnExit(t *testing.T) {
	p := startPeer(t, &wire.Welcome{RelayID: "silent", MaxInFlight: 8})
	q := sendertest.NewMemQueue()
	fill(t, q, 20)
	_, stop := run(t, sender.Config{Heartbeat: time.Second}, q, p.ln.Addr().String())
	relaytest.WaitFor(t, 5*time.Second, "window in flight", func() bool { return q.Stats().InFlight == 8 })
	stop()
	if st := q.Stats(); st.InFlight != 0 || st.Stored != 20 {
		t.Errorf("after Run returned: %+v, want nothing in flight and all 20 stored", st)
	}
}

func TestFailsOverPastRefusingRelay(t *testing.T) {
	busy := startPeer(t, &wire.Reject{Code: wire.RejectBusy, Reason: "kafka down"})
	k := devstack.StartKafkaT(t, "falconet-metrics")
	good := relaytest.Start(t, relaytest.Config(k.Addr()), nil)
	q := sendertest.NewMemQueue()
	fill(t, q, 50)
	s, _ := run(t, sender.Config{}, q, busy.ln.Addr().String(), "127.0.0.1:1", good.ProtocolAddr())
	relaytest.WaitFor(t, 10*time.Second, "delivered through the third relay", q.Empty)
	if cur := s.Current(); cur != good.ProtocolAddr() {
		t.Errorf("connected to %q, want %q", cur, good.ProtocolAddr())
	}
	if n := busy.batches.Load(); n != 0 {
		t.Errorf("%d batches sent to a relay that refused, want 0", n)
	}
}

func TestConfigRejectsReadTimeoutBelowHeartbeat(t *testing.T) {
	_, err := sender.New(sender.Config{Heartbeat: time.Second, ReadTimeout: time.Second}, sendertest.NewMemQueue(), sender.StaticRelays(), nil, nil)
	if err == nil {
		t.Error("got nil, want an error for read timeout <= heartbeat")
	}
}

type failingAcks struct{ *sendertest.MemQueue }

var errDisk = errors.New("disk on fire")

func (failingAcks) Ack(...uint64) error { return errDisk }

func TestRunReturnsQueueAckError(t *testing.T) {
	p := startPeerAck(t, &wire.Welcome{RelayID: "acker"}, true)
	q := sendertest.NewMemQueue()
	fill(t, q, 3)
	s, err := sender.New(sender.Config{AgentID: "t"}, failingAcks{q}, sender.StaticRelays(p.ln.Addr().String()), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, errDisk) {
			t.Errorf("Run = %v, want the queue's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the queue failed")
	}
	if st := q.Stats(); st.InFlight != 0 {
		t.Errorf("%d batches left in flight, want all nacked", st.InFlight)
	}
}

func TestBatchLargerThanRelayFrameIsDropped(t *testing.T) {
	p := startPeerAck(t, &wire.Welcome{RelayID: "small", MaxFrame: 1024}, true)
	q := sendertest.NewMemQueue()
	big := make([]metric.Metric, 100)
	for i := range big {
		big[i] = metric.Metric{Endpoint: "h", Name: fmt.Sprintf("a.rather.long.metric.name.%d", i), Value: 1, Timestamp: 1764000000}
	}
	if _, err := q.Append(big); err != nil {
		t.Fatal(err)
	}
	fill(t, q, 5)
	run(t, sender.Config{}, q, p.ln.Addr().String())
	relaytest.WaitFor(t, 10*time.Second, "queue empty", q.Empty)
	if n := p.batches.Load(); n != 5 {
		t.Errorf("relay got %d batches, want the 5 small ones (the oversized one dropped, not sent)", n)
	}
}

// TestHeartbeatsOnlyWhenIdle: batches answered promptly need no heartbeat;
// once nothing is sent, heartbeats go out every idle heartbeat and keep the
// connection; a relay that then goes silent is left within idle heartbeat +
// read timeout, and one that is silent while batches wait within the read
// timeout (TestSilentRelayIsDroppedWithinReadTimeout).
func TestHeartbeatsOnlyWhenIdle(t *testing.T) {
	p := startPeerAck(t, &wire.Welcome{RelayID: "r", MaxInFlight: 4}, true)
	q := sendertest.NewMemQueue()
	// Heartbeat 500 ms: an ack from this peer slower than that (a heartbeat
	// would then be right) needs a machine stalled for half a second.
	cfg := sender.Config{Heartbeat: 500 * time.Millisecond, IdleHeartbeat: time.Second, ReadTimeout: 2 * time.Second}
	run(t, cfg, q, p.ln.Addr().String())
	// A batch every 50 ms for 1.5 s: the link is never idle for a second.
	for i := range 30 {
		fill(t, q, 1)
		relaytest.WaitFor(t, 5*time.Second, fmt.Sprintf("batch %d acked", i+1), func() bool { return q.Stats().Acked >= i+1 })
		time.Sleep(50 * time.Millisecond) //nolint:forbidigo // the agent's sending rhythm, not synchronisation
	}
	if n := p.hearts.Load(); n != 0 {
		t.Errorf("%d heartbeats while batches flowed and were acked at once, want 0", n)
	}
	relaytest.WaitFor(t, 10*time.Second, "heartbeats once idle", func() bool { return p.hearts.Load() >= 3 })
	if n := p.conns.Load(); n != 1 {
		t.Errorf("%d connections, want the first one kept while idle and answered", n)
	}
}

// TestSilentIdleRelayIsLeft: with nothing to send, an unanswered idle
// heartbeat ends the connection after read timeout.
func TestSilentIdleRelayIsLeft(t *testing.T) {
	p := startPeer(t, &wire.Welcome{RelayID: "silent", MaxInFlight: 4})
	q := sendertest.NewMemQueue()
	cfg := sender.Config{Heartbeat: 100 * time.Millisecond, IdleHeartbeat: 200 * time.Millisecond, ReadTimeout: 500 * time.Millisecond}
	run(t, cfg, q, p.ln.Addr().String())
	relaytest.WaitFor(t, 10*time.Second, "a second connection after the silent idle one was left", func() bool { return p.conns.Load() >= 2 })
	if n := p.hearts.Load(); n < 1 {
		t.Errorf("%d heartbeats, want the idle heartbeat that went unanswered", n)
	}
}
