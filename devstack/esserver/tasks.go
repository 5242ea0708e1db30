package esserver

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// tasks keeps the tasks started with wait_for_completion=false ("Task
// management API"), in memory: a restart forgets them (ES stores finished
// tasks' results in the .tasks index).
type tasks struct {
	mu   sync.Mutex
	seq  int64
	byID map[int64]*task
}

type task struct {
	id          int64
	action      string
	description string
	start       time.Time
	done        chan struct{}
	status      int
	resp        map[string]any
	err         *esError
}

// asTask runs job now and answers its result, or, with
// wait_for_completion=false, starts it on a goroutine the server owns and
// answers {"task":"node:id"}.
func (s *Server) asTask(rq *request, action string, job func() (int, map[string]any, *esError)) *esError {
	wfc, e := rq.boolParam("wait_for_completion", true)
	if e != nil {
		return e
	}
	if wfc {
		status, out, e := job()
		if e != nil {
			return e
		}
		return s.ok(rq, status, out)
	}
	t := &task{action: action, description: rq.r.Method + " " + rq.path, start: time.Now(), done: make(chan struct{})}
	s.tasks.mu.Lock()
	if s.tasks.byID == nil {
		s.tasks.byID = map[int64]*task{}
	}
	s.tasks.seq++
	t.id = s.tasks.seq
	s.tasks.byID[t.id] = t
	s.tasks.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(t.done)
		t.status, t.resp, t.err = job()
	}()
	return s.ok(rq, 200, map[string]any{"task": nodeID + ":" + strconv.FormatInt(t.id, 10)})
}

// handleGetTask is GET /_tasks/{node:id} (wait_for_completion, timeout).
func (s *Server) handleGetTask(rq *request) *esError {
	if e := rq.allow("wait_for_completion", "timeout"); e != nil {
		return e
	}
	raw := rq.parts[1]
	node, num, ok := strings.Cut(raw, ":")
	id, err := strconv.ParseInt(num, 10, 64)
	if !ok || err != nil {
		return errIllegalArgument("malformed task id %s", raw)
	}
	if node != nodeID {
		return newErr(http.StatusNotFound, "resource_not_found_exception", "task [%s] belongs to the node [%s] which isn't part of the cluster and there is no record of the task", raw, node)
	}
	s.tasks.mu.Lock()
	t := s.tasks.byID[id]
	s.tasks.mu.Unlock()
	if t == nil {
		return newErr(http.StatusNotFound, "resource_not_found_exception", "task [%s] isn't running and hasn't stored its results", raw)
	}
	wait, e := rq.boolParam("wait_for_completion", false)
	if e != nil {
		return e
	}
	if wait {
		timeout := 30 * time.Second
		if v := rq.param("timeout"); v != "" {
			if timeout, e = parseTimeValue(v); e != nil {
				return e
			}
		}
		tm := time.NewTimer(timeout)
		defer tm.Stop()
		select {
		case <-t.done:
		case <-tm.C:
			return newErr(http.StatusRequestTimeout, "elasticsearch_timeout_exception", "Timed out waiting for completion of [%s]", raw)
		case <-rq.r.Context().Done():
			return nil
		}
	}
	completed := false
	select {
	case <-t.done:
		completed = true
	default:
	}
	info := map[string]any{"node": nodeID, "id": t.id, "type": "transport", "action": t.action, "description": t.description,
		"start_time_in_millis": t.start.UnixMilli(), "running_time_in_nanos": time.Since(t.start).Nanoseconds(),
		"cancellable": true, "cancelled": false, "headers": map[string]any{}}
	out := map[string]any{"completed": completed, "task": info}
	if completed {
		info["running_time_in_nanos"] = int64(0)
		if t.err != nil {
			out["error"] = t.err.object()
		} else {
			out["response"] = t.resp
			st := map[string]any{}
			for _, k := range []string{"total", "updated", "created", "deleted", "batches", "version_conflicts", "noops", "retries", "throttled_millis", "requests_per_second", "throttled_until_millis"} {
				if v, ok := t.resp[k]; ok {
					st[k] = v
				}
			}
			info["status"] = st
		}
	}
	return s.ok(rq, 200, out)
}

// byQuery is one _delete_by_query, _update_by_query or _reindex run: the
// documents the query matches in list (a point-in-time snapshot, as the
// scroll ES uses) are turned into writes by op.
type byQuery struct {
	list      []*index
	q         query
	maxDocs   int
	conflicts string // "abort" (default) or "proceed"
	policy    refreshPolicy
	op        func(ix *index, d segDoc) *writeOp
	counts    []string // the counters this API reports besides the common ones
}

func (s *Server) runByQuery(j *byQuery) (int, map[string]any, *esError) {
	start := time.Now()
	for _, ix := range j.list {
		ix.mu.RLock()
	}
	matches, e := s.runQuery(j.list, j.q)
	var ops []*writeOp
	if e == nil {
		for i, ix := range j.list {
			matches[i].forEach(func(o int32) {
				if j.maxDocs < 0 || len(ops) < j.maxDocs {
					ops = append(ops, j.op(ix, ix.segDocs[o]))
				}
			})
		}
	}
	for _, ix := range j.list {
		ix.mu.RUnlock()
	}
	if e != nil {
		return 0, nil, e
	}
	results, e := s.executeWrites(ops, j.policy, false)
	if e != nil {
		return 0, nil, e
	}
	n := map[string]int{}
	conflictsN := 0
	failures := []any{}
	for i, r := range results {
		switch {
		case r.err == nil && r.Result == "noop":
			n["noops"]++
		case r.err == nil:
			n[r.Result]++
		case r.Status == http.StatusConflict:
			conflictsN++
			if j.conflicts != "proceed" {
				failures = append(failures, map[string]any{"index": ops[i].index, "type": "_doc", "id": ops[i].id, "cause": r.Error, "status": r.Status})
			}
		default:
			failures = append(failures, map[string]any{"index": ops[i].index, "type": "_doc", "id": ops[i].id, "cause": r.Error, "status": r.Status})
		}
	}
	out := map[string]any{"took": time.Since(start).Milliseconds(), "timed_out": false, "total": len(ops),
		"batches": (len(ops) + 999) / 1000, "version_conflicts": conflictsN, "noops": n["noops"],
		"retries": map[string]any{"bulk": 0, "search": 0}, "throttled_millis": 0, "requests_per_second": -1.0,
		"throttled_until_millis": 0, "failures": failures}
	for _, c := range j.counts {
		out[c] = n[c]
	}
	status := 200
	if len(failures) > 0 {
		status = failures[0].(map[string]any)["status"].(int)
	}
	return status, out, nil
}

var byQueryParams = []string{"conflicts", "refresh", "wait_for_completion", "timeout", "scroll_size", "max_docs", "ignore_unavailable",
	"allow_no_indices", "expand_wildcards", "routing", "requests_per_second", "slices", "wait_for_active_shards", "search_timeout",
	"preference", "scroll", "pipeline", "version", "version_type", "request_cache", "terminate_after", "q", "analyzer", "df", "default_operator", "lenient", "analyze_wildcard", "sort", "_source", "_source_includes", "_source_excludes", "stats"}

func (s *Server) handleDeleteByQuery(rq *request) *esError { return s.handleByQuery(rq, "delete") }

func (s *Server) handleUpdateByQuery(rq *request) *esError { return s.handleByQuery(rq, "update") }

// handleByQuery is POST /{index}/_delete_by_query and _update_by_query
// ("Delete by query API", "Update by query API"). Update by query without
// a script re-indexes each document as it is (new version, current mapping).
func (s *Server) handleByQuery(rq *request, kind string) *esError {
	if e := rq.allow(byQueryParams...); e != nil {
		return e
	}
	for _, p := range []string{"pipeline", "version_type", "terminate_after", "sort", "_source", "_source_includes", "_source_excludes", "stats", "analyzer", "df", "default_operator", "lenient", "analyze_wildcard"} {
		if _, ok := rq.q[p]; ok {
			return errUnsupported("the [%s] parameter of _%s_by_query", p, kind)
		}
	}
	if v := rq.param("slices"); v != "" && v != "1" {
		return errUnsupported("slices=%s (one slice only)", v)
	}
	j := &byQuery{maxDocs: -1, conflicts: "abort", q: matchAllQ{boost: 1}}
	body, e := decodeBody(rq.body, kind+"_by_query")
	if e != nil {
		return e
	}
	if body == nil && kind == "delete" {
		return errValidation("query is missing")
	}
	for k, v := range body {
		switch k {
		case "query":
			if j.q, e = parseQuery(v); e != nil {
				return e
			}
		case "max_docs", "size":
			nn, ok := toInt(v)
			if !ok || nn <= 0 {
				return errValidation("maxDocs must be greater than 0")
			}
			j.maxDocs = int(nn)
		case "conflicts":
			j.conflicts, _ = v.(string)
		case "slice":
			return errUnsupported("[%s] in %s_by_query", k, kind)
		case "script":
			if kind == "update" {
				return errUnsupported("scripts in update_by_query")
			}
			return errParsing("[%s_by_query] unknown field [%s]", kind, k)
		default:
			return errParsing("[%s_by_query] unknown field [%s]", kind, k)
		}
	}
	if _, has := body["query"]; !has && kind == "delete" {
		return errValidation("query is missing")
	}
	if q := rq.param("q"); q != "" {
		if _, has := body["query"]; has {
			return errIllegalArgument("query is specified twice: in the q parameter and in the body")
		}
		if j.q, e = parseQueryString(q, nil, "OR"); e != nil {
			return e
		}
	}
	if v := rq.param("conflicts"); v != "" {
		j.conflicts = v
	}
	if j.conflicts != "abort" && j.conflicts != "proceed" {
		return errIllegalArgument("conflicts may only be \"proceed\" or \"abort\" but was [%s]", j.conflicts)
	}
	if v := rq.param("max_docs"); v != "" {
		nn, err := strconv.Atoi(v)
		if err != nil || nn <= 0 {
			return errValidation("maxDocs must be greater than 0")
		}
		j.maxDocs = nn
	}
	refresh, e := rq.boolParam("refresh", false)
	if e != nil {
		return e
	}
	if refresh {
		j.policy = refreshTrue
	}
	if j.list, e = s.indexList(rq, rq.parts[0], resolveOpts{}); e != nil {
		return e
	}
	action := "indices:data/write/delete/byquery"
	j.counts = []string{"deleted"}
	j.op = func(ix *index, d segDoc) *writeOp {
		seq := d.seqNo
		return &writeOp{action: "delete", index: ix.name, id: d.id, ifSeqNo: &seq}
	}
	if kind == "update" {
		action = "indices:data/write/update/byquery"
		j.counts = []string{"updated", "deleted"}
		j.op = func(ix *index, d segDoc) *writeOp {
			seq := d.seqNo
			return &writeOp{action: "index", index: ix.name, id: d.id, source: d.source, ifSeqNo: &seq}
		}
	}
	return s.asTask(rq, action, func() (int, map[string]any, *esError) { return s.runByQuery(j) })
}

// shardsDone is the "_shards" header of the broadcast APIs (refresh, flush,
// force merge): every primary succeeds, unassigned replicas count in total.
func shardsDone(list []*index) map[string]any {
	total, ok := 0, 0
	for _, ix := range list {
		p := ix.setting("number_of_shards", 1)
		total += p * (1 + ix.setting("number_of_replicas", 1))
		ok += p
	}
	return map[string]any{"total": total, "successful": ok, "failed": 0}
}

func broadcastExpr(rq *request) string {
	if strings.HasPrefix(rq.parts[0], "_") && rq.parts[0] != "_all" {
		return ""
	}
	return rq.parts[0]
}

// handleRefresh is the refresh API.
func (s *Server) handleRefresh(rq *request) *esError {
	if e := rq.allow("ignore_unavailable", "allow_no_indices", "expand_wildcards"); e != nil {
		return e
	}
	list, e := s.indexList(rq, broadcastExpr(rq), resolveOpts{allowNoIndices: true})
	if e != nil {
		return e
	}
	for _, ix := range list {
		ix.mu.Lock()
		ix.refreshLocked()
		ix.mu.Unlock()
	}
	return s.ok(rq, 200, map[string]any{"_shards": shardsDone(list)})
}

// handleFlush is the flush API and the synced flush API ES 7 still
// accepts: every acknowledged write is already committed to the data
// file, so there is nothing left to do.
func (s *Server) handleFlush(rq *request) *esError {
	synced := rq.parts[len(rq.parts)-1] == "synced"
	if synced {
		if e := rq.allow("ignore_unavailable", "allow_no_indices", "expand_wildcards"); e != nil {
			return e
		}
	} else if e := rq.allow("ignore_unavailable", "allow_no_indices", "expand_wildcards", "force", "wait_if_ongoing"); e != nil {
		return e
	}
	for _, b := range []string{"force", "wait_if_ongoing"} {
		if _, e := rq.boolParam(b, false); e != nil {
			return e
		}
	}
	list, e := s.indexList(rq, broadcastExpr(rq), resolveOpts{allowNoIndices: true})
	if e != nil {
		return e
	}
	out := map[string]any{"_shards": shardsDone(list)}
	if synced {
		// the synced flush response also counts shard copies per index
		for _, ix := range list {
			out[ix.name] = shardsDone([]*index{ix})
		}
	}
	return s.ok(rq, 200, out)
}

// handleForceMerge is the force merge API: it rebuilds each index's
// in-memory segment from its live documents, dropping the slots that
// overwritten and deleted documents kept.
func (s *Server) handleForceMerge(rq *request) *esError {
	if e := rq.allow("ignore_unavailable", "allow_no_indices", "expand_wildcards", "max_num_segments", "only_expunge_deletes", "flush", "wait_for_completion"); e != nil {
		return e
	}
	if v := rq.param("max_num_segments"); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 1 {
			return errIllegalArgument("Failed to parse int parameter [max_num_segments] with value [%s]", v)
		}
	}
	for _, b := range []string{"only_expunge_deletes", "flush"} {
		if _, e := rq.boolParam(b, false); e != nil {
			return e
		}
	}
	list, e := s.indexList(rq, broadcastExpr(rq), resolveOpts{allowNoIndices: true})
	if e != nil {
		return e
	}
	return s.asTask(rq, "indices:admin/forcemerge", func() (int, map[string]any, *esError) {
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
		for _, ix := range list {
			ix.mu.Lock()
			e := ix.compactLocked()
			ix.mu.Unlock()
			if e != nil {
				return 0, nil, e
			}
		}
		return 200, map[string]any{"_shards": shardsDone(list)}, nil
	})
}

// compactLocked refreshes, then rebuilds the segment from live documents.
// Caller holds ix.mu (write) and s.writeMu.
func (ix *index) compactLocked() *esError {
	ix.refreshLocked()
	if ix.deletedN == 0 {
		return nil
	}
	old, deleted := ix.segDocs, ix.segDeleted
	ix.segDocs, ix.segDeleted, ix.segIDs, ix.cols = nil, nil, map[string]int32{}, map[string]*column{}
	ix.live, ix.deletedN, ix.storeBytes = 0, 0, 0
	for ord, d := range old {
		if deleted.has(int32(ord)) {
			continue
		}
		values, _, e := ix.m.parseDocument(d.id, d.source, 0)
		if e != nil {
			return newErr(500, "exception", "dev-es: %s/%s no longer parses: %v", ix.name, d.id, e.Reason)
		}
		ix.addToSegment(&docState{id: d.id, source: d.source, version: d.version, seqNo: d.seqNo, values: values})
	}
	return nil
}

// handleOpenClose is POST /{index}/_close and /{index}/_open ("Close index
// API", "Open index API"). A closed index keeps its data and metadata but
// refuses reads and writes with index_closed_exception.
func (s *Server) handleOpenClose(rq *request) *esError {
	if e := rq.allow("timeout", "master_timeout", "ignore_unavailable", "allow_no_indices", "expand_wildcards", "wait_for_active_shards"); e != nil {
		return e
	}
	closing := rq.parts[1] == "_close"
	o := resolveOpts{closed: true, allowNoIndices: true}
	if closing {
		o.expand = map[string]bool{"open": true}
	} else {
		o.expand = map[string]bool{"closed": true}
	}
	if e := o.fromParams(rq); e != nil {
		return e
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	names, e := s.resolveIndices(rq.parts[0], o)
	if e != nil {
		return e
	}
	wb := &writeBatch{}
	res := map[string]any{}
	for _, n := range names {
		ix := s.indices[n]
		if closing {
			ix.mu.Lock()
			ix.refreshLocked()
			ix.mu.Unlock()
		}
		ix.closed.Store(closing)
		wb.meta(ix)
		res[n] = map[string]any{"closed": true}
	}
	if err := s.st.apply(wb); err != nil {
		for _, n := range names {
			s.indices[n].closed.Store(!closing)
		}
		return storeErr(err)
	}
	if closing {
		s.log.Info("dev-es index closed", "indices", names)
	} else {
		s.log.Info("dev-es index opened", "indices", names)
	}
	if closing {
		return s.ok(rq, 200, map[string]any{"acknowledged": true, "shards_acknowledged": true, "indices": res})
	}
	return s.ok(rq, 200, map[string]any{"acknowledged": true, "shards_acknowledged": true})
}
