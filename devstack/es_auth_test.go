package devstack_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/devstack/devcert"
	"github.com/falconet/falconet/devstack/esserver"
)

// TestESSecuredMode: dev-es over HTTPS requiring basic auth or an API key
// answers as an Elasticsearch 8 node with security on: 401 with the
// WWW-Authenticate challenges and a security_exception, 200 with valid
// credentials.
func TestESSecuredMode(t *testing.T) {
	certs, err := devcert.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tc, err := devstack.ServerTLS(certs.ServerCert, certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	es, err := devstack.StartESServer(devstack.ESConfig{Listen: "127.0.0.1:0", Memory: true, TLS: tc,
		Auth: &esserver.Auth{Users: map[string]string{"elastic": "changeme"}, APIKeys: map[string]string{"kid": "ksecret"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	if !strings.HasPrefix(es.URL(), "https://") {
		t.Fatalf("URL %s, want https://", es.URL())
	}
	caPEM, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	apiKey := func(s string) string { return "ApiKey " + base64.StdEncoding.EncodeToString([]byte(s)) }
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	for _, tc := range []struct {
		name, method, auth string
		wantStatus         int
		wantReason         string
	}{
		{"no credentials", "GET", "", 401, "missing authentication credentials for REST request [/_cluster/health]"},
		{"no credentials, HEAD", "HEAD", "", 401, ""},
		{"wrong password", "GET", basic("elastic", "nope"), 401, "unable to authenticate user [elastic] for REST request [/_cluster/health]"},
		{"unknown user", "GET", basic("bob", "changeme"), 401, "unable to authenticate user [bob]"},
		{"wrong api key", "GET", apiKey("kid:nope"), 401, "unable to authenticate with provided credentials"},
		{"api key not base64", "GET", "ApiKey !!!", 401, "unable to authenticate with provided credentials"},
		{"bearer", "GET", "Bearer abc", 401, "unable to authenticate with provided credentials"},
		{"basic", "GET", basic("elastic", "changeme"), 200, ""},
		{"api key", "GET", apiKey("kid:ksecret"), 200, ""},
	} {
		req, _ := http.NewRequest(tc.method, es.URL()+"/_cluster/health", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.wantStatus {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, resp.StatusCode, tc.wantStatus, body)
			continue
		}
		if tc.wantStatus != 401 {
			continue
		}
		ch := resp.Header.Values("WWW-Authenticate")
		if len(ch) != 3 || ch[0] != `Basic realm="security" charset="UTF-8"` || ch[2] != "ApiKey" {
			t.Errorf("%s: WWW-Authenticate %q, want the basic, bearer and ApiKey challenges", tc.name, ch)
		}
		if tc.method == "HEAD" {
			continue
		}
		var e struct {
			Error struct {
				Type, Reason string
				RootCause    []struct{ Type string } `json:"root_cause"`
			}
			Status int
		}
		if err := json.Unmarshal(body, &e); err != nil || e.Status != 401 || e.Error.Type != "security_exception" ||
			len(e.Error.RootCause) != 1 || !strings.Contains(e.Error.Reason, tc.wantReason) {
			t.Errorf("%s: body %s, want a security_exception with reason %q", tc.name, body, tc.wantReason)
		}
	}
	// plain HTTP to the HTTPS port is refused
	resp, err := http.Get("http://" + es.Addr() + "/")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain http: status %d, want 400", resp.StatusCode)
		}
	}
}
