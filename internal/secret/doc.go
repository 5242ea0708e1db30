// Package secret resolves the credentials in falconet's configuration files
// and speaks the client side of SASL/SCRAM.
//
// A secret (a Kafka SASL password, an Elasticsearch password or API key) can
// be written in the TOML file itself, read from a file (KEY_file: a systemd
// credential, a mounted Kubernetes or Docker secret) or from an environment
// variable (KEY_env names the variable). At most one of the three may be set;
// errors name the key, never the secret's value. A file's trailing newline
// is dropped.
//
// SCRAMClient implements the client conversation of SCRAM-SHA-256 and
// SCRAM-SHA-512 (RFC 5802, RFC 7677) over github.com/xdg-go/scram, in the
// shape sarama's SCRAMClient interface wants, without importing sarama.
package secret
