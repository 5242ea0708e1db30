package esserver

import (
	"encoding/json"
	"fmt"
)

// loadAll rebuilds the in-memory indices from the data file. Documents are
// re-parsed against their index's mapping and made searchable at once.
func (s *Server) loadAll() error {
	return s.st.load(func(kind, name string, v []byte) error {
		var body map[string]any
		if err := unmarshalUseNumber(v, &body); err != nil {
			return fmt.Errorf("esserver: corrupt %s %s: %w", kind, name, err)
		}
		switch kind {
		case "template":
			t := &indexTemplate{Name: name, Raw: body}
			t.Patterns, _ = toPatterns(body["index_patterns"])
			t.Priority, _ = toInt(body["priority"])
			if tm, ok := body["template"].(map[string]any); ok {
				if sm, ok := tm["settings"].(map[string]any); ok {
					st, e := normalizeSettings(sm)
					if e != nil {
						return fmt.Errorf("esserver: template %s: %v", name, e)
					}
					t.Settings = st
				}
				t.Mappings, _ = tm["mappings"].(map[string]any)
				if am, ok := tm["aliases"]; ok {
					al, e := parseAliases(am)
					if e != nil {
						return fmt.Errorf("esserver: template %s: %v", name, e)
					}
					t.Aliases = al
				}
			}
			s.templates[name] = t
		case "legacy":
			t, e := parseLegacyTemplate(name, body)
			if e != nil {
				return fmt.Errorf("esserver: template %s: %v", name, e)
			}
			s.legacy[name] = t
		case "index":
			var meta indexMeta
			if err := json.Unmarshal(v, &meta); err != nil {
				return fmt.Errorf("esserver: corrupt index %s: %w", name, err)
			}
			m := newMapping()
			var mb map[string]any
			raw, _ := json.Marshal(meta.Mappings)
			_ = unmarshalUseNumber(raw, &mb)
			if e := m.merge(mb); e != nil {
				return fmt.Errorf("esserver: index %s mapping: %v", name, e)
			}
			ix := newIndex(name, meta.UUID, meta.Created, meta.Settings, m)
			ix.closed.Store(meta.Closed)
			if meta.Aliases != nil {
				ix.aliases = meta.Aliases
			}
			s.indices[name] = ix
		}
		return nil
	}, func(indexName, id string, version, seqNo int64, src []byte) error {
		ix := s.indices[indexName]
		if ix == nil {
			return nil
		}
		values, _, e := ix.m.parseDocument(id, src, 0)
		if e != nil {
			return fmt.Errorf("esserver: %s/%s no longer parses: %v", indexName, id, e)
		}
		ix.addToSegment(&docState{id: id, source: src, version: version, seqNo: seqNo, values: values})
		if seqNo >= ix.nextSeq {
			ix.nextSeq = seqNo + 1
		}
		return nil
	})
}
