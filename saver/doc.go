// Package saver moves metrics from Kafka into Elasticsearch: a consumer
// group, batching into bulk requests, dead letters, retention and rollups.
// falconet-saver is its command.
//
// # Guarantees
//
// Exactly once in effect. A record's offset is committed only after every
// earlier record of its partition is stored in Elasticsearch or produced to
// the dead-letter topic (acks=all) with its reason in the falconet-dlq-reason
// header. Commits are manual (sarama's auto-commit is off). A document's _id
// is the metric's DocID and its index is the UTC day of the metric's own
// timestamp (falconet-metrics-YYYY.MM.DD), so whatever is read twice - after
// a crash, a rebalance, a retry - lands on itself: with op_type "create" the
// second copy answers 409, which counts as stored.
//
// Per-item bulk results: 2xx and 409 (create) are stored; 429 and 5xx items
// are sent again with exponential back-off, alone; any other item error
// (400 mapping errors) goes to the dead-letter topic. When a whole request
// fails or Elasticsearch is down the saver backs off and keeps its offsets;
// memory stays bounded because the batcher stops taking records when
// max_in_flight bulks are outstanding, which stops the Kafka fetch.
//
// Records that cannot be stored go to the dead-letter topic: malformed
// JSON, metrics that fail Validate, timestamps more than future_skew ahead of
// the saver's clock, timestamps older than retention_days (their index is
// already gone).
//
// Batches are flushed at bulk_docs documents, bulk_bytes bytes or
// flush_interval after their first document, whichever comes first.
//
// # Lifecycle of the data
//
// Retention deletes falconet-metrics-YYYY.MM.DD indices whose date (in the
// name) is older than retention_days, hourly by default; ExpiredIndices is
// the rule and RetentionPlan the dry run. Rollups compute
// min/max/sum/avg/count per series per configured step for closed windows
// by reading the raw documents back (so a restart or several savers never
// produce a partial rollup), into falconet-rollup-<step>-YYYY.MM with
// deterministic ids; a document stored late (within rollup.lateness) into a
// window already computed makes the saver compute it again. Windows wait
// while the saver is behind on its partitions, so catching up a backlog does
// not produce rollups of data still in Kafka.
//
// # Operations
//
// /healthz fails when Elasticsearch or the dead-letter topic has been failing
// for more than a minute; falconet_saver_lag_records is how far behind the
// saver is. A bulk answered 413 (a proxy with a smaller body limit than
// bulk_bytes) is split in halves; a single document that does not fit is
// dead-lettered. Any other whole-request failure is retried forever with
// back-off rather than dropped.
//
// # Secured clusters
//
// Kafka over TLS and SASL ([kafka.tls], [kafka.sasl], as in relay.toml) and
// Elasticsearch over HTTPS with basic auth or an API key
// ([elasticsearch] credentials, [elasticsearch.tls]); secrets inline, from
// a file or an environment variable, never logged (security.go). Run
// connects to Kafka and retries; until it is connected, and while
// Elasticsearch refuses the credentials or the TLS does not verify, Health
// says why.
//
// # Shutdown
//
// When Run's context ends the saver stops fetching, gives in-flight records
// up to rebalance_drain to be stored, commits, leaves the group and returns,
// all within shutdown_timeout; what is still in flight then stays
// uncommitted and is read again by the next owner.
//
// # What it does not do
//
// The dead-letter topic is at-least-once: a record whose dead-letter write
// raced with a crash or a rebalance can be there twice. Scheduled rollups are
// computed by the group member that owns partition 0 (during a rebalance two
// may briefly both compute: same ids, same results).
// A metric re-sent with the same series and second but another value does
// not replace the first with op_type "create"; use "index" for that.
package saver
