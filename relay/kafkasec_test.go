package relay_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/falconet/falconet/agent/sender"
	"github.com/falconet/falconet/agent/sender/sendertest"
	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/devstack/devcert"
	"github.com/falconet/falconet/metric"
	"github.com/falconet/falconet/relay"
	"github.com/falconet/falconet/relay/relaytest"
)

var secureUsers = []devstack.SASLUser{
	{Mechanism: "SCRAM-SHA-512", User: "relay512", Password: "pw-512:with colon"},
	{Mechanism: "SCRAM-SHA-256", User: "relay256", Password: "pw-256"},
	{Mechanism: "PLAIN", User: "relayplain", Password: "pw-plain"},
}

// secureConfig is a relay configuration for k with TLS (k's CA) and SASL as
// the given user.
func secureConfig(k *devstack.SecureKafka, mech, user, password string) relay.Config {
	cfg := relaytest.Config(k.Addr())
	cfg.Kafka.TLS.Enabled = true
	cfg.Kafka.TLS.CA = k.Certs.CA
	cfg.Kafka.SASL.Mechanism = mech
	cfg.Kafka.SASL.Username = user
	cfg.Kafka.SASL.Password = password
	return cfg
}

// readSecured reads topic with the relay's own Kafka settings (TLS and SASL)
// until every id in want arrived, and fails the test otherwise.
func readSecured(t *testing.T, kc relay.KafkaConfig, want map[string]bool) {
	t.Helper()
	sc, err := relay.SaramaConfigForTest(kc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sarama.NewConsumer(kc.Brokers, sc)
	if err != nil {
		t.Fatalf("secured consumer: %v", err)
	}
	defer c.Close()
	parts, err := c.Partitions(kc.Topic)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	missing := len(want)
	seen := map[string]bool{}
	var pcs []sarama.PartitionConsumer
	var wg sync.WaitGroup
	for _, p := range parts {
		pc, err := c.ConsumePartition(kc.Topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		pcs = append(pcs, pc)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range pc.Messages() {
				var mt metric.Metric
				if err := mt.UnmarshalJSON(m.Value); err != nil {
					t.Errorf("record %s/%d: %v", kc.Topic, m.Offset, err)
					continue
				}
				mu.Lock()
				if id := mt.DocID(); want[id] && !seen[id] {
					seen[id] = true
					missing--
				}
				mu.Unlock()
			}
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		left := missing
		mu.Unlock()
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("read back %d of %d metrics through TLS+SASL, want all", len(want)-left, len(want))
			break
		}
		<-time.After(20 * time.Millisecond)
	}
	for _, pc := range pcs {
		pc.AsyncClose()
	}
	wg.Wait()
}

// TestKafkaTLSAndSASL: the relay produces through TLS with each SASL
// mechanism (the password from a file, as a systemd credential gives it);
// what it wrote is read back through the same settings, and the password is
// in no log line.
func TestKafkaTLSAndSASL(t *testing.T) {
	k := devstack.StartSecureKafkaT(t, secureUsers, topic)
	for i, u := range secureUsers {
		t.Run(u.Mechanism, func(t *testing.T) {
			cfg := secureConfig(k, u.Mechanism, u.User, "")
			pwFile := filepath.Join(t.TempDir(), "kafka-password")
			if err := os.WriteFile(pwFile, []byte(u.Password+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg.Kafka.SASL.PasswordFile = pwFile
			var logs logBuf
			r := relaytest.Start(t, cfg, logs.logger())
			q := sendertest.NewMemQueue()
			want := fillQueue(t, q, i*10, i*10+5, 20)
			startSender(t, sender.Config{}, q, r.ProtocolAddr())
			relaytest.WaitFor(t, 20*time.Second, "queue drained (every batch acked after Kafka acked)", q.Empty)
			readSecured(t, cfg.Kafka, want)
			if strings.Contains(logs.String(), u.Password) {
				t.Errorf("the password appears in the log:\n%s", logs.String())
			}
			if !strings.Contains(logs.String(), `sasl_password_from="file `+pwFile+`"`) {
				t.Errorf("the start log does not say where the password comes from:\n%s", logs.String())
			}
			body := httpGet(t, "http://"+r.HTTPAddr()+"/metrics")
			if strings.Contains(body, u.Password) {
				t.Errorf("/metrics shows the password")
			}
		})
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestKafkaSecurityFailures: a wrong password, a CA that did not sign the
// broker's certificate, a server name the certificate does not carry, and
// a client without TLS are refused with a log line naming the key to check
// and /healthz 503; a relay restarted with the fixed configuration becomes
// ready.
func TestKafkaSecurityFailures(t *testing.T) {
	k := devstack.StartSecureKafkaT(t, secureUsers, topic)
	otherCA, err := devcert.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	u := secureUsers[0]
	for _, tc := range []struct {
		name    string
		breakIt func(*relay.Config)
		wantLog string
	}{
		{"wrong password", func(c *relay.Config) { c.Kafka.SASL.Password = "not-the-password" },
			`SASL SCRAM-SHA-512 authentication failed for user \"relay512\"`},
		{"wrong user", func(c *relay.Config) { c.Kafka.SASL.Username = "nobody" },
			`SASL SCRAM-SHA-512 authentication failed for user \"nobody\"`},
		{"unknown CA", func(c *relay.Config) { c.Kafka.TLS.CA = otherCA.CA },
			"signed by an unknown authority"},
		{"server name mismatch", func(c *relay.Config) { c.Kafka.TLS.ServerName = "kafka.example.org" },
			`not valid for \"kafka.example.org\"`},
		{"no TLS", func(c *relay.Config) { c.Kafka.TLS = relay.DefaultConfig().Kafka.TLS },
			"relay.kafka.tls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good := secureConfig(k, u.Mechanism, u.User, u.Password)
			bad := good
			tc.breakIt(&bad)
			var logs logBuf
			r := relaytest.StartUnready(t, bad, logs.logger())
			relaytest.WaitFor(t, 20*time.Second, "the failure logged", func() bool { return strings.Contains(logs.String(), "cannot connect to kafka") })
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, "cannot connect to kafka") {
					t.Logf("the operator reads: %s", line)
					break
				}
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, logs.String())
			}
			resp, err := http.Get("http://" + r.HTTPAddr() + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("/healthz %d %q, want 503", resp.StatusCode, b)
			}
			if strings.Contains(logs.String(), u.Password) || strings.Contains(string(b), u.Password) {
				t.Errorf("the password is in the log or /healthz")
			}
			r.Stop()
			// fixed and restarted: ready
			relaytest.Start(t, good, nil)
		})
	}
}

// TestMissingTopicIsReported: on a cluster that does not create topics, the
// relay says the topic is missing and how to create it, and stays not
// ready; once the topic exists it becomes ready.
func TestMissingTopicIsReported(t *testing.T) {
	k, err := devstack.StartKafka(devstack.KafkaConfig{Listen: "127.0.0.1:0", NoAutoCreate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	var logs logBuf
	r := relaytest.StartUnready(t, relaytest.Config(k.Addr()), logs.logger())
	relaytest.WaitFor(t, 20*time.Second, "missing topic logged", func() bool { return strings.Contains(logs.String(), "falconet kafka-setup") })
	if err := r.Health(); err == nil || !strings.Contains(err.Error(), `topic "falconet-metrics" does not exist`) {
		t.Errorf("health %v, want the missing topic named", err)
	}
	if err := relay.SetupTopics(r.Config.Kafka, []relay.TopicSpec{{Name: topic, Partitions: 3, Replication: 1}}, nil); err != nil {
		t.Fatal(err)
	}
	relaytest.WaitFor(t, 30*time.Second, "relay ready after the topic was created", func() bool { return r.Health() == nil })
}

// TestKcatReadsSecuredKafka: a third-party client (kcat, librdkafka) reads
// what the relay wrote through SCRAM-SHA-512 over TLS.
func TestKcatReadsSecuredKafka(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat not installed (apt-get install kcat)")
	}
	k := devstack.StartSecureKafkaT(t, secureUsers, topic)
	u := secureUsers[0]
	r := relaytest.Start(t, secureConfig(k, u.Mechanism, u.User, u.Password), nil)
	q := sendertest.NewMemQueue()
	want := fillQueue(t, q, 0, 4, 10)
	startSender(t, sender.Config{}, q, r.ProtocolAddr())
	relaytest.WaitFor(t, 20*time.Second, "queue drained", q.Empty)
	args := []string{"-C", "-b", k.Addr(), "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\n",
		"-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512",
		"-X", "sasl.username=" + u.User, "-X", "sasl.password=" + u.Password, "-X", "ssl.ca.location=" + k.Certs.CA}
	out, err := exec.Command(kcat, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	got := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var m metric.Metric
		if m.UnmarshalJSON([]byte(line)) != nil || !want[m.DocID()] {
			t.Fatalf("kcat line %q is not a metric we sent", line)
		}
		got++
	}
	if got != len(want) {
		t.Errorf("kcat read %d records, want %d", got, len(want))
	}
	// and with a wrong password kcat is refused
	args[len(args)-3] = "sasl.password=wrong"
	if out, err := exec.Command(kcat, append(args, "-m", "5")...).CombinedOutput(); err == nil {
		t.Errorf("kcat with a wrong password succeeded:\n%s", out)
	}
}

// TestKafkaSecurityConfigKeys: relay.toml's [kafka.sasl] and [kafka.tls]
// are checked at load (what -check-config runs), errors name the key.
func TestKafkaSecurityConfigKeys(t *testing.T) {
	dir := t.TempDir()
	certs, err := devcert.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("secret\n"), 0o600)
	t.Setenv("FALCONET_TEST_KAFKA_PW", "secret")
	for _, tc := range []struct{ toml, wantErr string }{
		{"[kafka.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"u\"\npassword_file = \"" + pw + "\"\n[kafka.tls]\nenabled = true\nca = \"" + certs.CA + "\"\n", ""},
		{"[kafka.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\npassword_env = \"FALCONET_TEST_KAFKA_PW\"\n", ""},
		{"[kafka.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\npassword_file = \"" + dir + "/missing\"\n", "relay.kafka.sasl.password_file: open"},
		{"[kafka.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\npassword_env = \"FALCONET_TEST_UNSET_PW\"\n", "relay.kafka.sasl.password_env: environment variable FALCONET_TEST_UNSET_PW is not set"},
		{"[kafka.sasl]\nmechanism = \"SCRAM-SHA-1\"\nusername = \"u\"\npassword = \"p\"\n", "relay.kafka.sasl.mechanism"},
		{"[kafka.sasl]\nmechanism = \"PLAIN\"\npassword = \"p\"\n", "relay.kafka.sasl.username: empty"},
		{"[kafka.tls]\nca = \"" + certs.CA + "\"\n", "relay.kafka.tls.enabled: false while other relay.kafka.tls keys are set"},
		{"[kafka.tls]\nenabled = true\nca = \"" + dir + "/nope.pem\"\n", "relay.kafka.tls.ca: open"},
		{"[kafka.tls]\nenabled = true\ncert = \"" + certs.ClientCert + "\"\n", "relay.kafka.tls.key: empty while relay.kafka.tls.cert is set"},
		{"[kafka.tls]\nenabled = true\ncert = \"" + certs.ClientCert + "\"\nkey = \"" + certs.ServerKey + "\"\n", "relay.kafka.tls.cert: tls: private key does not match"},
		{"[kafka.tls]\nenabled = true\nverify = false\n", "verify"},
	} {
		path := filepath.Join(dir, "relay.toml")
		os.WriteFile(path, []byte("[discovery]\nbind = \"\"\n"+tc.toml), 0o600)
		_, err := relay.LoadConfig(path)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s\ngot err %v, want %q", tc.toml, err, tc.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

// TestKafkaInsecureIsLoggedAndConnects: insecure = true connects although
// the CA is unknown, and says so at start.
func TestKafkaInsecureIsLoggedAndConnects(t *testing.T) {
	k := devstack.StartSecureKafkaT(t, secureUsers, topic)
	u := secureUsers[1]
	cfg := secureConfig(k, u.Mechanism, u.User, u.Password)
	cfg.Kafka.TLS.CA = ""
	cfg.Kafka.TLS.Insecure = true
	var logs logBuf
	relaytest.Start(t, cfg, logs.logger())
	if !strings.Contains(logs.String(), "kafka.tls.insecure is on") {
		t.Errorf("no warning about insecure:\n%s", logs.String())
	}
}

// TestKafkaMutualTLS: a broker that requires client certificates accepts the
// relay with [kafka.tls] cert and key, and refuses it without.
func TestKafkaMutualTLS(t *testing.T) {
	certs, err := devcert.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tc, err := devstack.ServerTLS(certs.ServerCert, certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(certs.CA)
	tc.ClientCAs = x509.NewCertPool()
	tc.ClientCAs.AppendCertsFromPEM(caPEM)
	tc.ClientAuth = tls.RequireAndVerifyClientCert
	u := secureUsers[0]
	k, err := devstack.StartKafka(devstack.KafkaConfig{Listen: "127.0.0.1:0", TLS: tc, SASL: []devstack.SASLUser{u}, Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	cfg := secureConfig(&devstack.SecureKafka{Kafka: k, Certs: certs}, u.Mechanism, u.User, u.Password)
	var logs logBuf
	r := relaytest.StartUnready(t, cfg, logs.logger())
	relaytest.WaitFor(t, 20*time.Second, "refusal without a client certificate logged", func() bool {
		return strings.Contains(logs.String(), "cannot connect to kafka")
	})
	if err := r.Health(); err == nil {
		t.Errorf("ready without a client certificate")
	}
	r.Stop()
	cfg.Kafka.TLS.Cert, cfg.Kafka.TLS.Key = certs.ClientCert, certs.ClientKey
	relaytest.Start(t, cfg, nil)
}

// BenchmarkRelayKafkaSecurity: the cost of TLS and SCRAM on the relay →
// Kafka link. 4 senders → one relay → dev Kafka, in-process; one iteration
// moves 200,000 metrics in batches of 1,000. The CPU is the whole process's
// (senders, relay and broker, each side of the TLS).
func BenchmarkRelayKafkaSecurity(b *testing.B) {
	for _, mode := range []string{"plain", "tls", "tls+scram-sha-512"} {
		b.Run(mode, func(b *testing.B) {
			var cfg relay.Config
			switch mode {
			case "plain":
				cfg = relaytest.Config(devstack.StartKafkaT(b, topic).Addr())
			default:
				users := secureUsers
				if mode == "tls" {
					users = nil
				}
				certs, err := devcert.WriteFiles(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				tc, err := devstack.ServerTLS(certs.ServerCert, certs.ServerKey)
				if err != nil {
					b.Fatal(err)
				}
				k, err := devstack.StartKafka(devstack.KafkaConfig{Listen: "127.0.0.1:0", TLS: tc, SASL: users, Topics: []string{topic}})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(k.Close)
				cfg = secureConfig(&devstack.SecureKafka{Kafka: k, Certs: certs}, "", "", "")
				if users != nil {
					u := users[0]
					cfg.Kafka.SASL.Mechanism, cfg.Kafka.SASL.Username, cfg.Kafka.SASL.Password = u.Mechanism, u.User, u.Password
				}
			}
			r := relaytest.Start(b, cfg, nil)
			const agents, perBatch, batchesPerIter = 4, 1000, 200
			queues := make([]*sendertest.MemQueue, agents)
			var wg sync.WaitGroup
			ctx, cancel := context.WithCancel(context.Background())
			defer func() { cancel(); wg.Wait() }()
			for i := range queues {
				queues[i] = sendertest.NewMemQueue()
				s, err := sender.New(sender.Config{AgentID: fmt.Sprint("bench-", i)}, queues[i], sender.StaticRelays(r.ProtocolAddr()), nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() { defer wg.Done(); _ = s.Run(ctx) }()
			}
			payloads := make([][]byte, agents)
			for i := range payloads {
				payloads[i] = benchPayload(b, i, perBatch)
			}
			b.ResetTimer()
			cpu0, start := cpuTime(), time.Now()
			for range b.N {
				for j := range batchesPerIter {
					queues[j%agents].AppendPayload(payloads[j%agents], perBatch)
				}
				for _, q := range queues {
					for !q.Empty() {
						<-time.After(time.Millisecond)
					}
				}
			}
			el := time.Since(start)
			b.StopTimer()
			n := float64(b.N * batchesPerIter * perBatch)
			b.ReportMetric(n/el.Seconds(), "metrics/s")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/(n/1e5), "cpu-ms/100k-metrics(all)")
		})
	}
}
