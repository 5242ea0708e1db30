package esserver

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// catTable is one _cat API's answer before rendering ("cat APIs"): every
// column it knows (in order), the default ones, and the rows. A cell
// missing from a row renders empty in text and null in JSON.
type catTable struct {
	cols    []string
	def     []string
	aliases map[string]string // short column names ("i" -> "index")
	rows    []map[string]string
}

// catParams are the parameters every _cat API takes ("cat APIs > Common
// parameters"), plus each API's own.
func catParams(own ...string) []string {
	return append([]string{"format", "v", "h", "s", "help", "local", "master_timeout", "bytes", "time"}, own...)
}

// writeCat renders t as text (v, h, s, help) or JSON (format=json).
func (s *Server) writeCat(rq *request, t catTable) *esError {
	known := map[string]bool{}
	for _, c := range t.cols {
		known[c] = true
	}
	resolve := func(c string) (string, *esError) {
		if a, ok := t.aliases[c]; ok {
			return a, nil
		}
		if !known[c] {
			return "", errUnsupported("the _cat column [%s] (%s has %s)", c, rq.path, strings.Join(t.cols, ", "))
		}
		return c, nil
	}
	if help, e := rq.boolParam("help", false); e != nil {
		return e
	} else if help {
		// "name | aliases |" per column (ES adds a description)
		short := map[string][]string{}
		for a, c := range t.aliases {
			short[c] = append(short[c], a)
		}
		var b strings.Builder
		for _, c := range t.cols {
			sort.Strings(short[c])
			fmt.Fprintf(&b, "%s | %s |\n", c, strings.Join(short[c], ","))
		}
		return writeText(rq, b.String())
	}
	cols := t.def
	if h := rq.param("h"); h != "" {
		cols = nil
		for _, c := range strings.Split(h, ",") {
			if strings.Contains(c, "*") {
				for _, k := range t.cols {
					if globMatch(c, k) {
						cols = append(cols, k)
					}
				}
				continue
			}
			r, e := resolve(c)
			if e != nil {
				return e
			}
			cols = append(cols, r)
		}
	}
	if sortBy := rq.param("s"); sortBy != "" {
		type key struct {
			col  string
			desc bool
		}
		var keys []key
		for _, k := range strings.Split(sortBy, ",") {
			name, dir, _ := strings.Cut(k, ":")
			r, e := resolve(name)
			if e != nil {
				return e
			}
			if dir != "" && dir != "asc" && dir != "desc" {
				return errIllegalArgument("Unsupported sort order [%s]", dir)
			}
			keys = append(keys, key{r, dir == "desc"})
		}
		sort.SliceStable(t.rows, func(i, j int) bool {
			for _, k := range keys {
				c := cmpCatCell(t.rows[i][k.col], t.rows[j][k.col])
				if k.desc {
					c = -c
				}
				if c != 0 {
					return c < 0
				}
			}
			return false
		})
	}
	switch rq.param("format") {
	case "json":
		out := make([]map[string]any, 0, len(t.rows))
		for _, r := range t.rows {
			o := map[string]any{}
			for _, c := range cols {
				if v, ok := r[c]; ok {
					o[c] = v
				} else {
					o[c] = nil
				}
			}
			out = append(out, o)
		}
		return s.ok(rq, 200, out)
	case "", "txt", "text":
	default:
		return errUnsupported("_cat format [%s] (use json or text)", rq.param("format"))
	}
	v, e := rq.boolParam("v", false)
	if e != nil {
		return e
	}
	var lines [][]string
	if v {
		lines = append(lines, cols)
	}
	for _, r := range t.rows {
		l := make([]string, len(cols))
		for i, c := range cols {
			l[i] = r[c]
		}
		lines = append(lines, l)
	}
	width := make([]int, len(cols))
	for _, l := range lines {
		for i, c := range l {
			width[i] = max(width[i], len(c))
		}
	}
	var b strings.Builder
	for _, l := range lines {
		for i, c := range l {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(c + strings.Repeat(" ", width[i]-len(c)))
		}
		b.WriteString("\n")
	}
	return writeText(rq, b.String())
}

func cmpCatCell(a, b string) int {
	if x, err := strconv.ParseFloat(a, 64); err == nil {
		if y, err := strconv.ParseFloat(b, 64); err == nil {
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		}
	}
	return strings.Compare(a, b)
}

func writeText(rq *request, text string) *esError {
	rq.w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	rq.w.Header().Set("X-elastic-product", "Elasticsearch")
	rq.w.WriteHeader(200)
	if rq.r.Method != "HEAD" {
		_, _ = rq.w.Write([]byte(text))
	}
	return nil
}

// catBytes renders a byte count as the bytes parameter asks (human by default).
func catBytes(rq *request, n int64) (string, *esError) {
	switch u := rq.param("bytes"); u {
	case "":
		return humanBytes(n), nil
	case "b":
		return strconv.FormatInt(n, 10), nil
	case "kb", "mb", "gb", "tb", "pb":
		div := map[string]int64{"kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40, "pb": 1 << 50}[u]
		return strconv.FormatInt(n/div, 10), nil
	default:
		return "", errIllegalArgument("failed to parse [bytes] with value [%s]", u)
	}
}

func humanBytes(n int64) string {
	units := []string{"b", "kb", "mb", "gb", "tb"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%db", n)
	}
	s := strconv.FormatFloat(f, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + units[i]
}

func catExpr(rq *request) string {
	if len(rq.parts) == 3 {
		return rq.parts[2]
	}
	return ""
}

// handleCatIndices is GET /_cat/indices[/{index}].
func (s *Server) handleCatIndices(rq *request) *esError {
	if e := rq.allow(catParams("health", "pri", "expand_wildcards", "include_unloaded_segments")...); e != nil {
		return e
	}
	pri, e := rq.boolParam("pri", false)
	if e != nil {
		return e
	}
	h := rq.param("health")
	if h != "" && h != "green" && h != "yellow" && h != "red" {
		return errIllegalArgument("unknown health [%s]", h)
	}
	// _cat/indices expands to open and closed indices by default
	list, e := s.indexList(rq, catExpr(rq), resolveOpts{allowNoIndices: true, closed: true, expand: map[string]bool{"open": true, "closed": true}})
	if e != nil {
		return e
	}
	t := catTable{
		cols: []string{"health", "status", "index", "uuid", "pri", "rep", "docs.count", "docs.deleted", "store.size", "pri.store.size", "creation.date", "creation.date.string"},
		def:  []string{"health", "status", "index", "uuid", "pri", "rep", "docs.count", "docs.deleted", "store.size", "pri.store.size"},
		aliases: map[string]string{"h": "health", "s": "status", "i": "index", "idx": "index", "id": "uuid", "p": "pri", "r": "rep",
			"dc": "docs.count", "docsCount": "docs.count", "dd": "docs.deleted", "ss": "store.size", "storeSize": "store.size", "cd": "creation.date", "cds": "creation.date.string"},
	}
	if pri {
		t.cols = append(t.cols, "pri.docs.count", "pri.docs.deleted")
	}
	for _, ix := range list {
		status, _, _ := healthOf(ix)
		if h != "" && status != h {
			continue
		}
		row := map[string]string{"health": status, "status": "open", "index": ix.name, "uuid": ix.uuid,
			"pri": strconv.Itoa(ix.setting("number_of_shards", 1)), "rep": strconv.Itoa(ix.setting("number_of_replicas", 1)),
			"creation.date": strconv.FormatInt(ix.created, 10), "creation.date.string": time.UnixMilli(ix.created).UTC().Format("2006-01-02T15:04:05.000Z")}
		if ix.closed.Load() {
			row["status"] = "close"
		} else {
			ix.mu.RLock()
			sz, e := catBytes(rq, ix.storeBytes)
			row["docs.count"], row["docs.deleted"] = strconv.Itoa(ix.live), strconv.Itoa(ix.deletedN)
			ix.mu.RUnlock()
			if e != nil {
				return e
			}
			row["store.size"], row["pri.store.size"] = sz, sz
			row["pri.docs.count"], row["pri.docs.deleted"] = row["docs.count"], row["docs.deleted"]
		}
		t.rows = append(t.rows, row)
	}
	return s.writeCat(rq, t)
}

// handleCatHealth is GET /_cat/health.
func (s *Server) handleCatHealth(rq *request) *esError {
	if e := rq.allow(catParams("ts")...); e != nil {
		return e
	}
	ts, e := rq.boolParam("ts", true)
	if e != nil {
		return e
	}
	list, e := s.indexList(rq, "", resolveOpts{allowNoIndices: true, closed: true, expand: map[string]bool{"open": true, "closed": true}})
	if e != nil {
		return e
	}
	status, prim, unassigned := clusterHealth(list)
	pct := 100.0
	if prim+unassigned > 0 {
		pct = float64(prim) * 100 / float64(prim+unassigned)
	}
	now := s.now()
	t := catTable{
		cols: []string{"epoch", "timestamp", "cluster", "status", "node.total", "node.data", "shards", "pri", "relo", "init", "unassign", "pending_tasks", "max_task_wait_time", "active_shards_percent"},
		rows: []map[string]string{{"epoch": strconv.FormatInt(now.Unix(), 10), "timestamp": now.UTC().Format("15:04:05"),
			"cluster": clusterName, "status": status, "node.total": "1", "node.data": "1", "shards": strconv.Itoa(prim),
			"pri": strconv.Itoa(prim), "relo": "0", "init": "0", "unassign": strconv.Itoa(unassigned), "pending_tasks": "0",
			"max_task_wait_time": "-", "active_shards_percent": strconv.FormatFloat(pct, 'f', 1, 64) + "%"}},
	}
	t.def = t.cols
	if !ts {
		t.def = t.cols[2:]
	}
	return s.writeCat(rq, t)
}

// handleCatCount is GET /_cat/count[/{index}]: documents visible to search.
func (s *Server) handleCatCount(rq *request) *esError {
	if e := rq.allow(catParams()...); e != nil {
		return e
	}
	list, e := s.indexList(rq, catExpr(rq), resolveOpts{allowNoIndices: true})
	if e != nil {
		return e
	}
	n := 0
	for _, ix := range list {
		ix.mu.RLock()
		n += ix.live
		ix.mu.RUnlock()
	}
	now := s.now()
	t := catTable{cols: []string{"epoch", "timestamp", "count"},
		rows: []map[string]string{{"epoch": strconv.FormatInt(now.Unix(), 10), "timestamp": now.UTC().Format("15:04:05"), "count": strconv.Itoa(n)}}}
	t.def = t.cols
	return s.writeCat(rq, t)
}

// handleCatNodes is GET /_cat/nodes. heap is the Go heap of the dev-es
// process (there is no JVM); cpu is not measured and left empty.
func (s *Server) handleCatNodes(rq *request) *esError {
	if e := rq.allow(catParams("full_id", "include_unloaded_segments")...); e != nil {
		return e
	}
	full, e := rq.boolParam("full_id", false)
	if e != nil {
		return e
	}
	mc := s.machine()
	host, addr := s.publishAddr(rq)
	id := nodeID[:4]
	if full {
		id = nodeID
	}
	b := func(n uint64) string { v, _ := catBytes(rq, int64(n)); return v }
	t := catTable{
		cols: []string{"id", "pid", "ip", "port", "http_address", "version", "heap.current", "heap.percent", "heap.max", "ram.current", "ram.percent", "ram.max",
			"file_desc.current", "file_desc.max", "load_1m", "load_5m", "load_15m", "cpu", "node.role", "master", "name"},
		def: []string{"ip", "heap.percent", "ram.percent", "cpu", "load_1m", "load_5m", "load_15m", "node.role", "master", "name"},
		aliases: map[string]string{"nodeId": "id", "p": "pid", "i": "ip", "po": "port", "http": "http_address", "v": "version", "hc": "heap.current",
			"hp": "heap.percent", "hm": "heap.max", "rc": "ram.current", "rp": "ram.percent", "rm": "ram.max", "fdc": "file_desc.current", "fdm": "file_desc.max",
			"r": "node.role", "role": "node.role", "nodeRole": "node.role", "m": "master", "n": "name", "l": "load_1m"},
		rows: []map[string]string{{"id": id, "pid": strconv.Itoa(os.Getpid()), "ip": host, "port": "9300", "http_address": addr, "version": Version,
			"heap.current": b(mc.heapInUse), "heap.percent": strconv.Itoa(pct(mc.heapInUse, mc.heapSys)), "heap.max": b(mc.heapSys),
			"ram.current": b(mc.memTotal - mc.memFree), "ram.percent": strconv.Itoa(pct(mc.memTotal-mc.memFree, mc.memTotal)), "ram.max": b(mc.memTotal),
			"file_desc.current": strconv.FormatInt(mc.openFDs, 10), "file_desc.max": strconv.FormatInt(mc.maxFDs, 10),
			"load_1m": fmt.Sprintf("%.2f", mc.load[0]), "load_5m": fmt.Sprintf("%.2f", mc.load[1]), "load_15m": fmt.Sprintf("%.2f", mc.load[2]),
			"node.role": "dim", "master": "*", "name": nodeName}},
	}
	return s.writeCat(rq, t)
}

// handleCatShards is GET /_cat/shards[/{index}]: the primaries are started
// on the node, replicas unassigned.
func (s *Server) handleCatShards(rq *request) *esError {
	if e := rq.allow(catParams("expand_wildcards")...); e != nil {
		return e
	}
	list, e := s.indexList(rq, catExpr(rq), resolveOpts{allowNoIndices: true, closed: true, expand: map[string]bool{"open": true, "closed": true}})
	if e != nil {
		return e
	}
	host, _ := s.publishAddr(rq)
	t := catTable{
		cols:    []string{"index", "shard", "prirep", "state", "docs", "store", "ip", "id", "node", "unassigned.reason"},
		def:     []string{"index", "shard", "prirep", "state", "docs", "store", "ip", "node"},
		aliases: map[string]string{"i": "index", "idx": "index", "s": "shard", "sh": "shard", "p": "prirep", "pr": "prirep", "primaryOrReplica": "prirep", "st": "state", "d": "docs", "dc": "docs", "sto": "store", "n": "node", "ur": "unassigned.reason"},
	}
	for _, ix := range list {
		ix.mu.RLock()
		live, size := ix.live, ix.storeBytes
		ix.mu.RUnlock()
		for _, c := range shardCopies(ix) {
			row := map[string]string{"index": ix.name, "shard": strconv.Itoa(c.shard), "prirep": "r", "state": c.state()}
			if c.primary {
				row["prirep"], row["ip"], row["id"], row["node"] = "p", host, nodeID[:4], nodeName
				if !ix.closed.Load() {
					if c.shard != 0 {
						live, size = 0, 0
					}
					row["docs"] = strconv.Itoa(live)
					if row["store"], e = catBytes(rq, size); e != nil {
						return e
					}
				}
			} else {
				row["unassigned.reason"] = "INDEX_CREATED"
			}
			t.rows = append(t.rows, row)
		}
	}
	return s.writeCat(rq, t)
}

// handleCatAliases is GET /_cat/aliases[/{name}].
func (s *Server) handleCatAliases(rq *request) *esError {
	if e := rq.allow(catParams("expand_wildcards")...); e != nil {
		return e
	}
	expr := catExpr(rq)
	t := catTable{
		cols:    []string{"alias", "index", "filter", "routing.index", "routing.search", "is_write_index"},
		aliases: map[string]string{"a": "alias", "i": "index", "idx": "index", "f": "filter", "fi": "filter", "ri": "routing.index", "routingIndex": "routing.index", "rs": "routing.search", "routingSearch": "routing.search", "w": "is_write_index", "isWriteIndex": "is_write_index"},
	}
	t.def = t.cols
	s.mu.RLock()
	for _, n := range s.sortedIndexNames() {
		ix := s.indices[n]
		for a, d := range ix.aliases {
			if expr != "" && !matchAny(strings.Split(expr, ","), a) {
				continue
			}
			w := "-"
			if d.IsWriteIndex != nil {
				w = strconv.FormatBool(*d.IsWriteIndex)
			}
			t.rows = append(t.rows, map[string]string{"alias": a, "index": n, "filter": "-", "routing.index": "-", "routing.search": "-", "is_write_index": w})
		}
	}
	s.mu.RUnlock()
	sort.SliceStable(t.rows, func(i, j int) bool { return t.rows[i]["alias"] < t.rows[j]["alias"] })
	return s.writeCat(rq, t)
}

// handleCatTemplates is GET /_cat/templates[/{name}]: legacy templates
// (order) and composable ones (priority in the order column, composed_of).
func (s *Server) handleCatTemplates(rq *request) *esError {
	if e := rq.allow(catParams()...); e != nil {
		return e
	}
	expr := catExpr(rq)
	t := catTable{
		cols:    []string{"name", "index_patterns", "order", "version", "composed_of"},
		aliases: map[string]string{"n": "name", "t": "index_patterns", "o": "order", "p": "order", "v": "version", "c": "composed_of"},
	}
	t.def = t.cols
	ver := func(v any) string {
		if v == nil {
			return ""
		}
		return fmt.Sprint(v)
	}
	s.mu.RLock()
	for _, n := range s.templateNames(expr, true) {
		lt := s.legacy[n]
		t.rows = append(t.rows, map[string]string{"name": n, "index_patterns": fmtList(lt.Patterns), "order": strconv.FormatInt(lt.Order, 10), "version": ver(lt.Version), "composed_of": ""})
	}
	for _, n := range s.templateNames(expr, false) {
		ct := s.templates[n]
		t.rows = append(t.rows, map[string]string{"name": n, "index_patterns": fmtList(ct.Patterns), "order": strconv.FormatInt(ct.Priority, 10), "version": ver(ct.Raw["version"]), "composed_of": "[]"})
	}
	s.mu.RUnlock()
	return s.writeCat(rq, t)
}
