// Package buffer is the agent's durable batch queue: a bbolt file that keeps
// every batch a host measured until a relay has acknowledged it.
//
// # Guarantees
//
//   - Append returns only when the batch is durable: written and fsynced. Concurrent
//     appends share one transaction and one fsync (group commit). After a crash or
//     kill -9, every batch whose Append returned is in the file.
//   - Next hands out batches without removing them; Ack deletes them; Nack hands
//     in-flight batches back. Several batches can be in flight. After a restart every
//     unacked batch is delivered again: delivery is at-least-once, and the relay and
//     Elasticsearch (document ids derived from the metric) make it exactly-once in effect.
//     Ack returns before the delete is durable (deletes are grouped into the next
//     commit; Close flushes them): a crash right after an Ack can deliver that batch again.
//   - Order: oldest first. In live-first mode (Config.LiveFirst), once the oldest
//     waiting batch is older than LiveAfter, everything stored becomes the backlog:
//     batches appended afterwards are handed out first, and the backlog drains
//     oldest-first at BackfillRate bytes/s. Stats.Mode and falconet_buffer_backfill
//     say which mode is active.
//   - The only loss is the one configured: above MaxBytes (or older than MaxAge) the
//     oldest batches are dropped, counted (falconet_buffer_dropped_batches_total,
//     falconet_buffer_dropped_metrics_total, Stats), and logged once per DropLogInterval.
//   - A full disk (ENOSPC) is treated like a full buffer: the oldest batches are dropped
//     to make room; if the file still cannot take the write, Append keeps the batch in
//     memory (up to MemoryBytes, oldest dropped beyond that) and returns nil. Those
//     batches are delivered by Next like any other and written to the file as soon as
//     it has room; they are lost if the process dies first (Stats.MemoryBatches,
//     falconet_buffer_memory_batches, falconet_buffer_disk_full).
//   - A file that cannot be opened or fails its check is moved aside as
//     PATH.corrupt-<time>; every batch that can still be read (checksum intact) is
//     salvaged into a fresh file, and the queue carries on. A batch whose checksum
//     fails on read is moved to the quarantine bucket, counted, and skipped.
//   - Open waits at most LockTimeout for bbolt's file lock, then fails with ErrLocked:
//     the operator's tools refuse clearly while the agent runs.
//
// # On-disk format
//
// One bbolt file with two buckets. "batches" maps an 8-byte big-endian sequence
// number (the bucket's own sequence holds the last one assigned, so numbers are
// never reused in a file's life) to a record:
//
//	offset  size  field
//	0       4     CRC-32C (Castagnoli), little endian, over the 8-byte key then bytes 4..end
//	4       1     record version (1)
//	5       4     metric count, uint32 little endian
//	9       8     append time, unix nanoseconds, int64 little endian
//	17      n     payload: metric.EncodeBatch output, exactly as appended and as sent
//
// Covering the key with the CRC catches a record read under the wrong key.
// "quarantine" holds, under the same keys, the newest 100 records that failed
// their check, for an operator to look at.
//
// bbolt runs with NoFreelistSync (the freelist is rebuilt on open, which makes
// draining several times faster) and the hashmap freelist.
//
// # What it does not do
//
// It does not decode payloads (beyond metric.BatchLen's count check on Append),
// compress them, or talk to the network. It does not protect against a disk that
// lies about fsync. MaxBytes caps record bytes, not the file size: bbolt's page
// overhead and free pages make the file larger until compaction.
package buffer
