package promtext

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

const page = `# HELP falconet_buffer_metrics Metrics stored.
# TYPE falconet_buffer_metrics gauge
falconet_buffer_metrics 150
falconet_buffer_metrics_total 7
falconet_agent_sender_connects_total{result="ok"} 3
falconet_agent_sender_connects_total{result="error"} 4
falconet_agent_sender_relay{addr="10.0.0.1:8433"} 1
falconet_agent_sender_relay{addr="10.0.0.2:8433"} 0
`

func TestSumLabeledHas(t *testing.T) {
	for _, tc := range []struct {
		name string
		want float64
		has  bool
	}{
		{"falconet_buffer_metrics", 150, true}, // not the _total that shares its prefix
		{"falconet_agent_sender_connects_total", 7, true},
		{"falconet_missing", 0, false},
		{"falconet_buffer", 0, false},
	} {
		if got := Sum(page, tc.name); got != tc.want {
			t.Errorf("Sum(%s): got %v, want %v", tc.name, got, tc.want)
		}
		if got := Has(page, tc.name); got != tc.has {
			t.Errorf("Has(%s): got %v, want %v", tc.name, got, tc.has)
		}
	}
	got := Labeled(page, "falconet_agent_sender_relay")
	if len(got) != 2 || got[`addr="10.0.0.1:8433"`] != 1 || got[`addr="10.0.0.2:8433"`] != 0 {
		t.Errorf("Labeled: got %v, want the two relays with 1 and 0", got)
	}
}

func TestScrape(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.Error(w, "no", http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte(page))
	}))
	defer srv.Close()
	ctx := context.Background()
	if v, err := Scrape(ctx, srv.URL+"/metrics", "falconet_buffer_metrics"); err != nil || v != 150 {
		t.Errorf("Scrape: got %v, %v; want 150, nil", v, err)
	}
	if _, err := Scrape(ctx, srv.URL+"/metrics", "falconet_nope"); !errors.Is(err, ErrNotExposed) {
		t.Errorf("Scrape of an absent name: got %v, want ErrNotExposed", err)
	}
	if _, err := Scrape(ctx, srv.URL+"/other", "falconet_buffer_metrics"); err == nil {
		t.Error("Scrape of a 404: got nil error, want one")
	}
}
