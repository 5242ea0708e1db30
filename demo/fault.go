package demo

import (
	"fmt"
	"strings"
	"time"
)

// legend explains the status line; printed once at start.
const legend = "status line: agents=healthy/started, agents-per-relay=[relay:open agent connections], " +
	"uses=[agent:the relay it chose through gossip (nearest ready relay with room)], " +
	"buffered=metrics waiting in the agents' disk buffers, sent=metrics/s acked by relays, " +
	"stored=documents in Elasticsearch (per second), dropped=metrics the agents' buffer cap discarded"

// faultWatch follows the pipeline after a relay kill and says, once each,
// what it did about it: the agents moving to the surviving relay, the buffer
// holding what was unacked, and what the restarted relay got back.
type faultWatch struct {
	victim       *child
	killedAt     time.Time
	agentsBefore float64 // agent connections on the victim when it was killed
	failedOver   bool
	peakBuffered float64
	restartedAt  time.Time
	explained    bool
}

func (w *faultWatch) killed(victim *child, agents float64, now time.Time) {
	*w = faultWatch{victim: victim, killedAt: now, agentsBefore: agents}
}

func (w *faultWatch) restarted(now time.Time) { w.restartedAt = now }

// observe returns the lines to print after a status sample, if any.
func (w *faultWatch) observe(s sample, total int) []string {
	if w.victim == nil {
		return nil
	}
	var out []string
	name := w.victim.member.Name
	s.buffered = max(s.buffered, 0)
	w.peakBuffered = max(w.peakBuffered, s.buffered)
	if !w.failedOver && w.restartedAt.IsZero() {
		others := 0.0
		for _, r := range s.relayConns {
			if r.name != name && r.up {
				others += r.agents
			}
		}
		if others >= float64(total) {
			w.failedOver = true
			out = append(out, fmt.Sprintf("*** pipeline: the %.0f agents of %s reconnected to the other relay within %.0f s of the kill; "+
				"their unacked batches stayed in their disk buffers (peak buffered=%.0f) and were resent, so nothing is lost (the verdict at the end checks it)",
				w.agentsBefore, name, s.at.Sub(w.killedAt).Seconds(), w.peakBuffered))
		}
	}
	if !w.restartedAt.IsZero() && !w.explained {
		for _, r := range s.relayConns {
			if r.name != name || !r.up || r.agents == 0 {
				continue
			}
			// Discovery moves agents back gradually (a bounded share per
			// round, once the relay is durably better).
			w.explained = true
			out = append(out, fmt.Sprintf("*** pipeline: %s is back; %.0f agents moved back to it within %.0f s of the restart "+
				"(gossip saw it return; agents rebalance gradually)", name, r.agents, s.at.Sub(w.restartedAt).Seconds()))
		}
	}
	return out
}

// relayConn is one relay's agent connections in a sample.
type relayConn struct {
	name   string
	up     bool
	agents float64
}

func relayConnsString(rs []relayConn) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		if r.up {
			parts[i] = fmt.Sprintf("%s:%.0f", r.name, r.agents)
		} else {
			parts[i] = r.name + ":down"
		}
	}
	return strings.Join(parts, " ")
}
