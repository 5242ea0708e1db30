package esserver

import (
	"fmt"
	"net/http"
)

// esError is an Elasticsearch exception: a type, a reason, optional
// metadata (index, index_uuid, shard...), and a cause. It renders as the
// "error" object of Elasticsearch's error body.
type esError struct {
	Status   int
	Type     string
	Reason   string
	Meta     map[string]any
	CausedBy *esError
	// rootCause, when set, replaces the computed root cause list (search
	// phase failures report the shard exception as root cause).
	rootCause []*esError
}

func (e *esError) Error() string { return e.Type + ": " + e.Reason }

func newErr(status int, typ, format string, args ...any) *esError {
	return &esError{Status: status, Type: typ, Reason: fmt.Sprintf(format, args...)}
}

func (e *esError) with(k string, v any) *esError {
	if e.Meta == nil {
		e.Meta = map[string]any{}
	}
	e.Meta[k] = v
	return e
}

func (e *esError) cause(c *esError) *esError { e.CausedBy = c; return e }

// object renders the exception without root_cause (items in bulk
// responses and caused_by chains use this shape).
func (e *esError) object() map[string]any {
	o := map[string]any{"type": e.Type, "reason": e.Reason}
	for k, v := range e.Meta {
		o[k] = v
	}
	if e.CausedBy != nil {
		o["caused_by"] = e.CausedBy.object()
	}
	return o
}

// body renders the full error response body:
// {"error":{"root_cause":[...],"type":...,"reason":...},"status":N}.
func (e *esError) body() map[string]any {
	if e.Type == "" {
		// REST-layer errors (no handler, wrong method) are a plain string
		return map[string]any{"error": e.Reason, "status": e.Status}
	}
	o := e.object()
	roots := e.rootCause
	if roots == nil {
		// Elasticsearch reports the outermost exception as root cause
		// unless it wraps shard failures.
		roots = []*esError{e}
	}
	rc := make([]any, 0, len(roots))
	for _, r := range roots {
		ro := r.object()
		delete(ro, "caused_by")
		rc = append(rc, ro)
	}
	o["root_cause"] = rc
	return map[string]any{"error": o, "status": e.Status}
}

// Common exceptions, with the reasons Elasticsearch 7.x gives.

func errIndexNotFound(name string) *esError {
	return newErr(http.StatusNotFound, "index_not_found_exception", "no such index [%s]", name).
		with("resource.type", "index_or_alias").with("resource.id", name).
		with("index_uuid", "_na_").with("index", name)
}

func errIllegalArgument(format string, args ...any) *esError {
	return newErr(http.StatusBadRequest, "illegal_argument_exception", format, args...)
}

func errParsing(format string, args ...any) *esError {
	return newErr(http.StatusBadRequest, "parsing_exception", format, args...).with("line", 1).with("col", 1)
}

func errValidation(problems ...string) *esError {
	r := "Validation Failed: "
	for i, p := range problems {
		r += fmt.Sprintf("%d: %s;", i+1, p)
	}
	return newErr(http.StatusBadRequest, "action_request_validation_exception", "%s", r)
}

// errUnsupported is what dev-es answers for a real Elasticsearch feature it
// does not implement: a 400 that says so, never a silently wrong answer.
func errUnsupported(format string, args ...any) *esError {
	return newErr(http.StatusBadRequest, "illegal_argument_exception", "dev-es does not support "+format, args...)
}

// shardFailure wraps a per-shard exception the way a search with every
// shard failing reports it.
func shardFailure(index string, inner *esError) *esError {
	e := newErr(inner.Status, "search_phase_execution_exception", "all shards failed").
		with("phase", "query").with("grouped", true).
		with("failed_shards", []any{map[string]any{"shard": 0, "index": index, "node": nodeID, "reason": inner.object()}})
	e.rootCause = []*esError{inner}
	e.CausedBy = inner
	return e
}
