// Package devstack provides the real, protocol-speaking components that the
// demo and the tests run on one machine: a Kafka-protocol broker (kfake, from
// franz-go) and an Elasticsearch-compatible server. They are wrapped as
// `falconet dev-kafka` and `falconet dev-es`, and started in-process by tests
// with StartKafka and StartES.
//
// Production never uses this package: relays and savers point at real
// clusters.
package devstack
