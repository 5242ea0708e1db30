// Package sender moves batches from the agent's durable queue to a relay
// over the wire protocol, and deletes each batch only when a relay has acked
// it (which a relay does only after Kafka acked every record of it).
//
// # Guarantees
//
//   - A batch is Acked in the queue only on a relay's OK (stored) or Invalid
//     (undeliverable, logged and counted) answer. On RetryLater, a dropped
//     connection, a drain notice or shutdown, every unanswered batch is
//     Nacked and will be sent again — possibly to another relay, possibly a
//     second time; the metric's document id makes the duplicate harmless.
//   - A batch larger than the relay's maximum frame (Welcome.MaxFrame) could
//     never be delivered; it is deleted with an error log and counted
//     (falconet_agent_sender_batches_rejected_total{status="too_large"}).
//   - Up to MaxInFlight batches are pipelined on one connection.
//   - A dead link is noticed within seconds: heartbeats every Heartbeat, a
//     read deadline of ReadTimeout (any frame from the relay extends it),
//     write deadlines, and TCP_USER_TIMEOUT so a write into a blackhole
//     fails instead of blocking for the kernel's 15 minutes.
//   - Relays are tried in the RelaySource's order of preference; a relay that
//     refuses, is unreachable or answers "retry later" is skipped for the
//     next attempt; when all fail, the sender waits with jittered exponential
//     backoff before trying again. With a static source it stays on a relay
//     until the connection ends; with a Steering source (discovery's
//     Chooser) it also moves when the source prefers another relay: it
//     stops sending, waits for the answers to what is in flight (at most
//     DrainTimeout; the rest is resent) and reconnects there.
//
// # What it does not do
//
// It does not buffer, encode or validate metrics (the queue holds
// metric.EncodeBatch bytes and they go on the wire unchanged), and it keeps
// at most one connection open.
package sender
