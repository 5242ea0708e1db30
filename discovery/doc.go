// Package discovery makes the relay tier self-organising: relays and agents
// are members of one gossip pool (hashicorp/memberlist), relays advertise
// where they listen and how loaded they are, and every agent sends to the
// nearest relay that is ready and has room.
//
// It is the only package that imports memberlist.
//
// # Membership
//
// A Node is one member: a relay (role "relay"), an agent (role "agent") or a
// short-lived observer (role "status", used by `falconet status`). Its
// metadata (Meta, compact JSON, at most memberlist's 512 bytes) carries the
// role, the version and, for relays, the protocol address, readiness and
// load; for agents, the relay in use and the buffer backlog. Metadata is
// re-broadcast only when it changed materially (see Meta.Material), at most
// once per MetaInterval.
//
// A Node joins through its seeds (a DNS name resolving to several addresses
// counts as several seeds) and keeps retrying while it knows no other live
// member, so the pool heals after a partition or when every seed was down at
// start.
//
// Gossip is encrypted when Keys are set: the first key encrypts, every key
// decrypts, and unencrypted or foreign-key traffic is refused, so a node
// without the key can neither join nor read metadata. Rotation without
// downtime: add the new key as the second key everywhere, then make it the
// first everywhere, then remove the old one.
//
// # Choosing a relay
//
// An agent's Node measures its round-trip time to every relay itself, with
// memberlist's direct UDP ping (one relay per RTTInterval, round robin; the
// minimum of the last five samples, as queueing only adds delay), plus the
// samples memberlist's own failure-detector probes produce when they happen
// to hit a relay.
//
// A Chooser considers the relays that are ready, not draining and not full.
// The "near" ones are those within MinGain + Hysteresis×(lowest RTT) of the
// nearest (10 ms + 20 % by default); it chooses among the near relays that
// have room (below 80 % of their connection and in-flight limits), failing
// those among any with room, failing those among all. Within that set the
// score is RTT + load penalty (LoadWeight × connected agents relative to
// the set's mean, plus in-flight memory and produce latency), and agents
// spread evenly. The relay in use is kept unless another in the set is
// better by MinGain + Hysteresis×RTT, or the relay in use left the set (a
// nearer relay came back, ours filled up), for Confirm evaluations in a
// row; then the agent moves with probability MoveChance per evaluation,
// which bounds the share of the fleet that moves at once. A relay that is
// dead, draining or not ready is left at once (failover). Static addresses
// (agent.toml relay.addresses) come last, as a fallback.
//
// A relay fills its redirect list (sent to agents it refuses as busy or
// tells to drain) with the other ready relays that have room, least loaded
// first (AdvertiseRelay).
//
// # What it does not do
//
// It does not carry metrics, and it trusts members that hold the key: a
// member with the key can advertise anything.
package discovery
