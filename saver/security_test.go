package saver

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/devstack/devcert"
	"github.com/falconet/falconet/devstack/esserver"
	"github.com/falconet/falconet/saver/savertest"
)

var saverUsers = []devstack.SASLUser{
	{Mechanism: "SCRAM-SHA-512", User: "saver512", Password: "k-512"},
	{Mechanism: "PLAIN", User: "saverplain", Password: "k-plain"},
}

const (
	esUser, esPassword = "elastic", "es-password"
	esKeyID, esKey     = "falconet-saver", "es-api-key-secret"
)

// secureES starts dev-es serving HTTPS with a fresh CA and requiring the
// elastic user or the API key.
func secureES(t *testing.T) (*devstack.ES, devcert.Files) {
	t.Helper()
	certs, err := devcert.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tc, err := devstack.ServerTLS(certs.ServerCert, certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	es, err := devstack.StartESServer(devstack.ESConfig{Listen: "127.0.0.1:0", Memory: true, TLS: tc,
		Auth: &esserver.Auth{Users: map[string]string{esUser: esPassword}, APIKeys: map[string]string{esKeyID: esKey}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = es.Close() })
	return es, certs
}

func secureSaverConfig(k *devstack.SecureKafka, esURL, esCA string, u devstack.SASLUser) Config {
	cfg := testConfig(k.Addr(), esURL)
	cfg.Kafka.TLS.Enabled = true
	cfg.Kafka.TLS.CA = k.Certs.CA
	cfg.Kafka.SASL.Mechanism = u.Mechanism
	cfg.Kafka.SASL.Username = u.User
	cfg.Kafka.SASL.Password = u.Password
	cfg.Elasticsearch.TLS.CA = esCA
	return cfg
}

// produceSecured writes recs with the saver's own Kafka settings.
func produceSecured(t *testing.T, k *KafkaConfig, recs []savertest.Record) {
	t.Helper()
	sc, err := saramaConfig(k)
	if err != nil {
		t.Fatal(err)
	}
	p, err := sarama.NewSyncProducer(k.Brokers, sc)
	if err != nil {
		t.Fatalf("secured producer: %v", err)
	}
	defer func() { _ = p.Close() }()
	msgs := make([]*sarama.ProducerMessage, len(recs))
	for i, r := range recs {
		msgs[i] = &sarama.ProducerMessage{Topic: k.Topic, Key: sarama.ByteEncoder(r.Key), Value: sarama.ByteEncoder(r.Value)}
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatal(err)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startSaverLogs is startSaver with the log kept for assertions.
func startSaverLogs(t *testing.T, cfg Config) (*runningSaver, *syncBuf) {
	t.Helper()
	var logs syncBuf
	s, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rs := &runningSaver{s: s, cancel: cancel, done: make(chan error, 1)}
	go func() { rs.done <- s.Run(ctx) }()
	t.Cleanup(func() { rs.stop(t) })
	return rs, &logs
}

// TestSecuredKafkaAndES: the saver reads a Kafka that wants TLS and SASL
// (SCRAM-SHA-512, PLAIN) and writes to an Elasticsearch that wants HTTPS
// and basic auth or an API key (from a file); every metric is stored once.
func TestSecuredKafkaAndES(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	for i, tc := range []struct {
		name string
		user devstack.SASLUser
		auth func(t *testing.T, e *ElasticsearchConfig)
	}{
		{"SCRAM-SHA-512 and basic auth", saverUsers[0], func(t *testing.T, e *ElasticsearchConfig) {
			e.Username = esUser
			t.Setenv("FALCONET_TEST_ES_PASSWORD", esPassword)
			e.PasswordEnv = "FALCONET_TEST_ES_PASSWORD"
		}},
		{"PLAIN and API key", saverUsers[1], func(t *testing.T, e *ElasticsearchConfig) {
			f := filepath.Join(t.TempDir(), "api-key")
			if err := os.WriteFile(f, []byte(esKeyID+":"+esKey+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			e.APIKeyFile = f
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := devstack.StartSecureKafkaT(t, saverUsers, testTopic, testDLQ)
			es, esCerts := secureES(t)
			cfg := secureSaverConfig(k, es.URL(), esCerts.CA, tc.user)
			tc.auth(t, &cfg.Elasticsearch)
			ms := genMetrics(2000, time.Now().UTC(), "sec-"+string(rune('a'+i))+"-")
			produceSecured(t, &cfg.Kafka, metricRecords(ms))
			rs, logs := startSaverLogs(t, cfg)
			client, err := NewESClient(&cfg.Elasticsearch)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Stop()
			waitFor(t, 60*time.Second, "every metric in Elasticsearch", func() (bool, string) {
				n := savertest.Count(client, IndexPrefix+"*")
				return n == int64(len(ms)), fmt.Sprintf("count %d, want %d", n, len(ms))
			})
			te := &testES{url: es.URL(), client: client}
			te.checkStored(t, ms)
			if err := rs.s.Health(); err != nil {
				t.Errorf("health: %v", err)
			}
			for _, secretValue := range []string{tc.user.Password, esPassword, esKey} {
				if strings.Contains(logs.String(), secretValue) {
					t.Errorf("a secret is in the log:\n%s", logs.String())
				}
			}
		})
	}
}

// TestSecurityFailuresSaver: wrong credentials or TLS settings towards
// Kafka or Elasticsearch make /healthz fail at once with what to check;
// the saver restarted with the fixed configuration stores everything.
func TestSecurityFailuresSaver(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	k := devstack.StartSecureKafkaT(t, saverUsers, testTopic, testDLQ)
	es, esCerts := secureES(t)
	other, err := devcert.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	good := secureSaverConfig(k, es.URL(), esCerts.CA, saverUsers[0])
	good.Elasticsearch.Username, good.Elasticsearch.Password = esUser, esPassword
	ms := genMetrics(500, time.Now().UTC(), "fail-")
	produceSecured(t, &good.Kafka, metricRecords(ms))
	for _, tc := range []struct {
		name    string
		breakIt func(*Config)
		want    string
	}{
		{"kafka wrong password", func(c *Config) { c.Kafka.SASL.Password = "nope" }, `SASL SCRAM-SHA-512 authentication failed for user "saver512"`},
		{"kafka unknown CA", func(c *Config) { c.Kafka.TLS.CA = other.CA }, "check saver.kafka.tls.ca"},
		{"kafka server name", func(c *Config) { c.Kafka.TLS.ServerName = "kafka.example.org" }, "check saver.kafka.tls.server_name"},
		{"es wrong password", func(c *Config) { c.Elasticsearch.Password = "nope" }, `Elasticsearch refuses user "elastic" (401)`},
		{"es wrong api key", func(c *Config) {
			c.Elasticsearch.Username, c.Elasticsearch.Password, c.Elasticsearch.APIKey = "", "", esKeyID+":wrong"
		}, "Elasticsearch refuses the API key (401)"},
		{"es no credentials", func(c *Config) { c.Elasticsearch.Username, c.Elasticsearch.Password = "", "" }, "Elasticsearch wants credentials (401)"},
		{"es unknown CA", func(c *Config) { c.Elasticsearch.TLS.CA = other.CA }, "check saver.elasticsearch.tls.ca"},
		{"es server name", func(c *Config) { c.Elasticsearch.TLS.ServerName = "es.example.org" }, "check saver.elasticsearch.tls.server_name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := good
			tc.breakIt(&bad)
			rs, logs := startSaverLogs(t, bad)
			waitFor(t, 30*time.Second, "health names the problem", func() (bool, string) {
				err := rs.s.Health()
				return err != nil && strings.Contains(err.Error(), tc.want), "health: " + errString(err)
			})
			if !strings.Contains(strings.ReplaceAll(logs.String(), `\"`, `"`), tc.want) {
				t.Errorf("log lacks %q:\n%s", tc.want, logs.String())
			}
			if strings.Contains(logs.String(), esPassword) || strings.Contains(logs.String(), saverUsers[0].Password) {
				t.Errorf("a secret is in the log")
			}
			rs.stop(t)
		})
	}
	// fixed and restarted: everything stored once
	startSaverLogs(t, good)
	client, err := NewESClient(&good.Elasticsearch)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Stop()
	waitFor(t, 60*time.Second, "every metric stored after the fix", func() (bool, string) {
		n := savertest.Count(client, IndexPrefix+"*")
		return n == int64(len(ms)), fmt.Sprintf("count %d, want %d", n, len(ms))
	})
	(&testES{url: es.URL(), client: client}).checkStored(t, ms)
}

// TestMissingTopicsReported: on a cluster without auto-creation the saver
// names the missing topic and how to create it, and is unhealthy until the
// topic exists.
func TestMissingTopicsReported(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	k, err := devstack.StartKafka(devstack.KafkaConfig{Listen: "127.0.0.1:0", NoAutoCreate: true, Topics: []string{testTopic}})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	es := startTestES(t)
	rs, logs := startSaverLogs(t, testConfig(k.Addr(), es.url))
	want := `topic "falconet-metrics-dlq" does not exist`
	waitFor(t, 30*time.Second, "missing dead-letter topic reported", func() (bool, string) {
		err := rs.s.Health()
		return err != nil && strings.Contains(err.Error(), want) && strings.Contains(logs.String(), "falconet kafka-setup"), "health: " + errString(err)
	})
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// TestSecurityConfigKeys: saver.toml's credentials and TLS keys are checked
// at load (what -check-config runs); errors name the key, never a secret.
func TestSecurityConfigKeys(t *testing.T) {
	dir := t.TempDir()
	certs, err := devcert.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "key")
	if err := os.WriteFile(key, []byte("id:secret-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ toml, wantErr string }{
		{"[elasticsearch]\nurls = [\"https://es:9200\"]\napi_key_file = \"" + key + "\"\n[elasticsearch.tls]\nca = \"" + certs.CA + "\"\nserver_name = \"es\"\n", ""},
		{"[elasticsearch]\nurls = [\"https://es:9200\"]\nusername = \"elastic\"\npassword = \"secret-pw\"\n", ""},
		{"[elasticsearch]\nurls = [\"https://es:9200\"]\npassword = \"secret-pw\"\n", "saver.elasticsearch.username: empty while a password is set"},
		{"[elasticsearch]\nurls = [\"https://es:9200\"]\nusername = \"elastic\"\npassword = \"secret-pw\"\napi_key = \"id:secret-key\"\n", "saver.elasticsearch.api_key: set together with elasticsearch.username"},
		{"[elasticsearch]\nurls = [\"https://es:9200\"]\napi_key = \"id:secret-key\"\napi_key_file = \"" + key + "\"\n", "saver.elasticsearch.api_key: set only one of"},
		{"[elasticsearch]\nurls = [\"https://es:9200\"]\nusername = \"elastic\"\npassword_file = \"" + dir + "/none\"\n", "saver.elasticsearch.password_file: open"},
		{"[elasticsearch]\nurls = [\"http://es:9200\"]\n[elasticsearch.tls]\nca = \"" + certs.CA + "\"\n", "saver.elasticsearch.tls: set, but no elasticsearch.urls entry is https://"},
		{"[elasticsearch]\nurls = [\"https://es:9200\"]\n[elasticsearch.tls]\nca = \"" + key + "\"\n", "saver.elasticsearch.tls.ca: " + key + " holds no PEM certificate"},
		{"[kafka.sasl]\nmechanism = \"SCRAM-SHA-256\"\nusername = \"u\"\n", "saver.kafka.sasl.password: empty"},
		{"[kafka.tls]\nenabled = true\nkey = \"" + certs.ClientKey + "\"\n", "saver.kafka.tls.cert: empty while saver.kafka.tls.key is set"},
	} {
		path := filepath.Join(dir, "saver.toml")
		if err := os.WriteFile(path, []byte(tc.toml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadConfig(path)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s\ngot err %v, want %q", tc.toml, err, tc.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "secret-") {
			t.Errorf("the error shows a secret: %v", err)
		}
	}
	if got := encodeAPIKey("id:key"); got != "aWQ6a2V5" {
		t.Errorf("encodeAPIKey(id:key) = %q, want base64 of it", got)
	}
	if got := encodeAPIKey("aWQ6a2V5"); got != "aWQ6a2V5" {
		t.Errorf("an encoded key was changed: %q", got)
	}
}

// TestESCredentialsRefusedMidRun: Elasticsearch starts refusing the saver's
// API key while it runs; /healthz says so at once (no grace), and when the
// key is accepted again the records held meanwhile are stored without a
// restart.
func TestESCredentialsRefusedMidRun(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	k := devstack.StartSecureKafkaT(t, saverUsers, testTopic, testDLQ)
	certs, err := devcert.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	startES := func(addr, key string) *devstack.ES {
		tc, err := devstack.ServerTLS(certs.ServerCert, certs.ServerKey)
		if err != nil {
			t.Fatal(err)
		}
		es, err := devstack.StartESServer(devstack.ESConfig{Listen: addr, Memory: true, TLS: tc,
			Auth: &esserver.Auth{APIKeys: map[string]string{esKeyID: key}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = es.Close() })
		return es
	}
	es := startES("127.0.0.1:0", esKey)
	cfg := secureSaverConfig(k, es.URL(), certs.CA, saverUsers[0])
	cfg.Elasticsearch.APIKey = esKeyID + ":" + esKey
	rs, logs := startSaverLogs(t, cfg)
	client, err := NewESClient(&cfg.Elasticsearch)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Stop()
	first := genMetrics(200, time.Now().UTC(), "mid-a-")
	produceSecured(t, &cfg.Kafka, metricRecords(first))
	waitFor(t, 60*time.Second, "first metrics stored", func() (bool, string) {
		n := savertest.Count(client, IndexPrefix+"*")
		return n == int64(len(first)), fmt.Sprintf("count %d", n)
	})
	// the key is revoked: the same node now knows another key only
	addr := es.Addr()
	_ = es.Close()
	es = startES(addr, "rotated-key")
	second := genMetrics(100, time.Now().UTC(), "mid-b-")
	produceSecured(t, &cfg.Kafka, metricRecords(second))
	waitFor(t, 30*time.Second, "health names the refused key", func() (bool, string) {
		err := rs.s.Health()
		return err != nil && strings.Contains(err.Error(), "Elasticsearch refuses the API key (401)"), "health: " + errString(err)
	})
	if !strings.Contains(logs.String(), "elasticsearch refuses the saver") {
		t.Errorf("no log line about the refused key:\n%s", logs.String())
	}
	// the key is accepted again: the held records are stored, no restart
	_ = es.Close()
	startES(addr, esKey)
	waitFor(t, 60*time.Second, "held metrics stored after the key works again", func() (bool, string) {
		n := savertest.Count(client, IndexPrefix+"*")
		return n == int64(len(second)) && rs.s.Health() == nil, fmt.Sprintf("count %d, want %d; health %s", n, len(second), errString(rs.s.Health()))
	})
}
