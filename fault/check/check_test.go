package check

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/fault/load"
	"github.com/falconet/falconet/metric"
)

// bulk indexes docs as the saver does: index by the metric's own day, _id =
// DocID, source = canonical JSON.
func bulk(t *testing.T, url string, items []struct {
	index string
	id    string
	m     metric.Metric
}) {
	t.Helper()
	var b bytes.Buffer
	for _, it := range items {
		b.WriteString(`{"index":{"_index":"` + it.index + `","_id":"` + it.id + `"}}` + "\n")
		j, err := it.m.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	resp, err := http.Post(url+"/_bulk?refresh=true", "application/x-ndjson", &b)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("bulk: HTTP %d", resp.StatusCode)
	}
}

// TestCheck plants every kind of problem the checker must find in a real
// (dev) Elasticsearch and compares its counts.
func TestCheck(t *testing.T) {
	es := devstack.StartES(t)
	st := load.Stream{Endpoint: "chk", Name: "fault.load", Series: 3, Start: time.Now().Add(-3 * time.Hour).Unix()}
	rec := &load.Record{Stream: st, Accepted: map[int64]time.Time{}, Attempted: map[int64]bool{}, Sent: map[int64]time.Time{}}
	for seq := int64(0); seq < 10; seq++ {
		rec.Attempted[seq] = true
		if seq < 9 { // seq 9 attempted, outcome unknown
			rec.Accepted[seq] = time.Now()
		}
	}
	type item = struct {
		index string
		id    string
		m     metric.Metric
	}
	var items []item
	for seq := int64(0); seq < 10; seq++ {
		for s := 0; s < st.Series; s++ {
			m := st.Metric(seq, s)
			switch {
			case seq == 2 && s == 1: // missing
				continue
			case seq == 3 && s == 0: // wrong index
				items = append(items, item{"falconet-metrics-1999.01.01", m.DocID(), m})
				continue
			case seq == 4 && s == 2: // wrong value under the right id
				bad := m
				bad.Value = -1
				items = append(items, item{"falconet-metrics-" + m.Day(), m.DocID(), bad})
				continue
			case seq == 5 && s == 0: // the same id in a second index
				items = append(items, item{"falconet-metrics-2000.01.01", m.DocID(), m})
			case seq == 6 && s == 0: // the same series and time under another id
				items = append(items, item{"falconet-metrics-" + m.Day(), strings.Repeat("0", 32), m})
			}
			items = append(items, item{"falconet-metrics-" + m.Day(), m.DocID(), m})
		}
	}
	bulk(t, es.URL(), items)
	c := &ES{URL: es.URL()}
	got, err := c.CheckAll(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	want := Result{Generated: 27, Stored: 24, Missing: 1, Duplicated: 2, Misplaced: 2, Uncertain: 3}
	if got.Generated != want.Generated || got.Stored != want.Stored || got.Missing != want.Missing ||
		got.Duplicated != want.Duplicated || got.Misplaced != want.Misplaced || got.Uncertain != want.Uncertain {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	if got.OK() {
		t.Fatal("OK() with problems planted")
	}
	missing := st.Metric(2, 1)
	if want := fmt.Sprintf("%s@%d", missing.SeriesKey(), missing.Timestamp); !strings.Contains(got.String(), want) {
		t.Errorf("report does not name the missing %s: %s", want, got)
	}
	// And a clean store checks clean.
	es2 := devstack.StartES(t)
	items = items[:0]
	for seq := int64(0); seq < 9; seq++ {
		for s := 0; s < st.Series; s++ {
			m := st.Metric(seq, s)
			items = append(items, item{"falconet-metrics-" + m.Day(), m.DocID(), m})
		}
	}
	bulk(t, es2.URL(), items)
	got, err = (&ES{URL: es2.URL()}).CheckAll(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	if !got.OK() || got.Stored != 27 {
		t.Fatalf("clean store: got %s, want 27 stored and OK", got)
	}
}
