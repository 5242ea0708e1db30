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

	"github.com/falconet/falconet/fault/check"
)

func init() {
	register("status", "show the running demo's members, relay choices, loads and buffer depths", runStatus)
}

func runStatus(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	statePath := fs.String("state", filepath.Join(defaultDemoDir(), "state.json"), "the demo's state file")
	if err := fs.Parse(args); err != nil {
		return err
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
	return printStatus(ctx, os.Stdout, st)
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
