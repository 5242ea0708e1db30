package devstack

import (
	"os/exec"
	"strings"
	"testing"
)

// pythonRetention is what an operator's Python tooling does with the
// official client (elasticsearch-py 7.17): node stats with fs (the call
// that crashed on the info body), a curator-style index listing, health
// per index, the _cat APIs, URI search, percentiles, close/open, force
// merge, synced flush, an async update by query, and deleting an index.
const pythonRetention = `
import sys
from elasticsearch import Elasticsearch, TransportError
es = Elasticsearch([sys.argv[1]])
p = sys.argv[2]
ix = p + "falconet-metrics-2026.11.01"
for n in es.nodes.stats()["nodes"].values():
    assert n["fs"]["total"]["total_in_bytes"] > 0, n
for n in es.nodes.stats(node_id="_local", metric="fs")["nodes"].values():
    assert "fs" in n and "os" not in n, n
es.indices.create(index=ix, body={"settings": {"number_of_replicas": 0}, "mappings": {"properties": {"endpoint": {"type": "keyword"}, "step": {"type": "long"}}}})
for i in range(4):
    es.index(index=ix, id=str(i), body={"endpoint": "host-%d" % (i % 2), "step": 10 * (i + 1)})
es.indices.refresh(index=ix)
st = es.cluster.state(metric="metadata", index=p + "*", expand_wildcards="open,closed",
                      filter_path="metadata.indices.*.state,metadata.indices.*.settings.index.creation_date")
assert st["metadata"]["indices"][ix]["state"] == "open", st
stats = es.indices.stats(index=p + "*", metric="store,docs")
assert stats["indices"][ix]["primaries"]["docs"]["count"] == 4, stats
h = es.cluster.health(index=ix, level="indices")
assert h["indices"][ix]["status"] == "green", h
assert es.cat.nodes(format="json")[0]["master"] == "*"
assert len(es.cat.shards(index=ix, format="json")) == 1
assert es.cat.templates(format="json") is not None and es.cat.aliases(format="json") is not None
assert es.field_caps(index=ix, fields="*")["fields"]["endpoint"]["keyword"]["aggregatable"]
r = es.search(index=ix, q="endpoint:host-1", stored_fields="*")
assert r["hits"]["total"]["value"] == 2 and "_source" not in r["hits"]["hits"][0], r
r = es.search(index=ix, body={"size": 0, "query": {"match": {"endpoint": "host-0"}}, "aggs": {"p": {"percentiles": {"field": "step", "percents": [50]}}}})
assert r["aggregations"]["p"]["values"]["50.0"] == 20.0, r
es.indices.close(index=ix)
try:
    es.search(index=ix)
    raise SystemExit("search on a closed index succeeded")
except TransportError as e:
    assert e.status_code == 400 and e.error == "index_closed_exception", (e.status_code, e.error)
es.indices.open(index=ix)
es.indices.forcemerge(index=ix, max_num_segments=1)
es.indices.flush_synced(index=ix)
t = es.update_by_query(index=ix, wait_for_completion=False)
done = es.tasks.get(task_id=t["task"], wait_for_completion=True)
assert done["completed"] and done["response"]["updated"] == 4, done
es.indices.delete(index=ix)
assert not es.indices.exists(index=ix)
print("ok")
`

// TestESPythonClient drives dev-es with the official Python client
// (Debian's python3-elasticsearch 7.17, installed by .ci/run).
func TestESPythonClient(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import elasticsearch").Run(); err != nil {
		t.Skipf("python3-elasticsearch is not installed (apt-get install python3-elasticsearch): %v", err)
	}
	env := newESEnv(t)
	out, err := exec.CommandContext(ctx(t), py, "-W", "ignore::DeprecationWarning", "-c", pythonRetention, env.url, env.prefix).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("python client: %v\n%s", err, out)
	}
}
