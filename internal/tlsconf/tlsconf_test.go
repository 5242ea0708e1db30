package tlsconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadNamesKeys(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	unreadable := filepath.Join(dir, "unreadable.pem")
	if err := os.WriteFile(unreadable, []byte("x"), 0o000); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		k       Kafka
		wantErr string
	}{
		{"off", Kafka{}, ""},
		{"on, system roots", Kafka{Enabled: true}, ""},
		{"files while off", Kafka{Files: Files{CA: notPEM}}, "p.enabled: false while other p keys are set"},
		{"missing ca", Kafka{Enabled: true, Files: Files{CA: filepath.Join(dir, "nope")}}, "p.ca: open"},
		{"ca not PEM", Kafka{Enabled: true, Files: Files{CA: notPEM}}, "p.ca: " + notPEM + " holds no PEM certificate"},
		{"cert without key", Kafka{Enabled: true, Files: Files{Cert: notPEM}}, "p.key: empty while p.cert is set"},
		{"key without cert", Kafka{Enabled: true, Files: Files{Key: notPEM}}, "p.cert: empty while p.key is set"},
		{"bad pair", Kafka{Enabled: true, Files: Files{Cert: notPEM, Key: notPEM}}, "p.cert:"},
	} {
		_, err := tc.k.Check("p")
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.wantErr)
		}
	}
	if os.Geteuid() != 0 { // root reads anything
		if _, err := (Files{CA: unreadable}).Load("p"); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("unreadable ca: err %v, want permission denied", err)
		}
	}
	tc, err := (Files{ServerName: "kafka.internal", Insecure: true}).Load("p")
	if err != nil || tc.ServerName != "kafka.internal" || !tc.InsecureSkipVerify || tc.RootCAs != nil {
		t.Errorf("got %+v, %v; want server name, insecure, system roots", tc, err)
	}
}
