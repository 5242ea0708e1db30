// Package esserver is dev-es: an HTTP server that speaks the Elasticsearch
// 7.x REST API for the subset falconet's saver, demo and operators use,
// written from the Elasticsearch reference. It is what kfake is for Kafka: a
// real server the clients (olivere/elastic/v7, curl) talk to over TCP, so
// their error handling is exercised for real.
//
// # Guarantees
//
//   - Strict where Elasticsearch is strict: index-name rules, NDJSON bulk
//     framing, Content-Type, duplicate JSON keys, unknown URL parameters and
//     body keys, unknown settings and mapping parameters, mapping conflicts,
//     create-on-existing-_id (409), result windows, and the error bodies
//     Elasticsearch returns (type, reason, root_cause, status).
//   - Real features it does not implement answer 400 with a reason that
//     starts "dev-es does not support", never a silently wrong result.
//   - Every endpoint is one row of the routes table (routes.go): a path no
//     row serves is refused, never answered by a shorter route; a body sent
//     where none is read is refused. TestRouterWalk walks the table.
//   - An acknowledged write is on disk: every write request commits one
//     bbolt transaction (fsync) before it is answered, like Elasticsearch's
//     default translog durability "request".
//   - Near-real-time search as in Elasticsearch: writes are visible to GET by
//     id at once, to search after a refresh (refresh=true|wait_for,
//     _refresh) or within the index's refresh_interval (1 s default).
//
// # What it is not
//
// One node, one shard per index (number_of_shards is recorded, not
// used), everything held in memory (the bbolt file is the durable copy that
// is read back at start), scores are constant, no analyzers but an
// approximation of "standard". The README lists every known difference.
//
// # Faults
//
// Faults (429 per bulk item, latency, 503, closed connections, going away)
// are set with Server.SetFaults, GoAway/StopListening/StartListening, or the
// admin endpoints under /_falconet/ which are never faulted themselves.
package esserver
