package discovery

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultPort is the gossip port (TCP and UDP).
const DefaultPort = 7946

// Config configures a Node. Zero durations take the defaults.
type Config struct {
	// Name is the member's unique name in the pool.
	Name string
	// Role is RoleRelay, RoleAgent or RoleStatus.
	Role string
	// Bind is the gossip listen address, "host:port" (TCP and UDP); port 0
	// picks a free one. Empty: ":7946".
	Bind string
	// Advertise is the address other members reach this one at, when it
	// differs from Bind (NAT, a proxy, or Bind on 0.0.0.0 with several
	// interfaces). Empty: memberlist's choice (the bound address, or the
	// first private IP when bound to all interfaces).
	Advertise string
	// Seeds are "host:port" addresses of members to join through (a name
	// that resolves to several addresses counts as several seeds; a seed
	// without port gets DefaultPort).
	Seeds []string
	// Keys are base64 gossip keys of 16, 24 or 32 bytes: the first encrypts,
	// every one decrypts. Empty: gossip in clear text.
	Keys []string
	// Version is published in the metadata.
	Version string
	// ProbeTimeout bounds one ping (failure detector and RTT). Default 500ms.
	ProbeTimeout time.Duration
	// RTTInterval: an agent pings one relay per interval (and every relay
	// it has no sample of yet). Default 1s.
	RTTInterval time.Duration
	// MetaInterval is the least time between two non-urgent metadata
	// broadcasts. Default 1s for relays, 5s for others.
	MetaInterval time.Duration
	// JoinInterval is the first wait before retrying the seeds while no other
	// member is known (doubling up to 30s). Default 1s.
	JoinInterval time.Duration
	// Meta is published from the start (Role is filled in).
	Meta Meta
	// TimeScale, if above 1, stretches every gossip interval and timeout
	// (probe, gossip, state exchange, RTT, metadata) by that factor. It is
	// for simulating a large pool on few cores: a member then does per
	// second what it does per TimeScale seconds in production, and the
	// protocol, which counts in rounds, behaves the same. Not a setting for
	// production pools, where every member must use the same timings.
	TimeScale float64
}

// ParseKeys decodes base64 gossip keys, naming the bad one.
func ParseKeys(keys []string) ([][]byte, error) {
	var out [][]byte
	for i, k := range keys {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k))
		if err != nil {
			return nil, fmt.Errorf("keys[%d]: not base64: %v", i, err)
		}
		if l := len(b); l != 16 && l != 24 && l != 32 {
			return nil, fmt.Errorf("keys[%d]: %d bytes, want 16, 24 or 32", i, l)
		}
		out = append(out, b)
	}
	return out, nil
}

// Validate reports the first problem; prefix is the config section
// ("agent.discovery") used to name keys.
func (c *Config) Validate(prefix string) error {
	if c.Bind != "" {
		if _, _, err := net.SplitHostPort(c.Bind); err != nil {
			return fmt.Errorf("%s.bind: %q is not host:port: %v", prefix, c.Bind, err)
		}
	}
	if c.Advertise != "" {
		if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
			return fmt.Errorf("%s.advertise: %q is not host:port: %v", prefix, c.Advertise, err)
		}
	}
	for i, s := range c.Seeds {
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("%s.seeds[%d]: empty", prefix, i)
		}
	}
	if _, err := ParseKeys(c.Keys); err != nil {
		return fmt.Errorf("%s.%v", prefix, err)
	}
	return nil
}

// Member is one live (alive or suspect) member of the pool.
type Member struct {
	Name  string
	Addr  string // gossip address
	State string // "alive"
	Local bool
	Meta  Meta
}

// Node is this process's membership in the pool.
type Node struct {
	cfg  Config
	log  *slog.Logger
	ml   *memberlist.Memberlist
	rtt  *rttTable
	tr   *countingTransport
	m    *nodeMetrics
	wake chan struct{}

	metaMu    sync.Mutex
	want      Meta // what the owner last asked to publish
	published Meta // what was last gossiped
	metaBytes []byte
	lastMeta  time.Time

	chMu    sync.Mutex
	changed chan struct{} // closed and replaced on every membership change

	// memberlist's Members() hands out pointers to its live state, which it
	// mutates without our lock; the event callbacks run under its lock, so
	// the view is copied there.
	viewMu sync.Mutex
	view   map[string]Member
	relays map[string]Member // the relays of view (other than this one): agents read these every second
	addr   string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// New creates the member, joins the seeds it can reach (retrying in the
// background when none answers) and starts its loops. reg may be nil.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Node, error) {
	if err := cfg.Validate("discovery"); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Name == "" {
		return nil, errors.New("discovery: empty node name")
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 500 * time.Millisecond
	}
	if cfg.RTTInterval <= 0 {
		cfg.RTTInterval = time.Second
	}
	if cfg.MetaInterval <= 0 {
		cfg.MetaInterval = 5 * time.Second
		if cfg.Role == RoleRelay {
			cfg.MetaInterval = time.Second
		}
	}
	if cfg.JoinInterval <= 0 {
		cfg.JoinInterval = time.Second
	}
	cfg.Meta.Role = cfg.Role
	if cfg.Meta.Version == "" {
		cfg.Meta.Version = cfg.Version
	}
	mb, err := cfg.Meta.encode()
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: logger.With("component", "discovery"), rtt: newRTTTable(),
		wake: make(chan struct{}, 1), changed: make(chan struct{}),
		want: cfg.Meta, published: cfg.Meta, metaBytes: mb, view: map[string]Member{}, relays: map[string]Member{}}
	n.m = newNodeMetrics(n)

	mc := memberlist.DefaultLANConfig()
	// Detection in seconds: the local profile's suspicion, a LAN-sized
	// probe timeout so relays a continent away are not suspected.
	mc.SuspicionMult = 3
	mc.ProbeTimeout = cfg.ProbeTimeout
	mc.PushPullInterval = 15 * time.Second
	mc.GossipToTheDeadTime = 15 * time.Second
	// A relay restarted on another address (a new IP after a reschedule)
	// may take its name back once it has been dead this long.
	mc.DeadNodeReclaimTime = time.Second
	if k := cfg.TimeScale; k > 1 {
		stretch := func(d *time.Duration) { *d = time.Duration(float64(*d) * k) }
		for _, d := range []*time.Duration{&mc.ProbeInterval, &mc.ProbeTimeout, &mc.GossipInterval,
			&mc.PushPullInterval, &mc.GossipToTheDeadTime, &mc.TCPTimeout, &mc.DeadNodeReclaimTime,
			&n.cfg.RTTInterval, &n.cfg.MetaInterval, &n.cfg.JoinInterval, &n.cfg.ProbeTimeout} {
			stretch(d)
		}
	}
	mc.Name = cfg.Name
	bind := cfg.Bind
	if bind == "" {
		bind = ":" + strconv.Itoa(DefaultPort)
	}
	host, port, err := splitHostPort(bind)
	if err != nil {
		return nil, fmt.Errorf("discovery.bind: %w", err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertisePort = port
	if cfg.Advertise != "" {
		ah, ap, err := splitHostPort(cfg.Advertise)
		if err != nil {
			return nil, fmt.Errorf("discovery.advertise: %w", err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ah, ap
	}
	keys, _ := ParseKeys(cfg.Keys)
	if len(keys) > 0 {
		kr, err := memberlist.NewKeyring(keys, keys[0])
		if err != nil {
			return nil, fmt.Errorf("discovery.keys: %w", err)
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	mc.Delegate = (*delegate)(n)
	mc.Events = (*events)(n)
	mc.Ping = (*pings)(n)
	mc.Logger = log.New(&logBridge{log: n.log}, "", 0)
	tr, err := newCountingTransport(host, port, mc.Logger)
	if err != nil {
		return nil, fmt.Errorf("discovery: start gossip on %s: %w", bind, err)
	}
	n.tr = tr
	mc.Transport = tr
	mc.BindPort = tr.GetAutoBindPort()
	if cfg.Advertise == "" {
		mc.AdvertisePort = mc.BindPort
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = tr.Shutdown()
		return nil, fmt.Errorf("discovery: start gossip on %s: %w", bind, err)
	}
	n.ml = ml
	if reg != nil {
		if err := n.m.register(reg); err != nil {
			_ = ml.Shutdown()
			return nil, fmt.Errorf("discovery: metrics: %w", err)
		}
	}
	ln := ml.LocalNode() // nothing mutates it yet: no loop runs
	n.addr = net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if len(cfg.Seeds) > 0 {
		if err := n.join(); err != nil {
			n.log.Warn("no seed answered yet; retrying in the background", "seeds", cfg.Seeds, "err", err)
		}
	}
	n.wg.Add(2)
	go func() { defer n.wg.Done(); n.joinLoop() }()
	go func() { defer n.wg.Done(); n.metaLoop() }()
	if cfg.Role == RoleAgent {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.pingLoop() }()
	}
	n.log.Info("gossip started", "name", cfg.Name, "role", cfg.Role, "addr", n.Addr(), "seeds", cfg.Seeds,
		"encrypted", len(keys) > 0)
	return n, nil
}

func splitHostPort(s string) (string, int, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", s)
	}
	return h, port, nil
}

// Name is this member's name.
func (n *Node) Name() string { return n.cfg.Name }

// Addr is this member's advertised gossip address.
func (n *Node) Addr() string { return n.addr }

func (n *Node) join() error {
	seeds := make([]string, 0, len(n.cfg.Seeds))
	for _, s := range n.cfg.Seeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			s = net.JoinHostPort(s, strconv.Itoa(DefaultPort))
		}
		seeds = append(seeds, s)
	}
	joined, err := n.ml.Join(seeds)
	if joined > 0 {
		n.log.Info("joined the pool", "seeds_answered", joined, "members", n.ml.NumMembers())
		return nil
	}
	if err == nil {
		err = errors.New("no seed answered")
	}
	return err
}

// joinLoop retries the seeds while this node knows no other live member.
func (n *Node) joinLoop() {
	wait := n.cfg.JoinInterval
	for {
		t := time.NewTimer(wait)
		select {
		case <-n.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if len(n.cfg.Seeds) == 0 || n.ml.NumMembers() > 1 {
			wait = n.cfg.JoinInterval
			continue
		}
		if err := n.join(); err != nil {
			n.log.Debug("seeds not reachable", "seeds", n.cfg.Seeds, "err", err)
			wait = min(wait*2, 30*time.Second)
			continue
		}
		wait = n.cfg.JoinInterval
	}
}

// Publish sets this member's metadata. It is gossiped at once when the
// change is urgent, otherwise when material and at most once per
// MetaInterval. Role is kept.
func (n *Node) Publish(m Meta) {
	m.Role = n.cfg.Role
	if m.Version == "" {
		m.Version = n.cfg.Version
	}
	n.metaMu.Lock()
	n.want = m
	n.metaMu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Published is the metadata last gossiped.
func (n *Node) Published() Meta {
	n.metaMu.Lock()
	defer n.metaMu.Unlock()
	return n.published
}

func (n *Node) metaLoop() {
	t := time.NewTicker(min(n.cfg.MetaInterval, time.Second))
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.wake:
		}
		n.metaMu.Lock()
		want, pub := n.want, n.published
		due := pub.Urgent(want) || (pub.Material(want) && time.Since(n.lastMeta) >= n.cfg.MetaInterval)
		if !due || want == pub {
			n.metaMu.Unlock()
			continue
		}
		b, err := want.encode()
		if err != nil {
			n.metaMu.Unlock()
			n.log.Error("cannot publish metadata", "err", err)
			continue
		}
		n.metaBytes, n.published, n.lastMeta = b, want, time.Now()
		n.metaMu.Unlock()
		if err := n.ml.UpdateNode(0); err != nil {
			n.log.Warn("cannot broadcast metadata", "err", err)
			continue
		}
		n.m.metaUpdates.Inc()
	}
}

// Members lists the live members, this one included, sorted by name (a
// member memberlist only suspects stays listed until declared dead).
func (n *Node) Members() []Member {
	n.viewMu.Lock()
	out := make([]Member, 0, len(n.view))
	for _, m := range n.view {
		out = append(out, m)
	}
	n.viewMu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// NumMembers is the number of live members, this one included, without
// copying the list (len(Members()) copies every member).
func (n *Node) NumMembers() int {
	n.viewMu.Lock()
	defer n.viewMu.Unlock()
	return len(n.view)
}

// Member returns the live member called name.
func (n *Node) Member(name string) (Member, bool) {
	n.viewMu.Lock()
	defer n.viewMu.Unlock()
	m, ok := n.view[name]
	return m, ok
}

// Relays lists the live relay members other than this one, sorted by name.
// Its cost grows with the number of relays, not with the pool's size.
func (n *Node) Relays() []Member {
	n.viewMu.Lock()
	var out []Member
	for _, m := range n.relays {
		out = append(out, m)
	}
	n.viewMu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Changed returns a channel closed at the next change that concerns a
// relay (one joining, leaving, failing or changing its metadata).
func (n *Node) Changed() <-chan struct{} {
	n.chMu.Lock()
	defer n.chMu.Unlock()
	return n.changed
}

func (n *Node) notifyChanged() {
	n.chMu.Lock()
	close(n.changed)
	n.changed = make(chan struct{})
	n.chMu.Unlock()
}

// RTT is the measured round-trip time to the member (minimum of its recent
// samples), or false when there is none.
func (n *Node) RTT(name string) (time.Duration, bool) { return n.rtt.get(name) }

// Leave tells the pool this member is going (seen by others in about a
// tenth of a second) and stops gossip. Close must still be called.
func (n *Node) Leave(timeout time.Duration) error {
	return n.ml.Leave(timeout)
}

// Close leaves the pool gracefully (at most a second) and stops every loop.
// It is idempotent.
func (n *Node) Close() error {
	var err error
	n.once.Do(func() {
		if lerr := n.ml.Leave(time.Second); lerr != nil {
			n.log.Debug("leave", "err", lerr)
		}
		n.cancel()
		n.wg.Wait()
		err = n.ml.Shutdown()
	})
	return err
}

// Abort stops gossip without leaving, as a crash would: the others notice
// through failure detection. For tests and crash drills.
func (n *Node) Abort() {
	n.once.Do(func() {
		n.cancel()
		n.wg.Wait()
		_ = n.ml.Shutdown()
	})
}

// delegate is memberlist's Delegate: it serves the metadata.
type delegate Node

func (d *delegate) NodeMeta(limit int) []byte {
	n := (*Node)(d)
	n.metaMu.Lock()
	defer n.metaMu.Unlock()
	if len(n.metaBytes) > limit {
		return nil
	}
	return slices.Clone(n.metaBytes)
}
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// events is memberlist's EventDelegate.
type events Node

// track copies nd into the view and reports whether a relay was concerned
// (it is one now or was one before): only those changes wake the loops
// that watch Changed, so agents' own churn costs a large pool nothing.
func (n *Node) track(nd *memberlist.Node) bool {
	m := Member{Name: nd.Name, Addr: net.JoinHostPort(nd.Addr.String(), strconv.Itoa(int(nd.Port))),
		State: "alive", Local: nd.Name == n.cfg.Name, Meta: DecodeMeta(nd.Meta)}
	n.viewMu.Lock()
	old, had := n.view[nd.Name]
	n.view[nd.Name] = m
	if m.Meta.Role == RoleRelay && !m.Local {
		n.relays[nd.Name] = m
	} else {
		delete(n.relays, nd.Name)
	}
	n.viewMu.Unlock()
	return m.Meta.Role == RoleRelay || (had && old.Meta.Role == RoleRelay)
}

func (e *events) NotifyJoin(nd *memberlist.Node) {
	n := (*Node)(e)
	if n.track(nd) {
		n.notifyChanged()
	}
	if nd.Name != n.cfg.Name {
		m := DecodeMeta(nd.Meta)
		n.log.Debug("member joined", "member", nd.Name, "role", m.Role, "addr", nd.Address())
		if m.Role == RoleRelay {
			n.log.Info("relay joined", "member", nd.Name, "relay", m.Addr, "ready", m.Ready)
		}
	}
}

func (e *events) NotifyLeave(nd *memberlist.Node) {
	n := (*Node)(e)
	if nd.Name == n.cfg.Name {
		return // memberlist reports our own shutdown too
	}
	n.viewMu.Lock()
	old := n.view[nd.Name]
	delete(n.view, nd.Name)
	delete(n.relays, nd.Name)
	n.viewMu.Unlock()
	n.rtt.forget(nd.Name)
	if m := DecodeMeta(nd.Meta); m.Role == RoleRelay || old.Meta.Role == RoleRelay {
		n.log.Info("relay left or failed", "member", nd.Name, "relay", m.Addr)
		n.notifyChanged()
	}
}

func (e *events) NotifyUpdate(nd *memberlist.Node) {
	n := (*Node)(e)
	if n.track(nd) {
		n.notifyChanged()
	}
}

// pings is memberlist's PingDelegate: the failure detector's probes of
// relays are RTT samples too.
type pings Node

func (p *pings) AckPayload() []byte { return nil }
func (p *pings) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, _ []byte) {
	n := (*Node)(p)
	if n.cfg.Role != RoleAgent {
		return
	}
	n.viewMu.Lock()
	_, relay := n.relays[other.Name]
	n.viewMu.Unlock()
	if relay {
		n.rtt.add(other.Name, rtt)
	}
}

// logBridge turns memberlist's "[LEVEL] memberlist: msg" lines into slog.
type logBridge struct{ log *slog.Logger }

func (b *logBridge) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	level := slog.LevelInfo
	for _, l := range []struct {
		tag string
		lv  slog.Level
	}{{"[DEBUG]", slog.LevelDebug}, {"[INFO]", slog.LevelDebug}, {"[WARN]", slog.LevelWarn}, {"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError}} {
		if rest, ok := strings.CutPrefix(line, l.tag); ok {
			level, line = l.lv, strings.TrimSpace(rest)
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	b.log.Log(context.Background(), level, "gossip: "+line)
	return len(p), nil
}

var _ io.Writer = (*logBridge)(nil)

// ErrNoSeed is returned by Observe when no seed answered.
var ErrNoSeed = errors.New("discovery: no seed answered")

// Observe joins the pool briefly as a RoleStatus member, returns the members
// it learned in the join's state exchange (every live member and its
// metadata) and leaves. cfg.Role and cfg.Meta are set by Observe; Bind ""
// means the local address that routes to the first seed, any port.
func Observe(cfg Config, logger *slog.Logger) ([]Member, error) {
	if len(cfg.Seeds) == 0 {
		return nil, errors.New("discovery: no seed given")
	}
	cfg.Role, cfg.Meta = RoleStatus, Meta{}
	if cfg.Bind == "" {
		cfg.Bind = "0.0.0.0:0"
		seed := cfg.Seeds[0]
		if _, _, err := net.SplitHostPort(seed); err != nil {
			seed = net.JoinHostPort(seed, strconv.Itoa(DefaultPort))
		}
		if c, err := net.Dial("udp", seed); err == nil { // no packet is sent
			cfg.Bind = net.JoinHostPort(c.LocalAddr().(*net.UDPAddr).IP.String(), "0")
			_ = c.Close()
		}
	}
	cfg.JoinInterval = time.Hour // one attempt: New joins synchronously
	n, err := New(cfg, logger, nil)
	if err != nil {
		return nil, err
	}
	defer n.Abort()
	if n.ml.NumMembers() < 2 {
		return nil, fmt.Errorf("%w at %v (nothing listening there, or a wrong or missing gossip key)", ErrNoSeed, cfg.Seeds)
	}
	var out []Member
	for _, m := range n.Members() {
		if !m.Local {
			out = append(out, m)
		}
	}
	_ = n.Leave(500 * time.Millisecond)
	return out, nil
}
