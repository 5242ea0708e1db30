// Package wire is the agent–relay protocol: length-prefixed, checksummed
// binary frames over TCP (optionally TLS), and the messages they carry.
//
// # Frames
//
// Every frame is a 12-byte header followed by a payload:
//
//	magic "FN" (2 bytes) | version (1) | type (1) | payload length (4, big endian) | CRC-32C (4, big endian)
//
// The CRC (Castagnoli) covers the first 8 header bytes and the payload. A
// reader refuses a frame whose magic, version, length or checksum is wrong
// before it allocates for the payload: ErrBadMagic, ErrVersion,
// ErrFrameTooLarge, ErrChecksum. After any of these the stream is not
// trustworthy any more; the caller closes the connection, ideally after
// sending a Reject that says why.
//
// # Conversation
//
// The agent opens the connection and sends Hello (agent id, software
// version, token, capabilities). The relay answers Welcome (its id, the
// pipelining window and frame size it accepts, its idle timeout) or Reject
// (a code, a reason, and addresses to try instead) and closes. Then the agent
// sends Batch frames (a sequence number and metric.EncodeBatch bytes,
// carried unchanged) and Heartbeats; the relay sends Acks (per batch: OK,
// Invalid — never deliverable, drop it — or RetryLater — keep it and send it
// again, here or elsewhere), Pongs, and a Drain notice before it shuts down
// (stop sending new batches; the in-flight ones will still be answered).
// Either side may send Reject before closing to say why.
//
// # Guarantees and limits
//
// The package only encodes and decodes; it keeps no connection state and
// knows nothing of buffers or Kafka. Decoders never panic on any input and
// allocate at most the payload length (bounded by the reader's maximum frame
// size). A Batch or any decoded byte slice aliases the reader's buffer and is
// valid until the next read.
package wire
