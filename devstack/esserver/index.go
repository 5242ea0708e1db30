package esserver

import (
	"fmt"
	"math/bits"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// bitset is a dense set of document ordinals.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b *bitset) set(i int32) {
	w := int(i) / 64
	for w >= len(*b) {
		*b = append(*b, 0)
	}
	(*b)[w] |= 1 << (uint(i) % 64)
}

func (b bitset) has(i int32) bool {
	w := int(i) / 64
	return w < len(b) && b[w]&(1<<(uint(i)%64)) != 0
}

func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// and/or/andNot work in place on b (same length as other or longer).
func (b bitset) and(o bitset) {
	for i := range b {
		if i < len(o) {
			b[i] &= o[i]
		} else {
			b[i] = 0
		}
	}
}

func (b bitset) or(o bitset) {
	for i := range b {
		if i < len(o) {
			b[i] |= o[i]
		}
	}
}

func (b bitset) andNot(o bitset) {
	for i := range b {
		if i < len(o) {
			b[i] &^= o[i]
		}
	}
}

func (b bitset) forEach(fn func(int32)) {
	for wi, w := range b {
		for w != 0 {
			t := bits.TrailingZeros64(w)
			fn(int32(wi*64 + t))
			w &= w - 1
		}
	}
}

type colKind int

const (
	colInt colKind = iota
	colFloat
	colStr
)

func kindOf(typ string) colKind {
	switch typ {
	case "double", "float", "half_float", "scaled_float":
		return colFloat
	case "keyword", "text":
		return colStr
	}
	return colInt
}

// column holds one field's values by document ordinal (doc values). The
// first value of a document lives in the dense slice, further values of
// multi-valued documents in the multi map.
type column struct {
	typ     string
	kind    colKind
	has     bitset
	ints    []int64
	floats  []float64
	strs    []uint32 // dictionary ordinals
	dict    []string
	dictIdx map[string]uint32
	// postings lists the documents of each dictionary term (keyword and
	// text columns), so term queries cost O(matches), not O(documents).
	postings [][]int32
	multiI   map[int32][]int64
	multiF   map[int32][]float64
	multiS   map[int32][]uint32
}

func newColumn(typ string) *column {
	c := &column{typ: typ, kind: kindOf(typ)}
	if c.kind == colStr {
		c.dictIdx = map[string]uint32{}
	}
	return c
}

func (c *column) term(s string) uint32 {
	if o, ok := c.dictIdx[s]; ok {
		return o
	}
	o := uint32(len(c.dict))
	c.dict = append(c.dict, s)
	c.dictIdx[s] = o
	c.postings = append(c.postings, nil)
	return o
}

func (c *column) add(ord int32, v fieldValue) {
	first := !c.has.has(ord)
	switch c.kind {
	case colInt:
		if first {
			for int(ord) >= len(c.ints) {
				c.ints = append(c.ints, 0)
			}
			c.ints[ord] = v.i
		} else {
			if c.multiI == nil {
				c.multiI = map[int32][]int64{}
			}
			c.multiI[ord] = append(c.multiI[ord], v.i)
		}
	case colFloat:
		if first {
			for int(ord) >= len(c.floats) {
				c.floats = append(c.floats, 0)
			}
			c.floats[ord] = v.f
		} else {
			if c.multiF == nil {
				c.multiF = map[int32][]float64{}
			}
			c.multiF[ord] = append(c.multiF[ord], v.f)
		}
	case colStr:
		t := c.term(v.s)
		c.postings[t] = append(c.postings[t], ord)
		if first {
			for int(ord) >= len(c.strs) {
				c.strs = append(c.strs, 0)
			}
			c.strs[ord] = t
		} else {
			if c.multiS == nil {
				c.multiS = map[int32][]uint32{}
			}
			c.multiS[ord] = append(c.multiS[ord], t)
		}
	}
	c.has.set(ord)
}

// eachInt / eachFloat / eachStr call fn for every value of a document.
func (c *column) eachInt(ord int32, fn func(int64)) {
	if !c.has.has(ord) {
		return
	}
	fn(c.ints[ord])
	for _, v := range c.multiI[ord] {
		fn(v)
	}
}

func (c *column) eachFloat(ord int32, fn func(float64)) {
	if !c.has.has(ord) {
		return
	}
	fn(c.floats[ord])
	for _, v := range c.multiF[ord] {
		fn(v)
	}
}

func (c *column) eachTerm(ord int32, fn func(uint32)) {
	if !c.has.has(ord) {
		return
	}
	fn(c.strs[ord])
	for _, v := range c.multiS[ord] {
		fn(v)
	}
}

// eachNum calls fn with every value of a numeric or date column as float64.
func (c *column) eachNum(ord int32, fn func(float64)) {
	switch c.kind {
	case colInt:
		c.eachInt(ord, func(v int64) { fn(float64(v)) })
	case colFloat:
		c.eachFloat(ord, fn)
	}
}

// segDoc is a refreshed (searchable) document.
type segDoc struct {
	id      string
	source  []byte
	version int64
	seqNo   int64
}

// docState is a document change not yet visible to search (or a delete).
type docState struct {
	id      string
	source  []byte
	version int64
	seqNo   int64
	deleted bool
	values  []fieldValue
}

type tombstone struct{ version, seqNo int64 }

// index is one Elasticsearch index: a single shard, with a realtime overlay
// of unrefreshed changes over a searchable segment.
type index struct {
	name     string
	uuid     string
	created  int64 // ms
	settings map[string]string
	m        *mapping
	aliases  map[string]aliasDef // guarded by Server.mu
	closed   atomic.Bool         // "Close index API"

	mu         sync.RWMutex
	overlay    map[string]*docState // changes since the last refresh (realtime GET sees them)
	tombstones map[string]tombstone
	nextSeq    int64

	segDocs    []segDoc
	segDeleted bitset
	segIDs     map[string]int32
	cols       map[string]*column
	live       int
	deletedN   int
	storeBytes int64

	refreshEvery time.Duration // <0: only explicit refreshes
	lastRefresh  time.Time
	refreshCond  *sync.Cond
}

func newIndex(name, uuid string, created int64, settings map[string]string, m *mapping) *index {
	ix := &index{name: name, uuid: uuid, created: created, settings: settings, m: m, aliases: map[string]aliasDef{},
		overlay: map[string]*docState{}, tombstones: map[string]tombstone{},
		segIDs: map[string]int32{}, cols: map[string]*column{}, refreshEvery: time.Second}
	ix.refreshCond = sync.NewCond(&ix.mu)
	if ri, ok := settings["index.refresh_interval"]; ok {
		if ri == "-1" {
			ix.refreshEvery = -1
		} else if d, err := parseTimeValue(ri); err == nil {
			ix.refreshEvery = d
		}
	}
	return ix
}

func (ix *index) setting(key string, def int) int {
	if v, ok := ix.settings["index."+key]; ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

// getDoc returns the realtime state of a document (overlay first).
// Caller holds ix.mu (read).
func (ix *index) getDoc(id string) (src []byte, version, seqNo int64, found bool) {
	if d, ok := ix.overlay[id]; ok {
		if d.deleted {
			return nil, d.version, d.seqNo, false
		}
		return d.source, d.version, d.seqNo, true
	}
	if ord, ok := ix.segIDs[id]; ok {
		d := ix.segDocs[ord]
		return d.source, d.version, d.seqNo, true
	}
	if t, ok := ix.tombstones[id]; ok {
		return nil, t.version, t.seqNo, false
	}
	return nil, 0, -1, false
}

// refreshLocked makes every change so far searchable. Caller holds ix.mu.
func (ix *index) refreshLocked() {
	ix.lastRefresh = time.Now()
	if len(ix.overlay) == 0 {
		ix.refreshCond.Broadcast()
		return
	}
	for id, d := range ix.overlay {
		if ord, ok := ix.segIDs[id]; ok {
			ix.segDeleted.set(ord)
			ix.storeBytes -= int64(len(ix.segDocs[ord].source))
			ix.segDocs[ord].source = nil
			delete(ix.segIDs, id)
			ix.live--
			ix.deletedN++
		}
		if d.deleted {
			ix.tombstones[id] = tombstone{d.version, d.seqNo}
			continue
		}
		delete(ix.tombstones, id)
		ix.addToSegment(d)
	}
	ix.overlay = map[string]*docState{}
	ix.refreshCond.Broadcast()
}

func (ix *index) addToSegment(d *docState) {
	ord := int32(len(ix.segDocs))
	ix.segDocs = append(ix.segDocs, segDoc{id: d.id, source: d.source, version: d.version, seqNo: d.seqNo})
	ix.segIDs[d.id] = ord
	ix.live++
	ix.storeBytes += int64(len(d.source))
	for _, v := range d.values {
		c := ix.cols[v.path]
		if c == nil {
			c = newColumn(v.typ)
			ix.cols[v.path] = c
		}
		c.add(ord, v)
	}
	d.values = nil
}

// liveSet returns the ordinals of searchable, non-deleted documents.
func (ix *index) liveSet() bitset {
	b := newBitset(len(ix.segDocs))
	n := len(ix.segDocs)
	for i := 0; i < n/64; i++ {
		b[i] = ^uint64(0)
	}
	for i := n / 64 * 64; i < n; i++ {
		b.set(int32(i))
	}
	b.andNot(ix.segDeleted)
	return b
}

func parseTimeValue(s string) (time.Duration, *esError) {
	if s == "-1" {
		return -1, nil
	}
	units := []struct {
		suffix string
		d      time.Duration
	}{{"nanos", time.Nanosecond}, {"micros", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour}}
	for _, u := range units {
		if len(s) > len(u.suffix) && s[len(s)-len(u.suffix):] == u.suffix {
			n, err := strconv.ParseFloat(s[:len(s)-len(u.suffix)], 64)
			if err != nil || n < 0 {
				break
			}
			return time.Duration(n * float64(u.d)), nil
		}
	}
	return 0, errIllegalArgument("failed to parse setting with value [%s] as a time value: unit is missing or unrecognized", s)
}

// unmarshalUseNumber decodes a JSON object (into *map[string]any) or any
// value (into *any) with parseJSON: numbers as json.Number, duplicate keys
// and trailing content rejected.
func unmarshalUseNumber(b []byte, v any) error {
	val, err := parseJSON(b)
	if err != nil {
		return err
	}
	switch dst := v.(type) {
	case *map[string]any:
		if val == nil {
			*dst = nil
			return nil
		}
		m, ok := val.(map[string]any)
		if !ok {
			return errNotObject
		}
		*dst = m
	case *any:
		*dst = val
	default:
		return fmt.Errorf("esserver: unmarshalUseNumber into %T", v)
	}
	return nil
}
