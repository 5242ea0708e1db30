// Package devstack provides the real, protocol-speaking components that the
// demo and the tests run on one machine: a Kafka-protocol broker (kfake, from
// franz-go) and an Elasticsearch-compatible server. They are wrapped as
// `falconet dev-kafka` and `falconet dev-es`, and started in-process by tests
// with StartKafka and StartES.
//
// Both can play secured production clusters: the broker speaks TLS and
// requires SASL users (KafkaConfig.TLS, KafkaConfig.SASL; kafkasasl.go makes
// it answer as Kafka does), dev-es serves HTTPS and requires basic auth or an
// API key (ESConfig.TLS, ESConfig.Auth). devcert makes the throw-away CA and
// certificates.
//
// Production never uses this package: relays and savers point at real
// clusters.
package devstack
