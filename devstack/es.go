package devstack

import (
	"crypto/tls"
	"log/slog"
	"testing"
	"time"

	"github.com/falconet/falconet/devstack/esserver"
)

// ESConfig configures the development Elasticsearch-compatible server.
type ESConfig struct {
	// Listen is host:port; port 0 picks a free port. Default "127.0.0.1:9200".
	Listen string
	// DataDir holds the bbolt data file; required unless Memory.
	DataDir string
	// Memory keeps everything in memory (tests).
	Memory bool
	Logger *slog.Logger
	// TLS, when set, serves HTTPS only (ServerTLS loads a certificate).
	TLS *tls.Config
	// Auth, when set, requires basic auth or an API key on every request,
	// as an Elasticsearch 8 node does by default.
	Auth *esserver.Auth
}

// ESFaults are injected failures: see esserver.Faults.
type ESFaults = esserver.Faults

// ES is a running dev-es server.
type ES struct {
	srv *esserver.Server
}

// StartESServer starts dev-es and returns once it listens.
func StartESServer(cfg ESConfig) (*ES, error) {
	srv, err := esserver.Start(esserver.Config{Listen: cfg.Listen, DataDir: cfg.DataDir, Memory: cfg.Memory, Logger: cfg.Logger,
		TLS: cfg.TLS, Auth: cfg.Auth})
	if err != nil {
		return nil, err
	}
	return &ES{srv: srv}, nil
}

// StartES starts an in-memory dev-es on a free loopback port for a test and
// closes it when the test ends.
func StartES(t testing.TB) *ES {
	t.Helper()
	e, err := StartESServer(ESConfig{Listen: "127.0.0.1:0", Memory: true})
	if err != nil {
		t.Fatalf("devstack: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// URL is the base URL, "http://127.0.0.1:PORT".
func (e *ES) URL() string { return e.srv.URL() }

// Addr is the host:port dev-es listens on.
func (e *ES) Addr() string { return e.srv.Addr() }

// Close stops the server and closes its data file; idempotent.
func (e *ES) Close() error { return e.srv.Close() }

// SetFaults replaces the injected faults (zero value: none).
func (e *ES) SetFaults(f ESFaults) { e.srv.SetFaults(f) }

// Faults returns the injected faults.
func (e *ES) Faults() ESFaults { return e.srv.Faults() }

// Stop stops listening and closes every connection (the "go away" fault);
// data stays. Start listens on the same address again.
func (e *ES) Stop() error { return e.srv.StopListening() }

// Start listens again after Stop, on the same address.
func (e *ES) Start() error { return e.srv.StartListening() }

// GoAway stops listening for d, then listens again on the same address.
func (e *ES) GoAway(d time.Duration) { e.srv.GoAway(d) }

// Server exposes the underlying server.
func (e *ES) Server() *esserver.Server { return e.srv }
