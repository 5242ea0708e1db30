package main

import "testing"

func TestPromSum(t *testing.T) {
	page := `# HELP falconet_buffer_metrics Metrics stored.
# TYPE falconet_buffer_metrics gauge
falconet_buffer_metrics 150
falconet_buffer_metrics_total 7
falconet_agent_sender_connects_total{result="ok"} 3
falconet_agent_sender_connects_total{result="error"} 4
falconet_agent_sender_relay{addr="10.0.0.1:8433"} 1
falconet_agent_sender_relay{addr="10.0.0.2:8433"} 0
`
	for _, tc := range []struct {
		name string
		want float64
	}{
		{"falconet_buffer_metrics", 150}, // not the _total that shares its prefix
		{"falconet_agent_sender_connects_total", 7},
		{"falconet_missing", 0},
	} {
		if got := promSum(page, tc.name); got != tc.want {
			t.Errorf("promSum(%s): got %v, want %v", tc.name, got, tc.want)
		}
	}
	got := promLabeled(page, "falconet_agent_sender_relay")
	if len(got) != 2 || got[`addr="10.0.0.1:8433"`] != 1 || got[`addr="10.0.0.2:8433"`] != 0 {
		t.Errorf("promLabeled: got %v", got)
	}
	m := demoMember{Role: "agent"}
	if d := memberDetail(m, "\n"+page); d != `relay=10.0.0.1:8433 buffered=150` {
		t.Errorf("memberDetail: got %q", d)
	}
}
