// Package relay is falconet's relay: it accepts agents over the wire
// protocol (plain TCP or TLS, optional client certificates, shared tokens),
// accepts Open-Falcon style newline JSON on a legacy port, and produces every
// metric to Kafka (key = series key, value = canonical JSON) with sarama's
// async producer, acks=all.
//
// With [open_falcon] enabled it is also a drop-in for Open-Falcon's transfer:
// JSON-RPC Transfer.Update on the protocol port (told apart from the
// falconet protocol by the first byte a client sends: '{' against "FN" or a
// TLS ClientHello), "update" lines on the legacy port, and POST /api/push on
// the HTTP port, with Open-Falcon's answers and validation (mapped onto
// metric.Validate; see metric.OpenFalconItem).
//
// # Guarantees
//
//   - A batch is acked OK only after Kafka acked every record of it. A record
//     that fails after the producer's retries makes the batch's answer
//     RetryLater; the agent keeps it and sends it again (here or elsewhere).
//     A batch that cannot be decoded at all is answered Invalid.
//     Individually invalid metrics in a good batch are dropped, counted
//     (falconet_relay_invalid_metrics_total) and logged.
//   - Memory is bounded: bytes of batches between reading and Kafka's answer
//     are limited per connection and in total (limits.*_inflight_bytes). When
//     the budget is full the relay stops reading, so TCP pushes back and
//     agents keep data on their disks.
//   - /healthz is 503 while Kafka is unreachable or failing, while the budget
//     is 90 % used, or while draining; in that state new agents are refused
//     with RejectBusy (go elsewhere).
//   - An Open-Falcon call or push is answered "ok" only after Kafka acked
//     every valid item of it; when Kafka is known to be unreachable or
//     failing it is answered an error at once, and nothing of it is produced.
//     Its items, answered or not, are bounded by the same in-flight budgets,
//     and its connections by limits.max_connections.
//   - The unauthenticated inputs (the legacy port, JSON-RPC, /api/push)
//     accept loopback and open_falcon.allow only; refusals are counted
//     (falconet_relay_unauthenticated_refused_total) and logged, rate-limited.
//   - Run's graceful exit (ctx cancelled, e.g. SIGTERM) stops accepting,
//     sends Drain to every agent, waits (limits.shutdown_timeout) until their
//     in-flight batches were answered and they left, then flushes the
//     producer. Close stops at once; unanswered batches are resent by agents.
//   - Kafka is reached over TLS and SASL (PLAIN, SCRAM-SHA-256/512) when
//     [kafka.tls] and [kafka.sasl] say so (kafkasec.go). A refused
//     connection keeps /healthz 503 with what to check (the key named); the
//     topic is checked at start and SetupTopics creates it
//     (falconet kafka-setup). Secrets are never logged.
//
// # What it does not do
//
// It does not deduplicate: a resent batch is produced again; the saver's
// document ids make that harmless. The legacy port has no acknowledgements,
// so what a legacy client sent while Kafka was failing is lost (counted); an
// Open-Falcon agent drops a batch answered with an error, as it always did.
// It keeps no per-series state, so Open-Falcon COUNTER values are stored raw,
// not turned into rates. The
// [discovery] keys are parsed and validated only; gossip comes later, and
// SetRedirect is where it will supply alternative relays.
package relay
