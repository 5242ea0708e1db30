// Package load generates a deterministic stream of metrics for the fault
// suite and the demo, and records exactly which of them were accepted.
//
// A stream is identified by its endpoint. Push number seq (0, 1, 2, ...)
// carries Series metrics named Name with tag s=000..Series-1, value seq and
// timestamp Start+seq. Given the log, anyone can rebuild every metric and its
// document id (see Stream.Metric).
//
// Push mode sends each push to the agent's local push API (POST /v1/push, an
// Open-Falcon JSON array). The agent answers 200 only once the metrics are
// durable in its buffer; anything else (503, connection refused while the
// agent restarts, a timeout) is retried with the same seq until it succeeds,
// so the accepted set is known exactly. Legacy mode writes the same metrics
// as Open-Falcon JSON lines to a relay's legacy port; there is no ack, so
// those are recorded as sent, not accepted.
//
// The log is a text file, one line per event, flushed as it goes:
//
//	# load endpoint=E name=N series=S start=T step=1
//	T seq                  attempt started (its outcome may be unknown)
//	A seq unixnano         accepted (HTTP 200) at that time
//	S seq unixnano         sent on the legacy port (no ack exists)
package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/falconet/falconet/metric"
)

// Stream describes a generated stream; it is what the log's header says.
type Stream struct {
	Endpoint string
	Name     string
	Series   int
	Start    int64 // timestamp of seq 0
}

// Metric returns metric s of push seq.
func (st Stream) Metric(seq int64, s int) metric.Metric {
	return metric.Metric{
		Endpoint:  st.Endpoint,
		Name:      st.Name,
		Value:     float64(seq),
		Timestamp: st.Start + seq,
		Step:      1,
		Type:      metric.Gauge,
		Tags:      map[string]string{"s": fmt.Sprintf("%03d", s)},
	}
}

// Metrics returns every metric of push seq.
func (st Stream) Metrics(seq int64) []metric.Metric {
	ms := make([]metric.Metric, st.Series)
	for s := range ms {
		ms[s] = st.Metric(seq, s)
	}
	return ms
}

func (st Stream) header() string {
	return fmt.Sprintf("# load endpoint=%s name=%s series=%d start=%d step=1\n", st.Endpoint, st.Name, st.Series, st.Start)
}

// Config configures a generator.
type Config struct {
	Stream
	// URL of the agent's push API, e.g. http://127.0.0.1:1988/v1/push.
	URL string
	// Legacy, if set, is a relay's legacy line-JSON address (host:4444); it
	// replaces URL.
	Legacy string
	// Rate is pushes per second (each of Series metrics).
	Rate float64
	// Count stops after that many accepted pushes; 0 runs until ctx ends.
	Count int64
	// Log receives the record (see the package doc).
	Log io.Writer
	// Timeout of one HTTP push (default 10s).
	Timeout time.Duration
}

// Stats are a generator's counters.
type Stats struct {
	Attempted int64  `json:"attempted_pushes"`
	Accepted  int64  `json:"accepted_pushes"`
	Metrics   int64  `json:"accepted_metrics"`
	Retries   int64  `json:"retries"`
	LastError string `json:"last_error,omitempty"`
}

// Generator pushes a stream.
type Generator struct {
	cfg    Config
	client *http.Client
	mu     sync.Mutex
	stats  Stats
	logw   *bufio.Writer
}

// ErrRejected means the agent refused a push as invalid (400): a bug in the
// generator or the agent, never retried.
var ErrRejected = errors.New("load: push rejected")

// New returns a generator.
func New(cfg Config) (*Generator, error) {
	if cfg.Endpoint == "" || cfg.Series <= 0 || cfg.Rate <= 0 {
		return nil, fmt.Errorf("load: endpoint, series and rate must be set (got %q, %d, %v)", cfg.Endpoint, cfg.Series, cfg.Rate)
	}
	if cfg.URL == "" && cfg.Legacy == "" {
		return nil, errors.New("load: URL or Legacy must be set")
	}
	if cfg.Name == "" {
		cfg.Name = "fault.load"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	g := &Generator{
		cfg: cfg,
		client: &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{
			MaxIdleConnsPerHost: 2, DisableCompression: true,
		}},
		logw: bufio.NewWriter(cfg.Log),
	}
	return g, nil
}

// Stats returns a copy of the counters.
func (g *Generator) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stats
}

func (g *Generator) record(line string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, err := g.logw.WriteString(line); err != nil {
		return err
	}
	// Flush every record: a SIGKILLed generator must leave a log that says
	// exactly what was accepted.
	return g.logw.Flush()
}

// Run generates until ctx ends or Count pushes were accepted. It returns nil
// on a clean stop.
func (g *Generator) Run(ctx context.Context) error {
	if err := g.record(g.cfg.header()); err != nil {
		return err
	}
	if g.cfg.Legacy != "" {
		return g.runLegacy(ctx)
	}
	interval := time.Duration(float64(time.Second) / g.cfg.Rate)
	begin := time.Now()
	for seq := int64(0); g.cfg.Count == 0 || seq < g.cfg.Count; seq++ {
		// Pace by schedule, not by the previous push: after an outage the
		// generator catches up at full speed, as a backlog of pushes would.
		if wait := time.Until(begin.Add(time.Duration(seq) * interval)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if err := g.pushRetry(ctx, seq); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	return nil
}

func (g *Generator) pushRetry(ctx context.Context, seq int64) error {
	body, err := g.body(seq)
	if err != nil {
		return err
	}
	if err := g.record(fmt.Sprintf("T %d\n", seq)); err != nil {
		return err
	}
	g.mu.Lock()
	g.stats.Attempted++
	g.mu.Unlock()
	backoff := 50 * time.Millisecond
	for {
		status, msg, err := g.push(ctx, body)
		if err == nil && status == http.StatusOK {
			g.mu.Lock()
			g.stats.Accepted++
			g.stats.Metrics += int64(g.cfg.Series)
			g.mu.Unlock()
			return g.record(fmt.Sprintf("A %d %d\n", seq, time.Now().UnixNano()))
		}
		if err == nil && status == http.StatusBadRequest {
			return fmt.Errorf("%w: seq %d: %s", ErrRejected, seq, msg)
		}
		g.mu.Lock()
		g.stats.Retries++
		if err != nil {
			g.stats.LastError = err.Error()
		} else {
			g.stats.LastError = fmt.Sprintf("HTTP %d: %s", status, msg)
		}
		g.mu.Unlock()
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(backoff*2, time.Second)
	}
}

func (g *Generator) body(seq int64) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, m := range g.cfg.Metrics(seq) {
		if i > 0 {
			b.WriteByte(',')
		}
		j, err := m.OpenFalconJSON()
		if err != nil {
			return nil, err
		}
		b.Write(j)
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}

func (g *Generator) push(ctx context.Context, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode, strings.TrimSpace(string(msg)), nil
}

// runLegacy writes Open-Falcon JSON lines to a relay's legacy port,
// reconnecting on error. Nothing is acked on that port: records say "sent".
func (g *Generator) runLegacy(ctx context.Context) error {
	interval := time.Duration(float64(time.Second) / g.cfg.Rate)
	begin := time.Now()
	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for seq := int64(0); g.cfg.Count == 0 || seq < g.cfg.Count; seq++ {
		if wait := time.Until(begin.Add(time.Duration(seq) * interval)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		body, err := g.body(seq)
		if err != nil {
			return err
		}
		body = append(body, '\n')
		for {
			if ctx.Err() != nil {
				return nil
			}
			if conn == nil {
				d := net.Dialer{Timeout: 2 * time.Second}
				conn, err = d.DialContext(ctx, "tcp", g.cfg.Legacy)
				if err != nil {
					g.mu.Lock()
					g.stats.Retries++
					g.stats.LastError = err.Error()
					g.mu.Unlock()
					t := time.NewTimer(200 * time.Millisecond)
					select {
					case <-ctx.Done():
						t.Stop()
						return nil
					case <-t.C:
					}
					continue
				}
			}
			conn.SetWriteDeadline(time.Now().Add(g.cfg.Timeout))
			if _, err = conn.Write(body); err != nil {
				conn.Close()
				conn = nil
				continue
			}
			break
		}
		g.mu.Lock()
		g.stats.Attempted++
		g.mu.Unlock()
		if err := g.record(fmt.Sprintf("S %d %d\n", seq, time.Now().UnixNano())); err != nil {
			return err
		}
	}
	return nil
}

// Record is a parsed log.
type Record struct {
	Stream
	// Accepted maps an accepted seq to the time it was accepted.
	Accepted map[int64]time.Time
	// Attempted holds every seq whose push was started (a superset of
	// Accepted; the difference may or may not be stored).
	Attempted map[int64]bool
	// Sent maps a legacy-mode seq to the time it was written.
	Sent map[int64]time.Time
}

// ReadLog parses a generator's log. A torn last line (the generator was
// killed mid-write) is ignored.
func ReadLog(path string) (*Record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseLog(data)
}

// ParseLog parses a log's bytes.
func ParseLog(data []byte) (*Record, error) {
	r := &Record{Accepted: map[int64]time.Time{}, Attempted: map[int64]bool{}, Sent: map[int64]time.Time{}}
	lines := strings.Split(string(data), "\n")
	// The last element is empty when the file ends in a newline, or a torn line.
	lines = lines[:len(lines)-1]
	headerSeen := false
	for i, line := range lines {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if f[0] == "#" {
			st, err := parseHeader(f[1:])
			if err != nil {
				return nil, fmt.Errorf("load log line %d: %w", i+1, err)
			}
			if headerSeen && st != r.Stream {
				return nil, fmt.Errorf("load log line %d: a different stream (%+v) appended to %+v", i+1, st, r.Stream)
			}
			r.Stream, headerSeen = st, true
			continue
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("load log line %d: %q", i+1, line)
		}
		seq, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("load log line %d: %q", i+1, line)
		}
		var at time.Time
		if len(f) >= 3 {
			ns, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("load log line %d: %q", i+1, line)
			}
			at = time.Unix(0, ns)
		}
		switch f[0] {
		case "T":
			r.Attempted[seq] = true
		case "A":
			r.Attempted[seq] = true
			r.Accepted[seq] = at
		case "S":
			r.Attempted[seq] = true
			r.Sent[seq] = at
		default:
			return nil, fmt.Errorf("load log line %d: %q", i+1, line)
		}
	}
	if !headerSeen {
		return nil, errors.New("load log: no header line")
	}
	return r, nil
}

func parseHeader(fields []string) (Stream, error) {
	var st Stream
	if len(fields) == 0 || fields[0] != "load" {
		return st, errors.New("header does not start with '# load'")
	}
	for _, kv := range fields[1:] {
		k, v, _ := strings.Cut(kv, "=")
		var err error
		switch k {
		case "endpoint":
			st.Endpoint = v
		case "name":
			st.Name = v
		case "series":
			st.Series, err = strconv.Atoi(v)
		case "start":
			st.Start, err = strconv.ParseInt(v, 10, 64)
		case "step":
		default:
			err = fmt.Errorf("unknown header key %q", k)
		}
		if err != nil {
			return st, err
		}
	}
	if st.Endpoint == "" || st.Series <= 0 {
		return st, errors.New("header lacks endpoint or series")
	}
	return st, nil
}
