package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// link is a TCP forwarder between the agent and its relay that can be cut
// (listener closed, connections reset: the agent sees refusals) and
// restored on the same address.
type link struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]bool
	up           bool
	firstAccept  time.Time // first connection accepted since the last restore
}

func newLink(target string) (*link, error) {
	l := &link{addr: freeAddr(), target: target, conns: map[net.Conn]bool{}}
	return l, l.restore()
}

func (l *link) restore() error {
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.ln, l.up, l.firstAccept = ln, true, time.Time{}
	l.mu.Unlock()
	go l.accept(ln)
	return nil
}

func (l *link) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		if !l.up {
			l.mu.Unlock()
			c.Close()
			continue
		}
		if l.firstAccept.IsZero() {
			l.firstAccept = time.Now()
		}
		l.conns[c] = true
		l.mu.Unlock()
		go l.forward(c)
	}
}

func (l *link) forward(c net.Conn) {
	r, err := net.Dial("tcp", l.target)
	if err != nil {
		c.Close()
		return
	}
	l.mu.Lock()
	if !l.up {
		l.mu.Unlock()
		c.Close()
		r.Close()
		return
	}
	l.conns[r] = true
	l.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(r, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, r); done <- struct{}{} }()
	<-done
	c.Close()
	r.Close()
	l.mu.Lock()
	delete(l.conns, c)
	delete(l.conns, r)
	l.mu.Unlock()
}

func (l *link) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.up = false
	if l.ln != nil {
		l.ln.Close()
	}
	for c := range l.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset, as a link that went away would look on the next write
		}
		c.Close()
	}
	clear(l.conns)
}

func (l *link) accepted() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.firstAccept
}

// recovery is the outage scenario: the real agent with its default
// collectors and interval, delivering through a link to a relay → dev
// Kafka → saver → dev-es. The link goes down for the outage while the
// other phases run, and comes back with nothing else running.
type recovery struct {
	p           *pipeline
	agent       *proc
	agentHTTP   string
	host        string
	l           *link
	outage      time.Duration
	cutAt       time.Time
	appendedCut float64
}

type recoveryResult struct {
	Outage              float64 `json:"outage_s"`
	LiveRatePerS        float64 `json:"live_rate_metrics_per_s"`
	Backlog             float64 `json:"backlog_metrics"`
	ReconnectS          float64 `json:"reconnect_after_link_up_s"`
	FirstLiveSearchable float64 `json:"first_live_metric_searchable_after_link_up_s"`
	FirstLiveAge        float64 `json:"first_live_metric_generated_to_searchable_s"`
	DrainS              float64 `json:"backlog_drained_to_kafka_s"`
	DrainRatePerS       float64 `json:"drain_rate_metrics_per_s"`
	DrainMultiple       float64 `json:"drain_rate_vs_live"`
	BacklogSearchableS  float64 `json:"backlog_searchable_after_link_up_s"`
	ESDocs              float64 `json:"es_docs"`
	Appended            float64 `json:"agent_appended_metrics"`
}

func esCount(url, query string) (float64, error) {
	out, err := esDo("POST", url+"/falconet-metrics-*/_count", query)
	if err != nil {
		return 0, err
	}
	var r struct {
		Count float64 `json:"count"`
	}
	err = json.Unmarshal(out, &r)
	return r.Count, err
}

// firstTimestamp is the oldest timestamp (unix seconds) matching query.
func firstTimestamp(url, query string) (int64, error) {
	q := strings.Replace(query, `{"query"`, `{"size":1,"sort":[{"timestamp":"asc"}],"_source":["timestamp"],"query"`, 1)
	out, err := esDo("POST", url+"/falconet-metrics-*/_search", q)
	if err != nil {
		return 0, err
	}
	var r struct {
		Hits struct {
			Hits []struct {
				Source struct {
					Timestamp int64 `json:"timestamp"`
				} `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, err
	}
	if len(r.Hits.Hits) == 0 {
		return 0, errors.New("no hit")
	}
	return r.Hits.Hits[0].Source.Timestamp, nil
}

func startRecovery(b bins, dir string, outage time.Duration) (*recovery, error) {
	p, err := startPipeline(b, dir, "refresh_interval = \"1s\"\n")
	if err != nil {
		return nil, err
	}
	r := &recovery{p: p, outage: outage, host: fmt.Sprintf("pipebench-recovery-%d", time.Now().Unix())}
	if r.l, err = newLink(p.relay.addr); err != nil {
		p.stop()
		return nil, err
	}
	adir := filepath.Join(dir, "agent")
	_ = os.MkdirAll(adir, 0o755)
	r.agentHTTP = freeAddr()
	conf := filepath.Join(adir, "agent.toml")
	text := fmt.Sprintf("hostname = %q\n[http]\nlisten = %q\n[buffer]\npath = %q\n[relay]\naddresses = [%q]\n",
		r.host, r.agentHTTP, filepath.Join(adir, "buffer.db"), r.l.addr)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		r.stop()
		return nil, err
	}
	if r.agent, err = startProc("agent", b.agent, nil, nil, "-config", conf); err != nil {
		r.stop()
		return nil, err
	}
	// Live first: until the agent's metrics are searchable (first
	// collection comes within interval + jitter).
	q := fmt.Sprintf(`{"query":{"term":{"endpoint":%q}}}`, r.host)
	if err := waitFor(60*time.Second, "agent's first metrics searchable", func() bool {
		n, _ := esCount(p.esURL, q)
		return n > 0 || r.agent.exited()
	}); err != nil || r.agent.exited() {
		r.stop()
		return nil, fmt.Errorf("agent delivered nothing (%v): %s", err, r.agent.logs.String())
	}
	r.l.cut()
	r.cutAt = time.Now()
	r.appendedCut, _ = promValue(r.agentHTTP, "falconet_buffer_appended_metrics_total")
	logf("recovery: link down at %s for %v", r.cutAt.UTC().Format("15:04:05"), outage)
	return r, nil
}

func (r *recovery) stop() {
	if r.agent != nil {
		r.agent.stop()
	}
	if r.l != nil {
		r.l.cut()
	}
	r.p.stop()
}

// finish waits out the outage, restores the link and measures.
func (r *recovery) finish() (any, []figure, error) {
	defer r.stop()
	if wait := time.Until(r.cutAt.Add(r.outage)); wait > 0 {
		logf("recovery: waiting %v for the outage to end", wait.Round(time.Second))
		<-time.After(wait)
	}
	res := &recoveryResult{}
	appended, _ := promValue(r.agentHTTP, "falconet_buffer_appended_metrics_total")
	backlog, _ := promValue(r.agentHTTP, "falconet_buffer_metrics")
	downFor := time.Since(r.cutAt)
	res.Outage = downFor.Seconds()
	res.Backlog = backlog
	res.LiveRatePerS = (appended - r.appendedCut) / downFor.Seconds()
	if err := r.l.restore(); err != nil {
		return res, nil, err
	}
	up := time.Now()
	logf("recovery: link up after %.0f s; backlog %.0f metrics, live rate %.2f metrics/s", res.Outage, backlog, res.LiveRatePerS)
	liveQ := fmt.Sprintf(`{"query":{"bool":{"filter":[{"term":{"endpoint":%q}},{"range":{"timestamp":{"gte":%d}}}]}}}`, r.host, up.Unix()+1)
	allQ := fmt.Sprintf(`{"query":{"term":{"endpoint":%q}}}`, r.host)
	var drained, firstLive, backlogSearchable time.Time
	deadline := up.Add(3 * time.Minute)
	for time.Now().Before(deadline) && (drained.IsZero() || firstLive.IsZero() || backlogSearchable.IsZero()) {
		now := time.Now()
		if drained.IsZero() {
			if n, err := promValue(r.agentHTTP, "falconet_buffer_metrics"); err == nil && n < backlog/100+100 && !r.l.accepted().IsZero() {
				drained = now
			}
		}
		if firstLive.IsZero() {
			if n, err := esCount(r.p.esURL, liveQ); err == nil && n > 0 {
				firstLive = now
				// Its own delivery time: the wait for the agent's next
				// collection after link up is not the pipeline's.
				if ts, err := firstTimestamp(r.p.esURL, liveQ); err == nil {
					res.FirstLiveAge = float64(now.UnixMilli())/1000 - float64(ts)
				}
			}
		}
		if backlogSearchable.IsZero() {
			if n, err := esCount(r.p.esURL, allQ); err == nil && n >= appended {
				backlogSearchable = now
			}
		}
		<-time.After(25 * time.Millisecond)
	}
	reconnect := r.l.accepted()
	var err error
	if reconnect.IsZero() || drained.IsZero() || firstLive.IsZero() || backlogSearchable.IsZero() {
		err = fmt.Errorf("recovery incomplete after 3 min: reconnect %v, drained %v, first live %v, backlog searchable %v",
			!reconnect.IsZero(), !drained.IsZero(), !firstLive.IsZero(), !backlogSearchable.IsZero())
	}
	if !reconnect.IsZero() {
		res.ReconnectS = reconnect.Sub(up).Seconds()
	}
	if !drained.IsZero() && !reconnect.IsZero() {
		res.DrainS = drained.Sub(reconnect).Seconds()
		res.DrainRatePerS = backlog / max(res.DrainS, 0.025) // the poll interval bounds a very short drain
		res.DrainMultiple = res.DrainRatePerS / res.LiveRatePerS
	}
	if !firstLive.IsZero() {
		res.FirstLiveSearchable = firstLive.Sub(up).Seconds()
	}
	if !backlogSearchable.IsZero() {
		res.BacklogSearchableS = backlogSearchable.Sub(up).Seconds()
	}
	res.ESDocs, _ = esCount(r.p.esURL, allQ)
	res.Appended = appended
	logf("recovery: reconnect %.1f s, first live searchable %.1f s (%.1f s after it was generated), drained %.2f s after reconnect (%.0f metrics/s, %.0fx live), backlog searchable %.1f s",
		res.ReconnectS, res.FirstLiveSearchable, res.FirstLiveAge, res.DrainS, res.DrainRatePerS, res.DrainMultiple, res.BacklogSearchableS)
	note := fmt.Sprintf("real agent, default collectors and interval (%.1f metrics/s), link cut for %.0f s (connections reset, refused); agent reconnected %.1f s after link up (its backoff, backoff_max 10s); the first metric collected after link up was searchable %.1f s after its timestamp (whole seconds), the rest of the wait is the agent's next collection; saver refresh_interval 1s",
		res.LiveRatePerS, res.Outage, res.ReconnectS, res.FirstLiveAge)
	figs := []figure{
		{Name: "recovery: first live metric searchable after link up", Value: res.FirstLiveSearchable, Unit: "s",
			Anchor: "agent's collection interval (10 s)", AnchorVal: 10, Ratio: res.FirstLiveSearchable / 10, Goal: "none in issue 15", Note: note},
		{Name: "recovery: that metric, generated → searchable", Value: res.FirstLiveAge, Unit: "s",
			Goal: "none in issue 15", Note: "timestamps are whole seconds: ±1 s; compare the steady-state latency rows"},
		{Name: "recovery: backlog drain rate (agent → Kafka)", Value: res.DrainRatePerS, Unit: "metrics/s",
			Anchor: "live rate", AnchorVal: res.LiveRatePerS, Ratio: res.DrainMultiple, Goal: "none in issue 15",
			Note: fmt.Sprintf("backlog %.0f metrics drained in %.2f s after reconnect (agent buffer polled every 25 ms: a short drain makes this a lower bound); all searchable %.1f s after link up", res.Backlog, res.DrainS, res.BacklogSearchableS)},
	}
	return res, figs, err
}
