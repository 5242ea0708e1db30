package main

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/falconet/falconet/agent"
	"github.com/falconet/falconet/agent/sender"
	"github.com/falconet/falconet/buffer"
	"github.com/falconet/falconet/discovery"
	"github.com/falconet/falconet/internal/version"
)

// startDiscovery joins the gossip pool when discovery.seeds is set and
// returns the chooser as the sender's relay source (relay.addresses become
// its fallback); otherwise the static relay.addresses. current returns the
// sender once it exists (the chooser asks it which relay is in use).
func (m *Main) startDiscovery(cfg agent.Config, host string, q *buffer.Queue, current func() *sender.Sender,
	logger *slog.Logger, reg prometheus.Registerer) (sender.RelaySource, *discovery.Chooser, error) {
	if len(cfg.Discovery.Seeds) == 0 {
		return sender.StaticRelays(cfg.Relay.Addresses...), nil, nil
	}
	d := cfg.Discovery
	node, err := discovery.New(discovery.Config{Name: "agent/" + host, Role: discovery.RoleAgent, Bind: d.Bind,
		Advertise: d.Advertise, Seeds: d.Seeds, Keys: d.Keys, Version: version.Version}, logger, reg)
	if err != nil {
		return nil, nil, fmt.Errorf("agent.discovery: %w", err)
	}
	m.addCloser(node.Close) // closers run last-first: the pool is left before the buffer closes
	ch, err := discovery.NewChooser(node, discovery.ChooserConfig{
		Fallback: cfg.Relay.Addresses,
		InUse: func() string {
			if s := current(); s != nil {
				return s.Current()
			}
			return ""
		},
		Status: func() discovery.AgentStatus {
			st := q.Stats()
			as := discovery.AgentStatus{Backlog: int64(st.Batches), BacklogBytes: st.Bytes}
			if us := m.UpdateStatus(); us.State != "off" {
				as.Update = us.State
				if f := us.LastFailure; f != nil {
					as.Rollback = f.Version + " " + f.Reason
				}
			}
			return as
		},
	}, logger, reg)
	if err != nil {
		_ = node.Close()
		return nil, nil, err
	}
	return ch, ch, nil
}
