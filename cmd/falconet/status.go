package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/falconet/falconet/discovery"
	"github.com/falconet/falconet/fault/check"
	"github.com/falconet/falconet/internal/version"
)

func init() {
	register("status", "show the pool's members (-seed HOST:7946) or the running demo's: relay choices, loads, buffer depths", runStatus)
}

func runStatus(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	statePath := fs.String("state", filepath.Join(defaultDemoDir(), "state.json"), "the demo's state file (without -seed)")
	seeds := fs.String("seed", "", "gossip address of a pool member, HOST:7946 (comma-separated for several): show the pool")
	key := fs.String("key", "", "gossip key (base64), when the pool is encrypted")
	keyFile := fs.String("key-file", "", "file holding the gossip key")
	asJSON := fs.Bool("json", false, "print the members as JSON (with -seed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *seeds != "" {
		k := *key
		if *keyFile != "" {
			b, err := os.ReadFile(*keyFile)
			if err != nil {
				return exitError{code: 2, msg: fmt.Sprintf("-key-file: %v", err)}
			}
			k = strings.TrimSpace(string(b))
		}
		return poolStatus(os.Stdout, strings.Split(*seeds, ","), k, *asJSON)
	}
	b, err := os.ReadFile(*statePath)
	if err != nil {
		return exitError{code: 1, msg: fmt.Sprintf("no running demo found (%v); start one with `falconet demo`", err)}
	}
	var st demoState
	if err := json.Unmarshal(b, &st); err != nil {
		return exitError{code: 1, msg: fmt.Sprintf("%s: %v", *statePath, err)}
	}
	if syscall.Kill(st.Pid, 0) != nil {
		return exitError{code: 1, msg: fmt.Sprintf("the demo (pid %d) recorded in %s is not running", st.Pid, *statePath)}
	}
	if err := printStatus(ctx, os.Stdout, st); err != nil {
		return err
	}
	if len(st.Seeds) > 0 {
		fmt.Printf("\ngossip pool (falconet status -seed %s -key ...):\n", strings.Join(st.Seeds, ","))
		return poolStatus(os.Stdout, st.Seeds, st.GossipKey, false)
	}
	return nil
}

// poolMember is one line of `falconet status -seed` (and its -json form).
type poolMember struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	Gossip  string `json:"gossip"`
	Version string `json:"version,omitempty"`
	// Relays.
	Address        string  `json:"address,omitempty"`
	Ready          *bool   `json:"ready,omitempty"`
	Draining       bool    `json:"draining,omitempty"`
	Agents         *int    `json:"agents,omitempty"`
	MaxAgents      int     `json:"max_agents,omitempty"`
	InflightBytes  int64   `json:"inflight_bytes,omitempty"`
	ProduceLatency float64 `json:"produce_latency_ms,omitempty"`
	// Agents.
	Relay        string `json:"relay,omitempty"`
	Backlog      *int64 `json:"backlog_batches,omitempty"`
	BacklogBytes int64  `json:"backlog_bytes,omitempty"`
	Update       string `json:"update,omitempty"`        // self-update state: installed, committed, trial
	LastRollback string `json:"last_rollback,omitempty"` // "2.2.0 hung"
}

// poolStatus joins the gossip pool briefly through seeds and prints every
// member: relays with readiness and load, agents with the relay they use and
// their buffer backlog.
func poolStatus(w io.Writer, seeds []string, key string, asJSON bool) error {
	cfg := discovery.Config{Name: fmt.Sprintf("status/%s/%d", hostname(), os.Getpid()), Seeds: seeds, Version: version.Version}
	if key != "" {
		cfg.Keys = []string{key}
	}
	if err := cfg.Validate("status"); err != nil {
		return exitError{code: 2, msg: strings.Replace(err.Error(), "status.keys[0]", "-key", 1)}
	}
	members, err := discovery.Observe(cfg, nil)
	if err != nil {
		return exitError{code: 1, msg: err.Error()}
	}
	var out []poolMember
	for _, m := range members {
		pm := poolMember{Name: m.Name, Role: m.Meta.Role, Gossip: m.Addr, Version: m.Meta.Version}
		switch m.Meta.Role {
		case discovery.RoleRelay:
			ready, agents := m.Meta.Ready, m.Meta.Agents
			pm.Address, pm.Ready, pm.Draining, pm.Agents, pm.MaxAgents = m.Meta.Addr, &ready, m.Meta.Draining, &agents, m.Meta.MaxAgents
			pm.InflightBytes, pm.ProduceLatency = m.Meta.InflightBytes, m.Meta.ProduceMs
		case discovery.RoleAgent:
			backlog := m.Meta.Backlog
			pm.Relay, pm.Backlog, pm.BacklogBytes = m.Meta.Relay, &backlog, m.Meta.BacklogBytes
			pm.Update, pm.LastRollback = m.Meta.Update, m.Meta.Rollback
		}
		out = append(out, pm)
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tROLE\tADDRESS\tVERSION\tSTATE\tDETAIL")
	relays, agents := 0, 0
	for _, m := range out {
		addr, state, detail := m.Gossip, "", ""
		switch m.Role {
		case discovery.RoleRelay:
			relays++
			addr = m.Address
			state = "ready"
			if m.Draining {
				state = "draining"
			} else if !*m.Ready {
				state = "not-ready"
			}
			detail = fmt.Sprintf("agents=%d/%d inflight=%s produce=%.1fms gossip=%s", *m.Agents, m.MaxAgents,
				humanBytes(m.InflightBytes), m.ProduceLatency, m.Gossip)
		case discovery.RoleAgent:
			agents++
			state = "connected"
			if m.Relay == "" {
				state = "disconnected"
			}
			detail = fmt.Sprintf("relay=%s backlog=%d batches (%s)", cmpOr(m.Relay, "-"), *m.Backlog, humanBytes(m.BacklogBytes))
			if m.Update != "" {
				detail += " update=" + m.Update
			}
			if m.LastRollback != "" {
				detail += " rolled-back=" + strings.ReplaceAll(m.LastRollback, " ", ":")
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, cmpOr(m.Role, "?"), addr, cmpOr(m.Version, "-"), cmpOr(state, "-"), detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d relays, %d agents, %d members (besides this query)\n", relays, agents, len(out))
	return nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

func hostname() string {
	h, _ := os.Hostname()
	return cmpOr(h, "localhost")
}

func printStatus(ctx context.Context, w io.Writer, st demoState) error {
	fmt.Fprintf(w, "falconet demo, pid %d, up %s, dir %s\n\n", st.Pid, time.Since(st.Started).Round(time.Second), st.Dir)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tROLE\tADDRESS\tPID\tHEALTH\tDETAIL")
	for _, m := range st.Members {
		alive := syscall.Kill(m.Pid, 0) == nil
		health := "down"
		detail := ""
		if alive {
			health = "running"
		}
		switch {
		case !alive:
		case m.Role == "es":
			// Elasticsearch has no /healthz: its cluster health says it.
			var h struct {
				Status string `json:"status"`
			}
			if body, err := fetch(m.HTTP + "/_cluster/health"); err != nil || json.Unmarshal([]byte(body), &h) != nil {
				health = "unhealthy"
			} else {
				health = "ok"
				detail = "cluster=" + h.Status
			}
		case m.HTTP == "":
			// Kafka: a TCP connect is all there is to ask.
			if c, err := net.DialTimeout("tcp", m.Addr, 2*time.Second); err == nil {
				c.Close()
				health = "ok"
			} else {
				health = "unreachable"
			}
		}
		if m.HTTP != "" && alive && m.Role != "es" {
			if _, err := fetch(m.HTTP + "/healthz"); err == nil {
				health = "ok"
			} else {
				health = "unhealthy"
			}
			page, err := fetch(m.HTTP + "/metrics")
			if err == nil {
				detail = memberDetail(m, page)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", m.Name, m.Role, m.Addr, m.Pid, health, detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	es := &check.ES{URL: st.ES}
	if n, err := es.CountAll(ctx); err == nil {
		fmt.Fprintf(w, "\nElasticsearch: %d metric documents\n", n)
	} else {
		fmt.Fprintf(w, "\nElasticsearch: %v\n", err)
	}
	return nil
}

// memberDetail summarizes a daemon's /metrics page in one line.
func memberDetail(m demoMember, page string) string {
	var parts []string
	add := func(label, name string) {
		if strings.Contains(page, "\n"+name) {
			parts = append(parts, fmt.Sprintf("%s=%.0f", label, promSum(page, name)))
		}
	}
	switch m.Role {
	case "agent":
		add("connected", "falconet_agent_sender_connected")
		if rel := promLabeled(page, "falconet_agent_sender_relay"); len(rel) > 0 {
			for labels, v := range rel {
				if v == 1 {
					parts = append(parts, "relay="+strings.Trim(strings.TrimPrefix(labels, "addr="), `"`))
				}
			}
		}
		add("buffered", "falconet_buffer_metrics")
		add("buffer-bytes", "falconet_buffer_bytes")
		add("acked", "falconet_agent_sender_metrics_acked_total")
		add("dropped", "falconet_buffer_dropped_metrics_total")
		add("backfill", "falconet_buffer_backfill")
	case "relay":
		add("agents", "falconet_relay_agent_connections")
		add("ready", "falconet_relay_ready")
		add("kafka-acked", "falconet_relay_kafka_records_acked_total")
		add("inflight-bytes", "falconet_relay_inflight_bytes")
	case "saver":
		add("consumed", "falconet_saver_records_consumed_total")
		add("stored", "falconet_saver_docs_stored_total")
		add("es-up", "falconet_saver_elasticsearch_up")
		add("dead-letters", "falconet_saver_dead_letters_total")
	}
	return strings.Join(parts, " ")
}
