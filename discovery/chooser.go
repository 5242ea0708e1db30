package discovery

import (
	"cmp"
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ChooserConfig tunes relay choice. Zero values take the defaults.
type ChooserConfig struct {
	// LoadWeight is the penalty of a relay carrying the mean load (and of
	// a full in-flight memory); an empty relay has none. Default 50ms.
	LoadWeight time.Duration
	// MinGain and Hysteresis: the relay in use is left only for one whose
	// score is lower by MinGain + Hysteresis × (RTT of the relay in use).
	// Defaults 10ms and 0.2.
	MinGain    time.Duration
	Hysteresis float64
	// Confirm is how many evaluations in a row another relay must win
	// before the agent moves. Default 3.
	Confirm int
	// MoveChance is the probability that an agent whose move is confirmed
	// moves in a given evaluation: it bounds the share of the fleet moving
	// at once, so advertised loads catch up before the next wave. Default 0.25.
	MoveChance float64
	// Interval between evaluations. Default 2s.
	Interval time.Duration
	// MoveGrace is how long a decided move waits for the sender to carry it
	// out before the chooser adopts the relay actually in use. Default 30s.
	MoveGrace time.Duration
	// Fallback addresses (relay.addresses) come after every discovered
	// relay.
	Fallback []string
	// InUse returns the relay address the sender is connected to, "" while
	// disconnected. Required.
	InUse func() string
	// Status, if set, is published in the agent's metadata every evaluation.
	Status func() AgentStatus
	// Rand returns a number in [0,1); default math/rand/v2.
	Rand func() float64
}

// AgentStatus is what an agent tells the pool about itself.
type AgentStatus struct {
	Backlog, BacklogBytes int64
	// Update is the self-update state ("installed", "committed", "trial";
	// "" when updates are off); Rollback the last release rolled back here
	// with its reason ("2.2.0 hung").
	Update, Rollback string
}

// Score is one candidate relay as the chooser sees it.
type Score struct {
	Name, Addr string
	RTT        time.Duration // -1: not measured
	Load       time.Duration // the load penalty
	Score      time.Duration
	// Near: among the relays the agent chooses from (near ones with room;
	// failing those, any with room; failing those, all).
	Near bool
}

// Chooser picks the relay an agent sends to. It implements the sender's
// RelaySource (Relays) and tells the sender when its choice changes
// (Changed).
type Chooser struct {
	n   *Node
	cfg ChooserConfig
	log *slog.Logger

	mu        sync.Mutex
	preferred string
	decidedAt time.Time
	order     []string
	scores    []Score
	streak    map[string]int
	changed   chan struct{}

	switches *prometheus.CounterVec
}

// NewChooser returns a Chooser over n's view of the pool. reg may be nil.
func NewChooser(n *Node, cfg ChooserConfig, logger *slog.Logger, reg prometheus.Registerer) (*Chooser, error) {
	if n == nil || cfg.InUse == nil {
		return nil, errors.New("discovery: chooser needs a node and InUse")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LoadWeight <= 0 {
		cfg.LoadWeight = 50 * time.Millisecond
	}
	if cfg.MinGain <= 0 {
		cfg.MinGain = 10 * time.Millisecond
	}
	if cfg.Hysteresis <= 0 {
		cfg.Hysteresis = 0.2
	}
	if cfg.Confirm <= 0 {
		cfg.Confirm = 3
	}
	if cfg.MoveChance <= 0 || cfg.MoveChance > 1 {
		cfg.MoveChance = 0.25
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.MoveGrace <= 0 {
		cfg.MoveGrace = 30 * time.Second
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	c := &Chooser{n: n, cfg: cfg, log: logger.With("component", "discovery"), streak: map[string]int{},
		changed: make(chan struct{}),
		switches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "falconet_discovery_relay_switches_total",
			Help: "Changes of the preferred relay, by reason (initial, failover, better)."}, []string{"reason"})}
	if reg != nil {
		if err := reg.Register(c.switches); err != nil {
			return nil, err
		}
	}
	c.evaluate(false)
	return c, nil
}

// Run re-evaluates every Interval and on membership changes until ctx ends.
func (c *Chooser) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.evaluate(true)
		case <-c.n.Changed():
			c.evaluate(false)
		}
	}
}

// Relays returns the relay addresses best first: the chosen one, the other
// discovered relays by score, then the fallback addresses.
func (c *Chooser) Relays() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.order)
}

// Preferred is the chosen relay address ("" when none is known).
func (c *Chooser) Preferred() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.preferred
}

// Scores returns the last evaluation's candidates, best first.
func (c *Chooser) Scores() []Score {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.scores)
}

// Changed returns a channel closed when the preferred relay next changes.
func (c *Chooser) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// tieBreak spreads agents over relays that score the same (rendezvous
// hashing on the pair of names), so a fleet starting at once does not herd.
func tieBreak(agent, relay string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(agent))
	h.Write([]byte{0})
	h.Write([]byte(relay))
	return h.Sum64()
}

// evaluate recomputes the scores and the choice; tick says whether this is
// a periodic evaluation (only those count towards Confirm).
//
// Relays are "near" when their RTT is within MinGain + Hysteresis×(the
// lowest RTT) of the nearest one; "roomy" when below HighWater of their
// connection and in-flight limits. Agents choose among the near, roomy
// relays (falling back to the roomy ones, then to all) and balance load
// among those; a farther relay is used only when no near one has room.
func (c *Chooser) evaluate(tick bool) {
	inUse := c.cfg.InUse()
	var cands []Member
	for _, r := range c.n.Relays() {
		m := r.Meta
		if m.Addr == "" || !m.Ready || m.Draining || r.State != "alive" {
			continue
		}
		if m.MaxAgents > 0 && m.Agents >= m.MaxAgents && m.Addr != inUse {
			continue // full
		}
		cands = append(cands, r)
	}
	// A relay not measured yet counts as far as the farthest measured one:
	// usable at once for a first choice or a failover, never a reason to
	// move (decide requires a measured RTT for that).
	var unknownRTT time.Duration
	minRTT := time.Duration(-1)
	for _, r := range cands {
		if d, ok := c.n.RTT(r.Name); ok {
			unknownRTT = max(unknownRTT, d)
			if minRTT < 0 || d < minRTT {
				minRTT = d
			}
		}
	}
	minRTT = max(minRTT, 0)
	band := c.cfg.MinGain + time.Duration(c.cfg.Hysteresis*float64(minRTT))
	w := float64(c.cfg.LoadWeight)
	type cand struct {
		m          Member
		rtt        time.Duration
		measured   bool
		near, room bool
	}
	cs := make([]cand, 0, len(cands))
	for _, r := range cands {
		rtt, ok := c.n.RTT(r.Name)
		if !ok {
			rtt = unknownRTT
		}
		limit := band
		if r.Meta.Addr == inUse {
			limit = 2 * band // the relay in use leaves the near set only clearly
		}
		m := r.Meta
		room := (m.MaxAgents == 0 || float64(m.Agents) < highWater*float64(m.MaxAgents)) &&
			(m.InflightMax == 0 || float64(m.InflightBytes) < highWater*float64(m.InflightMax))
		cs = append(cs, cand{m: r, rtt: rtt, measured: ok, near: rtt <= minRTT+limit, room: room})
	}
	inSet := func(x cand) bool { return x.near && x.room }
	if !slices.ContainsFunc(cs, inSet) {
		inSet = func(x cand) bool { return x.room }
		if !slices.ContainsFunc(cs, inSet) {
			inSet = func(cand) bool { return true }
		}
	}
	total, inSetN, usInSet := 0, 0, false
	for _, x := range cs {
		if inSet(x) {
			total += x.m.Meta.Agents
			inSetN++
			usInSet = usInSet || x.m.Meta.Addr == inUse
		}
	}
	if !usInSet {
		total++ // this agent lands in the set
	}
	mean := 1.0
	if inSetN > 0 {
		mean = max(float64(total)/float64(inSetN), 1)
	}
	scores := make([]Score, 0, len(cs))
	for _, x := range cs {
		m := x.m.Meta
		load := float64(m.Agents)
		if m.Addr != inUse {
			load++
		}
		pen := w * load / mean
		if m.InflightMax > 0 {
			pen += w * float64(m.InflightBytes) / float64(m.InflightMax)
		}
		pen += float64(m.ProduceLatency())
		s := Score{Name: x.m.Name, Addr: m.Addr, RTT: x.rtt, Load: time.Duration(pen), Near: inSet(x)}
		if !x.measured {
			s.RTT = -1
		}
		s.Score = x.rtt + s.Load
		scores = append(scores, s)
	}
	me := c.n.Name()
	slices.SortStableFunc(scores, func(a, b Score) int {
		if a.Near != b.Near {
			if a.Near {
				return -1
			}
			return 1
		}
		if a.Score != b.Score {
			return cmp.Compare(a.Score, b.Score)
		}
		return cmp.Compare(tieBreak(me, a.Name), tieBreak(me, b.Name))
	})
	find := func(addr string) (Score, bool) {
		for _, s := range scores {
			if s.Addr == addr {
				return s, true
			}
		}
		return Score{}, false
	}

	c.mu.Lock()
	old := c.preferred
	pref, reason := c.decide(inUse, scores, find, tick)
	if pref != old {
		c.decidedAt = time.Now()
	}
	c.preferred = pref
	c.scores = scores
	order := make([]string, 0, len(scores)+len(c.cfg.Fallback)+1)
	if pref != "" {
		order = append(order, pref)
	}
	for _, s := range scores {
		if s.Addr != pref {
			order = append(order, s.Addr)
		}
	}
	for _, a := range c.cfg.Fallback {
		if !slices.Contains(order, a) {
			order = append(order, a)
		}
	}
	c.order = order
	if pref != old {
		close(c.changed)
		c.changed = make(chan struct{})
	}
	c.mu.Unlock()

	if pref != old && pref != "" {
		c.switches.WithLabelValues(reason).Inc()
		best, _ := find(pref)
		c.log.Info("relay chosen", "relay", pref, "member", best.Name, "reason", reason, "previous", old,
			"in_use", inUse, "rtt", best.RTT, "load_penalty", best.Load, "candidates", len(scores))
	}
	if c.cfg.Status != nil {
		st := c.cfg.Status()
		c.n.Publish(Meta{Relay: inUse, Backlog: st.Backlog, BacklogBytes: st.BacklogBytes, Update: st.Update, Rollback: st.Rollback})
	}
}

// highWater is the share of a relay's connection or in-flight limit above
// which it no longer counts as having room.
const highWater = 0.8

// decide returns the preferred relay and why it changed. c.mu is held.
func (c *Chooser) decide(inUse string, scores []Score, find func(string) (Score, bool), tick bool) (string, string) {
	if len(scores) == 0 {
		return "", ""
	}
	best := scores[0]
	old := c.preferred
	// A move already decided: give the sender time to carry it out.
	if old != "" && old != inUse && time.Since(c.decidedAt) < c.cfg.MoveGrace {
		if _, ok := find(old); ok {
			return old, ""
		}
	}
	cur, curOK := find(inUse)
	if inUse == "" || !curOK {
		// Disconnected, or the relay in use is gone, draining or not ready.
		if _, ok := find(old); ok && inUse == "" {
			return old, ""
		}
		reason := "initial"
		if old != "" {
			reason = "failover"
		}
		clear(c.streak)
		return best.Addr, reason
	}
	if best.Addr == inUse || best.RTT < 0 {
		clear(c.streak)
		return inUse, ""
	}
	// Out of the near set (a nearer relay is back, or ours filled up): move.
	// Within it: only for a clear gain.
	if cur.Near {
		need := c.cfg.MinGain + time.Duration(c.cfg.Hysteresis*float64(max(cur.RTT, 0)))
		if cur.Score-best.Score <= need {
			clear(c.streak)
			return inUse, ""
		}
	}
	if !tick {
		return inUse, ""
	}
	for k := range c.streak {
		if k != best.Addr {
			delete(c.streak, k)
		}
	}
	c.streak[best.Addr]++
	if c.streak[best.Addr] < c.cfg.Confirm || c.cfg.Rand() >= c.cfg.MoveChance {
		return inUse, ""
	}
	clear(c.streak)
	return best.Addr, "better"
}
