package devstack

import (
	"crypto/tls"
	"fmt"
	"testing"

	"github.com/falconet/falconet/devstack/devcert"
)

// ServerTLS loads a server certificate and key into a TLS configuration for
// the dev servers' secured mode.
func ServerTLS(certFile, keyFile string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("devstack: tls: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// SecureKafka is a dev broker with TLS and SASL on, and the certificate
// files a client needs (Certs.CA to trust it; Certs.ClientCert/ClientKey are
// signed by the same CA).
type SecureKafka struct {
	*Kafka
	Certs devcert.Files
}

// StartSecureKafkaT starts an in-memory broker on a free loopback port that
// speaks only TLS (a fresh CA; the certificate is valid for localhost and
// 127.0.0.1) and requires SASL as one of users. It stops when the test ends.
func StartSecureKafkaT(t testing.TB, users []SASLUser, topics ...string) *SecureKafka {
	t.Helper()
	certs, err := devcert.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatalf("devstack: %v", err)
	}
	tc, err := ServerTLS(certs.ServerCert, certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	k, err := StartKafka(KafkaConfig{Listen: "127.0.0.1:0", Topics: topics, TLS: tc, SASL: users})
	if err != nil {
		t.Fatalf("devstack: %v", err)
	}
	t.Cleanup(k.Close)
	return &SecureKafka{Kafka: k, Certs: certs}
}
