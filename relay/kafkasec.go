package relay

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/falconet/falconet/internal/secret"
	"github.com/falconet/falconet/internal/tlsconf"
)

// applyKafkaSecurity sets sarama's TLS and SASL from [kafka.tls] and
// [kafka.sasl] (files are read and the password resolved now).
func applyKafkaSecurity(sc *sarama.Config, c KafkaConfig) error {
	tc, err := c.TLS.Check("relay.kafka.tls")
	if err != nil {
		return err
	}
	if tc != nil {
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = tc
	}
	mech, password, err := c.SASL.Check("relay.kafka.sasl")
	if err != nil {
		return err
	}
	if mech == "" {
		return nil
	}
	sc.Net.SASL.Enable = true
	sc.Net.SASL.Handshake = true
	sc.Net.SASL.Version = sarama.SASLHandshakeV1
	sc.Net.SASL.User = c.SASL.Username
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

// logKafkaSecurity says at start how the relay reaches Kafka: TLS and its
// files, SASL mechanism, user and where the password comes from (never the
// password). Verification turned off is a warning.
func logKafkaSecurity(l *slog.Logger, c KafkaConfig) {
	args := []any{"tls", c.TLS.Enabled}
	if c.TLS.Enabled {
		ca := c.TLS.CA
		if ca == "" {
			ca = "system roots"
		}
		args = append(args, "tls_ca", ca, "tls_client_cert", c.TLS.Cert != "", "tls_server_name", c.TLS.ServerName)
	}
	mech := strings.ToUpper(c.SASL.Mechanism)
	if mech == "" {
		mech = "none"
	}
	args = append(args, "sasl", mech)
	if c.SASL.Enabled() {
		args = append(args, "sasl_user", c.SASL.Username, "sasl_password_from", c.SASL.PasswordSource().Where())
	}
	l.Info("kafka security", args...)
	if c.TLS.Enabled && c.TLS.Insecure {
		l.Warn("kafka.tls.insecure is on: the brokers' certificates are NOT verified; anyone on the path can read and change the traffic")
	}
	if strings.EqualFold(c.SASL.Mechanism, "PLAIN") && !c.TLS.Enabled {
		l.Warn("kafka.sasl.mechanism PLAIN without kafka.tls: the password crosses the network in clear")
	}
}

// explainKafkaError turns a connection failure into what the operator should
// check, naming the keys; "" when it is not a security problem.
func explainKafkaError(err error, c KafkaConfig, prefix string) string {
	if why := tlsconf.Explain(err, prefix+".tls", "the broker"); why != "" {
		if errors.As(err, new(tls.RecordHeaderError)) {
			why += "; check " + prefix + ".tls.enabled"
		}
		return why
	}
	var kerr sarama.KError
	switch {
	case errors.As(err, &kerr) && kerr == sarama.ErrSASLAuthenticationFailed,
		errors.Is(err, sarama.ErrSASLAuthenticationFailed):
		return fmt.Sprintf("SASL %s authentication failed for user %q; check %s.sasl.username and the password", strings.ToUpper(c.SASL.Mechanism), c.SASL.Username, prefix)
	case errors.As(err, &kerr) && (kerr == sarama.ErrUnsupportedSASLMechanism || kerr == sarama.ErrIllegalSASLState):
		return fmt.Sprintf("SASL: the broker refuses mechanism %s (%v); check %s.sasl.mechanism", strings.ToUpper(c.SASL.Mechanism), kerr, prefix)
	case c.SASL.Enabled() && c.TLS.Enabled && isConnDropped(err):
		// Some brokers close the connection instead of answering
		// SASL_AUTHENTICATION_FAILED.
		return fmt.Sprintf("the broker closed the connection during authentication; check %s.sasl (mechanism, username, password)", prefix)
	case c.SASL.Enabled() && isConnDropped(err) && !c.TLS.Enabled:
		return fmt.Sprintf("the broker closed the connection during the SASL exchange; does it want TLS (%s.tls.enabled)?", prefix)
	case !c.TLS.Enabled && isConnDropped(err):
		return fmt.Sprintf("the broker closed the connection; if it wants TLS or SASL set %s.tls and %s.sasl", prefix, prefix)
	}
	return ""
}

func isConnDropped(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// topicExists asks the cluster whether topic exists, without creating it.
func topicExists(client sarama.Client, topic string) (bool, error) {
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

// errTopicMissing marks a topic the cluster has not got and did not create.
var errTopicMissing = errors.New("relay: kafka topic missing")

// checkTopic makes sure the relay's topic exists. A missing topic is
// requested once with auto-creation (a cluster that allows it creates it);
// if it is still missing the error says how to create it.
func checkTopic(client sarama.Client, topic string, l *slog.Logger) error {
	ok, err := topicExists(client, topic)
	if err != nil {
		return err
	}
	if ok {
		l.Info("kafka topic exists", "topic", topic)
		return nil
	}
	l.Warn("kafka topic does not exist; asking the cluster to create it (auto-creation)", "topic", topic)
	_ = client.RefreshMetadata(topic) // auto-creates where allowed; the answer is checked below
	if ok, err = topicExists(client, topic); err != nil {
		return err
	}
	if ok {
		l.Info("kafka topic created by the cluster (auto-creation)", "topic", topic)
		return nil
	}
	return fmt.Errorf("%w: topic %q does not exist and the cluster does not create topics automatically: "+
		"create it with `falconet kafka-setup -config relay.toml -partitions N -replication R`", errTopicMissing, topic)
}

// TopicSpec is a topic SetupTopics makes sure of.
type TopicSpec struct {
	Name        string
	Partitions  int32
	Replication int16
	// Retention is the topic's retention.ms; 0 leaves the cluster default.
	Retention time.Duration
}

// TopicReport is what SetupTopics did with one topic.
type TopicReport struct {
	Name       string
	Created    bool
	Partitions int32 // the topic's partition count now
}

// SetupTopics creates the topics of specs that do not exist yet, through the
// relay's Kafka settings (brokers, TLS, SASL). Existing topics are left as
// they are and reported with their partition count.
func SetupTopics(c KafkaConfig, specs []TopicSpec, report func(TopicReport)) error {
	sc, err := saramaConfig(c)
	if err != nil {
		return err
	}
	admin, err := sarama.NewClusterAdmin(c.Brokers, sc)
	if err != nil {
		if why := explainKafkaError(err, c, "kafka"); why != "" {
			return fmt.Errorf("kafka: %s: %w", why, err)
		}
		return fmt.Errorf("kafka: %w", err)
	}
	defer func() { _ = admin.Close() }()
	existing, err := admin.ListTopics()
	if err != nil {
		return fmt.Errorf("kafka: list topics: %w", err)
	}
	for _, s := range specs {
		if d, ok := existing[s.Name]; ok {
			if report != nil {
				report(TopicReport{Name: s.Name, Partitions: d.NumPartitions})
			}
			continue
		}
		detail := &sarama.TopicDetail{NumPartitions: s.Partitions, ReplicationFactor: s.Replication}
		if s.Retention > 0 {
			ms := strconv.FormatInt(s.Retention.Milliseconds(), 10)
			detail.ConfigEntries = map[string]*string{"retention.ms": &ms}
		}
		if err := admin.CreateTopic(s.Name, detail, false); err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return fmt.Errorf("kafka: create topic %s: %w", s.Name, err)
		}
		if report != nil {
			report(TopicReport{Name: s.Name, Created: true, Partitions: s.Partitions})
		}
	}
	return nil
}
