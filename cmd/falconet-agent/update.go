package main

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/falconet/falconet/agent"
	"github.com/falconet/falconet/agent/sender"
	"github.com/falconet/falconet/update"
)

// ackClock wraps the sender's queue and remembers when a relay last acked
// a batch: the update health gate and the "apply only while delivering"
// rule read it.
type ackClock struct {
	sender.Queue
	last atomic.Int64 // unix nanoseconds
}

func (a *ackClock) Ack(seqs ...uint64) error {
	err := a.Queue.Ack(seqs...)
	if err == nil && len(seqs) > 0 {
		a.last.Store(time.Now().UnixNano())
	}
	return err
}

// LastAck is when a relay last acked a batch (zero: never).
func (a *ackClock) LastAck() time.Time {
	n := a.last.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// newUpdater maps [update] onto update.Config; nil when updates are off.
func newUpdater(cfg agent.Config, host string, acks *ackClock, logger *slog.Logger, reg prometheus.Registerer) (*update.Updater, error) {
	if !cfg.Update.Enabled {
		return nil, nil
	}
	ucfg := update.DefaultConfig()
	ucfg.Feed = cfg.Update.Feed
	ucfg.PublicKeys = cfg.Update.PublicKeys
	ucfg.Interval = cfg.Update.Interval.D()
	ucfg.HealthTimeout = cfg.Update.HealthTimeout.D()
	ucfg.Dir = cfg.UpdateDir()
	ucfg.AgentID = host
	return update.New(ucfg, acks, logger, reg)
}

// UpdateStatus is the running version, the self-update state (off,
// installed, committed, trial) and the last rollback, for what the agent
// advertises (falconet status). Safe to call at any time.
func (m *Main) UpdateStatus() update.Status {
	m.mu.Lock()
	u := m.updater
	m.mu.Unlock()
	return u.Status()
}
