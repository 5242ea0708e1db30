package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/devstack/devcert"
)

// TestKafkaSetup creates the topics on a broker that wants TLS and
// SCRAM-SHA-512 and does not create topics by itself; a second run finds
// them with the partitions asked for and leaves them.
func TestKafkaSetup(t *testing.T) {
	dir := t.TempDir()
	certs, err := devcert.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := devstack.ServerTLS(certs.ServerCert, certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	k, err := devstack.StartKafka(devstack.KafkaConfig{Listen: "127.0.0.1:0", NoAutoCreate: true, TLS: tc,
		SASL: []devstack.SASLUser{{Mechanism: "SCRAM-SHA-512", User: "admin", Password: "admin-pw"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("admin-pw\n"), 0o600)
	conf := filepath.Join(dir, "relay.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`[kafka]
brokers = [%q]
[kafka.sasl]
mechanism = "SCRAM-SHA-512"
username = "admin"
password_file = %q
[kafka.tls]
enabled = true
ca = %q
`, k.Addr(), pw, certs.CA)), 0o600)
	var out, errOut bytes.Buffer
	if err := kafkaSetup([]string{"-config", conf, "-partitions", "6", "-replication", "1", "-retention", "7d"}, &out, &errOut); err != nil {
		t.Fatalf("kafka-setup: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{"created topic falconet-metrics: 6 partitions, replication 1, retention 168h0m0s",
		"created topic falconet-metrics-dlq: 1 partitions"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := kafkaSetup([]string{"-config", conf, "-partitions", "12", "-replication", "1"}, &out, &errOut); err != nil {
		t.Fatalf("second kafka-setup: %v", err)
	}
	if want := "topic falconet-metrics exists with 6 partitions (fewer than the 12 asked"; !strings.Contains(out.String(), want) {
		t.Errorf("second run: output lacks %q:\n%s", want, out.String())
	}
	if kcat, err := exec.LookPath("kcat"); err == nil {
		meta, err := exec.Command(kcat, "-L", "-b", k.Addr(), "-t", "falconet-metrics", "-X", "security.protocol=SASL_SSL",
			"-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=admin", "-X", "sasl.password=admin-pw",
			"-X", "ssl.ca.location="+certs.CA).CombinedOutput()
		if err != nil || !strings.Contains(string(meta), `topic "falconet-metrics" with 6 partitions`) {
			t.Errorf("kcat -L: %v\n%s", err, meta)
		}
	}
	// a wrong password: a clear error naming the keys, exit status 1
	os.WriteFile(pw, []byte("wrong\n"), 0o600)
	err = kafkaSetup([]string{"-config", conf, "-partitions", "6", "-replication", "1"}, &out, &errOut)
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(ee.msg, "SASL SCRAM-SHA-512 authentication failed") {
		t.Errorf("wrong password: got %v, want exit 1 naming the SASL failure", err)
	}
	if err := kafkaSetup([]string{"-config", conf}, &out, &errOut); err == nil {
		t.Errorf("missing -partitions accepted")
	}
}
