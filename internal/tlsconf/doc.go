// Package tlsconf turns the TLS client keys of falconet's configuration files
// ([kafka.tls] in relay.toml and saver.toml, [elasticsearch.tls] in
// saver.toml) into a *tls.Config: a CA file (empty: the system roots), an
// optional client certificate and key (mTLS), a server name, and an insecure
// switch that turns verification off and must be named as such.
//
// It reads and parses every file when asked, so -check-config finds a missing,
// unreadable or malformed file before the daemon starts. Errors name the
// configuration key. It holds no key material after Load returns the config.
package tlsconf
