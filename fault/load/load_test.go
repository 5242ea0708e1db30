package load

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/falconet/falconet/metric"
)

// TestRetryUntilAccepted: a push API that fails every other attempt with 503
// (as the agent does when its buffer cannot store) still ends with every seq
// accepted exactly once in the log, and the bodies are valid Open-Falcon JSON.
func TestRetryUntilAccepted(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	stored := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls%2 == 0 {
			http.Error(w, "buffer: full", http.StatusServiceUnavailable)
			return
		}
		ms, errs := metric.DecodeJSON(body, time.Now().Unix())
		if len(errs) > 0 {
			http.Error(w, errs[0].Error(), http.StatusBadRequest)
			return
		}
		for _, m := range ms {
			stored[m.DocID()]++
		}
	}))
	defer srv.Close()
	var log bytes.Buffer
	st := Stream{Endpoint: "gen-test", Series: 5, Start: time.Now().Unix() - 3600}
	g, err := New(Config{Stream: st, URL: srv.URL, Rate: 1000, Count: 40, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec, err := ParseLog(log.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(rec.Accepted), 40; got != want {
		t.Fatalf("accepted pushes: got %d, want %d", got, want)
	}
	if got := g.Stats(); got.Retries == 0 || got.Metrics != 200 {
		t.Fatalf("stats: got %+v, want retries > 0 and 200 metrics", got)
	}
	st.Name = "fault.load"
	if rec.Stream != st {
		t.Fatalf("stream from log: got %+v, want %+v", rec.Stream, st)
	}
	for seq := range rec.Accepted {
		for _, m := range rec.Metrics(seq) {
			if n := stored[m.DocID()]; n != 1 {
				t.Fatalf("seq %d %v stored %d times, want 1", seq, m.Tags, n)
			}
		}
	}
}

func TestRejectedIsFatal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad metric", http.StatusBadRequest)
	}))
	defer srv.Close()
	g, err := New(Config{Stream: Stream{Endpoint: "x", Series: 1}, URL: srv.URL, Rate: 100, Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Run(context.Background()); err == nil {
		t.Fatal("a 400 from the agent: got nil error, want ErrRejected")
	}
}

func TestParseLogTornLine(t *testing.T) {
	log := "# load endpoint=e name=n series=2 start=100 step=1\nT 0\nA 0 1700000000000000000\nT 1\nA 1 17000"
	rec, err := ParseLog([]byte(log))
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Accepted) != 1 || !rec.Attempted[1] {
		t.Fatalf("got accepted %v attempted %v, want seq 0 accepted and seq 1 only attempted", rec.Accepted, rec.Attempted)
	}
	if _, err := ParseLog([]byte("T 0\n")); err == nil {
		t.Fatal("a log without header: got nil error")
	}
}
