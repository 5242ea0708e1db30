package saver

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/olivere/elastic/v7"

	"github.com/falconet/falconet/internal/secret"
	"github.com/falconet/falconet/internal/tlsconf"
)

// checkSecurity validates the credentials and TLS keys of [elasticsearch]:
// files readable, at most one source per secret, basic auth or an API key.
func (e *ElasticsearchConfig) checkSecurity() error {
	_, _, _, err := e.credentials()
	if err != nil {
		return err
	}
	if !e.TLS.IsZero() {
		https := false
		for _, u := range e.URLs {
			https = https || strings.HasPrefix(strings.ToLower(u), "https://")
		}
		if !https {
			return errors.New("saver.elasticsearch.tls: set, but no elasticsearch.urls entry is https://")
		}
		if _, err := e.TLS.Load("saver.elasticsearch.tls"); err != nil {
			return err
		}
	}
	return nil
}

// credentials resolves the password and the API key (from the file or the
// variable) and returns the basic-auth pair or the Authorization header
// value.
func (e *ElasticsearchConfig) credentials() (user, password, apiKeyHeader string, err error) {
	password, err = secret.Source{Value: e.Password, File: e.PasswordFile, Env: e.PasswordEnv}.Resolve("saver.elasticsearch.password")
	if err != nil {
		return "", "", "", err
	}
	key, err := secret.Source{Value: e.APIKey, File: e.APIKeyFile, Env: e.APIKeyEnv}.Resolve("saver.elasticsearch.api_key")
	if err != nil {
		return "", "", "", err
	}
	if password != "" && e.Username == "" {
		return "", "", "", errors.New("saver.elasticsearch.username: empty while a password is set")
	}
	if key != "" && e.Username != "" {
		return "", "", "", errors.New("saver.elasticsearch.api_key: set together with elasticsearch.username; use one of basic auth and an API key")
	}
	if key != "" {
		apiKeyHeader = "ApiKey " + encodeAPIKey(key)
	}
	return e.Username, password, apiKeyHeader, nil
}

// encodeAPIKey accepts an API key as "id:api_key" (what the create API key
// call returns as id and api_key) or already encoded (its "encoded" field).
func encodeAPIKey(k string) string {
	if strings.Contains(k, ":") {
		return base64.StdEncoding.EncodeToString([]byte(k))
	}
	return k
}

// esTransport is the HTTP transport to Elasticsearch, with the TLS client
// configuration of [elasticsearch.tls] (the system roots when no CA).
func esTransport(cfg *ElasticsearchConfig) (*http.Transport, error) {
	t := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}
	tc, err := cfg.TLS.Load("saver.elasticsearch.tls")
	if err != nil {
		return nil, err
	}
	t.TLSClientConfig = tc
	return t, nil
}

// esAuthOptions are the client options for basic auth or the API key.
func esAuthOptions(cfg *ElasticsearchConfig) ([]elastic.ClientOptionFunc, error) {
	user, password, apiKey, err := cfg.credentials()
	if err != nil {
		return nil, err
	}
	switch {
	case apiKey != "":
		return []elastic.ClientOptionFunc{elastic.SetHeaders(http.Header{"Authorization": []string{apiKey}})}, nil
	case user != "":
		return []elastic.ClientOptionFunc{elastic.SetBasicAuth(user, password)}, nil
	}
	return nil, nil
}

// explainESError says what to check when Elasticsearch refuses the saver's
// credentials or its TLS does not verify; "" otherwise. Only answers that
// cannot pass without a fix count: a closed connection or a 5xx does not.
func explainESError(err error, cfg *ElasticsearchConfig) string {
	if why := tlsconf.Explain(err, "saver.elasticsearch.tls", "Elasticsearch"); why != "" {
		return why
	}
	var ee *elastic.Error
	if errors.As(err, &ee) {
		switch ee.Status {
		case http.StatusUnauthorized:
			switch {
			case cfg.APIKey != "" || cfg.APIKeyFile != "" || cfg.APIKeyEnv != "":
				return "Elasticsearch refuses the API key (401); check saver.elasticsearch.api_key"
			case cfg.Username != "":
				return fmt.Sprintf("Elasticsearch refuses user %q (401); check saver.elasticsearch.username and the password", cfg.Username)
			}
			return "Elasticsearch wants credentials (401); set saver.elasticsearch.username and password, or api_key"
		case http.StatusForbidden:
			return "Elasticsearch authenticated the saver but forbids the request (403); the user or API key needs the privileges to manage index templates and write falconet-* indices"
		}
	}
	return ""
}

// applyKafkaSecurity sets sarama's TLS and SASL from [kafka.tls] and
// [kafka.sasl]. The relay has the same function: sarama stays inside the
// two packages that use it.
func applyKafkaSecurity(sc *sarama.Config, k *KafkaConfig) error {
	tc, err := k.TLS.Check("saver.kafka.tls")
	if err != nil {
		return err
	}
	if tc != nil {
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = tc
	}
	mech, password, err := k.SASL.Check("saver.kafka.sasl")
	if err != nil || mech == "" {
		return err
	}
	sc.Net.SASL.Enable = true
	sc.Net.SASL.Handshake = true
	sc.Net.SASL.Version = sarama.SASLHandshakeV1
	sc.Net.SASL.User = k.SASL.Username
	sc.Net.SASL.Password = password
	sc.Net.SASL.Mechanism = sarama.SASLMechanism(mech)
	switch mech {
	case sarama.SASLTypeSCRAMSHA256:
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return secret.NewSCRAMSHA256() }
	case sarama.SASLTypeSCRAMSHA512:
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return secret.NewSCRAMSHA512() }
	}
	return nil
}

// explainKafkaError turns a connection failure into what to check.
func explainKafkaError(err error, k *KafkaConfig) string {
	if why := tlsconf.Explain(err, "saver.kafka.tls", "the broker"); why != "" {
		if errors.As(err, new(tls.RecordHeaderError)) {
			why += "; check saver.kafka.tls.enabled"
		}
		return why
	}
	dropped := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
	switch {
	case errors.Is(err, sarama.ErrSASLAuthenticationFailed):
		return fmt.Sprintf("SASL %s authentication failed for user %q; check saver.kafka.sasl.username and the password", strings.ToUpper(k.SASL.Mechanism), k.SASL.Username)
	case errors.Is(err, sarama.ErrUnsupportedSASLMechanism), errors.Is(err, sarama.ErrIllegalSASLState):
		return fmt.Sprintf("SASL: the broker refuses mechanism %s; check saver.kafka.sasl.mechanism", strings.ToUpper(k.SASL.Mechanism))
	case dropped && k.SASL.Enabled() && k.TLS.Enabled:
		return "the broker closed the connection during authentication; check saver.kafka.sasl (mechanism, username, password)"
	case dropped && k.SASL.Enabled():
		return "the broker closed the connection during the SASL exchange; does it want TLS (saver.kafka.tls.enabled)?"
	case dropped:
		return "the broker closed the connection; if it wants TLS or SASL set saver.kafka.tls and saver.kafka.sasl"
	}
	return ""
}

// errTopicMissing marks a topic the cluster has not got.
var errTopicMissing = errors.New("saver: kafka topic missing")

// checkTopics makes sure the metrics and dead-letter topics exist. A missing
// one is requested once with auto-creation (a cluster that allows it creates
// it); if it is still missing the error says how to create it.
func checkTopics(client sarama.Client, k *KafkaConfig, l *slog.Logger) error {
	exists := func(topic string) (bool, error) {
		if err := client.RefreshMetadata(); err != nil {
			return false, err
		}
		topics, err := client.Topics()
		if err != nil {
			return false, err
		}
		for _, t := range topics {
			if t == topic {
				return true, nil
			}
		}
		return false, nil
	}
	for _, topic := range []string{k.Topic, k.DLQTopic} {
		ok, err := exists(topic)
		if err != nil {
			return err
		}
		if !ok {
			l.Warn("kafka topic does not exist; asking the cluster to create it (auto-creation)", "topic", topic)
			_ = client.RefreshMetadata(topic) // creates it where allowed; checked below
			if ok, err = exists(topic); err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: topic %q does not exist and the cluster does not create topics automatically: "+
					"create it with `falconet kafka-setup -config relay.toml -partitions N -replication R`", errTopicMissing, topic)
			}
		}
		l.Info("kafka topic exists", "topic", topic)
	}
	return nil
}

// logSecurity says at start how the saver reaches Kafka and Elasticsearch:
// TLS files, SASL mechanism and user, where each secret comes from (never a
// secret). Verification turned off is a warning.
func logSecurity(l *slog.Logger, cfg *Config) {
	k := &cfg.Kafka
	args := []any{"kafka_tls", k.TLS.Enabled}
	if k.TLS.Enabled {
		args = append(args, "kafka_tls_ca", orSystemRoots(k.TLS.CA), "kafka_tls_client_cert", k.TLS.Cert != "", "kafka_tls_server_name", k.TLS.ServerName)
	}
	mech := strings.ToUpper(k.SASL.Mechanism)
	if mech == "" {
		mech = "none"
	}
	args = append(args, "kafka_sasl", mech)
	if k.SASL.Enabled() {
		args = append(args, "kafka_sasl_user", k.SASL.Username, "kafka_sasl_password_from", k.SASL.PasswordSource().Where())
	}
	e := &cfg.Elasticsearch
	auth := "none"
	switch {
	case e.APIKey != "" || e.APIKeyFile != "" || e.APIKeyEnv != "":
		auth = "api key from " + secret.Source{Value: e.APIKey, File: e.APIKeyFile, Env: e.APIKeyEnv}.Where()
	case e.Username != "":
		auth = fmt.Sprintf("basic user %q, password from %s", e.Username, secret.Source{Value: e.Password, File: e.PasswordFile, Env: e.PasswordEnv}.Where())
	}
	args = append(args, "es_auth", auth, "es_tls_ca", orSystemRoots(e.TLS.CA), "es_tls_client_cert", e.TLS.Cert != "")
	l.Info("security", args...)
	if k.TLS.Enabled && k.TLS.Insecure {
		l.Warn("kafka.tls.insecure is on: the brokers' certificates are NOT verified; anyone on the path can read and change the traffic")
	}
	if e.TLS.Insecure {
		l.Warn("elasticsearch.tls.insecure is on: Elasticsearch's certificate is NOT verified; anyone on the path can read and change the traffic")
	}
	if strings.EqualFold(k.SASL.Mechanism, "PLAIN") && !k.TLS.Enabled {
		l.Warn("kafka.sasl.mechanism PLAIN without kafka.tls: the password crosses the network in clear")
	}
	for _, u := range e.URLs {
		if strings.HasPrefix(u, "http://") && auth != "none" {
			l.Warn("elasticsearch credentials go to an http:// URL: they cross the network in clear")
			break
		}
	}
}

func orSystemRoots(ca string) string {
	if ca == "" {
		return "system roots"
	}
	return ca
}
