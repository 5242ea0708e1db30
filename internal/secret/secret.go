package secret

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Source is one secret as the configuration gives it: inline, by file, or
// by environment variable.
type Source struct {
	Value string
	File  string
	Env   string
}

// ErrEmpty is wrapped when a file or variable holds an empty secret.
var ErrEmpty = errors.New("secret: empty")

// IsSet reports whether any of the three is given.
func (s Source) IsSet() bool { return s.Value != "" || s.File != "" || s.Env != "" }

// Resolve returns the secret. key is its configuration key
// ("relay.kafka.sasl.password"); the file and environment keys are key+"_file"
// and key+"_env". The error never contains the secret.
func (s Source) Resolve(key string) (string, error) {
	n := 0
	for _, v := range []string{s.Value, s.File, s.Env} {
		if v != "" {
			n++
		}
	}
	if n > 1 {
		return "", fmt.Errorf("%s: set only one of %s, %s_file and %s_env", key, key, key, key)
	}
	switch {
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("%s_file: %w", key, err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("%s_file: %s: %w", key, s.File, ErrEmpty)
		}
		return v, nil
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok {
			return "", fmt.Errorf("%s_env: environment variable %s is not set", key, s.Env)
		}
		if v == "" {
			return "", fmt.Errorf("%s_env: environment variable %s: %w", key, s.Env, ErrEmpty)
		}
		return v, nil
	}
	return s.Value, nil
}

// Where says where the secret comes from, for logs: "inline", "file PATH",
// "env NAME" or "none". It never returns the secret.
func (s Source) Where() string {
	switch {
	case s.File != "":
		return "file " + s.File
	case s.Env != "":
		return "env " + s.Env
	case s.Value != "":
		return "inline"
	}
	return "none"
}

// SASL is the [kafka.sasl] table of relay.toml and saver.toml.
type SASL struct {
	// Mechanism is "" (no SASL), "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512".
	Mechanism    string `toml:"mechanism"`
	Username     string `toml:"username"`
	Password     string `toml:"password"`
	PasswordFile string `toml:"password_file"`
	PasswordEnv  string `toml:"password_env"`
}

// Enabled reports whether a mechanism is chosen.
func (s SASL) Enabled() bool { return s.Mechanism != "" }

// PasswordSource is where the password comes from.
func (s SASL) PasswordSource() Source {
	return Source{Value: s.Password, File: s.PasswordFile, Env: s.PasswordEnv}
}

// Check validates the table and resolves the password (read from its file or
// variable). prefix is the table's key path ("relay.kafka.sasl"). It returns
// the mechanism in upper case.
func (s SASL) Check(prefix string) (mechanism, password string, err error) {
	mechanism = strings.ToUpper(s.Mechanism)
	switch mechanism {
	case "":
		if s.Username != "" || s.PasswordSource().IsSet() {
			return "", "", fmt.Errorf("%s.mechanism: empty while a username or password is set (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", prefix)
		}
		return "", "", nil
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		return "", "", fmt.Errorf("%s.mechanism: %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", prefix, s.Mechanism)
	}
	if s.Username == "" {
		return "", "", fmt.Errorf("%s.username: empty while %s.mechanism is %s", prefix, prefix, mechanism)
	}
	password, err = s.PasswordSource().Resolve(prefix + ".password")
	if err != nil {
		return "", "", err
	}
	if password == "" {
		return "", "", fmt.Errorf("%s.password: empty (set password, password_file or password_env)", prefix)
	}
	return mechanism, password, nil
}
