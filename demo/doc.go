// Package demo runs the whole falconet pipeline on one machine, on loopback,
// as child processes of the built binaries: the development Kafka broker and
// Elasticsearch (the falconet binary's dev-kafka and dev-es subcommands), two
// relays, a saver and a few agents (falconet-agent, -relay, -saver), each with
// its own TOML file, log file and /metrics. What runs is exactly what an
// operator deploys; only the addresses are loopback ones.
//
// The first agent collects this host's real metrics; the others are fed a
// deterministic synthetic stream by the falconet binary's load subcommand,
// which records every push the agent accepted. At the end Run stops the
// streams, waits for the pipeline to drain and checks Elasticsearch: every
// accepted synthetic metric must be stored exactly once. With Fault set to
// "relay-kill" the busiest relay is killed with SIGKILL mid-run and restarted
// later, so the check covers a relay crash.
//
// While it runs, the demo prints a status line every Config.Every and keeps a
// state file (state.json in Config.Dir) that `falconet status` reads.
//
// What it does not do: run on more than one machine, use TLS or
// authentication, or survive its own crash (the children are in their own
// process groups and are stopped by Run's shutdown, not by a supervisor).
package demo
