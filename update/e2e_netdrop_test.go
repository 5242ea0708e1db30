package update_test

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/falconet/falconet/relay/relaytest"
)

// The network drops just as a trial starts (the agent had an ack a moment
// before, so it applied the release): the trial gets no ack and is rolled
// back, but the old version gets none either, so the verdict is withdrawn:
// the release is not bad, and once the relay is back it is taken again and
// commits.
func TestSelfUpdateNetworkDropDuringTrial(t *testing.T) {
	t.Parallel()
	e := newFleetEnv(t)
	rcfg := relaytest.Config(e.kafka.Addr())
	rcfg.Listen.Protocol = freePort(t)
	r := relaytest.Start(t, rcfg, slog.New(slog.DiscardHandler))
	e.relayAddr = rcfg.Listen.Protocol
	a := e.startAgent("drop-host", "1.0.0", "10s")
	a.waitRunning(30*time.Second, "1.0.0", "installed")
	a.waitDelivering(30 * time.Second)

	r.Kill() // the network is gone; the agent acked a moment ago
	e.publish("1.1.0", bin(t, "agent-1.1.0"), "", 100)
	waitFor(t, 60*time.Second, "1.1.0 rolled back for no ack", func() bool {
		f := a.state().LastFailure
		return f != nil && f.Version == "1.1.0" && f.Reason == "no_ack"
	}, func() string { return fmt.Sprintf("state %+v", a.state()) })
	a.waitRunning(30*time.Second, "1.0.0", "installed")
	waitFor(t, 30*time.Second, "the no_ack verdict withdrawn (1.0.0 gets no ack either)", func() bool {
		s := a.state()
		_, bad := s.Bad["1.1.0"]
		return !bad && s.Rechecked["1.1.0"] == 1
	}, func() string { return fmt.Sprintf("state %+v", a.state()) })

	relaytest.Start(t, rcfg, slog.New(slog.DiscardHandler)) // the network is back
	a.waitRunning(60*time.Second, "1.1.0", "committed")
	a.waitDelivering(30 * time.Second)
	if s := a.state(); len(s.Bad) != 0 {
		t.Fatalf("state after the network came back: %+v, want nothing marked bad", s)
	}
}
