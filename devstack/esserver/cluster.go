package esserver

import (
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// shardCopy is one copy of one shard: the primary is started on the node,
// replicas are unassigned (one node), as on a real single-node cluster.
type shardCopy struct {
	index   *index
	shard   int
	primary bool
}

func (c shardCopy) state() string {
	if c.primary {
		return "STARTED"
	}
	return "UNASSIGNED"
}

// shardCopies lists every copy of every shard of ix. dev-es keeps all
// documents in shard 0; the other primaries are started and empty.
func shardCopies(ix *index) []shardCopy {
	var out []shardCopy
	for sh := 0; sh < ix.setting("number_of_shards", 1); sh++ {
		out = append(out, shardCopy{index: ix, shard: sh, primary: true})
		for r := 0; r < ix.setting("number_of_replicas", 1); r++ {
			out = append(out, shardCopy{index: ix, shard: sh})
		}
	}
	return out
}

func (c shardCopy) routing() map[string]any {
	o := map[string]any{"state": c.state(), "primary": c.primary, "node": nil, "relocating_node": nil, "shard": c.shard, "index": c.index.name}
	if c.primary {
		o["node"] = nodeID
		o["allocation_id"] = map[string]any{"id": c.index.uuid[:10] + strconv.Itoa(c.shard)}
	} else {
		o["recovery_source"] = map[string]any{"type": "PEER"}
		o["unassigned_info"] = map[string]any{"reason": "INDEX_CREATED", "at": time.UnixMilli(c.index.created).UTC().Format("2006-01-02T15:04:05.000Z"), "delayed": false, "allocation_status": "no_attempt"}
	}
	return o
}

// healthOf is the status of one index's shards (closed indices included, as
// in 7.x where closed indices are replicated).
func healthOf(ix *index) (status string, prim, unassigned int) {
	prim = ix.setting("number_of_shards", 1)
	unassigned = prim * ix.setting("number_of_replicas", 1)
	status = "green"
	if unassigned > 0 {
		status = "yellow"
	}
	return
}

// clusterHealth sums healthOf over indices.
func clusterHealth(list []*index) (status string, prim, unassigned int) {
	status = "green"
	for _, ix := range list {
		st, p, u := healthOf(ix)
		if st == "yellow" {
			status = st
		}
		prim, unassigned = prim+p, unassigned+u
	}
	return status, prim, unassigned
}

// healthIndices renders the "indices" section of cluster health for
// level=indices|shards ("Cluster health API", level).
func healthIndices(list []*index, shards bool) map[string]any {
	out := map[string]any{}
	for _, ix := range list {
		status, prim, unassigned := healthOf(ix)
		o := map[string]any{"status": status, "number_of_shards": prim, "number_of_replicas": ix.setting("number_of_replicas", 1),
			"active_primary_shards": prim, "active_shards": prim, "relocating_shards": 0, "initializing_shards": 0,
			"unassigned_shards": unassigned}
		if shards {
			sh := map[string]any{}
			for i := 0; i < prim; i++ {
				reps := ix.setting("number_of_replicas", 1)
				st := "green"
				if reps > 0 {
					st = "yellow"
				}
				sh[strconv.Itoa(i)] = map[string]any{"status": st, "primary_active": true, "active_shards": 1,
					"relocating_shards": 0, "initializing_shards": 0, "unassigned_shards": reps}
			}
			o["shards"] = sh
		}
		out[ix.name] = o
	}
	return out
}

// ---- machine facts (node stats, _cat/nodes, cluster stats) ----

type machine struct {
	memTotal, memFree   uint64
	load                [3]float64
	cpus                int
	fsPath              string
	fsTotal, fsFree     uint64
	fsAvail             uint64
	openFDs, maxFDs     int64
	heapInUse, heapSys  uint64
	processCPUMillis    int64
	processVirtualBytes uint64
}

func (s *Server) machine() machine {
	m := machine{cpus: runtime.NumCPU(), fsPath: s.cfg.DataDir, openFDs: -1, maxFDs: -1}
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		unit := uint64(si.Unit)
		m.memTotal, m.memFree = uint64(si.Totalram)*unit, uint64(si.Freeram+si.Bufferram)*unit
		for i := range m.load {
			m.load[i] = float64(si.Loads[i]) / 65536
		}
	}
	if m.fsPath == "" {
		m.fsPath = os.TempDir()
	}
	var st syscall.Statfs_t
	if syscall.Statfs(m.fsPath, &st) == nil {
		bs := uint64(st.Bsize)
		m.fsTotal, m.fsFree, m.fsAvail = st.Blocks*bs, st.Bfree*bs, st.Bavail*bs
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		m.openFDs = int64(len(ents))
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		m.maxFDs = int64(rl.Cur)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.heapInUse, m.heapSys = ms.HeapInuse, ms.HeapSys
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		m.processCPUMillis = (ru.Utime.Nano() + ru.Stime.Nano()) / 1e6
	}
	m.processVirtualBytes = ms.Sys
	return m
}

func pct(part, total uint64) int {
	if total == 0 {
		return 0
	}
	return int(part * 100 / total)
}

// ---- _nodes ----

var nodeInfoMetrics = map[string]bool{"settings": true, "os": true, "process": true, "transport": true, "http": true, "plugins": true, "modules": true, "ingest": true}
var nodeInfoUnsupported = map[string]bool{"jvm": true, "thread_pool": true, "aggregations": true, "indices": true}

// nodeSelected applies a node filter ("Cluster APIs > Node specification")
// to dev-es's only node.
func nodeSelected(spec string) bool {
	if spec == "" {
		return true
	}
	for _, p := range strings.Split(spec, ",") {
		switch {
		case p == "_all" || p == "_local" || p == "_master" || p == "*" || p == nodeID || p == nodeName || globMatch(p, nodeName):
			return true
		case p == "master:true" || p == "data:true" || p == "ingest:true":
			return true
		}
	}
	return false
}

func (s *Server) publishAddr(rq *request) (host, addr string) {
	addr = s.Addr()
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		// bound to every address: publish the one the client used, so a
		// sniffing client can reach it
		if h, _, err := net.SplitHostPort(rq.r.Host); err == nil {
			host = h
		} else if rq.r.Host != "" {
			host = rq.r.Host
		}
		addr = net.JoinHostPort(host, port)
	}
	return host, addr
}

func (s *Server) nodeBase(rq *request) map[string]any {
	host, _ := s.publishAddr(rq)
	return map[string]any{"name": nodeName, "transport_address": host + ":9300", "host": host, "ip": host,
		"roles": []string{"data", "ingest", "master"}, "attributes": map[string]any{}}
}

func nodesEnvelope(selected bool, node map[string]any) map[string]any {
	nodes := map[string]any{}
	n := 0
	if selected {
		nodes[nodeID] = node
		n = 1
	}
	return map[string]any{"_nodes": map[string]any{"total": n, "successful": n, "failed": 0}, "cluster_name": clusterName, "nodes": nodes}
}

// handleNodes is the nodes info API: GET /_nodes[/{node_id}][/{metric}].
func (s *Server) handleNodes(rq *request) *esError {
	if e := rq.allow("timeout", "flat_settings", "master_timeout"); e != nil {
		return e
	}
	spec, metrics := "", ""
	switch len(rq.parts) {
	case 2:
		// a list of known metrics is a metric filter, anything else a node filter
		isMetric := true
		for _, m := range strings.Split(rq.parts[1], ",") {
			if !nodeInfoMetrics[m] && !nodeInfoUnsupported[m] && m != "_all" && m != "_none" {
				isMetric = false
			}
		}
		if isMetric && rq.parts[1] != "_all" {
			metrics = rq.parts[1]
		} else {
			spec = rq.parts[1]
		}
	case 3:
		spec, metrics = rq.parts[1], rq.parts[2]
	}
	want := map[string]bool{}
	if metrics == "" || metrics == "_all" {
		for m := range nodeInfoMetrics {
			want[m] = true
		}
	} else if metrics != "_none" {
		for _, m := range strings.Split(metrics, ",") {
			if nodeInfoUnsupported[m] {
				return errUnsupported("the nodes info metric [%s]", m)
			}
			if !nodeInfoMetrics[m] {
				return errIllegalArgument("request [%s] contains unrecognized metric: [%s]", rq.path, m)
			}
			want[m] = true
		}
	}
	flat, e := rq.boolParam("flat_settings", false)
	if e != nil {
		return e
	}
	host, addr := s.publishAddr(rq)
	node := s.nodeBase(rq)
	node["version"], node["build_flavor"], node["build_type"] = Version, "default", "tar"
	node["build_hash"] = "bee86328705acaa9a6daede7140defd4d9ec56bd"
	mc := s.machine()
	sections := map[string]any{
		"settings":  renderSettings(map[string]string{"cluster.name": clusterName, "node.name": nodeName, "http.type": "dev-es"}, flat),
		"os":        map[string]any{"refresh_interval_in_millis": 1000, "name": "Linux", "pretty_name": "Linux", "arch": runtime.GOARCH, "available_processors": mc.cpus, "allocated_processors": mc.cpus},
		"process":   map[string]any{"refresh_interval_in_millis": 1000, "id": os.Getpid(), "mlockall": false},
		"transport": map[string]any{"bound_address": []string{host + ":9300"}, "publish_address": host + ":9300", "profiles": map[string]any{}},
		"http":      map[string]any{"bound_address": []string{addr}, "publish_address": addr, "max_content_length_in_bytes": maxBodySize},
		"plugins":   []any{},
		"modules":   []any{},
		"ingest":    map[string]any{"processors": []any{}},
	}
	for m := range want {
		node[m] = sections[m]
	}
	return s.ok(rq, 200, nodesEnvelope(nodeSelected(spec), node))
}

var nodeStatsMetrics = map[string]bool{"indices": true, "os": true, "process": true, "fs": true}
var nodeStatsUnsupported = map[string]bool{"jvm": true, "thread_pool": true, "transport": true, "http": true, "breaker": true,
	"script": true, "discovery": true, "ingest": true, "adaptive_selection": true, "indexing_pressure": true, "script_cache": true,
	"shard_indexing_pressure": true}

// handleNodesStats is the nodes stats API for the indices (docs, store),
// os, process and fs metrics.
func (s *Server) handleNodesStats(rq *request) *esError {
	if e := rq.allow("timeout", "level", "types", "completion_fields", "fielddata_fields", "fields", "groups", "include_segment_file_sizes", "include_unloaded_segments"); e != nil {
		return e
	}
	for _, p := range []string{"types", "completion_fields", "fielddata_fields", "fields", "groups"} {
		if rq.param(p) != "" {
			return errUnsupported("the nodes stats parameter [%s]", p)
		}
	}
	if l := rq.param("level"); l != "" && l != "node" {
		if l != "indices" && l != "shards" {
			return errIllegalArgument("level parameter must be one of [indices] or [node] or [shards] but was [%s]", l)
		}
		return errUnsupported("nodes stats level=%s", l)
	}
	// /_nodes/stats/..., /_nodes/{node}/stats/...
	rest := rq.parts[1:]
	spec := ""
	if rest[0] != "stats" {
		spec, rest = rest[0], rest[1:]
	}
	rest = rest[1:]
	metrics, indexMetrics := "", ""
	if len(rest) > 0 {
		metrics = rest[0]
	}
	if len(rest) > 1 {
		indexMetrics = rest[1]
	}
	want := map[string]bool{}
	if metrics == "" || metrics == "_all" {
		for m := range nodeStatsMetrics {
			want[m] = true
		}
	} else {
		for _, m := range strings.Split(metrics, ",") {
			if nodeStatsUnsupported[m] {
				return errUnsupported("the nodes stats metric [%s]", m)
			}
			if !nodeStatsMetrics[m] {
				return errIllegalArgument("request [%s] contains unrecognized metric: [%s]", rq.path, m)
			}
			want[m] = true
		}
	}
	if indexMetrics != "" && !want["indices"] {
		return errIllegalArgument("request [%s] contains index metrics [%s] but all stats requested", rq.path, indexMetrics)
	}
	im, e := indexStatsMetrics(indexMetrics)
	if e != nil {
		return e
	}
	now := s.now().UnixMilli()
	mc := s.machine()
	node := s.nodeBase(rq)
	node["timestamp"] = now
	if want["indices"] {
		s.mu.RLock()
		var list []*index
		for _, n := range s.sortedIndexNames() {
			list = append(list, s.indices[n])
		}
		s.mu.RUnlock()
		node["indices"] = sumIndexStats(list, im)
	}
	if want["os"] {
		node["os"] = map[string]any{"timestamp": now,
			"cpu": map[string]any{"load_average": map[string]any{"1m": mc.load[0], "5m": mc.load[1], "15m": mc.load[2]}},
			"mem": map[string]any{"total_in_bytes": mc.memTotal, "free_in_bytes": mc.memFree, "used_in_bytes": mc.memTotal - mc.memFree,
				"free_percent": pct(mc.memFree, mc.memTotal), "used_percent": pct(mc.memTotal-mc.memFree, mc.memTotal)}}
	}
	if want["process"] {
		node["process"] = map[string]any{"timestamp": now, "open_file_descriptors": mc.openFDs, "max_file_descriptors": mc.maxFDs,
			"cpu": map[string]any{"total_in_millis": mc.processCPUMillis}, "mem": map[string]any{"total_virtual_in_bytes": mc.processVirtualBytes}}
	}
	if want["fs"] {
		node["fs"] = map[string]any{"timestamp": now,
			"total": map[string]any{"total_in_bytes": mc.fsTotal, "free_in_bytes": mc.fsFree, "available_in_bytes": mc.fsAvail},
			"data":  []any{map[string]any{"path": mc.fsPath, "total_in_bytes": mc.fsTotal, "free_in_bytes": mc.fsFree, "available_in_bytes": mc.fsAvail}}}
	}
	return s.ok(rq, 200, nodesEnvelope(nodeSelected(spec), node))
}

// ---- index stats ----

var indexStatsKnown = map[string]bool{"docs": true, "store": true}
var indexStatsUnsupported = map[string]bool{"indexing": true, "get": true, "search": true, "merge": true, "refresh": true, "flush": true,
	"warmer": true, "query_cache": true, "fielddata": true, "completion": true, "segments": true, "translog": true,
	"request_cache": true, "recovery": true, "bulk": true, "shard_stats": true}

// indexStatsMetrics parses a metric list of the index stats API; empty or
// _all means every metric dev-es has (docs and store).
func indexStatsMetrics(list string) (map[string]bool, *esError) {
	out := map[string]bool{}
	if list == "" || list == "_all" {
		return map[string]bool{"docs": true, "store": true}, nil
	}
	for _, m := range strings.Split(list, ",") {
		if indexStatsUnsupported[m] {
			return nil, errUnsupported("the index stats metric [%s]", m)
		}
		if !indexStatsKnown[m] {
			return nil, errIllegalArgument("request contains unrecognized metric: [%s]", m)
		}
		out[m] = true
	}
	return out, nil
}

func sumIndexStats(list []*index, metrics map[string]bool) map[string]any {
	docs, deleted, store := 0, 0, int64(0)
	for _, ix := range list {
		if ix.closed.Load() {
			continue
		}
		ix.mu.RLock()
		docs, deleted, store = docs+ix.live, deleted+ix.deletedN, store+ix.storeBytes
		ix.mu.RUnlock()
	}
	o := map[string]any{}
	if metrics["docs"] {
		o["docs"] = map[string]any{"count": docs, "deleted": deleted}
	}
	if metrics["store"] {
		o["store"] = map[string]any{"size_in_bytes": store, "total_data_set_size_in_bytes": store, "reserved_in_bytes": 0}
	}
	return o
}

// handleStats is the index stats API: GET [/{index}]/_stats[/{metric}].
func (s *Server) handleStats(rq *request) *esError {
	if e := rq.allow("level", "expand_wildcards", "ignore_unavailable", "allow_no_indices", "forbid_closed_indices"); e != nil {
		return e
	}
	expr, metric := "", ""
	if rq.parts[0] != "_stats" {
		expr = rq.parts[0]
		if len(rq.parts) == 3 {
			metric = rq.parts[2]
		}
	} else if len(rq.parts) == 2 {
		metric = rq.parts[1]
	}
	im, e := indexStatsMetrics(metric)
	if e != nil {
		return e
	}
	level := rq.param("level")
	switch level {
	case "", "indices", "cluster":
	case "shards":
	default:
		return errIllegalArgument("level parameter must be one of [cluster] or [indices] or [shards] but was [%s]", level)
	}
	list, e := s.indexList(rq, expr, resolveOpts{allowNoIndices: true})
	if e != nil {
		return e
	}
	shards, ok := 0, 0
	indices := map[string]any{}
	for _, ix := range list {
		if ix.closed.Load() {
			continue
		}
		p := ix.setting("number_of_shards", 1)
		shards += p * (1 + ix.setting("number_of_replicas", 1))
		ok += p
		st := sumIndexStats([]*index{ix}, im)
		health, _, _ := healthOf(ix)
		o := map[string]any{"uuid": ix.uuid, "health": health, "status": "open", "primaries": st, "total": st}
		if level == "shards" {
			// started copies only: the primaries (all documents are in shard 0)
			sh := map[string]any{}
			for i := 0; i < p; i++ {
				c := st
				if i > 0 {
					c = sumIndexStats(nil, im)
				}
				e := map[string]any{"routing": map[string]any{"state": "STARTED", "primary": true, "node": nodeID, "relocating_node": nil}}
				for k, v := range c {
					e[k] = v
				}
				sh[strconv.Itoa(i)] = []any{e}
			}
			o["shards"] = sh
		}
		indices[ix.name] = o
	}
	all := sumIndexStats(list, im)
	out := map[string]any{"_shards": map[string]any{"total": shards, "successful": ok, "failed": 0},
		"_all": map[string]any{"primaries": all, "total": all}}
	if level != "cluster" {
		out["indices"] = indices
	}
	return s.ok(rq, 200, out)
}

// indexList resolves an index expression honouring expand_wildcards,
// ignore_unavailable and allow_no_indices.
func (s *Server) indexList(rq *request, expr string, o resolveOpts) ([]*index, *esError) {
	if e := o.fromParams(rq); e != nil {
		return nil, e
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	names, e := s.resolveIndices(expr, o)
	if e != nil {
		return nil, e
	}
	list := make([]*index, 0, len(names))
	for _, n := range names {
		list = append(list, s.indices[n])
	}
	return list, nil
}

// ---- cluster state, settings, stats ----

var stateMetrics = map[string]bool{"version": true, "master_node": true, "nodes": true, "routing_table": true, "metadata": true, "blocks": true, "routing_nodes": true}

// handleClusterState is GET /_cluster/state[/{metrics}[/{indices}]].
func (s *Server) handleClusterState(rq *request) *esError {
	if e := rq.allow("local", "master_timeout", "flat_settings", "wait_for_metadata_version", "wait_for_timeout", "ignore_unavailable", "allow_no_indices", "expand_wildcards"); e != nil {
		return e
	}
	if rq.param("wait_for_metadata_version") != "" {
		return errUnsupported("wait_for_metadata_version")
	}
	flat, e := rq.boolParam("flat_settings", false)
	if e != nil {
		return e
	}
	want := map[string]bool{}
	if len(rq.parts) < 3 || rq.parts[2] == "_all" {
		for m := range stateMetrics {
			want[m] = true
		}
	} else {
		for _, m := range strings.Split(rq.parts[2], ",") {
			if !stateMetrics[m] {
				return errIllegalArgument("request [%s] contains unrecognized metric: [%s]", rq.path, m)
			}
			want[m] = true
		}
	}
	expr := ""
	if len(rq.parts) == 4 {
		expr = rq.parts[3]
	}
	// lenient by default, as the cluster state API is
	o := resolveOpts{ignoreUnavailable: true, allowNoIndices: true}
	list, e := s.indexList(rq, expr, o)
	if e != nil {
		return e
	}
	out := map[string]any{"cluster_name": clusterName, "cluster_uuid": clusterUUID}
	if want["version"] {
		out["version"], out["state_uuid"] = 1, clusterUUID
	}
	if want["master_node"] {
		out["master_node"] = nodeID
	}
	if want["blocks"] {
		out["blocks"] = map[string]any{}
	}
	if want["nodes"] {
		n := s.nodeBase(rq)
		delete(n, "roles")
		n["ephemeral_id"] = nodeID
		out["nodes"] = map[string]any{nodeID: n}
	}
	if want["metadata"] {
		s.mu.RLock()
		tpls, composable := map[string]any{}, map[string]any{}
		for _, n := range s.templateNames("", true) {
			tpls[n] = s.legacy[n].render(flat)
		}
		for _, n := range s.templateNames("", false) {
			composable[n] = s.templates[n].render(flat)
		}
		s.mu.RUnlock()
		idx := map[string]any{}
		for _, ix := range list {
			ix.mu.RLock()
			var aliases []string
			for a := range ix.aliases {
				aliases = append(aliases, a)
			}
			sort.Strings(aliases)
			state := "open"
			if ix.closed.Load() {
				state = "close"
			}
			mp := map[string]any{}
			if r := ix.m.render(); len(r) > 0 {
				mp["_doc"] = r
			}
			idx[ix.name] = map[string]any{"version": 1, "mapping_version": 1, "settings_version": 1, "aliases_version": 1,
				"routing_num_shards": ix.setting("number_of_shards", 1), "state": state, "settings": ix.settingsJSON(flat),
				"mappings": mp, "aliases": append([]string{}, aliases...), "primary_terms": map[string]any{"0": 1},
				"in_sync_allocations": map[string]any{}, "rollover_info": map[string]any{}, "system": false}
			ix.mu.RUnlock()
		}
		out["metadata"] = map[string]any{"cluster_uuid": clusterUUID, "cluster_uuid_committed": true,
			"cluster_coordination": map[string]any{"term": 1, "last_committed_config": []string{nodeID}, "last_accepted_config": []string{nodeID}, "voting_config_exclusions": []any{}},
			"templates":            tpls, "index_template": map[string]any{"index_template": composable}, "indices": idx, "index-graveyard": map[string]any{"tombstones": []any{}}}
	}
	if want["routing_table"] || want["routing_nodes"] {
		rt := map[string]any{}
		var assigned, unassigned []any
		for _, ix := range list {
			sh := map[string]any{}
			for _, c := range shardCopies(ix) {
				k := strconv.Itoa(c.shard)
				l, _ := sh[k].([]any)
				sh[k] = append(l, c.routing())
				if c.primary {
					assigned = append(assigned, c.routing())
				} else {
					unassigned = append(unassigned, c.routing())
				}
			}
			rt[ix.name] = map[string]any{"shards": sh}
		}
		if want["routing_table"] {
			out["routing_table"] = map[string]any{"indices": rt}
		}
		if want["routing_nodes"] {
			if assigned == nil {
				assigned = []any{}
			}
			if unassigned == nil {
				unassigned = []any{}
			}
			out["routing_nodes"] = map[string]any{"unassigned": unassigned, "nodes": map[string]any{nodeID: assigned}}
		}
	}
	return s.ok(rq, 200, out)
}

// handleClusterSettings is GET /_cluster/settings: dev-es has no cluster
// settings of its own, so persistent and transient are empty.
func (s *Server) handleClusterSettings(rq *request) *esError {
	if e := rq.allow("flat_settings", "include_defaults", "master_timeout", "timeout", "local"); e != nil {
		return e
	}
	if d, e := rq.boolParam("include_defaults", false); e != nil {
		return e
	} else if d {
		return errUnsupported("include_defaults on cluster settings")
	}
	if _, e := rq.boolParam("flat_settings", false); e != nil {
		return e
	}
	return s.ok(rq, 200, map[string]any{"persistent": map[string]any{}, "transient": map[string]any{}})
}

// handleClusterStats is GET /_cluster/stats: indices (count, shards, docs,
// store) and nodes (count, versions, os, process, fs).
func (s *Server) handleClusterStats(rq *request) *esError {
	if e := rq.allow("timeout", "flat_settings"); e != nil {
		return e
	}
	list, e := s.indexList(rq, "", resolveOpts{allowNoIndices: true})
	if e != nil {
		return e
	}
	status, prim, unassigned := clusterHealth(list)
	total := prim + unassigned
	repl := 0.0
	if prim > 0 {
		repl = float64(total-prim) / float64(prim)
	}
	idx := sumIndexStats(list, map[string]bool{"docs": true, "store": true})
	idx["count"] = len(list)
	idx["shards"] = map[string]any{"total": prim, "primaries": prim, "replication": repl}
	mc := s.machine()
	return s.ok(rq, 200, map[string]any{
		"_nodes": map[string]any{"total": 1, "successful": 1, "failed": 0}, "cluster_name": clusterName, "cluster_uuid": clusterUUID,
		"timestamp": s.now().UnixMilli(), "status": status, "indices": idx,
		"nodes": map[string]any{
			"count":    map[string]any{"total": 1, "data": 1, "master": 1, "ingest": 1, "coordinating_only": 0},
			"versions": []string{Version},
			"os": map[string]any{"available_processors": mc.cpus, "allocated_processors": mc.cpus,
				"mem": map[string]any{"total_in_bytes": mc.memTotal, "free_in_bytes": mc.memFree, "used_in_bytes": mc.memTotal - mc.memFree,
					"free_percent": pct(mc.memFree, mc.memTotal), "used_percent": pct(mc.memTotal-mc.memFree, mc.memTotal)}},
			"process": map[string]any{"open_file_descriptors": map[string]any{"min": mc.openFDs, "max": mc.openFDs, "avg": mc.openFDs}},
			"fs":      map[string]any{"total_in_bytes": mc.fsTotal, "free_in_bytes": mc.fsFree, "available_in_bytes": mc.fsAvail},
		},
	})
}
