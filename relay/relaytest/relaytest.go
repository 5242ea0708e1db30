// Package relaytest starts real relays on loopback for tests (like
// net/http/httptest), reads back what they wrote to Kafka, and makes TLS
// certificates.
package relaytest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/falconet/falconet/relay"
)

// Relay is a relay running in-process on loopback ports.
type Relay struct {
	*relay.Server
	Config relay.Config
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Config returns a relay configuration for tests: loopback ports chosen by
// the kernel, the given broker, short timeouts.
func Config(brokers ...string) relay.Config {
	cfg := relay.DefaultConfig()
	cfg.ID = "relaytest"
	cfg.Listen = relay.ListenConfig{Protocol: "127.0.0.1:0", Legacy: "127.0.0.1:0", HTTP: "127.0.0.1:0"}
	cfg.Kafka.Brokers = brokers
	_ = cfg.Kafka.RetryBackoff.UnmarshalText([]byte("100ms"))
	_ = cfg.Kafka.Timeout.UnmarshalText([]byte("3s"))
	_ = cfg.Limits.ShutdownTimeout.UnmarshalText([]byte("10s"))
	cfg.Discovery.Bind = ""
	return cfg
}

// Start starts a relay with cfg, waits until it is ready (connected to
// Kafka) and stops it abruptly when the test ends.
func Start(t testing.TB, cfg relay.Config, logger *slog.Logger) *Relay {
	t.Helper()
	r := StartUnready(t, cfg, logger)
	WaitFor(t, 20*time.Second, "relay ready", func() bool { return r.Health() == nil })
	return r
}

// StartUnready starts a relay without waiting for Kafka.
func StartUnready(t testing.TB, cfg relay.Config, logger *slog.Logger) *Relay {
	t.Helper()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv, err := relay.New(cfg, logger, nil)
	if err != nil {
		t.Fatalf("relaytest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Relay{Server: srv, Config: cfg, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := srv.Run(ctx); err != nil {
			t.Errorf("relaytest: Run: %v", err)
		}
	}()
	t.Cleanup(r.Kill)
	return r
}

// Stop shuts the relay down gracefully (as on SIGTERM) and waits for it.
func (r *Relay) Stop() {
	r.cancel()
	<-r.done
}

// Kill stops the relay at once, without answering in-flight batches.
func (r *Relay) Kill() {
	r.once.Do(func() {
		_ = r.Server.Close()
		r.cancel()
		<-r.done
	})
}

// WaitFor polls cond every 10ms until it holds or the timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-time.After(10 * time.Millisecond)
	}
}

// Record is one Kafka record.
type Record struct {
	Key, Value []byte
	Partition  int32
	Offset     int64
}

// ReadTopic reads every partition of topic from the oldest offset with a
// sarama consumer until it has at least want records (then until 300ms pass
// with nothing new) or timeout passes.
func ReadTopic(t testing.TB, broker, topic string, want int, timeout time.Duration) []Record {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_1_0_0
	cfg.Consumer.Return.Errors = true
	c, err := sarama.NewConsumer([]string{broker}, cfg)
	if err != nil {
		t.Fatalf("relaytest: consumer: %v", err)
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		t.Fatalf("relaytest: partitions of %s: %v", topic, err)
	}
	out := make(chan Record, 4096)
	var pcs []sarama.PartitionConsumer
	for _, p := range parts {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("relaytest: consume %s/%d: %v", topic, p, err)
		}
		pcs = append(pcs, pc)
	}
	var wg sync.WaitGroup
	for _, pc := range pcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range pc.Messages() {
				out <- Record{Key: m.Key, Value: m.Value, Partition: m.Partition, Offset: m.Offset}
			}
		}()
	}
	var recs []Record
	deadline := time.After(timeout)
	quiet := time.NewTimer(time.Hour)
loop:
	for {
		select {
		case r := <-out:
			recs = append(recs, r)
			if len(recs) >= want {
				quiet.Reset(300 * time.Millisecond)
			}
		case <-quiet.C:
			break loop
		case <-deadline:
			break loop
		}
	}
	for _, pc := range pcs {
		pc.AsyncClose()
	}
	go func() {
		for range out {
		}
	}()
	wg.Wait()
	close(out)
	return recs
}

// CA is a test certificate authority.
type CA struct {
	Cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	CertPEM []byte
	Pool    *x509.CertPool
}

// NewCA makes a self-signed CA.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Cert: cert, key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), Pool: pool}
}

var serial sync.Mutex
var nextSerial int64 = 2

// Issue makes a certificate for a server (hosts are DNS names or IPs) or a
// client (no hosts), returning it and its PEM files written under dir.
func (ca *CA) Issue(t testing.TB, dir, name string, hosts ...string) (cert tls.Certificate, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial.Lock()
	sn := nextSerial
	nextSerial++
	serial.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(sn),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certFile, keyFile
}

// WriteCA writes the CA certificate under dir and returns the path.
func (ca *CA) WriteCA(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(p, ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
