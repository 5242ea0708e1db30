// Package update is the agent's self-update: it checks a signed release
// feed (package update/feed), takes a release when the staged rollout
// selects this host, downloads and verifies it, applies it with
// github.com/minio/selfupdate into a versions directory, and runs the new
// version on trial until it proves itself healthy; a version that does not
// is rolled back and never taken again on this host.
//
// # The installed binary is never modified
//
// A package manager owns the installed binary (/usr/bin/falconet-agent,
// read-only to a hardened service). A release is applied to
// Dir/<version>/falconet-agent instead, and Dir/state.json records the
// committed version, a trial in progress, and the versions marked bad.
// At start the installed binary (Boot) execs the committed version when it
// is newer than itself: the same PID, so systemd sees one service. A
// package upgrade to a newer version therefore simply wins.
//
// # Trial and health gate
//
// Run applies a release only while the agent is delivering (a relay acked
// a batch within DeliveringWindow), so a trial is not failed by an outage
// that was already there. The running agent then shuts down, closes its
// buffer, records the trial (deadline = now + HealthTimeout), starts the
// watcher (a child of the old binary: falconet-agent -update-watch DIR)
// and execs the new version. The new version commits itself once its
// buffer is open and a relay acked a batch it sent.
//
// Rollback, whoever notices first:
//
//   - the trial itself, shortly before the deadline (SelfCheckLead) without
//     an ack: marks itself bad and execs the installed binary, which runs
//     the previous version;
//   - the exec fails (wrong architecture, not an executable): the old
//     process marks the version bad and execs the installed binary;
//   - the watcher: the trial died (crashed, exited, could not start) or is
//     still unresolved at the deadline (hung; it is killed
//     with SIGKILL): it marks the version bad and, without systemd, execs
//     the installed binary; under systemd Restart=always does that;
//   - the installed binary at start: a trial that never committed and was
//     not stopped on purpose failed (power loss, the watcher killed too).
//
// A "no_ack" verdict is rechecked by the version rolled back to: if it
// gets no ack within HealthTimeout either, the network was at fault and
// the mark is withdrawn (once per version), so the release is tried again
// when the agent delivers.
//
// The buffer (bbolt, exclusively locked) is open in one process at a time:
// the old process closes it before the exec, a killed trial's lock dies
// with it. Unacked batches stay in the buffer and are sent again by the
// next version; document ids make such replays overwrite in Elasticsearch.
//
// # Not done
//
// A committed version that starts crashing later (after its trial) is not
// rolled back automatically; halting its release in the feed is. Deltas
// (selfupdate's Patcher) are not used: every release is a whole binary.
package update
