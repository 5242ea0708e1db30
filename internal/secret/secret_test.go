package secret

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdg-go/scram"
)

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FALCONET_TEST_PW", "from-env")
	t.Setenv("FALCONET_TEST_EMPTY", "")
	for _, tc := range []struct {
		name    string
		src     Source
		want    string
		wantErr string
	}{
		{"inline", Source{Value: "v"}, "v", ""},
		{"none", Source{}, "", ""},
		{"file, newline dropped", Source{File: file}, "from-file", ""},
		{"env", Source{Env: "FALCONET_TEST_PW"}, "from-env", ""},
		{"two at once", Source{Value: "v", File: file}, "", "k: set only one of k, k_file and k_env"},
		{"missing file", Source{File: filepath.Join(dir, "nope")}, "", "k_file: open"},
		{"empty file", Source{File: empty}, "", "k_file: " + empty + ": secret: empty"},
		{"unset env", Source{Env: "FALCONET_TEST_UNSET_X"}, "", "k_env: environment variable FALCONET_TEST_UNSET_X is not set"},
		{"empty env", Source{Env: "FALCONET_TEST_EMPTY"}, "", "secret: empty"},
	} {
		got, err := tc.src.Resolve("k")
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: err %v, want one containing %q", tc.name, err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "from-") {
				t.Errorf("%s: the error shows the secret: %v", tc.name, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestSASLCheckNamesKeys(t *testing.T) {
	for _, tc := range []struct {
		s       SASL
		wantErr string
	}{
		{SASL{}, ""},
		{SASL{Mechanism: "scram-sha-512", Username: "u", Password: "p"}, ""},
		{SASL{Username: "u"}, "p.mechanism: empty while a username or password is set"},
		{SASL{Mechanism: "GSSAPI", Username: "u", Password: "p"}, `p.mechanism: "GSSAPI"`},
		{SASL{Mechanism: "PLAIN", Password: "p"}, "p.username: empty"},
		{SASL{Mechanism: "PLAIN", Username: "u"}, "p.password: empty"},
		{SASL{Mechanism: "PLAIN", Username: "u", Password: "p", PasswordEnv: "X"}, "p.password: set only one of"},
	} {
		_, _, err := tc.s.Check("p")
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%+v: err %v, want %q", tc.s, err, tc.wantErr)
		}
	}
}

// TestSCRAMAgainstServer runs the client against xdg-go/scram's server with
// the right and a wrong password.
func TestSCRAMAgainstServer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client *SCRAMClient
		hash   scram.HashGeneratorFcn
	}{{"SHA-256", NewSCRAMSHA256(), scram.SHA256}, {"SHA-512", NewSCRAMSHA512(), scram.SHA512}} {
		for _, pw := range []string{"right", "wrong"} {
			cl, _ := tc.hash.NewClient("user", "right", "")
			creds, err := cl.GetStoredCredentialsWithError(scram.KeyFactors{Salt: "salt-salt", Iters: 4096})
			if err != nil {
				t.Fatal(err)
			}
			srv, err := tc.hash.NewServer(func(string) (scram.StoredCredentials, error) { return creds, nil })
			if err != nil {
				t.Fatal(err)
			}
			conv := srv.NewConversation()
			c := *tc.client
			if err := c.Begin("user", pw, ""); err != nil {
				t.Fatal(err)
			}
			var challenge string
			var cerr, serr error
			for !c.Done() && cerr == nil && serr == nil {
				var resp string
				resp, cerr = c.Step(challenge)
				if cerr != nil || c.Done() {
					break
				}
				challenge, serr = conv.Step(resp)
			}
			ok := cerr == nil && serr == nil && conv.Valid()
			if ok != (pw == "right") {
				t.Errorf("%s password %s: authenticated %v (client err %v, server err %v)", tc.name, pw, ok, cerr, serr)
			}
		}
	}
}
