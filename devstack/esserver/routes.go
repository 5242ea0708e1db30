package esserver

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// route is one REST endpoint: a path pattern whose segments are literals
// ("_search") or placeholders ("{index}"), the methods it serves, and
// whether it reads a request body. Elasticsearch's REST layer works the same
// way: a path trie where a literal segment wins over a placeholder, 405 for
// a known path with another method, and "does not support having a body"
// for a body nobody reads.
type route struct {
	methods string // space separated
	path    string
	body    bool
	h       func(*Server, *request) *esError
}

// routes is every endpoint dev-es serves. A path not listed here is
// refused (noHandler): never answered by a shorter route.
var routes = []route{
	{"GET HEAD", "/", false, (*Server).handleRoot},

	{"GET", "/_cluster/health", false, (*Server).handleHealth},
	{"GET", "/_cluster/health/{index}", false, (*Server).handleHealth},
	{"GET", "/_cluster/state", false, (*Server).handleClusterState},
	{"GET", "/_cluster/state/{metric}", false, (*Server).handleClusterState},
	{"GET", "/_cluster/state/{metric}/{index}", false, (*Server).handleClusterState},
	{"GET", "/_cluster/settings", false, (*Server).handleClusterSettings},
	{"GET", "/_cluster/stats", false, (*Server).handleClusterStats},

	{"GET", "/_nodes", false, (*Server).handleNodes},
	{"GET", "/_nodes/{nodes_or_metric}", false, (*Server).handleNodes},
	{"GET", "/_nodes/{node}/{metric}", false, (*Server).handleNodes},
	{"GET", "/_nodes/stats", false, (*Server).handleNodesStats},
	{"GET", "/_nodes/stats/{metric}", false, (*Server).handleNodesStats},
	{"GET", "/_nodes/stats/{metric}/{index_metric}", false, (*Server).handleNodesStats},
	{"GET", "/_nodes/{node}/stats", false, (*Server).handleNodesStats},
	{"GET", "/_nodes/{node}/stats/{metric}", false, (*Server).handleNodesStats},
	{"GET", "/_nodes/{node}/stats/{metric}/{index_metric}", false, (*Server).handleNodesStats},

	{"GET", "/_cat/indices", false, (*Server).handleCatIndices},
	{"GET", "/_cat/indices/{index}", false, (*Server).handleCatIndices},
	{"GET", "/_cat/health", false, (*Server).handleCatHealth},
	{"GET", "/_cat/count", false, (*Server).handleCatCount},
	{"GET", "/_cat/count/{index}", false, (*Server).handleCatCount},
	{"GET", "/_cat/nodes", false, (*Server).handleCatNodes},
	{"GET", "/_cat/shards", false, (*Server).handleCatShards},
	{"GET", "/_cat/shards/{index}", false, (*Server).handleCatShards},
	{"GET", "/_cat/aliases", false, (*Server).handleCatAliases},
	{"GET", "/_cat/aliases/{name}", false, (*Server).handleCatAliases},
	{"GET", "/_cat/templates", false, (*Server).handleCatTemplates},
	{"GET", "/_cat/templates/{name}", false, (*Server).handleCatTemplates},

	{"GET", "/_stats", false, (*Server).handleStats},
	{"GET", "/_stats/{metric}", false, (*Server).handleStats},
	{"GET", "/{index}/_stats", false, (*Server).handleStats},
	{"GET", "/{index}/_stats/{metric}", false, (*Server).handleStats},

	{"GET POST", "/_field_caps", true, (*Server).handleFieldCaps},
	{"GET POST", "/{index}/_field_caps", true, (*Server).handleFieldCaps},

	{"GET", "/_tasks/{task_id}", false, (*Server).handleGetTask},

	{"POST PUT", "/_bulk", true, (*Server).handleBulk},
	{"POST PUT", "/{index}/_bulk", true, (*Server).handleBulk},
	{"GET POST", "/_search", true, (*Server).handleSearch},
	{"GET POST", "/{index}/_search", true, (*Server).handleSearch},
	{"GET POST DELETE", "/_search/scroll", true, (*Server).handleScroll},
	{"GET POST DELETE", "/_search/scroll/{scroll_id}", true, (*Server).handleScroll},
	{"GET POST", "/_count", true, (*Server).handleCount},
	{"GET POST", "/{index}/_count", true, (*Server).handleCount},
	{"GET POST", "/_mget", true, (*Server).handleMget},
	{"GET POST", "/{index}/_mget", true, (*Server).handleMget},
	{"GET POST", "/_msearch", true, (*Server).handleMsearch},
	{"GET POST", "/{index}/_msearch", true, (*Server).handleMsearch},
	{"POST", "/_reindex", true, (*Server).handleReindex},
	{"POST", "/{index}/_delete_by_query", true, (*Server).handleDeleteByQuery},
	{"POST", "/{index}/_update_by_query", true, (*Server).handleUpdateByQuery},

	{"GET POST", "/_refresh", false, (*Server).handleRefresh},
	{"GET POST", "/{index}/_refresh", false, (*Server).handleRefresh},
	{"GET POST", "/_flush", false, (*Server).handleFlush},
	{"GET POST", "/{index}/_flush", false, (*Server).handleFlush},
	{"GET POST", "/_flush/synced", false, (*Server).handleFlush},
	{"GET POST", "/{index}/_flush/synced", false, (*Server).handleFlush},
	{"POST", "/_forcemerge", false, (*Server).handleForceMerge},
	{"POST", "/{index}/_forcemerge", false, (*Server).handleForceMerge},
	{"POST", "/{index}/_close", false, (*Server).handleOpenClose},
	{"POST", "/{index}/_open", false, (*Server).handleOpenClose},

	{"GET", "/_mapping", false, (*Server).handleGetMapping},
	{"GET", "/{index}/_mapping", false, (*Server).handleGetMapping},
	{"GET", "/{index}/_mapping/{type}", false, (*Server).handleGetMapping},
	{"PUT POST", "/{index}/_mapping", true, (*Server).handlePutMapping},
	{"GET", "/{index}/_settings", false, (*Server).handleGetSettings},
	{"PUT", "/{index}/_settings", true, (*Server).handlePutSettings},

	{"POST", "/_aliases", true, (*Server).handleAliasActions},
	{"GET HEAD", "/_aliases/{name}", false, (*Server).handleGetAlias},
	{"GET HEAD", "/_alias", false, (*Server).handleGetAlias},
	{"GET HEAD", "/_alias/{name}", false, (*Server).handleGetAlias},
	{"GET HEAD", "/{index}/_alias", false, (*Server).handleIndexAlias},
	{"GET HEAD", "/{index}/_aliases", false, (*Server).handleIndexAlias},
	{"GET HEAD DELETE", "/{index}/_alias/{name}", false, (*Server).handleIndexAlias},
	{"PUT POST", "/{index}/_alias/{name}", true, (*Server).handleIndexAlias},
	{"GET HEAD DELETE", "/{index}/_aliases/{name}", false, (*Server).handleIndexAlias},
	{"PUT POST", "/{index}/_aliases/{name}", true, (*Server).handleIndexAlias},

	{"GET", "/_index_template", false, (*Server).handleGetIndexTemplate},
	{"GET", "/_index_template/{name}", false, (*Server).handleGetIndexTemplate},
	{"HEAD", "/_index_template/{name}", false, (*Server).handleHeadIndexTemplate},
	{"PUT POST", "/_index_template/{name}", true, (*Server).handlePutIndexTemplate},
	{"DELETE", "/_index_template/{name}", false, (*Server).handleDeleteIndexTemplate},
	{"GET", "/_template", false, (*Server).handleGetLegacyTemplate},
	{"GET", "/_template/{name}", false, (*Server).handleGetLegacyTemplate},
	{"HEAD", "/_template/{name}", false, (*Server).handleHeadLegacyTemplate},
	{"PUT POST", "/_template/{name}", true, (*Server).handlePutLegacyTemplate},
	{"DELETE", "/_template/{name}", false, (*Server).handleDeleteLegacyTemplate},

	{"PUT", "/{index}", true, (*Server).handleCreateIndex},
	{"DELETE", "/{index}", false, (*Server).handleDeleteIndex},
	{"HEAD", "/{index}", false, (*Server).handleHeadIndex},
	{"GET", "/{index}", false, (*Server).handleGetIndex},

	{"POST", "/{index}/_doc", true, (*Server).handleIndexDoc},
	{"PUT POST", "/{index}/_doc/{id}", true, (*Server).handleIndexDoc},
	{"GET HEAD", "/{index}/_doc/{id}", false, (*Server).handleGetDoc},
	{"DELETE", "/{index}/_doc/{id}", false, (*Server).handleDeleteDoc},
	{"PUT POST", "/{index}/_create/{id}", true, (*Server).handleIndexDoc},
	{"POST", "/{index}/_update/{id}", true, (*Server).handleUpdateDoc},
	{"GET HEAD", "/{index}/_source/{id}", false, (*Server).handleGetDoc},
}

// matchRoute finds the routes whose pattern matches parts best: at each
// segment a literal beats a placeholder. {index} does not match names that
// start with "_" (except "_all"): those are API names.
func matchRoute(parts []string) []route {
	var best []route
	var bestScore []bool
	for _, rt := range routes {
		segs := strings.Split(strings.Trim(rt.path, "/"), "/")
		if rt.path == "/" {
			segs = nil
		}
		if len(segs) != len(parts) {
			continue
		}
		score := make([]bool, len(segs))
		ok := true
		for i, sg := range segs {
			switch {
			case sg == parts[i]:
				score[i] = true
			case strings.HasPrefix(sg, "{"):
				if sg == "{index}" && strings.HasPrefix(parts[i], "_") && parts[i] != "_all" {
					ok = false
				}
			default:
				ok = false
			}
			if !ok {
				break
			}
		}
		if !ok {
			continue
		}
		switch c := cmpScore(score, bestScore); {
		case best == nil || c > 0:
			best, bestScore = []route{rt}, score
		case c == 0:
			best = append(best, rt)
		}
	}
	return best
}

func cmpScore(a, b []bool) int {
	for i := range a {
		if i >= len(b) || a[i] == b[i] {
			continue
		}
		if a[i] {
			return 1
		}
		return -1
	}
	return 0
}

// route dispatches a request by the routes table.
func (s *Server) route(rq *request) *esError {
	if len(rq.parts) > 0 && rq.parts[0] == "_falconet" {
		return s.handleAdmin(rq)
	}
	cands := matchRoute(rq.parts)
	if len(cands) == 0 {
		return noHandler(rq)
	}
	var allowed []string
	for _, rt := range cands {
		for _, m := range strings.Fields(rt.methods) {
			if m != rq.r.Method {
				if !contains(allowed, m) {
					allowed = append(allowed, m)
				}
				continue
			}
			if !rt.body && len(strings.TrimSpace(string(rq.body))) > 0 {
				return errIllegalArgument("request [%s %s] does not support having a body", rq.r.Method, rq.path)
			}
			return rt.h(s, rq)
		}
	}
	sort.Strings(allowed)
	return methodNotAllowed(rq, allowed...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// noHandler answers a path no route serves: an API dev-es knows but does
// not implement says so; an index-level path with a type name is a custom
// mapping type; anything else is Elasticsearch's "no handler found".
func noHandler(rq *request) *esError {
	p := rq.parts
	for _, seg := range p {
		if knownAPIs[seg] {
			return errUnsupported("the %s API (%s %s)", seg, rq.r.Method, rq.r.URL.Path)
		}
	}
	if len(p) >= 2 && (p[0] == "_cluster" || p[0] == "_cat" || p[0] == "_nodes") {
		return errUnsupported("the %s API (%s %s)", strings.Join(p[:2], "/"), rq.r.Method, rq.r.URL.Path)
	}
	if len(p) == 1 && rq.r.Method == http.MethodPut {
		return validateIndexName(p[0])
	}
	if len(p) >= 2 && !strings.HasPrefix(p[0], "_") && !strings.HasPrefix(p[1], "_") {
		return errUnsupported("custom mapping types ([%s]); use _doc", p[1])
	}
	return &esError{Status: http.StatusBadRequest, Reason: fmt.Sprintf("no handler found for uri [%s] and method [%s]", rq.r.URL.RequestURI(), rq.r.Method)}
}

// knownAPIs are Elasticsearch endpoints dev-es does not implement: they
// answer "dev-es does not support", not ES's "no handler found".
var knownAPIs = map[string]bool{
	"_rollover": true, "_shrink": true,
	"_split": true, "_clone": true, "_analyze": true, "_validate": true, "_explain": true,
	"_termvectors": true, "_mtermvectors": true, "_segments": true, "_recovery": true, "_shard_stores": true,
	"_cache": true, "_ilm": true, "_snapshot": true, "_ingest": true, "_tasks": true, "_component_template": true,
	"_data_stream": true, "_security": true, "_license": true, "_xpack": true, "_pit": true, "_sql": true,
	"_async_search": true, "_resolve": true, "_settings": true, "_search_shards": true, "_rank_eval": true,
	"_scripts": true, "_render": true, "_ccr": true, "_ml": true, "_rollup": true, "_transform": true,
	"_watcher": true, "_slm": true, "_enrich": true, "_graph": true, "_freeze": true, "_unfreeze": true,
	"_disk_usage": true, "_knn_search": true, "_terms_enum": true, "_upgrade": true, "_block": true,
	"_stats": true, "_field_caps": true, "_forcemerge": true, "_open": true, "_close": true,
	"_update_by_query": true, "_delete_by_query": true, "_mapping": true, "_alias": true, "_aliases": true,
}

// refuseParams answers 400 for parameters an endpoint accepts in
// Elasticsearch but dev-es does not implement.
func refuseParams(rq *request, names ...string) *esError {
	for _, n := range names {
		if _, ok := rq.q[n]; ok {
			return errUnsupported("the [%s] parameter of %s %s", n, rq.r.Method, rq.path)
		}
	}
	return nil
}

// refuseTypedBodies answers 400 for include_type_name=true on APIs whose
// body would then be typed ({"_doc":{"properties":...}}), and for the
// write_index_only flag of put mapping.
func refuseTypedBodies(rq *request) *esError {
	for _, k := range []string{"include_type_name", "write_index_only"} {
		if v, e := rq.boolParam(k, false); e != nil {
			return e
		} else if v {
			return errUnsupported("%s=true on %s %s", k, rq.r.Method, rq.path)
		}
	}
	return nil
}
