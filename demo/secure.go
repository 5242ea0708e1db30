package demo

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/falconet/falconet/devstack/devcert"
)

// secure is the -secure demo's material: a fresh CA with a certificate for
// 127.0.0.1 that the dev Kafka, dev-es and the relays' agent port present,
// and random secrets in files (mode 0600) that the configurations point
// at: the agents' token, the relays' and saver's SCRAM-SHA-512 password,
// the saver's Elasticsearch API key. A nil *secure is the plain demo: every
// method returns nothing to add.
type secure struct {
	dir                       string
	certs                     devcert.Files
	token                     string
	kafkaUser, kafkaPassword  string
	kafkaPasswordFile         string
	apiKeyID, apiKey, keyFile string
}

const secureDir = "secure"

func newSecure(demoDir string) (*secure, error) {
	dir := filepath.Join(demoDir, secureDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	certs, err := devcert.WriteFiles(dir, "127.0.0.1", "localhost")
	if err != nil {
		return nil, err
	}
	s := &secure{dir: dir, certs: certs, token: randomHex(), kafkaUser: "falconet", kafkaPassword: randomHex(),
		apiKeyID: "falconet-saver", apiKey: randomHex()}
	s.kafkaPasswordFile = filepath.Join(dir, "kafka-password")
	s.keyFile = filepath.Join(dir, "es-api-key")
	for p, v := range map[string]string{s.kafkaPasswordFile: s.kafkaPassword + "\n", s.keyFile: s.apiKeyID + ":" + s.apiKey + "\n"} {
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func randomHex() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// scheme is the dev-es URL scheme.
func (s *secure) scheme() string {
	if s == nil {
		return "http://"
	}
	return "https://"
}

func (s *secure) kafkaArgs() []string {
	if s == nil {
		return nil
	}
	return []string{"-tls-cert", s.certs.ServerCert, "-tls-key", s.certs.ServerKey,
		"-sasl", "SCRAM-SHA-512:" + s.kafkaUser + ":" + s.kafkaPassword}
}

func (s *secure) esArgs() []string {
	if s == nil {
		return nil
	}
	return []string{"-tls-cert", s.certs.ServerCert, "-tls-key", s.certs.ServerKey, "-api-key", s.apiKeyID + ":" + s.apiKey}
}

// kafkaTOML is [kafka.sasl] and [kafka.tls] for the relays and the saver.
func (s *secure) kafkaTOML() string {
	if s == nil {
		return ""
	}
	return fmt.Sprintf(`[kafka.sasl]
mechanism = "SCRAM-SHA-512"
username = %q
password_file = %q
[kafka.tls]
enabled = true
ca = %q
`, s.kafkaUser, s.kafkaPasswordFile, s.certs.CA)
}

// relayTOML adds the agent port's TLS and token, and Kafka's security.
func (s *secure) relayTOML() string {
	if s == nil {
		return ""
	}
	return s.kafkaTOML() + fmt.Sprintf(`[auth]
tokens = [%q]
[tls]
cert = %q
key = %q
`, s.token, s.certs.ServerCert, s.certs.ServerKey)
}

// saverTOML follows the [elasticsearch] keys: the API key, ES's CA, and
// Kafka's security.
func (s *secure) saverTOML() string {
	if s == nil {
		return ""
	}
	return fmt.Sprintf(`api_key_file = %q
[elasticsearch.tls]
ca = %q
`, s.keyFile, s.certs.CA) + s.kafkaTOML()
}

// agentTOML follows the [relay] addresses: the token and TLS to the relays.
func (s *secure) agentTOML() string {
	if s == nil {
		return ""
	}
	return fmt.Sprintf("token = %q\n[relay.tls]\nenabled = true\nca = %q\n", s.token, s.certs.CA)
}

// esClient is the demo's own client to dev-es (the verdict's queries): it
// trusts the demo CA and sends the API key.
func (s *secure) esClient() *http.Client {
	if s == nil {
		return nil
	}
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(s.certs.CA); err == nil {
		pool.AppendCertsFromPEM(pem)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: apiKeyTransport{
		key:  "ApiKey " + base64.StdEncoding.EncodeToString([]byte(s.apiKeyID+":"+s.apiKey)),
		next: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}}
}

type apiKeyTransport struct {
	key  string
	next http.RoundTripper
}

func (t apiKeyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", t.key)
	return t.next.RoundTrip(r)
}

// describe is the start-up line of a secured demo.
func (s *secure) describe() string {
	if s == nil {
		return ""
	}
	return fmt.Sprintf("secured: agent→relay TLS + token, relay/saver→Kafka TLS + SCRAM-SHA-512 (user %s), saver→ES HTTPS + API key %s; CA and secrets in %s\n",
		s.kafkaUser, s.apiKeyID, s.dir)
}
