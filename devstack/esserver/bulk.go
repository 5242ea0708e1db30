package esserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// writeOp is one document write (bulk item or single-document API).
type writeOp struct {
	action      string // index, create, delete, update
	index       string
	id          string
	autoID      bool
	source      []byte
	ifSeqNo     *int64
	ifPrimary   *int64
	version     *int64
	versionType string
	// requireAlias is require_alias: the target must be an alias
	requireAlias *bool
	// update
	doc         map[string]any
	upsert      map[string]any
	docAsUpsert bool
	detectNoop  bool
}

type shardsInfo struct {
	Total      int `json:"total"`
	Successful int `json:"successful"`
	Failed     int `json:"failed"`
}

type opResult struct {
	Index         string         `json:"_index"`
	Type          string         `json:"_type"`
	ID            string         `json:"_id"`
	Version       int64          `json:"_version,omitempty"`
	Result        string         `json:"result,omitempty"`
	ForcedRefresh bool           `json:"forced_refresh,omitempty"`
	Shards        *shardsInfo    `json:"_shards,omitempty"`
	SeqNo         *int64         `json:"_seq_no,omitempty"`
	PrimaryTerm   int64          `json:"_primary_term,omitempty"`
	Status        int            `json:"status"`
	Error         map[string]any `json:"error,omitempty"`
	err           *esError
}

func (ix *index) shards() *shardsInfo {
	return &shardsInfo{Total: 1 + ix.setting("number_of_replicas", 1), Successful: 1}
}

func conflictErr(ix *index, id, reason string) *esError {
	return newErr(http.StatusConflict, "version_conflict_engine_exception", "[%s]: version conflict, %s", id, reason).
		with("index_uuid", ix.uuid).with("shard", "0").with("index", ix.name)
}

// apply executes one write against ix. Caller holds s.writeMu and ix.mu.
func (s *Server) apply(ix *index, op *writeOp, wb *writeBatch) opResult {
	res := opResult{Index: ix.name, Type: "_doc", ID: op.id}
	fail := func(e *esError) opResult {
		res.Status = e.Status
		res.err = e
		res.Error = e.object()
		return res
	}
	src, curVersion, curSeq, found := ix.getDoc(op.id)
	if op.ifSeqNo != nil {
		if !found || curSeq != *op.ifSeqNo || (op.ifPrimary != nil && *op.ifPrimary != 1) {
			if !found {
				return fail(conflictErr(ix, op.id, fmt.Sprintf("required seqNo [%d], primary term [%d] but no document was found", *op.ifSeqNo, derefOr(op.ifPrimary, 1))))
			}
			return fail(conflictErr(ix, op.id, fmt.Sprintf("required seqNo [%d], primary term [%d]. current document has seqNo [%d] and primary term [1]", *op.ifSeqNo, derefOr(op.ifPrimary, 1), curSeq)))
		}
	}
	newVersion := curVersion + 1
	if curVersion == 0 {
		newVersion = 1
	}
	if op.version != nil {
		v := *op.version
		switch op.versionType {
		case "external":
			if found && v <= curVersion || !found && curVersion > 0 && v <= curVersion {
				return fail(conflictErr(ix, op.id, fmt.Sprintf("current version [%d] is higher or equal to the one provided [%d]", curVersion, v)))
			}
		case "external_gte":
			if (found || curVersion > 0) && v < curVersion {
				return fail(conflictErr(ix, op.id, fmt.Sprintf("current version [%d] is higher than the one provided [%d]", curVersion, v)))
			}
		}
		newVersion = v
	}
	switch op.action {
	case "delete":
		seq := ix.nextSeq
		ix.nextSeq++
		if !found {
			ix.overlay[op.id] = &docState{id: op.id, version: newVersion, seqNo: seq, deleted: true}
			res.Version, res.Result, res.Status, res.SeqNo = newVersion, "not_found", http.StatusNotFound, &seq
		} else {
			ix.overlay[op.id] = &docState{id: op.id, version: newVersion, seqNo: seq, deleted: true}
			wb.puts = append(wb.puts, docWrite{index: ix.name, id: op.id})
			res.Version, res.Result, res.Status, res.SeqNo = newVersion, "deleted", http.StatusOK, &seq
		}
		res.Shards, res.PrimaryTerm = ix.shards(), 1
		return res
	case "update":
		var merged map[string]any
		created := false
		if !found {
			switch {
			case op.upsert != nil:
				merged = op.upsert
			case op.docAsUpsert:
				merged = op.doc
			default:
				return fail(newErr(http.StatusNotFound, "document_missing_exception", "[_doc][%s]: document missing", op.id).
					with("index_uuid", ix.uuid).with("shard", "0").with("index", ix.name))
			}
			created = true
		} else {
			var cur map[string]any
			if err := unmarshalUseNumber(src, &cur); err != nil {
				return fail(mapperErr("failed to parse"))
			}
			before := deepCopy(cur).(map[string]any)
			mergeDoc(cur, op.doc)
			if op.detectNoop && reflect.DeepEqual(before, cur) {
				res.Version, res.Result, res.Status, res.SeqNo = curVersion, "noop", http.StatusOK, &curSeq
				res.Shards = &shardsInfo{Total: 0, Successful: 0}
				res.PrimaryTerm = 1
				return res
			}
			merged = cur
		}
		b, err := json.Marshal(merged)
		if err != nil {
			return fail(mapperErr("failed to parse"))
		}
		op.source = b
		r := s.indexDoc(ix, op, wb, newVersion, found)
		if r.err == nil && !created {
			r.Result = "updated"
		}
		return r
	default:
		if op.action == "create" && found {
			return fail(conflictErr(ix, op.id, fmt.Sprintf("document already exists (current version [%d])", curVersion)))
		}
		return s.indexDoc(ix, op, wb, newVersion, found)
	}
}

func derefOr(p *int64, d int64) int64 {
	if p == nil {
		return d
	}
	return *p
}

func (s *Server) indexDoc(ix *index, op *writeOp, wb *writeBatch, version int64, existed bool) opResult {
	res := opResult{Index: ix.name, Type: "_doc", ID: op.id}
	values, changed, e := ix.m.parseDocument(op.id, op.source, ix.setting("mapping.total_fields.limit", 1000))
	if e != nil {
		res.Status, res.err, res.Error = e.Status, e, e.object()
		return res
	}
	if changed {
		wb.meta(ix)
	}
	seq := ix.nextSeq
	ix.nextSeq++
	src := compactJSON(op.source)
	ix.overlay[op.id] = &docState{id: op.id, source: src, version: version, seqNo: seq, values: values}
	wb.puts = append(wb.puts, docWrite{index: ix.name, id: op.id, version: version, seqNo: seq, source: src})
	res.Version, res.SeqNo, res.PrimaryTerm, res.Shards = version, &seq, 1, ix.shards()
	if existed {
		res.Result, res.Status = "updated", http.StatusOK
	} else {
		res.Result, res.Status = "created", http.StatusCreated
	}
	return res
}

// compactJSON keeps the source as sent (Elasticsearch returns _source
// byte for byte), only copying it out of the request buffer.
func compactJSON(b []byte) []byte {
	out := make([]byte, len(b))
	copy(out, b)
	return bytes.TrimSpace(out)
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		o := make(map[string]any, len(x))
		for k, e := range x {
			o[k] = deepCopy(e)
		}
		return o
	case []any:
		o := make([]any, len(x))
		for i, e := range x {
			o[i] = deepCopy(e)
		}
		return o
	}
	return v
}

// mergeDoc merges a partial document into dst (objects recursively,
// everything else replaced), as the update API's "doc" does.
func mergeDoc(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeDoc(dm, sm)
				continue
			}
		}
		dst[k] = deepCopy(v)
	}
}

// ---- _bulk ----

var bulkMetaParams = map[string]bool{"_index": true, "_type": true, "_id": true, "routing": true, "version": true,
	"version_type": true, "if_seq_no": true, "if_primary_term": true, "pipeline": true, "require_alias": true,
	"retry_on_conflict": true, "_source": true, "dynamic_templates": true}

// parseBulk parses the NDJSON body strictly: every line is one JSON value,
// the body ends with a newline, actions are index/create/delete/update.
func parseBulk(body []byte, defIndex string) ([]*writeOp, *esError) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errValidation("no requests added")
	}
	if body[len(body)-1] != '\n' {
		return nil, errIllegalArgument("The bulk request must be terminated by a newline [\\n]")
	}
	lines := bytes.Split(body[:len(body)-1], []byte{'\n'})
	var ops []*writeOp
	var problems []string
	for i := 0; i < len(lines); i++ {
		lineNo := i + 1
		line := bytes.TrimSpace(lines[i])
		if len(line) == 0 {
			continue // Elasticsearch skips empty lines between items
		}
		if line[0] != '{' {
			return nil, errIllegalArgument("Malformed action/metadata line [%d], expected START_OBJECT or END_OBJECT but found [%s]", lineNo, tokenOf(line))
		}
		av, err := parseJSON(line)
		if err != nil {
			return nil, newErr(400, "x_content_parse_exception", "[%d:1] %v", lineNo, err).
				cause(newErr(400, "json_parse_exception", "%v", err))
		}
		action, _ := av.(map[string]any)
		if len(action) != 1 {
			return nil, errIllegalArgument("Malformed action/metadata line [%d], expected a simple value for field [%s] but found [START_OBJECT]", lineNo, firstKey(action))
		}
		var name string
		var raw any
		for k, v := range action {
			name, raw = k, v
		}
		switch name {
		case "index", "create", "delete", "update":
		default:
			return nil, errIllegalArgument("Malformed action/metadata line [%d], expected field [create], [delete], [index] or [update] but found [%s]", lineNo, name)
		}
		meta, ok := raw.(map[string]any)
		if !ok {
			return nil, errIllegalArgument("Malformed action/metadata line [%d], expected START_OBJECT but found [%s]", lineNo, tokenName(raw))
		}
		op := &writeOp{action: name, index: defIndex, detectNoop: true}
		emptyID := false
		for k, v := range meta {
			if !bulkMetaParams[k] {
				return nil, errIllegalArgument("Action/metadata line [%d] contains an unknown parameter [%s]", lineNo, k)
			}
			switch k {
			case "_index":
				s, ok := v.(string)
				if !ok {
					return nil, errIllegalArgument("Malformed action/metadata line [%d], _index must be a string", lineNo)
				}
				op.index = s
			case "_id":
				switch x := v.(type) {
				case string:
					op.id = x
					emptyID = x == ""
				case jsonNumber:
					op.id = string(x)
				default:
					return nil, errIllegalArgument("Malformed action/metadata line [%d], _id must be a string", lineNo)
				}
			case "_type":
				if v != "_doc" {
					return nil, errUnsupported("custom mapping types ([%v]) in bulk line [%d]; use _doc", v, lineNo)
				}
			case "if_seq_no", "if_primary_term", "version":
				n, ok := toInt(v)
				if !ok {
					return nil, errIllegalArgument("Malformed action/metadata line [%d], [%s] must be a number", lineNo, k)
				}
				switch k {
				case "if_seq_no":
					op.ifSeqNo = &n
				case "if_primary_term":
					op.ifPrimary = &n
				default:
					op.version = &n
				}
			case "version_type":
				op.versionType, _ = v.(string)
				switch op.versionType {
				case "internal", "external", "external_gte":
				default:
					return nil, errIllegalArgument("No version type match [%v]", v)
				}
			case "require_alias":
				b, ok := v.(bool)
				if !ok {
					return nil, errIllegalArgument("Malformed action/metadata line [%d], [require_alias] must be a boolean", lineNo)
				}
				op.requireAlias = &b
			case "pipeline":
				return nil, errUnsupported("ingest pipelines")
			case "_source":
				return nil, errUnsupported("_source in bulk update metadata")
			case "dynamic_templates":
				return nil, errUnsupported("dynamic_templates in bulk metadata")
			}
		}
		if name != "delete" {
			i++
			if i >= len(lines) {
				problems = append(problems, "source is missing", "content type is missing")
				break
			}
			op.source = lines[i]
			if name == "update" {
				if e := parseUpdateBody(op, lines[i]); e != nil {
					return nil, e
				}
			}
		}
		if op.index == "" {
			problems = append(problems, "index is missing")
		}
		if emptyID && name != "delete" && name != "update" {
			problems = append(problems, "if _id is specified it must not be empty")
		} else if op.id == "" {
			if name == "delete" || name == "update" {
				problems = append(problems, "id is missing")
			} else {
				op.id = newUUID()
				op.autoID = true
			}
		}
		if len(op.id) > 512 {
			problems = append(problems, fmt.Sprintf("id [%s] is too long, must be no longer than 512 bytes but was: %d", op.id, len(op.id)))
		}
		if op.version != nil && (op.versionType == "" || op.versionType == "internal") {
			problems = append(problems, "internal versioning can not be used for optimistic concurrency control. Please use `if_seq_no` and `if_primary_term` instead")
		}
		if op.version != nil && name == "update" {
			problems = append(problems, "can't provide version in update requests")
		}
		ops = append(ops, op)
	}
	if len(problems) > 0 {
		return nil, errValidation(problems...)
	}
	if len(ops) == 0 {
		return nil, errValidation("no requests added")
	}
	return ops, nil
}

func firstKey(m map[string]any) string {
	for k := range m {
		return k
	}
	return ""
}

func tokenOf(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "null"
	}
	switch b[0] {
	case '[':
		return "START_ARRAY"
	case '"':
		return "VALUE_STRING"
	case 't', 'f':
		return "VALUE_BOOLEAN"
	case 'n':
		return "VALUE_NULL"
	}
	return "VALUE_NUMBER"
}

func parseUpdateBody(op *writeOp, line []byte) *esError {
	var body map[string]any
	if err := unmarshalUseNumber(line, &body); err != nil || body == nil {
		return newErr(400, "x_content_parse_exception", "[1:1] [UpdateRequest] failed to parse: %v", err)
	}
	for k, v := range body {
		switch k {
		case "doc":
			m, ok := v.(map[string]any)
			if !ok {
				return newErr(400, "x_content_parse_exception", "[1:1] [UpdateRequest] doc doesn't support values of type: %s", tokenName(v))
			}
			op.doc = m
		case "upsert":
			m, ok := v.(map[string]any)
			if !ok {
				return newErr(400, "x_content_parse_exception", "[1:1] [UpdateRequest] upsert doesn't support values of type: %s", tokenName(v))
			}
			op.upsert = m
		case "doc_as_upsert":
			op.docAsUpsert, _ = v.(bool)
		case "detect_noop":
			op.detectNoop, _ = v.(bool)
		case "script", "scripted_upsert":
			return errUnsupported("scripted updates")
		case "_source":
			return errUnsupported("_source in update requests")
		default:
			return newErr(400, "x_content_parse_exception", "[1:2] [UpdateRequest] unknown field [%s]", k)
		}
	}
	if op.doc == nil {
		return errValidation("script or doc is missing")
	}
	return nil
}

type refreshPolicy int

const (
	refreshNone refreshPolicy = iota
	refreshTrue
	refreshWaitFor
)

func (rq *request) refreshParam() (refreshPolicy, *esError) {
	v, ok := rq.q["refresh"]
	if !ok {
		return refreshNone, nil
	}
	switch v[0] {
	case "", "true":
		return refreshTrue, nil
	case "false":
		return refreshNone, nil
	case "wait_for":
		return refreshWaitFor, nil
	}
	return refreshNone, errIllegalArgument("Unknown value for refresh: [%s].", v[0])
}

// executeWrites applies ops in order under the write lock and commits them
// to disk in one transaction before answering.
func (s *Server) executeWrites(ops []*writeOp, policy refreshPolicy, injectRejects bool) ([]opResult, *esError) {
	results := make([]opResult, len(ops))
	frac := s.faults.Load().RejectFraction
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	wb := &writeBatch{}
	touched := map[*index]bool{}
	for i, op := range ops {
		if injectRejects && frac > 0 && s.randFloat() < frac {
			e := newErr(http.StatusTooManyRequests, "es_rejected_execution_exception",
				"rejected execution of coordinating operation [coordinating_and_primary_bytes=%d, replica_bytes=0, all_bytes=%d, coordinating_operation_bytes=%d, max_coordinating_and_primary_bytes=107374182]",
				len(op.source), len(op.source), len(op.source))
			results[i] = opResult{Index: op.index, Type: "_doc", ID: op.id, Status: e.Status, Error: e.object(), err: e}
			continue
		}
		s.mu.RLock()
		ix := s.indices[op.index]
		var aliasErr *esError
		if op.requireAlias != nil && *op.requireAlias && len(s.aliasIndices(op.index)) == 0 {
			aliasErr = errIndexNotFound(op.index)
			aliasErr.Reason = fmt.Sprintf("[require_alias] request flag is [true] and [%s] is not an alias", op.index)
		}
		if ix == nil && len(s.aliasIndices(op.index)) > 0 {
			ix, aliasErr = s.writeIndex(op.index)
		}
		s.mu.RUnlock()
		if aliasErr != nil {
			results[i] = opResult{Index: op.index, Type: "_doc", ID: op.id, Status: aliasErr.Status, Error: aliasErr.object(), err: aliasErr}
			continue
		}
		if ix == nil {
			if op.action == "delete" {
				e := errIndexNotFound(op.index)
				results[i] = opResult{Index: op.index, Type: "_doc", ID: op.id, Status: e.Status, Error: e.object(), err: e}
				continue
			}
			s.mu.Lock()
			var e *esError
			ix, e = s.createIndexLocked(op.index, nil, nil, nil, wb)
			s.mu.Unlock()
			if e != nil {
				results[i] = opResult{Index: op.index, Type: "_doc", ID: op.id, Status: e.Status, Error: e.object(), err: e}
				continue
			}
		}
		s.mu.RLock()
		closed := ix.closed.Load()
		s.mu.RUnlock()
		if closed {
			e := errIndexClosed(ix)
			results[i] = opResult{Index: ix.name, Type: "_doc", ID: op.id, Status: e.Status, Error: e.object(), err: e}
			continue
		}
		ix.mu.Lock()
		if e := ix.writeBlock(op.action == "delete"); e != nil {
			results[i] = opResult{Index: op.index, Type: "_doc", ID: op.id, Status: e.Status, Error: e.object(), err: e}
		} else {
			results[i] = s.apply(ix, op, wb)
		}
		ix.mu.Unlock()
		touched[ix] = true
	}
	if err := s.st.apply(wb); err != nil {
		s.log.Error("dev-es store write failed", "err", err)
		return nil, storeErr(err)
	}
	if policy != refreshNone {
		for ix := range touched {
			ix.mu.Lock()
			ix.refreshLocked()
			ix.mu.Unlock()
		}
		if policy == refreshTrue {
			for i := range results {
				if results[i].err == nil {
					results[i].ForcedRefresh = true
				}
			}
		}
	}
	return results, nil
}

func (s *Server) handleBulk(rq *request) *esError {
	if e := rq.allow("refresh", "timeout", "wait_for_active_shards", "routing", "type", "require_alias"); e != nil {
		return e
	}
	if rq.param("pipeline") != "" {
		return errUnsupported("ingest pipelines")
	}
	if t := rq.param("type"); t != "" && t != "_doc" {
		return errUnsupported("custom mapping types ([%s]); use _doc", t)
	}
	policy, e := rq.refreshParam()
	if e != nil {
		return e
	}
	start := time.Now()
	defIndex := ""
	if rq.parts[0] != "_bulk" {
		defIndex = rq.parts[0]
	}
	ops, e := parseBulk(rq.body, defIndex)
	if e != nil {
		return e
	}
	if e := requireAliasParam(rq, ops...); e != nil {
		return e
	}
	if f := s.faults.Load().RejectRequestFraction; f > 0 && s.randFloat() < f {
		return newErr(http.StatusTooManyRequests, "es_rejected_execution_exception",
			"rejected execution of org.elasticsearch.transport.TransportService$4@1 on EsThreadPoolExecutor[name = %s/write, queue capacity = 10000, task = falconet dev-es fault]", nodeName)
	}
	results, e := s.executeWrites(ops, policy, true)
	if e != nil {
		return e
	}
	var b bytes.Buffer
	b.Grow(len(results) * 200)
	errorsSeen := false
	for _, r := range results {
		if r.err != nil {
			errorsSeen = true
			break
		}
	}
	fmt.Fprintf(&b, `{"took":%d,"errors":%t,"items":[`, time.Since(start).Milliseconds(), errorsSeen)
	enc := json.NewEncoder(&b)
	for i, r := range results {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"` + ops[i].action + `":`)
		_ = enc.Encode(r)
		b.Truncate(b.Len() - 1) // Encode's newline
		b.WriteByte('}')
	}
	b.WriteString("]}")
	if rq.pretty {
		var v any
		_ = json.Unmarshal(b.Bytes(), &v)
		return s.ok(rq, 200, v)
	}
	return s.ok(rq, 200, json.RawMessage(b.Bytes()))
}

// ---- single-document APIs ----

// docIndex finds an existing index by its exact name (reads never validate
// the name: an invalid one simply does not exist).
func (s *Server) docIndex(name string) (*index, *esError) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ix := s.indices[name]
	if ix == nil {
		targets := s.aliasIndices(name)
		switch len(targets) {
		case 0:
			return nil, errIndexNotFound(name)
		case 1:
			ix = s.indices[targets[0]]
		default:
			return nil, errIllegalArgument("alias [%s] has more than one index associated with it [%s], can't execute a single index op", name, strings.Join(targets, ", "))
		}
	}
	if ix.closed.Load() {
		return nil, errIndexClosed(ix)
	}
	return ix, nil
}

func (s *Server) handleIndexDoc(rq *request) *esError {
	if e := rq.allow("refresh", "timeout", "wait_for_active_shards", "routing", "op_type", "version", "version_type", "if_seq_no", "if_primary_term", "require_alias"); e != nil {
		return e
	}
	if rq.param("pipeline") != "" {
		return errUnsupported("ingest pipelines")
	}
	policy, e := rq.refreshParam()
	if e != nil {
		return e
	}
	op := &writeOp{action: "index", index: rq.parts[0], source: rq.body}
	if e := requireAliasParam(rq, op); e != nil {
		return e
	}
	if rq.parts[1] == "_create" || rq.param("op_type") == "create" {
		op.action = "create"
	} else if ot := rq.param("op_type"); ot != "" && ot != "index" {
		return errIllegalArgument("opType must be 'create' or 'index', found: [%s]", ot)
	}
	if len(rq.parts) == 3 {
		op.id = rq.parts[2]
	} else {
		op.id, op.autoID = newUUID(), true
		op.action = "create"
	}
	var problems []string
	for _, k := range []string{"if_seq_no", "if_primary_term", "version"} {
		if v := rq.param(k); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return errIllegalArgument("Failed to parse long parameter [%s] with value [%s]", k, v)
			}
			switch k {
			case "if_seq_no":
				op.ifSeqNo = &n
			case "if_primary_term":
				op.ifPrimary = &n
			default:
				op.version = &n
			}
		}
	}
	op.versionType = rq.param("version_type")
	if op.version != nil && (op.versionType == "" || op.versionType == "internal") {
		problems = append(problems, "internal versioning can not be used for optimistic concurrency control. Please use `if_seq_no` and `if_primary_term` instead")
	}
	if len(bytes.TrimSpace(rq.body)) == 0 {
		problems = append(problems, "source is missing", "content type is missing")
	}
	if len(op.id) > 512 {
		problems = append(problems, fmt.Sprintf("id [%s] is too long, must be no longer than 512 bytes but was: %d", op.id, len(op.id)))
	}
	if len(problems) > 0 {
		return errValidation(problems...)
	}
	if e := validateIndexName(op.index); e != nil {
		return e
	}
	results, e := s.executeWrites([]*writeOp{op}, policy, false)
	if e != nil {
		return e
	}
	r := results[0]
	if r.err != nil {
		return r.err
	}
	status := r.Status
	r.Status = 0
	return s.ok(rq, status, singleResult(r))
}

func singleResult(r opResult) map[string]any {
	o := map[string]any{"_index": r.Index, "_type": "_doc", "_id": r.ID, "_version": r.Version, "result": r.Result,
		"_shards": r.Shards, "_seq_no": r.SeqNo, "_primary_term": r.PrimaryTerm}
	if r.ForcedRefresh {
		o["forced_refresh"] = true
	}
	return o
}

func (s *Server) handleDeleteDoc(rq *request) *esError {
	if e := rq.allow("refresh", "timeout", "wait_for_active_shards", "routing", "version", "version_type", "if_seq_no", "if_primary_term"); e != nil {
		return e
	}
	if e := refuseParams(rq, "version", "version_type"); e != nil {
		return e
	}
	policy, e := rq.refreshParam()
	if e != nil {
		return e
	}
	if _, e := s.docIndex(rq.parts[0]); e != nil {
		return e
	}
	op := &writeOp{action: "delete", index: rq.parts[0], id: rq.parts[2]}
	if e := seqNoParams(rq, op); e != nil {
		return e
	}
	results, e := s.executeWrites([]*writeOp{op}, policy, false)
	if e != nil {
		return e
	}
	r := results[0]
	if r.err != nil {
		return r.err
	}
	status := r.Status
	return s.ok(rq, status, singleResult(r))
}

func (s *Server) handleUpdateDoc(rq *request) *esError {
	if e := rq.allow("refresh", "timeout", "wait_for_active_shards", "routing", "retry_on_conflict", "if_seq_no", "if_primary_term", "require_alias"); e != nil {
		return e
	}
	policy, e := rq.refreshParam()
	if e != nil {
		return e
	}
	if _, e := s.docIndex(rq.parts[0]); e != nil && e.Status != 404 {
		return e
	}
	op := &writeOp{action: "update", index: rq.parts[0], id: rq.parts[2], detectNoop: true}
	if e := requireAliasParam(rq, op); e != nil {
		return e
	}
	if len(bytes.TrimSpace(rq.body)) == 0 {
		return errValidation("script or doc is missing")
	}
	if e := parseUpdateBody(op, rq.body); e != nil {
		return e
	}
	if e := seqNoParams(rq, op); e != nil {
		return e
	}
	results, e := s.executeWrites([]*writeOp{op}, policy, false)
	if e != nil {
		return e
	}
	r := results[0]
	if r.err != nil {
		return r.err
	}
	return s.ok(rq, r.Status, singleResult(r))
}

func (s *Server) handleGetDoc(rq *request) *esError {
	if e := rq.allow("realtime", "refresh", "routing", "preference", "_source", "_source_includes", "_source_excludes", "version", "version_type", "stored_fields"); e != nil {
		return e
	}
	if e := refuseParams(rq, "version", "version_type", "stored_fields"); e != nil {
		return e
	}
	ix, e := s.docIndex(rq.parts[0])
	if e != nil {
		return e
	}
	sf, e := sourceFilterFromParams(rq)
	if e != nil {
		return e
	}
	realtime, e := rq.boolParam("realtime", true)
	if e != nil {
		return e
	}
	if refresh, _ := rq.boolParam("refresh", false); refresh {
		ix.mu.Lock()
		ix.refreshLocked()
		ix.mu.Unlock()
	}
	id := rq.parts[2]
	ix.mu.RLock()
	var src []byte
	var version, seq int64
	var found bool
	if realtime {
		src, version, seq, found = ix.getDoc(id)
	} else if ord, ok := ix.segIDs[id]; ok {
		d := ix.segDocs[ord]
		src, version, seq, found = d.source, d.version, d.seqNo, true
	}
	ix.mu.RUnlock()
	onlySource := rq.parts[1] == "_source"
	if rq.r.Method == http.MethodHead {
		return s.head(rq, found)
	}
	if !found {
		if onlySource {
			return newErr(404, "resource_not_found_exception", "Document not found [%s]/[_doc]/[%s]", ix.name, id)
		}
		return s.ok(rq, 404, map[string]any{"_index": ix.name, "_type": "_doc", "_id": id, "found": false})
	}
	filtered, e := sf.apply(src)
	if e != nil {
		return e
	}
	if onlySource {
		return s.ok(rq, 200, json.RawMessage(filtered))
	}
	o := map[string]any{"_index": ix.name, "_type": "_doc", "_id": id, "_version": version, "_seq_no": seq, "_primary_term": 1, "found": true}
	if filtered != nil {
		o["_source"] = json.RawMessage(filtered)
	}
	return s.ok(rq, 200, o)
}

// sourceFilterFromParams reads _source, _source_includes, _source_excludes.
func sourceFilterFromParams(rq *request) (*sourceFilter, *esError) {
	sf := &sourceFilter{}
	if v, ok := rq.q["_source"]; ok {
		switch v[0] {
		case "true", "":
		case "false":
			sf.disabled = true
		default:
			sf.includes = strings.Split(v[0], ",")
		}
	}
	if v := rq.param("_source_includes"); v != "" {
		sf.includes = strings.Split(v, ",")
	}
	if v := rq.param("_source_excludes"); v != "" {
		sf.excludes = strings.Split(v, ",")
	}
	return sf, nil
}

// seqNoParams reads if_seq_no and if_primary_term (optimistic concurrency
// control) into op.
func seqNoParams(rq *request, op *writeOp) *esError {
	for _, k := range []string{"if_seq_no", "if_primary_term"} {
		if v := rq.param(k); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return errIllegalArgument("Failed to parse long parameter [%s] with value [%s]", k, v)
			}
			if k == "if_seq_no" {
				op.ifSeqNo = &n
			} else {
				op.ifPrimary = &n
			}
		}
	}
	return nil
}

// requireAliasParam applies the require_alias URL parameter to the ops
// whose metadata does not set it.
func requireAliasParam(rq *request, ops ...*writeOp) *esError {
	if _, ok := rq.q["require_alias"]; !ok {
		return nil
	}
	b, e := rq.boolParam("require_alias", false)
	if e != nil {
		return e
	}
	for _, op := range ops {
		if op.requireAlias == nil {
			op.requireAlias = &b
		}
	}
	return nil
}
