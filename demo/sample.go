package demo

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/falconet/falconet/internal/promtext"
)

// sample is one reading of the pipeline's counters.
type sample struct {
	at             time.Time
	agentsUp       int
	agents         int
	relayConns     []relayConn
	uses           []string // "agent1:relay2": the relay each agent sends to (discovery's choice)
	buffered       float64
	acked          float64 // metrics the agents got acked by relays
	stored         float64 // documents in ES
	storedErr      error
	droppedMetrics float64
}

func (d *Demo) sample(ctx context.Context) sample {
	s := sample{at: time.Now()}
	relayName := map[string]string{}
	for _, c := range d.children {
		if c.member.Role == "relay" {
			relayName[c.member.Addr] = c.member.Name
		}
	}
	for _, c := range d.children {
		switch c.member.Role {
		case "agent":
			s.agents++
			if _, err := promtext.Get(ctx, c.member.HTTP+"/healthz"); err == nil {
				s.agentsUp++
			}
			page, err := promtext.Get(ctx, c.member.HTTP+"/metrics")
			if err != nil {
				continue
			}
			s.buffered += promtext.Sum(page, "falconet_buffer_metrics")
			s.acked += promtext.Sum(page, "falconet_agent_sender_metrics_acked_total")
			s.droppedMetrics += promtext.Sum(page, "falconet_buffer_dropped_metrics_total")
			using := "-"
			for labels, v := range promtext.Labeled(page, "falconet_agent_sender_relay") {
				if addr := strings.Trim(strings.TrimPrefix(labels, "addr="), `"`); v == 1 {
					using = cmp.Or(relayName[addr], addr)
				}
			}
			s.uses = append(s.uses, c.member.Name+":"+using)
		case "relay":
			v, err := promtext.Scrape(ctx, c.member.HTTP+"/metrics", "falconet_relay_agent_connections")
			s.relayConns = append(s.relayConns, relayConn{name: c.member.Name, up: err == nil && c.running(), agents: v})
		}
	}
	n, err := d.es.CountAll(ctx)
	s.stored, s.storedErr = float64(n), err
	return s
}

func (s sample) line(prev sample, since time.Duration) string {
	dt := s.at.Sub(prev.at).Seconds()
	if dt <= 0 {
		dt = 1
	}
	stored := fmt.Sprintf("stored=%.0f (%.0f/s)", s.stored, (s.stored-prev.stored)/dt)
	if s.storedErr != nil {
		stored = "stored=? (ES: " + s.storedErr.Error() + ")"
	}
	return fmt.Sprintf("[%4.0fs] agents=%d/%d agents-per-relay=[%s] uses=[%s] buffered=%.0f sent=%.0f/s %s dropped=%.0f",
		since.Seconds(), s.agentsUp, s.agents, relayConnsString(s.relayConns), strings.Join(s.uses, " "), s.buffered,
		(s.acked-prev.acked)/dt, stored, s.droppedMetrics)
}
