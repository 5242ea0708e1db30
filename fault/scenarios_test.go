//go:build fault

package fault

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/falconet/falconet/fault/check"
	"github.com/falconet/falconet/fault/netns"
)

// outage is the body of most scenarios: start the pipeline and the load,
// wait until it delivers, inject the fault, hold it for the outage (that
// sleep IS the fault's duration), heal, measure the recovery, check.
func outage(t *testing.T, o opts, r row, hold time.Duration, inject, heal func(c *cluster)) (*cluster, check.Result) {
	t.Helper()
	c := newCluster(t, o)
	c.startLoads()
	c.waitWarm()
	inject(c)
	netns.Hold(hold) // the outage itself
	heal(c)
	healed := time.Now()
	r.FirstLive, r.Drain, r.firstLiveM, r.drainM = c.measureHeal(healed, drainLimit)
	if !r.firstLiveM {
		t.Errorf("no metric generated after the heal reached Elasticsearch within %v", drainLimit)
	}
	if !r.drainM {
		t.Errorf("the backlog did not drain within %v of the heal", drainLimit)
	}
	return c, c.finish(r)
}

func forAgents(c *cluster, f func(nd *netns.Node) error) {
	c.t.Helper()
	for _, nd := range c.agentN {
		if err := f(nd); err != nil {
			c.t.Fatal(err)
		}
	}
}

// agentConnected reads the sender's connected gauge from inside the agent's
// namespace (its link to the host may be the thing that is broken).
func agentConnected(nd *netns.Node) (float64, error) {
	cl := nd.HTTPClient(2 * time.Second)
	resp, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", agentHTTP))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return parseProm(resp.Body, "falconet_agent_sender_connected")
}

func agentMetric(nd *netns.Node, name string) (float64, error) {
	cl := nd.HTTPClient(2 * time.Second)
	resp, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", agentHTTP))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return parseProm(resp.Body, name)
}

// 1. The cable is pulled for 30 s.
func TestLinkDown30s(t *testing.T) {
	outage(t, opts{}, row{Scenario: "link down", Fault: "agents' links down 30 s"}, 30*time.Second,
		func(c *cluster) { forAgents(c, (*netns.Node).LinkDown) },
		func(c *cluster) { forAgents(c, (*netns.Node).LinkUp) })
}

// 2. Silent blackhole for 60 s: nothing comes back, not even a RST. The agent
// must notice within seconds (heartbeats and read deadlines), not the
// kernel's 15 minutes.
func TestBlackhole60s(t *testing.T) {
	var noticed time.Duration
	r := row{Scenario: "silent blackhole", Fault: "nftables drop both ways 60 s"}
	outage(t, opts{}, r, 0,
		func(c *cluster) {
			start := time.Now()
			forAgents(c, (*netns.Node).Blackhole)
			for _, nd := range c.agentN {
				err := netns.WaitFor(45*time.Second, pollEvery, func() error {
					v, err := agentConnected(nd)
					if err != nil {
						return err
					}
					if v != 0 {
						return fmt.Errorf("%s still thinks it is connected", nd.Name)
					}
					return nil
				})
				if err != nil {
					t.Errorf("agent never noticed the blackhole: %v", err)
				}
			}
			noticed = time.Since(start)
			t.Logf("agents noticed the blackhole after %.1f s", noticed.Seconds())
			netns.Hold(max(0, 60*time.Second-time.Since(start))) // the rest of the 60 s outage
		},
		func(c *cluster) { forAgents(c, (*netns.Node).Unblackhole) })
	setLastNote(fmt.Sprintf("noticed in %.1f s", noticed.Seconds()))
}

func setLastNote(note string) {
	report.mu.Lock()
	defer report.mu.Unlock()
	if n := len(report.rows); n > 0 {
		if report.rows[n-1].Note != "" {
			report.rows[n-1].Note += "; "
		}
		report.rows[n-1].Note += note
	}
}

// 3. The relay the agents use is killed with SIGKILL mid-stream; the agents
// fail over to the other relay; the killed relay comes back 30 s later.
// "Heal" is the kill itself: first live = the first metric generated after
// the kill is stored through the other relay.
func TestRelayKill(t *testing.T) {
	c := newCluster(t, opts{})
	c.startLoads()
	c.waitWarm()
	c.relays[0].Kill()
	killed := time.Now()
	r := row{Scenario: "relay SIGKILL", Fault: "relay1 killed, back after 30 s"}
	// Both measured while relay1 is still dead: everything, the batches that
	// were in flight to relay1 included, must go through relay2.
	r.FirstLive, r.Drain, r.firstLiveM, r.drainM = c.measureHeal(killed, 29*time.Second)
	if !r.firstLiveM {
		t.Errorf("no metric generated after the kill was stored while relay1 was down: failover did not happen")
	}
	if !r.drainM {
		t.Errorf("metrics accepted before the kill were not all stored while relay1 was down")
	}
	netns.Hold(max(0, 30*time.Second-time.Since(killed))) // relay1 stays dead 30 s
	if err := c.relays[0].Restart(); err != nil {
		t.Fatal(err)
	}
	c.waitTCP(c.relayN[0].Addr(relayPort), c.relays[0])
	c.finish(r)
}

// 4. Kafka stopped for 30 s and started again on the same port and data:
// relays cannot get acks, so they must not ack; agents buffer.
func TestKafkaStop30s(t *testing.T) {
	outage(t, opts{kafkaSync: true}, row{Scenario: "Kafka down", Fault: "dev Kafka stopped 30 s"}, 30*time.Second,
		func(c *cluster) {
			if err := c.kafka.Stop(20 * time.Second); err != nil && c.kafka.Running() {
				t.Fatal(err)
			}
		},
		func(c *cluster) {
			if err := c.kafka.Restart(); err != nil {
				t.Fatal(err)
			}
			c.waitTCP(c.core.Addr(kafkaPort), c.kafka)
		})
}

// 5. Elasticsearch unavailable for 60 s in its three ways: half of the bulk
// items answered 429 (20 s), every request 503 (20 s), then the server
// stopped (20 s) and started again on the same data. The saver retries only
// the rejected items, holds its offsets while ES is away, and loses nothing.
func TestESDown60s(t *testing.T) {
	outage(t, opts{}, row{Scenario: "ES 429 / 503 / down", Fault: "50% items 429 20 s, 503 20 s, stopped 20 s"}, 0,
		func(c *cluster) {
			c.esFaults(`{"reject_fraction":0.5}`)
			netns.Hold(20 * time.Second) // the 429 phase
			c.esFaults(`{"unavailable":true}`)
			netns.Hold(20 * time.Second) // the 503 phase
			if err := c.es.Stop(20 * time.Second); err != nil && c.es.Running() {
				t.Fatal(err)
			}
			netns.Hold(20 * time.Second) // the stopped phase
		},
		func(c *cluster) {
			if err := c.es.Restart(); err != nil {
				t.Fatal(err)
			}
			c.waitTCP(c.core.Addr(esPort), c.es)
			c.esFaults(`{}`) // a restart starts without faults; make sure
		})
}

// 6. The agent is SIGKILLed repeatedly while it buffers (its link is down);
// the generator retries every push the dead agent did not answer.
func TestAgentKillWhileBuffering(t *testing.T) {
	kills := 0
	outage(t, opts{}, row{Scenario: "agent SIGKILL x6", Fault: "link down 36 s, agents killed every 6 s"}, 0,
		func(c *cluster) {
			forAgents(c, (*netns.Node).LinkDown)
			for range 6 {
				netns.Hold(6 * time.Second) // the pace of the kills is the fault
				for i, p := range c.agents {
					p.Kill()
					kills++
					if err := p.Restart(); err != nil {
						t.Fatal(err)
					}
					// Wait for it to serve again before the next kill, so every kill
					// hits a running agent with a buffer open.
					err := netns.WaitFor(30*time.Second, 50*time.Millisecond, func() error {
						_, err := agentConnected(c.agentN[i])
						return err
					})
					if err != nil {
						t.Fatalf("agent %s did not come back: %v\n%s", p.Name, err, p.Tail(2000))
					}
				}
			}
		},
		func(c *cluster) { forAgents(c, (*netns.Node).LinkUp) })
	setLastNote(fmt.Sprintf("%d kills", kills))
}

// 7. A flapping link: down 3 s, up 3 s, for a minute.
func TestFlappingLink(t *testing.T) {
	outage(t, opts{}, row{Scenario: "flapping link", Fault: "down 3 s / up 3 s for 60 s"}, 0,
		func(c *cluster) {
			for range 10 {
				forAgents(c, (*netns.Node).LinkDown)
				netns.Hold(3 * time.Second) // flap period
				forAgents(c, (*netns.Node).LinkUp)
				netns.Hold(3 * time.Second) // flap period
			}
			forAgents(c, (*netns.Node).LinkDown) // the last flap ends with the heal below
		},
		func(c *cluster) { forAgents(c, (*netns.Node).LinkUp) })
}

// 8. The buffer cap is reached during a long outage: the oldest data is
// dropped, exactly, and the counter says how much.
func TestBufferCap(t *testing.T) {
	// 1MiB is the smallest cap the agent accepts; 50 series x 40 pushes/s
	// (about 60 KB/s of buffer records) fill it in under 20 s.
	const capBytes = "1MiB"
	c := newCluster(t, opts{agents: 1, bufferMaxBytes: capBytes, series: 50, rate: 40})
	c.startLoads()
	c.waitWarm()
	nd := c.agentN[0]
	before, err := agentMetric(nd, "falconet_buffer_dropped_metrics_total")
	if err != nil {
		t.Fatalf("agent /metrics: %v", err)
	}
	if err := nd.LinkDown(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	// Hold the outage until the buffer has dropped data, then 10 s more.
	err = netns.WaitFor(120*time.Second, 500*time.Millisecond, func() error {
		v, err := agentMetric(nd, "falconet_buffer_dropped_metrics_total")
		if err != nil {
			return err
		}
		if v <= before {
			return fmt.Errorf("nothing dropped yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("a %s buffer never dropped during the outage: %v", capBytes, err)
	}
	netns.Hold(10 * time.Second) // keep the outage going past the first drop
	// Stop generating before the heal: from here the buffer only shrinks, so
	// every drop happened during the outage, and the counter is final.
	recs := c.stopLoads()
	c.loads = nil
	after, err := agentMetric(nd, "falconet_buffer_dropped_metrics_total")
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.LinkUp(); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	dropped := int64(after - before)
	r := row{Scenario: "buffer cap", Fault: fmt.Sprintf("max_bytes %s, 2000 metrics/s, link down %.0f s", capBytes, healed.Sub(down).Seconds()), Dropped: dropped}
	r.Drain, r.drainM = c.measureDrainOnly(healed, drainLimit, int(dropped))
	if !r.drainM {
		t.Errorf("what the buffer kept did not arrive within %v of the heal", drainLimit)
	}
	// Let everything that survived arrive, then look at exactly what is missing.
	ctx := context.Background()
	var ids []string
	for _, rec := range recs {
		var seqs []int64
		for seq := range rec.Accepted {
			seqs = append(seqs, seq)
		}
		ids = append(ids, check.IDs(rec.Stream, seqs)...)
	}
	_ = netns.WaitFor(drainLimit, 500*time.Millisecond, func() error {
		n, err := c.ES.CountIDs(ctx, ids)
		if err != nil {
			return err
		}
		if n < len(ids)-int(dropped) {
			return fmt.Errorf("%d of %d stored", n, len(ids)-int(dropped))
		}
		return nil
	})
	res, err := c.ES.CheckAll(ctx, recs...)
	if err != nil {
		t.Fatal(err)
	}
	r.Result = res
	r.Wall = time.Since(c.started)
	if res.Duplicated != 0 || res.Misplaced != 0 {
		t.Errorf("duplicates or misplaced documents: %s", res)
	}
	// The counter counts what the agent discarded. A batch in flight when the
	// link went down may have reached Kafka with its ack lost; if the cap
	// then drops it, it is counted and yet stored. So: missing <= dropped,
	// and the difference is at most the sender's in-flight window.
	const window = 32 // batches in flight per connection (the sender's window)
	if int64(res.Missing) > dropped || dropped-int64(res.Missing) > window*int64(c.o.series) {
		t.Errorf("missing %d metrics, the drop counter says %d (want missing <= dropped, within one in-flight window): %s", res.Missing, dropped, res)
	}
	// The missing ones must be the oldest of the outage: every missing push is
	// older than every stored push accepted after the link went down.
	missingSeqs, storedAfterDown, err := c.seqsByPresence(recs[0], down)
	if err != nil {
		t.Fatal(err)
	}
	if len(missingSeqs) > 0 && len(storedAfterDown) > 0 {
		newestMissing := slices.Max(missingSeqs)
		oldestKept := slices.Min(storedAfterDown)
		if newestMissing > oldestKept {
			t.Errorf("dropped data is not the oldest: missing push %d is newer than kept push %d", newestMissing, oldestKept)
		}
	}
	r.Pass = !t.Failed()
	r.Note = fmt.Sprintf("missing %d, drop counter %d; every missing push older than every kept one", res.Missing, dropped)
	if t.Failed() {
		r.Note = ""
		t.Logf("component logs:\n%s", c.tails())
	}
	addRow(r)
}

// esFaults sets dev-es's faults through its admin endpoint (never faulted
// itself).
func (c *cluster) esFaults(body string) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPut, c.ES.URL+"/_falconet/faults", strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("dev-es faults %s: %v", body, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		c.t.Fatalf("dev-es faults %s: HTTP %d: %s", body, resp.StatusCode, msg)
	}
}
