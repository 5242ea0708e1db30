package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Files are the TLS client keys shared by [kafka.tls] and [elasticsearch.tls].
type Files struct {
	// CA is a PEM file of the certificate authorities to trust; empty: the
	// system roots.
	CA string `toml:"ca"`
	// Cert and Key are the client certificate chain and its private key
	// (both or neither).
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
	// ServerName is the name the server certificate must carry; empty: the
	// host of the address dialed.
	ServerName string `toml:"server_name"`
	// Insecure turns off every server certificate check. Never for
	// production: the daemons log a warning at start when it is on.
	Insecure bool `toml:"insecure"`
}

// IsZero reports whether no key is set.
func (f Files) IsZero() bool { return f == Files{} }

// Load reads and checks the files and returns the client configuration.
// prefix is the table's key path ("relay.kafka.tls") used in errors.
func (f Files) Load(prefix string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName, InsecureSkipVerify: f.Insecure}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("%s.ca: %w", prefix, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.ca: %s holds no PEM certificate", prefix, f.CA)
		}
		tc.RootCAs = pool
	}
	switch {
	case f.Cert == "" && f.Key == "":
	case f.Cert == "":
		return nil, fmt.Errorf("%s.cert: empty while %s.key is set", prefix, prefix)
	case f.Key == "":
		return nil, fmt.Errorf("%s.key: empty while %s.cert is set", prefix, prefix)
	default:
		for key, p := range map[string]string{"cert": f.Cert, "key": f.Key} {
			if _, err := os.ReadFile(p); err != nil {
				return nil, fmt.Errorf("%s.%s: %w", prefix, key, err)
			}
		}
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("%s.cert: %w", prefix, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// Kafka is the [kafka.tls] table: the files plus a switch, since a Kafka
// broker address does not say whether it speaks TLS.
type Kafka struct {
	Enabled bool `toml:"enabled"`
	Files
}

// Check loads the files when TLS is on (nil, nil when off) and refuses
// files given while it is off.
func (k Kafka) Check(prefix string) (*tls.Config, error) {
	if !k.Enabled {
		if !k.Files.IsZero() {
			return nil, fmt.Errorf("%s.enabled: false while other %s keys are set", prefix, prefix)
		}
		return nil, nil
	}
	return k.Files.Load(prefix)
}

// Explain turns a TLS failure into what the operator should check, naming
// the keys under prefix ("relay.kafka.tls"); "" when err is not a TLS
// verification problem. peer names the other side ("the broker").
func Explain(err error, prefix, peer string) string {
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var certErr x509.CertificateInvalidError
	var recErr tls.RecordHeaderError
	switch {
	case errors.As(err, &unknownCA):
		issuer := "no certificate"
		if unknownCA.Cert != nil {
			issuer = "issuer " + unknownCA.Cert.Issuer.String()
		}
		return fmt.Sprintf("TLS: %s's certificate is signed by an unknown authority (%s); check %s.ca", peer, issuer, prefix)
	case errors.As(err, &hostErr):
		return fmt.Sprintf("TLS: %s's certificate is not valid for %q (%v); check %s.server_name or the address", peer, hostErr.Host, hostErr, prefix)
	case errors.As(err, &certErr):
		return fmt.Sprintf("TLS: %s's certificate is not valid: %v", peer, certErr)
	case errors.As(err, &recErr):
		return fmt.Sprintf("TLS: %s does not answer in TLS", peer)
	}
	return ""
}
