package esserver

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The on-disk layout (one bbolt file, DATA/dev-es.db):
//
//	meta/indices/<name>        -> indexMeta JSON
//	meta/index_templates/<name> -> composable template JSON
//	meta/templates/<name>      -> legacy template JSON
//	docs:<index>/<id>          -> version(8) seqNo(8) source
//
// Every write request commits one transaction before it is answered (ES's
// default index.translog.durability=request), so an acknowledged document
// survives kill -9.
type boltStore struct {
	db *bolt.DB
}

var (
	bktIndices   = []byte("indices")
	bktTemplates = []byte("index_templates")
	bktLegacy    = []byte("templates")
)

func docsBucket(index string) []byte { return []byte("docs:" + index) }

type indexMeta struct {
	UUID     string              `json:"uuid"`
	Created  int64               `json:"created"`
	Settings map[string]string   `json:"settings"`
	Mappings map[string]any      `json:"mappings"`
	Aliases  map[string]aliasDef `json:"aliases,omitempty"`
	Closed   bool                `json:"closed,omitempty"`
}

func openStore(dir string) (*boltStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("esserver: data dir: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "dev-es.db"), 0o644, &bolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("esserver: open %s: %w", dir, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bktIndices, bktTemplates, bktLegacy} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("esserver: init %s: %w", dir, err)
	}
	return &boltStore{db: db}, nil
}

func (s *boltStore) close() error { return s.db.Close() }

// writeBatch collects the changes of one request; apply commits them in one
// transaction.
type writeBatch struct {
	metas     map[string][]byte // index name -> meta JSON (nil: delete index)
	dropIndex []string
	templates map[string][]byte // "t:<name>" composable, "l:<name>" legacy; nil deletes
	puts      []docWrite
}

type docWrite struct {
	index   string
	id      string
	version int64
	seqNo   int64
	source  []byte // nil: delete
}

func (w *writeBatch) empty() bool {
	return len(w.metas) == 0 && len(w.dropIndex) == 0 && len(w.templates) == 0 && len(w.puts) == 0
}

func (w *writeBatch) meta(ix *index) {
	if w.metas == nil {
		w.metas = map[string][]byte{}
	}
	b, _ := json.Marshal(indexMeta{UUID: ix.uuid, Created: ix.created, Settings: ix.settings, Mappings: ix.m.render(), Aliases: ix.aliases, Closed: ix.closed.Load()})
	w.metas[ix.name] = b
}

func (s *boltStore) apply(w *writeBatch) error {
	if s == nil || w.empty() {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		ib := tx.Bucket(bktIndices)
		for _, name := range w.dropIndex {
			if err := ib.Delete([]byte(name)); err != nil {
				return err
			}
			if tx.Bucket(docsBucket(name)) != nil {
				if err := tx.DeleteBucket(docsBucket(name)); err != nil {
					return err
				}
			}
		}
		for name, m := range w.metas {
			if err := ib.Put([]byte(name), m); err != nil {
				return err
			}
			if _, err := tx.CreateBucketIfNotExists(docsBucket(name)); err != nil {
				return err
			}
		}
		for key, t := range w.templates {
			b := tx.Bucket(bktTemplates)
			if key[0] == 'l' {
				b = tx.Bucket(bktLegacy)
			}
			var err error
			if t == nil {
				err = b.Delete([]byte(key[2:]))
			} else {
				err = b.Put([]byte(key[2:]), t)
			}
			if err != nil {
				return err
			}
		}
		var cur *bolt.Bucket
		curName := ""
		for _, p := range w.puts {
			if cur == nil || curName != p.index {
				cur = tx.Bucket(docsBucket(p.index))
				curName = p.index
				if cur == nil {
					return fmt.Errorf("esserver: no bucket for index %s", p.index)
				}
			}
			if p.source == nil {
				if err := cur.Delete([]byte(p.id)); err != nil {
					return err
				}
				continue
			}
			v := make([]byte, 16+len(p.source))
			binary.BigEndian.PutUint64(v, uint64(p.version))
			binary.BigEndian.PutUint64(v[8:], uint64(p.seqNo))
			copy(v[16:], p.source)
			if err := cur.Put([]byte(p.id), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// load reads everything back at start.
func (s *boltStore) load(fn func(kind, name string, v []byte) error, docFn func(index, id string, version, seqNo int64, src []byte) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		for _, k := range []struct {
			b    []byte
			kind string
		}{{bktTemplates, "template"}, {bktLegacy, "legacy"}, {bktIndices, "index"}} {
			if err := tx.Bucket(k.b).ForEach(func(key, v []byte) error { return fn(k.kind, string(key), v) }); err != nil {
				return err
			}
		}
		return tx.Bucket(bktIndices).ForEach(func(key, _ []byte) error {
			b := tx.Bucket(docsBucket(string(key)))
			if b == nil {
				return nil
			}
			return b.ForEach(func(id, v []byte) error {
				if len(v) < 16 {
					return fmt.Errorf("esserver: corrupt document %s/%s", key, id)
				}
				src := make([]byte, len(v)-16)
				copy(src, v[16:])
				return docFn(string(key), string(id), int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:])), src)
			})
		})
	})
}
