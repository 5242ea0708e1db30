// Package metric defines falconet's unit of data, the Metric, and everything
// that must agree about it across the pipeline: its canonical JSON form,
// Open-Falcon's JSON form, the compact binary batch encoding that the agent's
// buffer stores and the wire carries, the series key that keeps a series in one
// Kafka partition, and the document id that makes every replay, retry and
// redelivery overwrite instead of duplicate.
//
// # Guarantees
//
//   - SeriesKey and DocID are pure functions of the metric's identity
//     (endpoint, name, sorted tags, timestamp). The same metric yields the same
//     id on every host, every architecture and every version; the golden ids in
//     the tests pin this. Changing them is a breaking change of the stored data.
//   - Validate rejects what would make those keys ambiguous or the stored data
//     useless: empty or oversized names, forbidden characters, NaN and ±Inf,
//     timestamps outside [2000-01-01, 2200-01-01), too many or too long tags.
//   - Decoders never panic on any input and bound every allocation by the
//     input's size (fuzzed: FuzzDecodeBatch, FuzzDecodeJSON).
//
// # What it does not do
//
// It knows nothing of the network, of disks or of Kafka: it turns bytes into
// metrics and back.
package metric
