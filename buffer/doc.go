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
//     salvaged into a fresh file, and the queue carries on. The check walks the
//     whole B+tree with plain reads before bbolt maps the file (page ids and types,
//     bounds, each page referenced once, key order: what bbolt's own check looks
//     at), because bbolt panics on a goroutine of its own when it rebuilds the
//     freelist of a damaged file, and that would crash-loop the agent. A file
//     damaged while the queue runs is handled the same way: a fault in the mmap
//     becomes an error, the commit loop salvages, in-flight batches stay in
//     flight. A batch whose checksum fails is moved to the quarantine bucket,
//     counted (falconet_buffer_quarantined_batches_total), and skipped.
//   - Both meta pages are checked: one that fails its checksum, or two that
//     disagree (page size; txids not adjacent or not on page txid%2), is damage,
//     because bbolt would silently open the older one and forget the last commit.
//     The salvage then takes the older tree plus every CRC-valid record on disk
//     newer than anything in it. Salvages are counted (falconet_buffer_salvages_total).
//   - Wall-clock steps: append times are wall time; the queue checks the wall clock
//     against the monotonic one at every commit and every second, and reads the
//     append times of batches stored before a step (more than 2 s) shifted by it, so
//     live-first and MaxAge see true ages (falconet_buffer_clock_steps_total).
//     Steps are kept in memory: one that happened while the agent was stopped is
//     not seen.
//   - Compaction: when free pages pass CompactFreeBytes and CompactFreeRatio of the
//     file, the commit loop copies the records into PATH.compact and renames it over
//     the file. Appends wait meanwhile; a copy that passes CompactTimeout is
//     abandoned and the old file kept. Nothing acked or unacked is lost either way.
//     Once a backlog has drained (at most 4 MiB of records left, at least 1 MiB and
//     CompactFreeRatio of the file free) the file is compacted back to about its
//     idle size regardless of CompactFreeBytes, at most once a minute.
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
// draining several times faster), the hashmap freelist, 32 KiB pages for new
// files (a 2-8 KiB batch wastes most of a 4 KiB page) and a 0.95 fill factor
// (keys only grow). The pages bbolt reads through its mmap are given back
// (madvise DONTNEED) every 32 MiB appended or handed out and after open, so
// the process's RSS does not grow with the backlog.
//
// # What it does not do
//
// It does not decode payloads (beyond metric.BatchLen's count check on Append),
// compress them, or talk to the network. It does not protect against a disk that
// lies about fsync. MaxBytes caps record bytes, not the file size: bbolt's page
// overhead and free pages make the file larger until compaction.
package buffer
