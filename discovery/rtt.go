package discovery

import (
	"net"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// rttSamples is how many recent samples the estimate is the minimum of:
// queueing and a busy host only ever add delay, so the minimum is the
// path's delay; a lasting change shows once the window has rolled over.
const rttSamples = 5

type rttTable struct {
	mu sync.Mutex
	s  map[string][]time.Duration
}

func newRTTTable() *rttTable { return &rttTable{s: map[string][]time.Duration{}} }

func (t *rttTable) add(name string, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := append(t.s[name], d)
	if len(s) > rttSamples {
		s = s[len(s)-rttSamples:]
	}
	t.s[name] = s
}

func (t *rttTable) get(name string) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.s[name]
	if len(s) == 0 {
		return 0, false
	}
	return slices.Min(s), true
}

func (t *rttTable) forget(name string) {
	t.mu.Lock()
	delete(t.s, name)
	t.mu.Unlock()
}

// pingLoop measures the RTT to relays: every relay without a sample at once
// (in parallel), then one relay per RTTInterval in turn.
func (n *Node) pingLoop() {
	t := time.NewTicker(n.cfg.RTTInterval)
	defer t.Stop()
	next := 0
	tick := true
	tried := map[string]time.Time{} // relays without a sample: last attempt
	for {
		relays := n.Relays()
		var fresh []Member
		now := time.Now()
		for _, r := range relays {
			if _, ok := n.rtt.get(r.Name); !ok && now.Sub(tried[r.Name]) >= n.cfg.RTTInterval {
				fresh = append(fresh, r)
				tried[r.Name] = now
			}
		}
		if len(fresh) > 0 {
			var wg sync.WaitGroup
			for _, r := range fresh {
				wg.Add(1)
				go func() { defer wg.Done(); n.ping(r) }()
			}
			wg.Wait()
			n.notifyChanged()
		} else if tick && len(relays) > 0 {
			next = (next + 1) % len(relays)
			n.ping(relays[next])
		}
		if len(tried) > 4*len(relays)+16 {
			clear(tried)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			tick = true
		case <-n.Changed():
			tick = false // only relays never measured are pinged at once
		}
	}
}

func (n *Node) ping(m Member) {
	addr, err := net.ResolveUDPAddr("udp", m.Addr)
	if err != nil {
		return
	}
	d, err := n.ml.Ping(m.Name, addr)
	if err != nil {
		n.m.pingFailures.Inc()
		return
	}
	n.rtt.add(m.Name, d)
	n.m.rtt.WithLabelValues(m.Name).Observe(d.Seconds())
}

type nodeMetrics struct {
	metaUpdates, pingFailures prometheus.Counter
	rtt                       *prometheus.HistogramVec
	members                   prometheus.Collector
	traffic                   prometheus.Collector
}

func newNodeMetrics(n *Node) *nodeMetrics {
	return &nodeMetrics{
		traffic: gossipTraffic{n: n, desc: prometheus.NewDesc("falconet_discovery_gossip_sent_bytes_total",
			"Bytes this member sent on the gossip port (probes, gossip, RTT pings, state exchanges), by protocol.", []string{"proto"}, nil)},
		metaUpdates: prometheus.NewCounter(prometheus.CounterOpts{Name: "falconet_discovery_metadata_updates_total",
			Help: "Times this member re-broadcast its metadata."}),
		pingFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "falconet_discovery_rtt_ping_failures_total",
			Help: "RTT pings to relays that got no answer within the probe timeout."}),
		rtt: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "falconet_discovery_relay_rtt_seconds",
			Help:    "Measured round-trip times to relays.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5}}, []string{"relay"}),
		members: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "falconet_discovery_members",
			Help: "Live members of the gossip pool this member knows, itself included."},
			func() float64 {
				if n.ml == nil {
					return 0
				}
				return float64(n.ml.NumMembers())
			}),
	}
}

// gossipTraffic exports Traffic as falconet_discovery_gossip_sent_bytes_total{proto}.
type gossipTraffic struct {
	n    *Node
	desc *prometheus.Desc
}

func (g gossipTraffic) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }
func (g gossipTraffic) Collect(ch chan<- prometheus.Metric) {
	if g.n.tr == nil {
		return
	}
	t := g.n.Traffic()
	ch <- prometheus.MustNewConstMetric(g.desc, prometheus.CounterValue, float64(t.UDPBytes), "udp")
	ch <- prometheus.MustNewConstMetric(g.desc, prometheus.CounterValue, float64(t.TCPBytes), "tcp")
}

func (m *nodeMetrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.metaUpdates, m.pingFailures, m.rtt, m.members, m.traffic} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
