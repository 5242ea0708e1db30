package devstack

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"
)

// seedDaily creates three daily metric indices (replicas 0, so green) with
// n documents each, the way the saver names them.
func seedDaily(t *testing.T, env *esEnv, n int) []string {
	t.Helper()
	var names []string
	var bulk strings.Builder
	for d := 1; d <= 3; d++ {
		ix := env.idx(fmt.Sprintf("falconet-metrics-2026.11.0%d", d))
		names = append(names, ix)
		env.must(200, "PUT", "/"+ix, `{"settings":{"number_of_replicas":0},"mappings":{"properties":{"endpoint":{"type":"keyword"},"name":{"type":"keyword"},"value":{"type":"double"},"step":{"type":"long"},"timestamp":{"type":"date"},"note":{"type":"text"}}}}`)
		for i := 0; i < n; i++ {
			fmt.Fprintf(&bulk, "{\"index\":{\"_index\":%q,\"_id\":\"%d\"}}\n{\"endpoint\":\"host-%d\",\"name\":\"cpu.idle\",\"value\":%d.5,\"step\":%d,\"timestamp\":\"2026-11-0%dT0%d:00:00Z\",\"note\":\"Disk FULL on host-%d\"}\n", ix, i, i%3, i, 10*(i+1), d, i%10, i%3)
		}
	}
	r := env.must(200, "POST", "/_bulk?refresh=true", bulk.String())
	expect(t, r, "errors", false)
	return names
}

// Reference: "Nodes info API" and "Nodes stats API" (metric and node
// filters), "Cluster health API" (level, wait_for_nodes).
func TestESNodesAndHealthLevels(t *testing.T) {
	env := newESEnv(t)
	names := seedDaily(t, env, 2)
	r := env.must(200, "GET", "/_nodes/stats", "")
	var node map[string]any
	for _, v := range r["nodes"].(map[string]any) {
		node = v.(map[string]any)
	}
	if n, _ := get(node, "fs.total.total_in_bytes").(int64); n <= 0 {
		t.Fatalf("_nodes/stats fs.total.total_in_bytes: got %v, want > 0", get(node, "fs.total.total_in_bytes"))
	}
	if get(node, "indices.docs.count") == nil || get(node, "os.mem.total_in_bytes") == nil {
		t.Fatalf("_nodes/stats: indices.docs / os.mem missing: %v", node)
	}
	r = env.must(200, "GET", "/_nodes/_local/stats/fs", "")
	for _, v := range r["nodes"].(map[string]any) {
		if get(v, "fs.total.available_in_bytes") == nil || get(v, "os") != nil {
			t.Fatalf("_nodes/_local/stats/fs: want fs only, got %v", v)
		}
	}
	r = env.must(200, "GET", "/_nodes/http", "")
	for _, v := range r["nodes"].(map[string]any) {
		if get(v, "http.publish_address") == nil || get(v, "os") != nil {
			t.Fatalf("_nodes/http: want http only, got %v", v)
		}
	}
	r = env.must(200, "GET", "/_nodes/no-such-node/stats", "")
	expect(t, r, "_nodes.total", 0)
	if env.dev != nil {
		r = env.must(400, "GET", "/_nodes/stats/jvm", "")
		if reason, _ := get(r, "error.reason").(string); !strings.HasPrefix(reason, "dev-es does not support") {
			t.Fatalf("_nodes/stats/jvm: got reason %q", reason)
		}
	}
	env.must(400, "GET", "/_nodes/stats/bogus", "")

	h := env.must(200, "GET", "/_cluster/health/"+names[0]+"?level=indices", "")
	expect(t, h, "indices."+esc(names[0])+".status", "green")
	expect(t, h, "indices."+esc(names[0])+".active_primary_shards", 1)
	h = env.must(200, "GET", "/_cluster/health/"+names[0]+"?level=shards", "")
	expect(t, h, "indices."+esc(names[0])+".shards.0.primary_active", true)
	h = env.must(200, "GET", "/_cluster/health/"+names[0], "")
	if h["indices"] != nil {
		t.Fatalf("level=cluster: got an indices section: %v", h)
	}
	env.must(400, "GET", "/_cluster/health?level=bogus", "")
	h = env.must(408, "GET", "/_cluster/health/"+names[0]+"?wait_for_nodes=2&timeout=100ms", "")
	expect(t, h, "timed_out", true)
	env.must(200, "GET", "/_cluster/health/"+names[0]+"?wait_for_nodes=%3E%3D1&timeout=100ms", "")

	c := env.client()
	ns, err := c.NodesStats().Metric("fs").Do(ctx(t))
	if err != nil {
		t.Fatalf("NodesStats: %v", err)
	}
	for id, n := range ns.Nodes {
		if n.FS == nil || n.FS.Total == nil || n.FS.Total.TotalInBytes <= 0 {
			t.Fatalf("olivere NodesStats fs of %s: got %+v", id, n.FS)
		}
	}
	ch, err := c.ClusterHealth().Index(names[1]).Level("indices").Do(ctx(t))
	if err != nil {
		t.Fatalf("ClusterHealth: %v", err)
	}
	if ih := ch.Indices[names[1]]; ih == nil || ih.Status != "green" {
		t.Fatalf("olivere ClusterHealth level=indices: got %+v", ch.Indices)
	}
}

// Reference: "Get index template API": settings come back normalised
// ({"index":{"number_of_replicas":"0"}}), flat with flat_settings.
func TestESIndexTemplateNormalised(t *testing.T) {
	env := newESEnv(t)
	name := env.prefix + "norm"
	env.must(200, "PUT", "/_index_template/"+name, `{"index_patterns":["`+env.prefix+`n-*"],"template":{"settings":{"number_of_replicas":0,"index.refresh_interval":"5s"},"mappings":{"properties":{"v":{"type":"long"}}}}}`)
	g := env.must(200, "GET", "/_index_template/"+name, "")
	expect(t, g, "index_templates.0.index_template.template.settings.index.number_of_replicas", "0")
	expect(t, g, "index_templates.0.index_template.template.settings.index.refresh_interval", "5s")
	expect(t, g, "index_templates.0.index_template.template.mappings.properties.v.type", "long")
	g = env.must(200, "GET", "/_index_template/"+name+"?flat_settings=true", "")
	ts := get(g, "index_templates.0.index_template.template.settings").(map[string]any)
	if fmt.Sprint(ts["index.number_of_replicas"]) != "0" {
		t.Fatalf("flat_settings: got %v", ts)
	}
	c := env.client()
	res, err := c.IndexGetIndexTemplate(name).Do(ctx(t))
	if err != nil {
		t.Fatalf("IndexGetIndexTemplate: %v", err)
	}
	got := res.IndexTemplates[0].IndexTemplate.Template.Settings
	if fmt.Sprint(get(got, "index.number_of_replicas")) != "0" {
		t.Fatalf("olivere IndexGetIndexTemplate settings: got %v", got)
	}
	// the same for index settings: flat_settings and include_type_name are honoured
	ix := env.idx("n-1")
	env.must(200, "PUT", "/"+ix, `{}`)
	s := env.must(200, "GET", "/"+ix+"/_settings?flat_settings=true", "")
	if fmt.Sprint(s[ix].(map[string]any)["settings"].(map[string]any)["index.number_of_replicas"]) != "0" {
		t.Fatalf("GET _settings?flat_settings=true: got %v", s)
	}
	m := env.must(200, "GET", "/"+ix+"/_mapping?include_type_name=true", "")
	expect(t, m, esc(ix)+".mappings._doc.properties.v.type", "long")
}

// Reference: "Cluster state API" (metadata, expand_wildcards,
// filter_path) and "Index stats API" (docs, store): what retention tools
// (curator and the like) read to list and age indices, then delete them.
func TestESRetentionListing(t *testing.T) {
	env := newESEnv(t)
	names := seedDaily(t, env, 4)
	pat := env.prefix + "falconet-metrics-*"
	r := env.must(200, "GET", "/_cluster/state/metadata/"+pat+"?filter_path=metadata.indices.*.state,metadata.indices.*.settings.index.creation_date&expand_wildcards=open,closed", "")
	for _, n := range names {
		expect(t, r, "metadata.indices."+esc(n)+".state", "open")
		if cd, _ := get(r, "metadata.indices."+esc(n)+".settings.index.creation_date").(string); cd == "" {
			t.Fatalf("creation_date of %s missing: %v", n, r)
		}
	}
	if get(r, "cluster_name") != nil {
		t.Fatalf("filter_path kept cluster_name: %v", r)
	}
	st := env.must(200, "GET", "/"+pat+"/_stats/store,docs", "")
	expect(t, st, "_all.primaries.docs.count", 12)
	expect(t, st, "indices."+esc(names[0])+".primaries.docs.count", 4)
	if n, _ := get(st, "indices."+esc(names[0])+".primaries.store.size_in_bytes").(int64); n <= 0 {
		t.Fatalf("store.size_in_bytes: got %v", get(st, "indices."+esc(names[0])+".primaries.store.size_in_bytes"))
	}
	all := env.must(200, "GET", "/"+names[1]+"/_stats", "")
	expect(t, all, "_all.total.docs.count", 4)
	env.must(200, "GET", "/_stats", "")
	sh := env.must(200, "GET", "/"+names[1]+"/_stats/docs?level=shards", "")
	expect(t, sh, "indices."+esc(names[1])+".shards.0.0.routing.primary", true)
	expect(t, sh, "indices."+esc(names[1])+".shards.0.0.docs.count", 4)
	if env.dev != nil {
		env.must(400, "GET", "/"+names[1]+"/_stats/indexing", "")
	}
	env.must(400, "GET", "/"+names[1]+"/_stats/bogus", "")
	env.must(200, "PUT", "/_index_template/"+env.prefix+"daily", `{"index_patterns":["`+env.prefix+`falconet-metrics-*"],"priority":9,"template":{"settings":{"number_of_replicas":0}}}`)
	r = env.must(200, "GET", "/_cluster/state/metadata?filter_path=metadata.index_template", "")
	expect(t, r, "metadata.index_template.index_template."+env.prefix+"daily.template.settings.index.number_of_replicas", "0")
	// a closed index is listed only when expand_wildcards asks for it
	env.must(200, "POST", "/"+names[2]+"/_close", "")
	r = env.must(200, "GET", "/_cluster/state/metadata/"+pat, "")
	if get(r, "metadata.indices."+esc(names[2])) != nil {
		t.Fatalf("default expand_wildcards=open listed a closed index: %v", r)
	}
	r = env.must(200, "GET", "/_cluster/state/metadata/"+pat+"?expand_wildcards=all", "")
	expect(t, r, "metadata.indices."+esc(names[2])+".state", "close")

	c := env.client()
	cs, err := c.ClusterState().Metric("metadata").Index(pat).Do(ctx(t))
	if err != nil {
		t.Fatalf("ClusterState: %v", err)
	}
	if len(cs.Metadata.Indices) != 2 || cs.Metadata.Indices[names[0]] == nil || cs.Metadata.Indices[names[0]].State != "open" {
		t.Fatalf("olivere ClusterState metadata: got %v", cs.Metadata.Indices)
	}
	is, err := c.IndexStats(pat).Metric("store", "docs").Do(ctx(t))
	if err != nil {
		t.Fatalf("IndexStats: %v", err)
	}
	if s := is.Indices[names[0]]; s == nil || s.Primaries.Docs.Count != 4 || s.Primaries.Store.SizeInBytes <= 0 {
		t.Fatalf("olivere IndexStats: got %+v", is.Indices[names[0]])
	}
	// the retention step: delete the oldest, and it is gone from the listing
	if _, err := c.DeleteIndex(names[0]).Do(ctx(t)); err != nil {
		t.Fatalf("DeleteIndex: %v", err)
	}
	r = env.must(200, "GET", "/_cluster/state/metadata/"+pat, "")
	if get(r, "metadata.indices."+esc(names[0])) != nil || get(r, "metadata.indices."+esc(names[1])) == nil {
		t.Fatalf("after deleting %s: %v", names[0], r)
	}
}

// Reference: "cat nodes API", "cat shards API", "cat aliases API", "cat
// templates API", "Cluster get settings API", "Cluster stats API", "Field
// capabilities API".
func TestESCatClusterFieldCaps(t *testing.T) {
	env := newESEnv(t)
	names := seedDaily(t, env, 2)
	env.must(200, "PUT", "/"+names[0]+"/_alias/"+env.prefix+"recent", "")
	env.must(200, "PUT", "/_template/"+env.prefix+"tpl", `{"index_patterns":["`+env.prefix+`x-*"],"order":3}`)
	var rows []map[string]any
	decode := func(r resp) {
		t.Helper()
		rows = nil
		if err := json.Unmarshal(r.body, &rows); err != nil {
			t.Fatalf("cat json: %v: %s", err, r.body)
		}
	}
	nodes := env.do("GET", "/_cat/nodes?format=json&h=name,node.role,master,heap.percent", "")
	decode(nodes)
	if len(rows) != 1 || rows[0]["master"] != "*" || rows[0]["name"] == nil {
		t.Fatalf("_cat/nodes: got %s", nodes.body)
	}
	r := env.must(400, "GET", "/_cat/nodes?h=name,bogus_col", "")
	if reason, _ := get(r, "error.reason").(string); !strings.Contains(reason, "bogus_col") {
		t.Fatalf("_cat/nodes unknown column: got %q", reason)
	}
	env.must(200, "PUT", "/"+names[1]+"/_settings", `{"number_of_replicas":1}`)
	decode(env.do("GET", "/_cat/shards/"+names[1]+"?format=json", ""))
	if len(rows) != 2 || rows[0]["prirep"] != "p" || rows[0]["state"] != "STARTED" || rows[0]["docs"] != "2" || rows[1]["state"] != "UNASSIGNED" {
		t.Fatalf("_cat/shards: got %v", rows)
	}
	txt := env.do("GET", "/_cat/shards/"+names[1]+"?v&h=index,prirep,state", "")
	if !strings.HasPrefix(string(txt.body), "index") || !strings.Contains(string(txt.body), "UNASSIGNED") {
		t.Fatalf("_cat/shards text: %q", txt.body)
	}
	if help := env.do("GET", "/_cat/shards?help", ""); !strings.Contains(string(help.body), "prirep | p,pr,primaryOrReplica |") {
		t.Fatalf("_cat/shards?help: %q", help.body)
	}
	decode(env.do("GET", "/_cat/aliases/"+env.prefix+"recent?format=json", ""))
	if len(rows) != 1 || rows[0]["index"] != names[0] {
		t.Fatalf("_cat/aliases: got %v", rows)
	}
	decode(env.do("GET", "/_cat/templates/"+env.prefix+"tpl?format=json", ""))
	if len(rows) != 1 || rows[0]["order"] != "3" {
		t.Fatalf("_cat/templates: got %v", rows)
	}
	cs := env.must(200, "GET", "/_cluster/settings", "")
	if _, ok := cs["persistent"].(map[string]any); !ok {
		t.Fatalf("_cluster/settings: got %v", cs)
	}
	st := env.must(200, "GET", "/_cluster/stats", "")
	if n, _ := get(st, "indices.docs.count").(int64); n < 6 {
		t.Fatalf("_cluster/stats indices.docs.count: got %v, want >= 6", get(st, "indices.docs.count"))
	}
	expect(t, st, "nodes.count.total", 1)
	fc := env.must(200, "GET", "/"+env.prefix+"falconet-metrics-*/_field_caps?fields=endpoint,value,note,timestamp,_id", "")
	expect(t, fc, "fields.endpoint.keyword.aggregatable", true)
	expect(t, fc, "fields.value.double.searchable", true)
	expect(t, fc, "fields.note.text.aggregatable", false)
	expect(t, fc, "fields.timestamp.date.aggregatable", true)
	expect(t, fc, "fields._id._id.metadata_field", true)
	env.must(400, "GET", "/"+names[0]+"/_field_caps", "")

	c := env.client()
	ca, err := c.CatAliases().Alias(env.prefix + "recent").Do(ctx(t))
	if err != nil || len(ca) != 1 || ca[0].Index != names[0] {
		t.Fatalf("olivere CatAliases: %v %+v", err, ca)
	}
	sh, err := c.CatShards().Index(names[0]).Do(ctx(t))
	if err != nil || len(sh) != 1 || sh[0].State != "STARTED" {
		t.Fatalf("olivere CatShards: %v %+v", err, sh)
	}
	fcr, err := c.FieldCaps(names[0]).Fields("name", "step").Do(ctx(t))
	if err != nil || !fcr.Fields["name"]["keyword"].Aggregatable || fcr.Fields["step"]["long"].Type != "long" {
		t.Fatalf("olivere FieldCaps: %v %+v", err, fcr)
	}
	if _, err := c.ClusterStats().Do(ctx(t)); err != nil {
		t.Fatalf("olivere ClusterStats: %v", err)
	}
}

// Reference: "Retrieve selected fields from a search" (stored_fields,
// docvalue_fields, the fields option).
func TestESSearchFieldOptions(t *testing.T) {
	env := newESEnv(t)
	names := seedDaily(t, env, 2)
	ix := names[0]
	r := env.must(200, "POST", "/"+ix+"/_search", `{"stored_fields":["*"],"sort":[{"step":"asc"}]}`)
	if get(r, "hits.hits.0._source") != nil || get(r, "hits.hits.0._id") != "0" {
		t.Fatalf("stored_fields [*]: want _id without _source, got %v", r["hits"])
	}
	r = env.must(200, "POST", "/"+ix+"/_search", `{"stored_fields":["*"],"_source":true,"size":1}`)
	if get(r, "hits.hits.0._source.endpoint") == nil {
		t.Fatalf("stored_fields with _source: true: no _source: %v", r["hits"])
	}
	r = env.must(200, "POST", "/"+ix+"/_search", `{"stored_fields":"_none_","size":1}`)
	if get(r, "hits.hits.0._id") != nil || get(r, "hits.hits.0._index") != ix {
		t.Fatalf("stored_fields _none_: want no _id, got %v", r["hits"])
	}
	env.must(400, "POST", "/"+ix+"/_search", `{"stored_fields":"_none_","_source":true}`)
	r = env.must(200, "POST", "/"+ix+"/_search", `{"_source":false,"sort":[{"step":"asc"}],"docvalue_fields":["endpoint",{"field":"timestamp","format":"epoch_millis"},"value"],"fields":["step","timestamp"]}`)
	expect(t, r, "hits.hits.0.fields.endpoint.0", "host-0")
	expect(t, r, "hits.hits.0.fields.value.0", 0.5)
	expect(t, r, "hits.hits.0.fields.step.0", 10)
	expect(t, r, "hits.hits.0.fields.timestamp.0", "2026-11-01T00:00:00.000Z")
	r = env.must(200, "POST", "/"+ix+"/_search", `{"_source":false,"size":1,"sort":[{"step":"asc"}],"docvalue_fields":[{"field":"timestamp","format":"epoch_millis"}]}`)
	expect(t, r, "hits.hits.0.fields.timestamp.0", "1793491200000")
	r = env.must(400, "POST", "/"+ix+"/_search", `{"docvalue_fields":["note"]}`)
	expect(t, r, "error.root_cause.0.type", "illegal_argument_exception")
	r = env.must(200, "GET", "/"+ix+"/_search?stored_fields=_none_&size=1", "")
	if get(r, "hits.hits.0._id") != nil {
		t.Fatalf("?stored_fields=_none_: got %v", r["hits"])
	}

	c := env.client()
	res, err := c.Search(ix).StoredField("*").DocvalueFields("endpoint").Sort("step", true).Do(ctx(t))
	if err != nil {
		t.Fatalf("olivere search with stored_fields: %v", err)
	}
	if h := res.Hits.Hits[0]; h.Source != nil || fmt.Sprint(h.Fields["endpoint"]) != "[host-0]" {
		t.Fatalf("olivere hit: source %s fields %v", h.Source, h.Fields)
	}
}

// Reference: "Search API > q" (URI search), "Query string query"
// (field:value, ranges, AND/OR/NOT, wildcards, _exists_), "Match query"
// and "Multi-match query" over keyword, numeric and text fields.
func TestESFullText(t *testing.T) {
	env := newESEnv(t)
	names := seedDaily(t, env, 6)
	pat := env.prefix + "falconet-metrics-*"
	count := func(path, body string) int64 {
		t.Helper()
		r := env.must(200, "POST", path, body)
		n, _ := get(r, "hits.total.value").(int64)
		return n
	}
	uri := func(q string) int64 {
		t.Helper()
		return count("/"+pat+"/_search?q="+strings.ReplaceAll(strings.ReplaceAll(q, " ", "%20"), "+", "%2B"), "")
	}
	for _, tc := range []struct {
		q    string
		want int64
	}{
		{"endpoint:host-1", 6},
		{"step:[20 TO 40]", 9},
		{"step:{20 TO 40}", 3},
		{"step:>=50", 6},
		{"endpoint:host-1 OR endpoint:host-2", 12},
		{"endpoint:host-1 AND step:20", 3},
		{"(endpoint:host-1 OR endpoint:host-2) AND step:<=20", 3},
		{"NOT endpoint:host-1", 12},
		{"*", 18},
		{"endpoint:host-*", 18},
		{"_exists_:note", 18},
		{"note:disk", 18},
		{"note:host", 18},
		{"endpoint:host-2", 6},
		{"host-2", 18}, // the default field * includes the text field note: "host" OR "2"
		{"timestamp:[2026-11-02 TO 2026-11-02||+1d}", 6},
	} {
		if got := uri(tc.q); got != tc.want {
			t.Errorf("q=%s: got %d hits, want %d", tc.q, got, tc.want)
		}
	}
	if env.dev != nil {
		r := env.must(400, "GET", "/"+pat+"/_search?q=a%20OR%20b%20AND%20c", "")
		if reason, _ := get(r, "error.reason").(string); !strings.HasPrefix(reason, "dev-es does not support") {
			t.Fatalf("mixed AND/OR: got %q", reason)
		}
	}
	cr := env.must(200, "GET", "/"+pat+"/_count?q=endpoint:host-0", "")
	expect(t, cr, "count", 6)

	for _, tc := range []struct {
		body string
		want int64
	}{
		{`{"query":{"match":{"endpoint":"host-1"}}}`, 6},
		{`{"query":{"match":{"endpoint":"host"}}}`, 0},
		{`{"query":{"match":{"step":"20"}}}`, 3},
		{`{"query":{"match":{"note":"full disk"}}}`, 18},
		{`{"query":{"match":{"note":{"query":"full host-1","operator":"and"}}}}`, 6},
		{`{"query":{"match":{"step":{"query":"abc","lenient":true}}}}`, 0},
		{`{"query":{"multi_match":{"query":"host-2","fields":["endpoint","name"]}}}`, 6},
		{`{"query":{"query_string":{"query":"name:cpu.idle AND value:>3"}}}`, 9},
		{`{"query":{"query_string":{"query":"host-0","default_field":"endpoint"}}}`, 6},
	} {
		if got := count("/"+pat+"/_search", tc.body); got != tc.want {
			t.Errorf("%s: got %d hits, want %d", tc.body, got, tc.want)
		}
	}
	r := env.must(400, "POST", "/"+names[0]+"/_search", `{"query":{"match":{"step":"abc"}}}`)
	expect(t, r, "error.root_cause.0.type", "query_shard_exception")

	c := env.client()
	for _, q := range []elastic.Query{
		elastic.NewMatchQuery("endpoint", "host-1"),
		elastic.NewMultiMatchQuery("host-1", "endpoint", "name"),
		elastic.NewQueryStringQuery("endpoint:host-1"),
		elastic.NewBoolQuery().Must(elastic.NewMatchQuery("note", "host-1").Operator("and"), elastic.NewQueryStringQuery("step:>0")),
	} {
		res, err := c.Search(pat).Query(q).Do(ctx(t))
		if err != nil || res.TotalHits() != 6 {
			src, _ := q.Source()
			t.Fatalf("olivere %v: err %v, hits %d, want 6", src, err, res.TotalHits())
		}
	}
	n, err := c.Count(pat).Q("endpoint:host-2").Do(ctx(t)) // ?q= on _count
	if err != nil || n != 6 {
		t.Fatalf("olivere Count.Q: %v %d, want 6", err, n)
	}
}

// Reference: "Stats", "Extended stats", "Percentiles", "Top hits",
// "Composite" and "Terms" (min_doc_count 0) aggregations.
func TestESMoreAggregations(t *testing.T) {
	env := newESEnv(t)
	names := seedDaily(t, env, 4) // step 10..40, value 0.5..3.5 per index
	ix := names[0]
	r := env.must(200, "POST", "/"+ix+"/_search", `{"size":0,"aggs":{
		"s":{"stats":{"field":"step"}},
		"x":{"extended_stats":{"field":"value"}},
		"p":{"percentiles":{"field":"step","percents":[0,50,100]}},
		"pl":{"percentiles":{"field":"step","percents":[25],"keyed":false}},
		"top":{"top_hits":{"size":2,"sort":[{"step":"desc"}],"_source":["step"]}},
		"t0":{"terms":{"field":"endpoint","min_doc_count":0,"size":10}},
		"empty":{"stats":{"field":"missing_field"}}}}`)
	expect(t, r, "aggregations.s.count", 4)
	expect(t, r, "aggregations.s.min", 10)
	expect(t, r, "aggregations.s.max", 40)
	expect(t, r, "aggregations.s.avg", 25)
	expect(t, r, "aggregations.s.sum", 100)
	expect(t, r, "aggregations.x.variance", 1.25) // values 0.5,1.5,2.5,3.5
	expect(t, r, "aggregations.x.std_deviation_bounds.upper", 2+2*1.118033988749895)
	pv := get(r, "aggregations.p.values").(map[string]any)
	if fmt.Sprintf("%v %v %v", pv["0.0"], pv["50.0"], pv["100.0"]) != "10 25 40" {
		t.Fatalf("percentiles: got %v", pv)
	}
	expect(t, r, "aggregations.pl.values.0.key", 25)
	expect(t, r, "aggregations.pl.values.0.value", 17.5)
	expect(t, r, "aggregations.top.hits.total.value", 4)
	expect(t, r, "aggregations.top.hits.hits.0._source.step", 40)
	expect(t, r, "aggregations.top.hits.hits.1._source.step", 30)
	expect(t, r, "aggregations.empty.count", 0)
	expect(t, r, "aggregations.empty.min", "<nil>")
	// min_doc_count 0: terms no matching document has still get a bucket
	r = env.must(200, "POST", "/"+ix+"/_search", `{"size":0,"query":{"term":{"endpoint":"host-0"}},"aggs":{"t":{"terms":{"field":"endpoint","min_doc_count":0,"order":{"_key":"asc"}}}}}`)
	expect(t, r, "aggregations.t.buckets.0.key", "host-0")
	expect(t, r, "aggregations.t.buckets.0.doc_count", 2)
	expect(t, r, "aggregations.t.buckets.1.key", "host-1")
	expect(t, r, "aggregations.t.buckets.1.doc_count", 0)
	expect(t, r, "aggregations.t.buckets.2.doc_count", 0)

	// composite, paged with after until no after_key is left
	pat := env.prefix + "falconet-metrics-*"
	var after string
	seen := map[string]int64{}
	pages := 0
	for {
		body := `{"size":0,"aggs":{"c":{"composite":{"size":4,"sources":[{"host":{"terms":{"field":"endpoint"}}},{"day":{"date_histogram":{"field":"timestamp","calendar_interval":"1d","format":"yyyy-MM-dd"}}}]` + after + `},"aggs":{"mx":{"max":{"field":"value"}}}}}}`
		r = env.must(200, "POST", "/"+pat+"/_search", body)
		bs, _ := get(r, "aggregations.c.buckets").([]any)
		if len(bs) == 0 {
			if get(r, "aggregations.c.after_key") != nil {
				t.Fatalf("empty page with an after_key: %v", r)
			}
			break
		}
		pages++
		for _, b := range bs {
			k := fmt.Sprint(get(b, "key.host"), "/", get(b, "key.day"))
			if _, dup := seen[k]; dup {
				t.Fatalf("composite key %s twice", k)
			}
			seen[k] = get(b, "doc_count").(int64)
			if get(b, "mx.value") == nil {
				t.Fatalf("composite sub-aggregation missing: %v", b)
			}
		}
		ak, _ := json.Marshal(get(r, "aggregations.c.after_key"))
		after = `,"after":` + string(ak)
	}
	if len(seen) != 9 || pages != 3 || seen["host-0/2026-11-01"] != 2 {
		t.Fatalf("composite: %d keys over %d pages, want 9 over 3: %v", len(seen), pages, seen)
	}

	c := env.client()
	res, err := c.Search(pat).Size(0).
		Aggregation("s", elastic.NewStatsAggregation().Field("value")).
		Aggregation("x", elastic.NewExtendedStatsAggregation().Field("value")).
		Aggregation("p", elastic.NewPercentilesAggregation().Field("step").Percentiles(50)).
		Aggregation("top", elastic.NewTopHitsAggregation().Size(1).Sort("step", false)).
		Aggregation("c", elastic.NewCompositeAggregation().Size(100).Sources(elastic.NewCompositeAggregationTermsValuesSource("host").Field("endpoint"))).
		Do(ctx(t))
	if err != nil {
		t.Fatalf("olivere aggregations: %v", err)
	}
	if s, ok := res.Aggregations.Stats("s"); !ok || s.Count != 12 || *s.Max != 3.5 {
		t.Fatalf("olivere Stats: %+v", s)
	}
	if x, ok := res.Aggregations.ExtendedStats("x"); !ok || x.StdDeviation == nil {
		t.Fatalf("olivere ExtendedStats: %+v", x)
	}
	if p, ok := res.Aggregations.Percentiles("p"); !ok || p.Values["50.0"] != 25 {
		t.Fatalf("olivere Percentiles: %+v", p)
	}
	if th, ok := res.Aggregations.TopHits("top"); !ok || len(th.Hits.Hits) != 1 {
		t.Fatalf("olivere TopHits: %+v", th)
	}
	if cp, ok := res.Aggregations.Composite("c"); !ok || len(cp.Buckets) != 3 || cp.Buckets[0].DocCount != 6 {
		t.Fatalf("olivere Composite: %+v", cp)
	}
}

// Reference: "Update by query API", "Delete by query API" and "Reindex
// API" with wait_for_completion=false, and "Task management API" (GET
// _tasks/<task_id>).
func TestESByQueryAndTasks(t *testing.T) {
	env := newESEnv(t)
	names := seedDaily(t, env, 4)
	ix := names[0]
	// a new sub-field applies to existing documents after _update_by_query
	env.must(200, "PUT", "/"+ix+"/_mapping", `{"properties":{"endpoint":{"type":"keyword","fields":{"raw":{"type":"keyword"}}}}}`)
	r := env.must(200, "POST", "/"+ix+"/_count", `{"query":{"exists":{"field":"endpoint.raw"}}}`)
	expect(t, r, "count", 0)
	r = env.must(200, "POST", "/"+ix+"/_update_by_query?refresh=true&conflicts=proceed", `{"query":{"term":{"endpoint":"host-1"}}}`)
	expect(t, r, "updated", 1)
	expect(t, r, "total", 1)
	r = env.must(200, "POST", "/"+ix+"/_count", `{"query":{"exists":{"field":"endpoint.raw"}}}`)
	expect(t, r, "count", 1)
	d := env.must(200, "GET", "/"+ix+"/_doc/1", "")
	expect(t, d, "_version", 2)
	if env.dev != nil {
		env.must(400, "POST", "/"+ix+"/_update_by_query", `{"script":{"source":"ctx._source.x=1"}}`)
	}
	wait := func(task string) map[string]any {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			g := env.must(200, "GET", "/_tasks/"+task, "")
			if get(g, "completed") == true {
				return g
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %s not completed: %v", task, g)
			}
			env.must(200, "GET", "/_tasks/"+task+"?wait_for_completion=true&timeout=1s", "")
		}
	}
	r = env.must(200, "POST", "/"+names[1]+"/_delete_by_query?wait_for_completion=false&refresh=true", `{"query":{"term":{"endpoint":"host-0"}}}`)
	task, _ := r["task"].(string)
	if !strings.Contains(task, ":") {
		t.Fatalf("wait_for_completion=false: got %v", r)
	}
	g := wait(task)
	expect(t, g, "response.deleted", 2)
	expect(t, g, "task.action", "indices:data/write/delete/byquery")
	r = env.must(200, "POST", "/_reindex?wait_for_completion=false&refresh=true", `{"source":{"index":"`+names[2]+`"},"dest":{"index":"`+env.idx("copy")+`"}}`)
	g = wait(r["task"].(string))
	expect(t, g, "response.created", 4)
	r = env.must(200, "POST", "/"+names[2]+"/_update_by_query?wait_for_completion=false", `{}`)
	g = wait(r["task"].(string))
	expect(t, g, "response.updated", 4)
	r = env.must(404, "GET", "/_tasks/"+strings.Split(task, ":")[0]+":999999", "")
	expect(t, r, "error.type", "resource_not_found_exception")
	env.must(400, "GET", "/_tasks/not-a-task-id", "")

	c := env.client()
	st, err := c.UpdateByQuery(names[1]).Query(elastic.NewMatchAllQuery()).Refresh("true").DoAsync(ctx(t))
	if err != nil {
		t.Fatalf("olivere UpdateByQuery.DoAsync: %v", err)
	}
	tr, err := c.TasksGetTask().TaskId(st.TaskId).WaitForCompletion(true).Do(ctx(t))
	if err != nil || !tr.Completed {
		t.Fatalf("olivere TasksGetTask: %v %+v", err, tr)
	}
	ubq, err := c.UpdateByQuery(names[1]).Query(elastic.NewTermQuery("endpoint", "host-1")).Do(ctx(t))
	if err != nil || ubq.Updated != 1 {
		t.Fatalf("olivere UpdateByQuery: %v %+v", err, ubq)
	}
}

// Reference: "Close index API", "Open index API" (a closed index refuses
// reads and writes with index_closed_exception), "Force merge API",
// "Flush API" and "Synced flush API".
func TestESCloseOpenMergeFlush(t *testing.T) {
	env := newESEnv(t)
	names := seedDaily(t, env, 3)
	ix := names[0]
	r := env.must(200, "POST", "/"+ix+"/_close", "")
	expect(t, r, "acknowledged", true)
	expect(t, r, "indices."+esc(ix)+".closed", true)
	for _, c := range []struct{ m, p, b string }{
		{"POST", "/" + ix + "/_search", `{}`},
		{"GET", "/" + ix + "/_doc/1", ""},
		{"PUT", "/" + ix + "/_doc/9", `{"step":1}`},
		{"POST", "/" + ix + "/_count", `{}`},
	} {
		r := env.must(400, c.m, c.p, c.b)
		expect(t, r, "error.type", "index_closed_exception")
	}
	b := env.must(200, "POST", "/_bulk", "{\"index\":{\"_index\":\""+ix+"\",\"_id\":\"9\"}}\n{\"step\":1}\n")
	expect(t, b, "items.0.index.error.type", "index_closed_exception")
	expect(t, b, "items.0.index.status", 400)
	// wildcards skip closed indices; ignore_unavailable skips a named one
	r = env.must(200, "POST", "/"+env.prefix+"falconet-metrics-*/_count", `{}`)
	expect(t, r, "count", 6)
	env.must(200, "POST", "/"+ix+"/_search?ignore_unavailable=true", `{}`)
	// metadata still answers
	env.must(200, "GET", "/"+ix+"/_settings", "")
	txt := env.do("GET", "/_cat/indices/"+ix+"?h=status", "")
	if strings.TrimSpace(string(txt.body)) != "close" {
		t.Fatalf("_cat/indices status of a closed index: %q", txt.body)
	}
	r = env.must(200, "POST", "/"+ix+"/_open", "")
	expect(t, r, "acknowledged", true)
	r = env.must(200, "POST", "/"+ix+"/_count", `{}`)
	expect(t, r, "count", 3)

	// force merge drops the slots of overwritten documents
	env.must(200, "POST", "/_bulk?refresh=true", "{\"index\":{\"_index\":\""+ix+"\",\"_id\":\"0\"}}\n{\"step\":5}\n{\"delete\":{\"_index\":\""+ix+"\",\"_id\":\"1\"}}\n")
	st := env.must(200, "GET", "/"+ix+"/_stats/docs", "")
	expect(t, st, "_all.primaries.docs.count", 2)
	r = env.must(200, "POST", "/"+ix+"/_forcemerge?max_num_segments=1", "")
	expect(t, r, "_shards.failed", 0)
	st = env.must(200, "GET", "/"+ix+"/_stats/docs", "")
	expect(t, st, "_all.primaries.docs.count", 2)
	expect(t, st, "_all.primaries.docs.deleted", 0)
	r = env.must(200, "POST", "/"+ix+"/_search", `{"query":{"term":{"step":5}}}`)
	expect(t, r, "hits.total.value", 1)
	r = env.must(200, "POST", "/"+ix+"/_flush/synced", "")
	expect(t, r, esc(ix)+".failed", 0)
	expect(t, r, "_shards.successful", 1)
	env.must(200, "POST", "/"+ix+"/_flush?wait_if_ongoing=true", "")

	c := env.client()
	if _, err := c.CloseIndex(names[1]).Do(ctx(t)); err != nil {
		t.Fatalf("olivere CloseIndex: %v", err)
	}
	if _, err := c.Search(names[1]).Do(ctx(t)); err == nil || !strings.Contains(err.Error(), "index_closed_exception") {
		t.Fatalf("olivere search on a closed index: got %v, want index_closed_exception", err)
	}
	if _, err := c.OpenIndex(names[1]).Do(ctx(t)); err != nil {
		t.Fatalf("olivere OpenIndex: %v", err)
	}
	if _, err := c.Forcemerge(names[1]).MaxNumSegments(1).Do(ctx(t)); err != nil {
		t.Fatalf("olivere Forcemerge: %v", err)
	}
	if _, err := c.Flush(names[1]).Do(ctx(t)); err != nil {
		t.Fatalf("olivere Flush: %v", err)
	}
}

// Reference: "Get mapping API": ES 7 reads the type "_all" as no type,
// which is what olivere's GetMappingService sends; other types need
// include_type_name.
func TestESTypedGetMapping(t *testing.T) {
	env := newESEnv(t)
	names := seedDaily(t, env, 1)
	c := env.client()
	m, err := c.GetMapping().Index(names[0]).Do(ctx(t))
	if err != nil {
		t.Fatalf("olivere GetMapping: %v", err)
	}
	if get(m, esc(names[0])+".mappings.properties.step.type") != "long" {
		t.Fatalf("olivere GetMapping: got %v", m)
	}
	r := env.must(400, "GET", "/"+names[0]+"/_mapping/_doc", "")
	expect(t, r, "error.type", "illegal_argument_exception")
	env.must(200, "GET", "/"+names[0]+"/_mapping/_all", "")
}

// Parameters dev-es used to accept and ignore; each now works as the
// reference says or is refused. Reference: "Create or update index
// template API (legacy)" (order), "Bulk API" and "Index API"
// (require_alias), "Update API" (if_seq_no), "Update index settings API"
// (static settings on closed indices), "Create index API" (top-level keys).
func TestESParametersHonoured(t *testing.T) {
	env := newESEnv(t)
	p := env.prefix
	env.must(200, "PUT", "/_template/"+p+"o?order=7", `{"index_patterns":["`+p+`o-*"]}`)
	expect(t, env.must(200, "GET", "/_template/"+p+"o", ""), p+"o.order", 7)
	env.must(200, "PUT", "/_template/"+p+"o?order=7", `{"index_patterns":["`+p+`o-*"],"order":2}`)
	expect(t, env.must(200, "GET", "/_template/"+p+"o", ""), p+"o.order", 2)

	ix := env.idx("ra")
	env.must(200, "PUT", "/"+ix, `{"aliases":{"`+p+`ra-alias":{}}}`)
	r := env.must(404, "PUT", "/"+ix+"/_doc/1?require_alias=true", `{"a":1}`)
	expect(t, r, "error.type", "index_not_found_exception")
	env.must(201, "PUT", "/"+p+"ra-alias/_doc/1?require_alias=true", `{"a":1}`)
	b := env.must(200, "POST", "/_bulk", "{\"index\":{\"_index\":\""+ix+"\",\"_id\":\"2\",\"require_alias\":true}}\n{\"a\":2}\n")
	expect(t, b, "items.0.index.status", 404)

	d := env.must(200, "GET", "/"+ix+"/_doc/1", "")
	seq := get(d, "_seq_no")
	r = env.must(409, "POST", "/"+ix+"/_update/1?if_seq_no=99&if_primary_term=1", `{"doc":{"a":3}}`)
	expect(t, r, "error.type", "version_conflict_engine_exception")
	env.must(200, "POST", fmt.Sprintf("/%s/_update/1?if_seq_no=%v&if_primary_term=1", ix, seq), `{"doc":{"a":3}}`)

	r = env.must(400, "PUT", "/"+ix+"/_settings", `{"index.codec":"best_compression"}`)
	expect(t, r, "error.type", "illegal_argument_exception")
	env.must(200, "POST", "/"+ix+"/_close", "")
	env.must(200, "PUT", "/"+ix+"/_settings", `{"index.codec":"best_compression"}`)
	env.must(200, "POST", "/"+ix+"/_open", "")
	s := env.must(200, "GET", "/"+ix+"/_settings", "")
	expect(t, s, ix+".settings.index.codec", "best_compression")

	r = env.must(400, "PUT", "/"+env.idx("top"), `{"number_of_shards":1}`)
	expect(t, r, "error.type", "parse_exception")
	env.must(200, "PUT", "/"+env.idx("top"), `{"settings":{"number_of_shards":1}}`)
	if env.dev != nil {
		env.must(400, "PUT", "/"+ix+"/_mapping?write_index_only=true", `{"properties":{"b":{"type":"long"}}}`)
		env.must(400, "DELETE", "/"+ix+"/_doc/1?version=3&version_type=external", "")
	}
	env.must(200, "PUT", "/"+env.idx("nope")+","+ix+"/_mapping?ignore_unavailable=true", `{"properties":{"b":{"type":"long"}}}`)
}

// Closing and opening while other clients search, write and read stats:
// every answer is a success or index_closed_exception, never a 5xx (run
// with -race, this also checks the closed flag is read safely).
func TestESCloseOpenConcurrent(t *testing.T) {
	env := newESEnv(t)
	names := seedDaily(t, env, 2)
	ix := names[0]
	done := make(chan struct{})
	errs := make(chan string, 100)
	var wg sync.WaitGroup
	for _, req := range []struct{ m, p, b string }{
		{"POST", "/" + env.prefix + "falconet-metrics-*/_search", `{"query":{"query_string":{"query":"endpoint:host-1"}}}`},
		{"GET", "/" + env.prefix + "falconet-metrics-*/_stats", ""},
		{"PUT", "/" + ix + "/_doc/x", `{"step":1}`},
		{"GET", "/_cat/indices?format=json", ""},
	} {
		wg.Add(1)
		go func(m, p, b string) {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				r := env.do(m, p, b)
				if r.status >= 500 || (r.status >= 300 && !strings.Contains(string(r.body), "index_closed_exception")) {
					select {
					case errs <- fmt.Sprintf("%s %s: %d %s", m, p, r.status, r.body):
					default:
					}
				}
			}
		}(req.m, req.p, req.b)
	}
	for i := 0; i < 30; i++ {
		env.must(200, "POST", "/"+ix+"/_close", "")
		env.must(200, "POST", "/"+ix+"/_open", "")
	}
	close(done)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
