package esserver

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Version is the Elasticsearch version dev-es reports.
const Version = "7.17.0"

const (
	clusterName = "falconet-dev"
	nodeName    = "falconet-dev-es"
	nodeID      = "ZmFsY29uZXQtZGV2LWVz"
	clusterUUID = "ZmFsY29uZXRkZXZjbHVzdGVy"
	maxBodySize = 100 << 20 // http.max_content_length
)

// Config configures a Server.
type Config struct {
	// Listen is host:port; port 0 picks a free port.
	Listen string
	// DataDir is where the bbolt file lives; required unless Memory.
	DataDir string
	// Memory keeps everything in memory (tests).
	Memory bool
	Logger *slog.Logger
	// TLS, when set, serves HTTPS only; Auth, when set, requires
	// credentials (auth.go).
	TLS  *tls.Config
	Auth *Auth
}

// Faults are injected failures, for tests of the clients' error handling.
type Faults struct {
	RejectFraction float64       // fraction of bulk items answered 429 es_rejected_execution_exception
	Latency        time.Duration // added to every request
	Unavailable    bool          // every request answers 503
	CloseConns     bool          // hijack and close connections without answering
	// RejectRequestFraction is the fraction of whole _bulk requests answered
	// HTTP 429 es_rejected_execution_exception (a full write queue).
	RejectRequestFraction float64
}

// ErrClosed is returned by methods of a closed Server.
var ErrClosed = errors.New("esserver: closed")

// Server is an Elasticsearch-compatible HTTP server.
type Server struct {
	cfg Config
	log *slog.Logger

	mu        sync.RWMutex // indices, templates
	indices   map[string]*index
	templates map[string]*indexTemplate
	legacy    map[string]*legacyTemplate

	writeMu sync.Mutex // serializes writes so memory and disk agree on order

	scrollMu sync.Mutex
	scrolls  map[string]*scrollCtx
	tasks    tasks // wait_for_completion=false
	st       *boltStore

	faults atomic.Pointer[Faults]
	rngMu  sync.Mutex
	rng    *mrand.Rand

	lnMu     sync.Mutex
	addr     string
	httpSrv  *http.Server
	serveErr chan error
	closed   bool

	wg   sync.WaitGroup
	stop chan struct{}
	now  func() time.Time
}

// Start opens the data directory (unless Memory), loads every index and
// starts serving on cfg.Listen.
func Start(cfg Config) (*Server, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:9200"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if !cfg.Memory && cfg.DataDir == "" {
		return nil, errors.New("esserver: data dir: empty (set DataDir or Memory)")
	}
	s := &Server{cfg: cfg, log: cfg.Logger, indices: map[string]*index{}, templates: map[string]*indexTemplate{},
		legacy: map[string]*legacyTemplate{}, stop: make(chan struct{}), now: time.Now,
		rng: mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 1))}
	s.faults.Store(&Faults{})
	if !cfg.Memory {
		st, err := openStore(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		s.st = st
		t0 := time.Now()
		if err := s.loadAll(); err != nil {
			_ = st.close()
			return nil, err
		}
		docs := 0
		for _, ix := range s.indices {
			docs += ix.live
		}
		s.log.Info("dev-es loaded", "indices", len(s.indices), "docs", docs, "took", time.Since(t0).Round(time.Millisecond))
	}
	if err := s.StartListening(); err != nil {
		if s.st != nil {
			_ = s.st.close()
		}
		return nil, err
	}
	s.wg.Add(1)
	go s.refresher()
	return s, nil
}

// URL is the base URL, "http://host:port".
func (s *Server) URL() string {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.cfg.TLS != nil {
		return "https://" + s.addr
	}
	return "http://" + s.addr
}

// Addr is the host:port the server listens on (or last listened on).
func (s *Server) Addr() string {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	return s.addr
}

// SetFaults replaces the injected faults.
func (s *Server) SetFaults(f Faults) { s.faults.Store(&f) }

// Faults returns the injected faults.
func (s *Server) Faults() Faults { return *s.faults.Load() }

// StopListening closes the listener and every open connection, as a server
// that went away; data is kept. StartListening binds the same address again.
func (s *Server) StopListening() error {
	s.lnMu.Lock()
	srv := s.httpSrv
	s.httpSrv = nil
	ch := s.serveErr
	s.lnMu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Close()
	<-ch
	return err
}

// StartListening binds the configured address (the same port after a
// StopListening) and serves.
func (s *Server) StartListening() error {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.httpSrv != nil {
		return nil
	}
	addr := s.cfg.Listen
	if s.addr != "" {
		addr = s.addr
	}
	var ln net.Listener
	var err error
	// the old socket may linger briefly after a stop
	for deadline := time.Now().Add(5 * time.Second); ; {
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		t := time.NewTimer(50 * time.Millisecond)
		<-t.C
	}
	if err != nil {
		return fmt.Errorf("esserver: listen %s: %w", addr, err)
	}
	s.addr = ln.Addr().String()
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	ch := make(chan error, 1)
	s.httpSrv, s.serveErr = srv, ch
	go func() { ch <- srv.Serve(ln) }()
	return nil
}

// GoAway stops listening for d, then listens again on the same address.
func (s *Server) GoAway(d time.Duration) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.StopListening(); err != nil {
			s.log.Warn("dev-es go away", "err", err)
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.stop:
			return
		}
		if err := s.StartListening(); err != nil && !errors.Is(err, ErrClosed) {
			s.log.Error("dev-es listen again", "err", err)
		}
	}()
}

// Close stops serving, waits for its goroutines and closes the data file.
// It is idempotent.
func (s *Server) Close() error {
	s.lnMu.Lock()
	if s.closed {
		s.lnMu.Unlock()
		return nil
	}
	s.closed = true
	s.lnMu.Unlock()
	close(s.stop)
	s.lnMu.Lock()
	srv, ch := s.httpSrv, s.serveErr
	s.httpSrv = nil
	s.lnMu.Unlock()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
		cancel()
		<-ch
	}
	s.wg.Wait()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.st != nil {
		return s.st.close()
	}
	return nil
}

// refresher makes writes searchable within each index's refresh_interval
// (1 s by default).
func (s *Server) refresher() {
	defer s.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.RLock()
		list := make([]*index, 0, len(s.indices))
		for _, ix := range s.indices {
			list = append(list, ix)
		}
		s.mu.RUnlock()
		s.scrollMu.Lock()
		s.expireScrollsLocked()
		s.scrollMu.Unlock()
		now := time.Now()
		for _, ix := range list {
			ix.mu.Lock()
			if ix.refreshEvery >= 0 && len(ix.overlay) > 0 && now.Sub(ix.lastRefresh) >= ix.refreshEvery-50*time.Millisecond {
				ix.refreshLocked()
			}
			ix.mu.Unlock()
		}
	}
}

// ---- HTTP plumbing ----

type request struct {
	filter filterPath
	w      http.ResponseWriter
	r      *http.Request
	q      url.Values
	parts  []string
	body   []byte
	pretty bool
	path   string
}

func (rq *request) param(k string) string { return rq.q.Get(k) }

func (rq *request) boolParam(k string, def bool) (bool, *esError) {
	v, ok := rq.q[k]
	if !ok {
		return def, nil
	}
	switch v[0] {
	case "", "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, errIllegalArgument("Failed to parse value [%s] as only [true] or [false] are allowed.", v[0])
}

// allow rejects URL parameters the endpoint does not know, as Elasticsearch does.
func (rq *request) allow(names ...string) *esError {
	var bad []string
	for k := range rq.q {
		switch k {
		case "pretty", "human", "error_trace", "filter_path":
			continue
		}
		ok := false
		for _, n := range names {
			if n == k {
				ok = true
				break
			}
		}
		if !ok {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	if len(bad) == 1 {
		return errIllegalArgument("request [%s] contains unrecognized parameter: [%s]", rq.path, bad[0])
	}
	return errIllegalArgument("request [%s] contains unrecognized parameters: [%s]", rq.path, strings.Join(bad, "], ["))
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r) {
		return
	}
	isAdmin := strings.HasPrefix(r.URL.Path, "/_falconet/")
	if !isAdmin {
		f := s.faults.Load()
		if f.Latency > 0 {
			t := time.NewTimer(f.Latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if f.CloseConns {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					_ = c.Close()
					return
				}
			}
		}
		if f.Unavailable {
			e := newErr(http.StatusServiceUnavailable, "cluster_block_exception", "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];")
			s.writeJSON(w, r, e.Status, e.body(), false)
			return
		}
	}
	rq := &request{w: w, r: r, q: r.URL.Query(), path: r.URL.Path}
	_, rq.pretty = rq.q["pretty"]
	p := strings.Trim(r.URL.Path, "/")
	if p != "" {
		for _, seg := range strings.Split(p, "/") {
			u, err := url.PathUnescape(seg)
			if err != nil {
				u = seg
			}
			rq.parts = append(rq.parts, u)
		}
	}
	body, err := readBody(r)
	if err != nil {
		var e *esError
		if errors.As(err, &e) {
			s.writeErr(rq, e)
			return
		}
		s.writeErr(rq, newErr(http.StatusBadRequest, "parse_exception", "%v", err))
		return
	}
	rq.body = body
	if !isAdmin && len(body) > 0 {
		if e := checkContentType(r.Header.Get("Content-Type")); e != nil {
			s.writeErr(rq, e)
			return
		}
	}
	if fp := rq.param("filter_path"); fp != "" {
		f, e := parseFilterPath(fp)
		if e != nil {
			s.writeErr(rq, e)
			return
		}
		rq.filter = f
	}
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("dev-es handler panic", "path", r.URL.Path, "panic", v)
			s.writeErr(rq, newErr(http.StatusInternalServerError, "exception", "dev-es internal error: %v", v))
		}
	}()
	if e := s.route(rq); e != nil {
		s.writeErr(rq, e)
	}
}

// checkContentType applies Elasticsearch's strict content-type check for
// requests with a body (406 for a missing or unknown type).
func checkContentType(ct string) *esError {
	if ct == "" {
		return &esError{Status: http.StatusNotAcceptable, Reason: "Content-Type header is missing"}
	}
	mt := strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
	switch mt {
	case "application/json", "application/x-ndjson", "application/vnd.elasticsearch+json", "application/vnd.elasticsearch+x-ndjson":
		return nil
	case "application/smile", "application/cbor", "application/yaml", "application/vnd.elasticsearch+smile",
		"application/vnd.elasticsearch+cbor", "application/vnd.elasticsearch+yaml":
		return errUnsupported("the content type [%s] (use application/json)", mt)
	}
	return &esError{Status: http.StatusNotAcceptable, Reason: fmt.Sprintf("Content-Type header [%s] is not supported", ct)}
}

func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	var rd io.Reader = http.MaxBytesReader(nil, r.Body, maxBodySize)
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, err
		}
		defer func() { _ = zr.Close() }()
		rd = io.LimitReader(zr, maxBodySize+1)
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, newErr(http.StatusRequestEntityTooLarge, "content_too_long_exception", "request body is too large")
		}
		return nil, err
	}
	if len(b) > maxBodySize {
		return nil, newErr(http.StatusRequestEntityTooLarge, "content_too_long_exception", "request body is too large")
	}
	return b, nil
}

func (s *Server) writeErr(rq *request, e *esError) {
	s.writeJSON(rq.w, rq.r, e.Status, e.body(), rq.pretty)
}

func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any, pretty bool) {
	var b []byte
	var err error
	if raw, ok := v.(json.RawMessage); ok {
		b = raw
	} else if pretty {
		b, err = json.MarshalIndent(v, "", "  ")
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"type":"exception","reason":"dev-es could not encode the response"},"status":500}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=UTF-8")
	h.Set("X-elastic-product", "Elasticsearch")
	h.Set("Content-Length", fmt.Sprint(len(b)+1))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
		_, _ = w.Write([]byte{'\n'})
	}
}

func (s *Server) ok(rq *request, status int, v any) *esError {
	if rq.filter != nil {
		var b []byte
		if raw, isRaw := v.(json.RawMessage); isRaw {
			b = raw
		} else {
			var err error
			if b, err = json.Marshal(v); err != nil {
				return newErr(500, "exception", "dev-es: encoding the response: %v", err)
			}
		}
		v = json.RawMessage(rq.filter.apply(b))
		if rq.pretty {
			var pv any
			_ = json.Unmarshal(v.(json.RawMessage), &pv)
			v = pv
		}
	}
	s.writeJSON(rq.w, rq.r, status, v, rq.pretty)
	return nil
}

// head answers a HEAD existence check: 200 or 404, no body.
func (s *Server) head(rq *request, found bool) *esError {
	h := rq.w.Header()
	h.Set("Content-Type", "application/json; charset=UTF-8")
	h.Set("X-elastic-product", "Elasticsearch")
	h.Set("Content-Length", "0")
	if found {
		rq.w.WriteHeader(http.StatusOK)
	} else {
		rq.w.WriteHeader(http.StatusNotFound)
	}
	return nil
}

func methodNotAllowed(rq *request, allowed ...string) *esError {
	rq.w.Header().Set("Allow", strings.Join(allowed, ","))
	return &esError{Status: http.StatusMethodNotAllowed, Type: "", Reason: fmt.Sprintf("Incorrect HTTP method for uri [%s] and method [%s], allowed: [%s]", rq.r.URL.RequestURI(), rq.r.Method, strings.Join(allowed, ", "))}
}

func newUUID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])[:20]
}

func (s *Server) randFloat() float64 {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64()
}

func (s *Server) handleRoot(rq *request) *esError {
	if e := rq.allow(); e != nil {
		return e
	}
	return s.ok(rq, 200, map[string]any{
		"name": nodeName, "cluster_name": clusterName, "cluster_uuid": clusterUUID,
		"version": map[string]any{
			"number": Version, "build_flavor": "default", "build_type": "tar",
			"build_hash": "bee86328705acaa9a6daede7140defd4d9ec56bd", "build_date": "2022-01-28T08:36:04.875279988Z",
			"build_snapshot": false, "lucene_version": "8.11.1",
			"minimum_wire_compatibility_version": "6.8.0", "minimum_index_compatibility_version": "6.0.0-beta1",
		},
		"tagline": "You Know, for Search",
	})
}

// handleHealth is the cluster health API ("Cluster health API"): level
// cluster|indices|shards, wait_for_status, wait_for_nodes,
// wait_for_active_shards (a single node never assigns replicas), timeout
// (408 with timed_out: true).
func (s *Server) handleHealth(rq *request) *esError {
	if e := rq.allow("wait_for_status", "timeout", "level", "local", "master_timeout", "wait_for_active_shards", "wait_for_nodes", "wait_for_events", "wait_for_no_relocating_shards", "wait_for_no_initializing_shards", "expand_wildcards"); e != nil {
		return e
	}
	want := rq.param("wait_for_status")
	rank := map[string]int{"green": 0, "yellow": 1, "red": 2}
	if _, ok := rank[want]; want != "" && !ok {
		return errIllegalArgument("unknown cluster health status [%s]", want)
	}
	level := rq.param("level")
	if level != "" && level != "cluster" && level != "indices" && level != "shards" {
		return errIllegalArgument("level must be one of [cluster, indices, shards] but was [%s]", level)
	}
	nodesOK, e := waitForNodes(rq.param("wait_for_nodes"))
	if e != nil {
		return e
	}
	for _, b := range []string{"wait_for_no_relocating_shards", "wait_for_no_initializing_shards", "local"} {
		if _, e := rq.boolParam(b, false); e != nil {
			return e
		}
	}
	if w := rq.param("wait_for_events"); w != "" {
		switch w {
		case "immediate", "urgent", "high", "normal", "low", "languid":
		default:
			return errIllegalArgument("No enum constant org.elasticsearch.common.Priority.%s", strings.ToUpper(w))
		}
	}
	activeShards := rq.param("wait_for_active_shards")
	if activeShards != "" && activeShards != "all" {
		if n, err := strconv.Atoi(activeShards); err != nil || n < 0 {
			return errIllegalArgument("failed to parse wait_for_active_shards [%s]", activeShards)
		}
	}
	timeout := 30 * time.Second
	if t := rq.param("timeout"); t != "" {
		d, err := parseTimeValue(t)
		if err != nil {
			return err
		}
		timeout = d
	}
	expr := "_all"
	if len(rq.parts) == 3 {
		expr = rq.parts[2]
	}
	deadline := time.Now().Add(timeout)
	for {
		list, e := s.indexList(rq, expr, resolveOpts{closed: true, expand: map[string]bool{"open": true, "closed": true}})
		if e != nil {
			return e
		}
		status, prim, unassigned := clusterHealth(list)
		timedOut := want != "" && rank[status] > rank[want] || !nodesOK
		switch {
		case activeShards == "all":
			timedOut = timedOut || unassigned > 0
		case activeShards != "":
			n, _ := strconv.Atoi(activeShards)
			timedOut = timedOut || n > prim
		}
		if timedOut && time.Now().Before(deadline) {
			t := time.NewTimer(100 * time.Millisecond)
			select {
			case <-t.C:
				continue
			case <-rq.r.Context().Done():
				t.Stop()
				return nil
			}
		}
		code := 200
		if timedOut {
			code = http.StatusRequestTimeout
		}
		pct := 100.0
		if prim+unassigned > 0 {
			pct = float64(prim) * 100 / float64(prim+unassigned)
		}
		out := map[string]any{
			"cluster_name": clusterName, "status": status, "timed_out": timedOut,
			"number_of_nodes": 1, "number_of_data_nodes": 1,
			"active_primary_shards": prim, "active_shards": prim, "relocating_shards": 0,
			"initializing_shards": 0, "unassigned_shards": unassigned, "delayed_unassigned_shards": 0,
			"number_of_pending_tasks": 0, "number_of_in_flight_fetch": 0, "task_max_waiting_in_queue_millis": 0,
			"active_shards_percent_as_number": pct,
		}
		if level == "indices" || level == "shards" {
			out["indices"] = healthIndices(list, level == "shards")
		}
		return s.ok(rq, code, out)
	}
}

// waitForNodes evaluates wait_for_nodes ("N", ">=N", "<=N", ">N", "<N",
// "ge(N)", "le(N)", "gt(N)", "lt(N)") against dev-es's one node.
func waitForNodes(v string) (bool, *esError) {
	if v == "" {
		return true, nil
	}
	op, num := "==", v
	for _, p := range []struct{ pre, op string }{{">=", ">="}, {"<=", "<="}, {">", ">"}, {"<", "<"}, {"ge(", ">="}, {"le(", "<="}, {"gt(", ">"}, {"lt(", "<"}} {
		if strings.HasPrefix(v, p.pre) {
			op, num = p.op, strings.TrimSuffix(strings.TrimPrefix(v, p.pre), ")")
			break
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return false, errIllegalArgument("failed to parse wait_for_nodes [%s]", v)
	}
	switch op {
	case ">=":
		return 1 >= n, nil
	case "<=":
		return 1 <= n, nil
	case ">":
		return 1 > n, nil
	case "<":
		return 1 < n, nil
	}
	return n == 1, nil
}

type adminFaults struct {
	RejectFraction        *float64 `json:"reject_fraction"`
	RejectRequestFraction *float64 `json:"reject_request_fraction"`
	Latency               *string  `json:"latency"`
	Unavailable           *bool    `json:"unavailable"`
	CloseConns            *bool    `json:"close_conns"`
}

func faultsJSON(f Faults) map[string]any {
	return map[string]any{"reject_fraction": f.RejectFraction, "reject_request_fraction": f.RejectRequestFraction,
		"latency": f.Latency.String(), "unavailable": f.Unavailable, "close_conns": f.CloseConns}
}

// handleAdmin serves dev-es's own endpoints (never faulted):
//
//	GET  /_falconet/faults                   current faults
//	PUT  /_falconet/faults                   {"reject_fraction":0.1,"latency":"200ms","unavailable":false,"close_conns":false}
//	                                         (fields left out are reset to zero)
//	POST /_falconet/go_away?duration=5s      stop listening for the duration, then listen again
func (s *Server) handleAdmin(rq *request) *esError {
	if len(rq.parts) != 2 {
		return noHandler(rq)
	}
	switch rq.parts[1] {
	case "faults":
		switch rq.r.Method {
		case "GET":
			return s.ok(rq, 200, faultsJSON(s.Faults()))
		case "PUT", "POST":
			var af adminFaults
			dec := json.NewDecoder(bytes.NewReader(rq.body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&af); err != nil {
				return errIllegalArgument("faults: %v", err)
			}
			var f Faults
			if af.RejectFraction != nil {
				if *af.RejectFraction < 0 || *af.RejectFraction > 1 || math.IsNaN(*af.RejectFraction) {
					return errIllegalArgument("faults: reject_fraction must be within [0, 1]")
				}
				f.RejectFraction = *af.RejectFraction
			}
			if af.RejectRequestFraction != nil {
				if *af.RejectRequestFraction < 0 || *af.RejectRequestFraction > 1 || math.IsNaN(*af.RejectRequestFraction) {
					return errIllegalArgument("faults: reject_request_fraction must be within [0, 1]")
				}
				f.RejectRequestFraction = *af.RejectRequestFraction
			}
			if af.Latency != nil && *af.Latency != "" {
				d, err := time.ParseDuration(*af.Latency)
				if err != nil || d < 0 {
					return errIllegalArgument("faults: latency: %q is not a duration like \"200ms\"", *af.Latency)
				}
				f.Latency = d
			}
			if af.Unavailable != nil {
				f.Unavailable = *af.Unavailable
			}
			if af.CloseConns != nil {
				f.CloseConns = *af.CloseConns
			}
			s.SetFaults(f)
			s.log.Info("dev-es faults set", "reject_fraction", f.RejectFraction, "reject_request_fraction", f.RejectRequestFraction, "latency", f.Latency, "unavailable", f.Unavailable, "close_conns", f.CloseConns)
			return s.ok(rq, 200, faultsJSON(f))
		}
		return methodNotAllowed(rq, "GET", "PUT", "POST")
	case "go_away":
		if rq.r.Method != "POST" {
			return methodNotAllowed(rq, "POST")
		}
		d, err := time.ParseDuration(rq.param("duration"))
		if err != nil || d <= 0 {
			return errIllegalArgument("go_away: duration=%q is not a positive duration like \"5s\"", rq.param("duration"))
		}
		s.log.Info("dev-es going away", "duration", d)
		if e := s.ok(rq, 200, map[string]any{"acknowledged": true, "duration": d.String()}); e != nil {
			return e
		}
		if f, ok := rq.w.(http.Flusher); ok {
			f.Flush()
		}
		s.GoAway(d)
		return nil
	}
	return noHandler(rq)
}
