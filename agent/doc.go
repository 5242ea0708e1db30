// Package agent is the collecting half of falconet-agent: built-in
// collectors (on gopsutil), user-script collectors, the scheduler that runs
// them, the local push API, and the sink that hands metrics to the durable
// buffer. The sender that moves buffered batches to relays is agent/sender.
//
// # Collectors
//
// A collector is a CollectFunc. Built-ins (Builtins) report cpu (per-mode
// percent incl. iowait and steal), load, memory and swap, filesystems (usage
// and inodes, pseudo filesystems skipped), disk io and network interface
// rates, process counts and uptime, with Open-Falcon's metric names where it
// had one. Counters become per-second rates between two rounds: the first
// round only takes the baseline; a 32- or 64-bit counter that wrapped gives
// the right rate; a counter that was reset (device re-created) gives no rate
// for that round rather than a huge or negative one.
//
// NewUserMetric runs an executable per round: its stdout is Open-Falcon JSON
// or "name value [k=v ...]" lines. Each run has a timeout after which its
// whole process group is killed; the script is always waited for, so no
// zombie stays behind. Failures are errors, counted per script; they never
// stop the agent.
//
// # Scheduling
//
// The Scheduler gives every collector a ticker goroutine with a random phase
// (jitter) and runs each round in a goroutine of its own: a slow or hung
// collector, or a slow sink, delays nobody else. A collector still running at
// its next tick has that tick skipped and counted
// (falconet_agent_skipped_ticks_total); it never runs twice at once. Run
// returns only after every goroutine it started has returned.
//
// # Guarantees
//
// The push API (PushHandler) answers 200 only after Sink.Write returned nil;
// with BufferSink in front of the durable queue that means the metrics are on
// disk. A sink error is a 503 (retry); bad items are a 400 naming each item,
// and then nothing is stored. BufferSink's Write returns after every batch
// was appended.
//
// # What it does not do
//
// It does not know about relays, Kafka or Elasticsearch, and does not import
// the buffer: the Appender and Sink interfaces are all it needs. Metrics a
// collector produced while the sink failed are counted
// (falconet_agent_sink_errors_total) and lost; collectors do not retry. A
// statfs blocked in the kernel (dead network mount) cannot be interrupted:
// the filesystem collector abandons it after 5 s and skips that mount until
// the call returns.
package agent
