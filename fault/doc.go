// Package fault is the unplug-the-network suite: tests (build tag `fault`,
// `make test-fault`, root) that run the real binaries in Linux network
// namespaces, break the network and the components for real, and check the
// delivery contract in Elasticsearch: every metric an agent accepted is
// stored exactly once, none missing, none twice.
//
// Topology (fault/netns): a hub namespace with a bridge; namespaces core
// (dev Kafka, dev ES, saver), relay1, relay2, agent1, agent2, each on the
// bridge through a veth; the root namespace also has a port on the bridge
// so the test can query Elasticsearch and scrape /metrics. Faults: the hub
// end of an agent's veth set down (a pulled cable), an nftables bridge rule
// that silently drops the agent's frames (a blackhole: no RST, no FIN), and
// SIGKILL/SIGTERM of any process.
//
// Load (fault/load, `falconet load`): a generator inside each agent's
// namespace pushes a deterministic stream to the agent's loopback push API
// and logs every push the agent answered 200 (durable in its buffer);
// rejected or unanswered pushes are retried, so the accepted set is exact.
//
// Check (fault/check): for each accepted metric its document id
// (metric.DocID) must exist once, in the index of its own UTC day, with the
// same source; no other document of the stream's endpoint may exist.
//
// Each scenario prints and records a row: generated, stored, missing,
// duplicated, time from heal to the first live metric in Elasticsearch and
// to the drained backlog. TestMain writes the table to
// $FALCONET_FAULT_REPORT (default /tmp/falconet-fault-report.md). Logs of
// every process are kept under $FALCONET_FAULT_LOGS (default
// /tmp/falconet-fault-logs/<test>; replaced by the next run).
//
// The saver runs with refresh_interval "1s" (its template's default is 30s)
// so that the recovery times measure delivery, not Elasticsearch's refresh.
//
// Not done here: latency or loss emulation (no tc netem on these kernels).
package fault
