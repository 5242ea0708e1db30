package discovery

import (
	"context"
	"slices"
	"time"
)

// RelayStatus is what a relay advertises about itself.
type RelayStatus struct {
	Ready, Draining bool
	Agents          int
	MaxAgents       int
	InflightBytes   int64
	InflightMax     int64
	ProduceLatency  time.Duration
}

// MaxRedirects is how many other relays a busy or draining relay names.
const MaxRedirects = 3

// AdvertiseRelay publishes the relay's protocol address and status every
// interval (gossiped when it changed materially) and hands setRedirect the
// other ready relays with room, least loaded first, whenever the pool
// changes. It blocks until ctx ends.
func (n *Node) AdvertiseRelay(ctx context.Context, addr string, interval time.Duration, status func() RelayStatus, setRedirect func([]string)) {
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var last []string
	for {
		st := status()
		n.Publish(Meta{Addr: addr, Ready: st.Ready && !st.Draining, Draining: st.Draining, Agents: st.Agents,
			MaxAgents: st.MaxAgents, InflightBytes: st.InflightBytes, InflightMax: st.InflightMax,
			ProduceMs: float64(st.ProduceLatency) / float64(time.Millisecond)})
		if setRedirect != nil {
			if r := n.redirects(addr); !slices.Equal(r, last) {
				setRedirect(r)
				last = r
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.Changed():
		}
	}
}

// redirects lists other relays that are ready and not full, by load
// relative to their limit.
func (n *Node) redirects(self string) []string {
	type cand struct {
		addr string
		load float64
	}
	var cs []cand
	for _, r := range n.Relays() {
		m := r.Meta
		if r.State != "alive" || !m.Ready || m.Draining || m.Addr == "" || m.Addr == self {
			continue
		}
		if m.MaxAgents > 0 && m.Agents >= m.MaxAgents {
			continue
		}
		load := float64(m.Agents)
		if m.MaxAgents > 0 {
			load /= float64(m.MaxAgents)
		}
		cs = append(cs, cand{m.Addr, load})
	}
	slices.SortStableFunc(cs, func(a, b cand) int {
		switch {
		case a.load < b.load:
			return -1
		case a.load > b.load:
			return 1
		}
		return 0
	})
	out := []string{}
	for _, c := range cs[:min(len(cs), MaxRedirects)] {
		out = append(out, c.addr)
	}
	return out
}
