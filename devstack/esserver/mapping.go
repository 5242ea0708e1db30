package esserver

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

type jsonNumber = json.Number

// Field types dev-es implements. Others named in the Elasticsearch reference
// answer 400 (unsupported); unknown names answer ES's "No handler for type".
var supportedTypes = map[string]bool{
	"long": true, "integer": true, "short": true, "byte": true,
	"double": true, "float": true, "half_float": true, "scaled_float": true,
	"keyword": true, "text": true, "date": true, "date_nanos": true, "boolean": true, "object": true,
}

var knownUnsupportedTypes = map[string]bool{
	"nested": true, "ip": true, "geo_point": true, "geo_shape": true, "flattened": true, "alias": true,
	"unsigned_long": true, "binary": true, "integer_range": true, "float_range": true, "long_range": true,
	"double_range": true, "date_range": true, "ip_range": true, "completion": true, "search_as_you_type": true,
	"token_count": true, "dense_vector": true, "rank_feature": true, "rank_features": true, "join": true,
	"percolator": true, "histogram": true, "constant_keyword": true, "wildcard": true, "version": true,
	"match_only_text": true, "point": true, "shape": true, "annotated_text": true, "murmur3": true,
}

// allowedParams lists the mapping parameters accepted per type; the rest
// are rejected as Elasticsearch rejects them ("unknown parameter").
var commonParams = map[string]bool{"type": true, "index": true, "doc_values": true, "store": true, "null_value": true,
	"meta": true, "boost": true, "fields": true}

var typeParams = map[string]map[string]bool{
	"numeric": {"coerce": true, "ignore_malformed": true, "scaling_factor": true},
	"keyword": {"ignore_above": true, "norms": true, "eager_global_ordinals": true, "similarity": true, "index_options": true, "split_queries_on_whitespace": true},
	"text":    {"analyzer": true, "search_analyzer": true, "norms": true, "fielddata": true, "index_options": true, "similarity": true, "position_increment_gap": true, "eager_global_ordinals": true, "term_vector": true, "index_phrases": true},
	"date":    {"format": true, "locale": true, "ignore_malformed": true},
	"boolean": {},
}

type fieldMapping struct {
	Type        string
	Params      map[string]any // as given, for GET _mapping (without fields/properties)
	Fields      map[string]*fieldMapping
	Properties  map[string]*fieldMapping // object
	Dynamic     string                   // object: "", "true", "false", "strict"
	Enabled     bool                     // object: enabled (default true)
	df          *dateFormat
	ignoreAbove int
	coerce      bool
	ignoreMal   bool
	index       bool
	scaling     float64
}

type dynamicTemplate struct {
	Name             string
	Match            string
	Unmatch          string
	PathMatch        string
	PathUnmatch      string
	MatchMappingType string
	MatchPattern     string
	Mapping          map[string]any
	raw              map[string]any
}

type mapping struct {
	Root             *fieldMapping
	DynamicTemplates []dynamicTemplate
	DateDetection    bool
	NumericDetection bool
	DynamicDates     []*dateFormat
	dynamicDatesRaw  []any
	SourceEnabled    bool
	Meta             map[string]any
}

func newMapping() *mapping {
	// the default dynamic_date_formats
	df, _ := parseDateFormat("strict_date_optional_time")
	df2, _ := parseDateFormat("yyyy/MM/dd HH:mm:ss Z||yyyy/MM/dd Z")
	return &mapping{Root: &fieldMapping{Type: "object", Properties: map[string]*fieldMapping{}, Enabled: true, index: true},
		DateDetection: true, SourceEnabled: true, DynamicDates: []*dateFormat{df, df2}}
}

func mapperErr(format string, args ...any) *esError {
	return newErr(http.StatusBadRequest, "mapper_parsing_exception", format, args...)
}

// parseMappingBody parses a "mappings" object (as in create index, put
// mapping and templates) and merges it into m.
func (m *mapping) merge(body map[string]any) *esError {
	if len(body) == 1 {
		if inner, ok := body["_doc"].(map[string]any); ok {
			body = inner
		}
	}
	var unknown []string
	for k, v := range body {
		switch k {
		case "properties":
			props, ok := v.(map[string]any)
			if !ok {
				return mapperErr("Expected map for property [properties] on field [_doc] but got a class %T", v)
			}
			if err := mergeProperties(m.Root, props, ""); err != nil {
				return err
			}
		case "dynamic":
			d, err := parseDynamic(v)
			if err != nil {
				return err
			}
			m.Root.Dynamic = d
		case "date_detection":
			b, ok := v.(bool)
			if !ok {
				return mapperErr("Failed to parse mapping [_doc]: date_detection must be a boolean")
			}
			m.DateDetection = b
		case "numeric_detection":
			b, ok := v.(bool)
			if !ok {
				return mapperErr("Failed to parse mapping [_doc]: numeric_detection must be a boolean")
			}
			m.NumericDetection = b
		case "dynamic_date_formats":
			arr, ok := v.([]any)
			if !ok {
				return mapperErr("Failed to parse mapping [_doc]: dynamic_date_formats must be an array")
			}
			m.DynamicDates = nil
			for _, a := range arr {
				s, _ := a.(string)
				df, err := parseDateFormat(s)
				if err != nil {
					return mapperErr("%v", err)
				}
				m.DynamicDates = append(m.DynamicDates, df)
			}
			m.dynamicDatesRaw = arr
		case "dynamic_templates":
			arr, ok := v.([]any)
			if !ok {
				return mapperErr("Failed to parse mapping [_doc]: Dynamic template syntax error. An array of named objects is expected.")
			}
			var dts []dynamicTemplate
			for _, a := range arr {
				obj, ok := a.(map[string]any)
				if !ok || len(obj) != 1 {
					return mapperErr("Failed to parse mapping [_doc]: A dynamic template must be defined with a name")
				}
				for name, def := range obj {
					dt, err := parseDynamicTemplate(name, def)
					if err != nil {
						return err
					}
					dts = append(dts, dt)
				}
			}
			// templates with the same name replace; new ones append
			for _, dt := range dts {
				replaced := false
				for i := range m.DynamicTemplates {
					if m.DynamicTemplates[i].Name == dt.Name {
						m.DynamicTemplates[i] = dt
						replaced = true
					}
				}
				if !replaced {
					m.DynamicTemplates = append(m.DynamicTemplates, dt)
				}
			}
		case "_source":
			obj, _ := v.(map[string]any)
			if en, ok := obj["enabled"].(bool); ok {
				m.SourceEnabled = en
				if !en {
					return errUnsupported("_source.enabled: false")
				}
			}
			for sk := range obj {
				if sk != "enabled" {
					return errUnsupported("_source parameter [%s]", sk)
				}
			}
		case "_meta":
			obj, ok := v.(map[string]any)
			if !ok {
				return mapperErr("Failed to parse mapping [_doc]: _meta must be an object")
			}
			m.Meta = obj
		case "_routing", "_field_names", "runtime":
			return errUnsupported("mapping parameter [%s]", k)
		default:
			unknown = append(unknown, fmt.Sprintf("%s : %v", k, v))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return mapperErr("Root mapping definition has unsupported parameters:  [%s]", strings.Join(unknown, "] ["))
	}
	return nil
}

func parseDynamic(v any) (string, *esError) {
	switch x := v.(type) {
	case bool:
		return strconv.FormatBool(x), nil
	case string:
		switch x {
		case "true", "false", "strict":
			return x, nil
		case "runtime":
			return "", errUnsupported("dynamic: runtime")
		}
	}
	return "", mapperErr("Could not convert [dynamic] to boolean")
}

func parseDynamicTemplate(name string, def any) (dynamicTemplate, *esError) {
	obj, ok := def.(map[string]any)
	if !ok {
		return dynamicTemplate{}, mapperErr("Failed to parse mapping [_doc]: dynamic template [%s] must be an object", name)
	}
	dt := dynamicTemplate{Name: name, raw: obj}
	for k, v := range obj {
		s, _ := v.(string)
		switch k {
		case "match":
			dt.Match = s
		case "unmatch":
			dt.Unmatch = s
		case "path_match":
			dt.PathMatch = s
		case "path_unmatch":
			dt.PathUnmatch = s
		case "match_mapping_type":
			switch s {
			case "*", "string", "long", "double", "boolean", "date", "object":
				dt.MatchMappingType = s
			default:
				return dt, mapperErr("Failed to parse mapping [_doc]: No field type matched on [%s], possible values are [object, string, long, double, boolean, date, binary]", s)
			}
		case "match_pattern":
			if s != "simple" {
				return dt, errUnsupported("dynamic template match_pattern [%s]", s)
			}
			dt.MatchPattern = s
		case "mapping":
			mm, ok := v.(map[string]any)
			if !ok {
				return dt, mapperErr("Failed to parse mapping [_doc]: dynamic template [%s] mapping must be an object", name)
			}
			dt.Mapping = mm
		default:
			return dt, mapperErr("Failed to parse mapping [_doc]: Illegal dynamic template parameter: [%s]", k)
		}
	}
	if dt.Mapping == nil {
		return dt, mapperErr("Failed to parse mapping [_doc]: template [%s] must have a mapping", name)
	}
	// validate the mapping now, as Elasticsearch 7.x does
	if _, err := parseField("__dynamic__", withDefaultType(dt.Mapping, dt.MatchMappingType)); err != nil {
		return dt, err
	}
	return dt, nil
}

func withDefaultType(m map[string]any, mmt string) map[string]any {
	if _, ok := m["type"]; ok {
		return m
	}
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	switch mmt {
	case "long", "double", "boolean", "date", "object":
		out["type"] = mmt
	default:
		out["type"] = "text"
	}
	if mmt == "double" {
		out["type"] = "float"
	}
	return out
}

// mergeProperties merges a properties object into obj, rejecting type changes.
func mergeProperties(obj *fieldMapping, props map[string]any, prefix string) *esError {
	for name, def := range props {
		if name == "" {
			return mapperErr("field name cannot be an empty string")
		}
		full := prefix + name
		d, ok := def.(map[string]any)
		if !ok {
			return mapperErr("Expected map for property [fields] on field [%s] but got a class %T", full, def)
		}
		if strings.Contains(name, ".") {
			// "a.b": {...} is the object a with property b
			i := strings.IndexByte(name, '.')
			nested := map[string]any{"properties": map[string]any{name[i+1:]: d}}
			if err := mergeProperties(obj, map[string]any{name[:i]: nested}, prefix); err != nil {
				return err
			}
			continue
		}
		nf, err := parseField(full, d)
		if err != nil {
			return err
		}
		if err := mergeField(obj, name, nf, full); err != nil {
			return err
		}
	}
	return nil
}

func mergeField(parent *fieldMapping, name string, nf *fieldMapping, full string) *esError {
	old, ok := parent.Properties[name]
	if !ok {
		parent.Properties[name] = nf
		return nil
	}
	if old.Type != nf.Type {
		return errIllegalArgument("mapper [%s] cannot be changed from type [%s] to [%s]", full, old.Type, nf.Type)
	}
	if nf.Type == "object" {
		if nf.Dynamic != "" {
			old.Dynamic = nf.Dynamic
		}
		for k, v := range nf.Properties {
			if err := mergeField(old, k, v, full+"."+k); err != nil {
				return err
			}
		}
		return nil
	}
	if old.df != nil && nf.df != nil && old.df.spec != nf.df.spec {
		return errIllegalArgument("Mapper for [%s] conflicts with existing mapper:\n\tCannot update parameter [format] from [%s] to [%s]", full, old.df.spec, nf.df.spec)
	}
	for k, v := range nf.Fields {
		if ov, ok := old.Fields[k]; ok && ov.Type != v.Type {
			return errIllegalArgument("mapper [%s.%s] cannot be changed from type [%s] to [%s]", full, k, ov.Type, v.Type)
		}
		if old.Fields == nil {
			old.Fields = map[string]*fieldMapping{}
		}
		old.Fields[k] = v
	}
	for k, v := range nf.Params {
		old.Params[k] = v
	}
	return nil
}

// parseField parses one field definition.
func parseField(full string, d map[string]any) (*fieldMapping, *esError) {
	typ, _ := d["type"].(string)
	if typ == "" {
		if _, ok := d["properties"]; ok {
			typ = "object"
		} else if _, hasType := d["type"]; !hasType {
			typ = "object"
		}
	}
	if !supportedTypes[typ] {
		if knownUnsupportedTypes[typ] {
			return nil, errUnsupported("field type [%s] (field [%s])", typ, full)
		}
		return nil, mapperErr("No handler for type [%s] declared on field [%s]", typ, full)
	}
	f := &fieldMapping{Type: typ, Params: map[string]any{}, Enabled: true, index: true, coerce: true}
	if typ == "object" {
		f.Properties = map[string]*fieldMapping{}
		for k, v := range d {
			switch k {
			case "type":
			case "properties":
				props, ok := v.(map[string]any)
				if !ok {
					return nil, mapperErr("Expected map for property [properties] on field [%s]", full)
				}
				if err := mergeProperties(f, props, full+"."); err != nil {
					return nil, err
				}
			case "dynamic":
				dyn, err := parseDynamic(v)
				if err != nil {
					return nil, err
				}
				f.Dynamic = dyn
			case "enabled":
				b, ok := v.(bool)
				if !ok {
					return nil, mapperErr("Failed to parse mapping: enabled must be a boolean on field [%s]", full)
				}
				f.Enabled = b
				f.Params["enabled"] = b
			default:
				return nil, mapperErr("Mapping definition for [%s] has unsupported parameters:  [%s : %v]", full, k, v)
			}
		}
		return f, nil
	}
	group := typ
	switch typ {
	case "long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float":
		group = "numeric"
	case "date_nanos":
		group = "date"
	}
	for k, v := range d {
		if k == "fields" {
			fs, ok := v.(map[string]any)
			if !ok {
				return nil, mapperErr("Expected map for property [fields] on field [%s]", full)
			}
			f.Fields = map[string]*fieldMapping{}
			for sub, sd := range fs {
				sdm, ok := sd.(map[string]any)
				if !ok {
					return nil, mapperErr("Expected map for property [fields] on field [%s]", full)
				}
				sf, err := parseField(full+"."+sub, sdm)
				if err != nil {
					return nil, err
				}
				if sf.Type == "object" {
					return nil, mapperErr("Type [object] cannot be used in multi field")
				}
				f.Fields[sub] = sf
			}
			continue
		}
		switch k {
		case "copy_to", "normalizer", "index_prefixes", "search_quote_analyzer", "time_series_dimension", "time_series_metric", "script", "on_script_error", "dynamic":
			return nil, errUnsupported("the mapping parameter [%s] (field [%s])", k, full)
		}
		if !commonParams[k] && !typeParams[group][k] {
			return nil, mapperErr("unknown parameter [%s] on mapper [%s] of type [%s]", k, full, typ)
		}
		f.Params[k] = v
		switch k {
		case "format":
			s, _ := v.(string)
			df, err := parseDateFormat(s)
			if err != nil {
				return nil, mapperErr("Error parsing [format] on field [%s]: %v", full, err)
			}
			f.df = df
		case "ignore_above":
			n, ok := toFloat(v)
			if !ok || n < 0 {
				return nil, mapperErr("Failed to parse mapping: [ignore_above] must be a non-negative integer on field [%s]", full)
			}
			f.ignoreAbove = int(n)
		case "coerce":
			f.coerce, _ = v.(bool)
		case "ignore_malformed":
			f.ignoreMal, _ = v.(bool)
		case "index":
			f.index, _ = v.(bool)
		case "scaling_factor":
			f.scaling, _ = toFloat(v)
		case "analyzer", "search_analyzer":
			if s, _ := v.(string); s != "standard" {
				return nil, errUnsupported("analyzer [%v] on field [%s] (only [standard])", v, full)
			}
		case "null_value", "locale", "fielddata", "norms", "store", "doc_values", "meta", "boost", "eager_global_ordinals", "similarity", "index_options",
			"position_increment_gap", "term_vector", "index_phrases", "split_queries_on_whitespace":
		}
	}
	if group == "date" && f.df == nil {
		f.df, _ = parseDateFormat(defaultDateFormat)
	}
	if typ == "scaled_float" && f.scaling == 0 {
		return nil, mapperErr("Field [scaling_factor] is required")
	}
	return f, nil
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case jsonNumber:
		f, err := x.Float64()
		return f, err == nil
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}

// render returns the mapping as GET _mapping shows it.
func (m *mapping) render() map[string]any {
	out := map[string]any{}
	if m.Root.Dynamic != "" {
		out["dynamic"] = m.Root.Dynamic
	}
	if len(m.DynamicTemplates) > 0 {
		var dts []any
		for _, dt := range m.DynamicTemplates {
			dts = append(dts, map[string]any{dt.Name: dt.raw})
		}
		out["dynamic_templates"] = dts
	}
	if !m.DateDetection {
		out["date_detection"] = false
	}
	if m.NumericDetection {
		out["numeric_detection"] = true
	}
	if m.dynamicDatesRaw != nil {
		out["dynamic_date_formats"] = m.dynamicDatesRaw
	}
	if m.Meta != nil {
		out["_meta"] = m.Meta
	}
	if len(m.Root.Properties) > 0 {
		out["properties"] = renderProps(m.Root.Properties)
	}
	return out
}

func renderProps(props map[string]*fieldMapping) map[string]any {
	out := map[string]any{}
	for k, f := range props {
		out[k] = f.render()
	}
	return out
}

func (f *fieldMapping) render() map[string]any {
	o := map[string]any{}
	for k, v := range f.Params {
		o[k] = v
	}
	if f.Type == "object" {
		if f.Dynamic != "" {
			o["dynamic"] = f.Dynamic
		}
		if len(f.Properties) > 0 {
			o["properties"] = renderProps(f.Properties)
		} else if len(o) == 0 {
			o["type"] = "object"
		}
		return o
	}
	o["type"] = f.Type
	if len(f.Fields) > 0 {
		o["fields"] = renderProps(f.Fields)
	}
	return o
}

func (m *mapping) clone() *mapping {
	b, _ := json.Marshal(m.render())
	nm := newMapping()
	var body map[string]any
	_ = unmarshalUseNumber(b, &body)
	if err := nm.merge(body); err != nil {
		panic("esserver: mapping does not round-trip: " + err.Error())
	}
	return nm
}

// countFields counts mapped fields (objects and multi-fields included), as
// index.mapping.total_fields.limit does.
func (f *fieldMapping) countFields() int {
	n := 0
	for _, p := range f.Properties {
		n++
		n += len(p.Fields)
		if p.Type == "object" {
			n += p.countFields()
		}
	}
	return n
}

// lookup finds a field by dotted path, including multi-fields ("name.keyword").
func (m *mapping) lookup(path string) *fieldMapping {
	cur := m.Root
	parts := strings.Split(path, ".")
	for i, p := range parts {
		next, ok := cur.Properties[p]
		if !ok {
			if cur.Fields != nil && i == len(parts)-1 {
				return cur.Fields[p]
			}
			return nil
		}
		cur = next
		if cur.Type != "object" && i < len(parts)-1 {
			if i == len(parts)-2 {
				return cur.Fields[parts[i+1]]
			}
			return nil
		}
	}
	if cur == m.Root {
		return nil
	}
	return cur
}

// leafPaths lists every indexed leaf path (multi-fields included) matching
// a glob, for exists queries on object fields and wildcard field names.
func (m *mapping) leafPaths(prefix string, f *fieldMapping, out map[string]*fieldMapping) {
	for name, p := range f.Properties {
		full := prefix + name
		if p.Type == "object" {
			m.leafPaths(full+".", p, out)
			continue
		}
		out[full] = p
		for sub, sf := range p.Fields {
			out[full+"."+sub] = sf
		}
	}
}

// ---- document parsing ----

// fieldValue is one indexed value of a document.
type fieldValue struct {
	path string
	typ  string // mapping type of the field
	i    int64  // long family, date (ms), boolean (0/1)
	f    float64
	s    string
}

type parseCtx struct {
	m       *mapping
	id      string
	values  []fieldValue
	added   map[string]*fieldMapping // new dynamic fields by full path
	addedTo map[string]*fieldMapping // parent object of each added field
}

// parseDocument validates src against the mapping, returning the indexed
// values and applying any dynamic mapping updates only when the whole
// document parses (Elasticsearch rejects the document and keeps the mapping).
func (m *mapping) parseDocument(id string, src []byte, fieldLimit int) ([]fieldValue, bool, *esError) {
	var doc map[string]any
	if err := unmarshalUseNumber(src, &doc); err != nil || doc == nil {
		reason := "failed to parse"
		cause := newErr(400, "json_parse_exception", "%s", jsonErrReason(err))
		if err == nil {
			cause = newErr(400, "not_x_content_exception", "Compressor detection can only be called on some xcontent bytes or compressed xcontent bytes")
		}
		return nil, false, mapperErr("%s", reason).cause(cause)
	}
	pc := &parseCtx{m: m, id: id, added: map[string]*fieldMapping{}, addedTo: map[string]*fieldMapping{}}
	if err := pc.object(m.Root, "", doc, "_doc"); err != nil {
		return nil, false, err
	}
	changed := len(pc.added) > 0
	if changed {
		if fieldLimit > 0 {
			n := m.Root.countFields()
			for _, f := range pc.added {
				n += 1 + len(f.Fields)
			}
			if n > fieldLimit {
				return nil, false, errIllegalArgument("Limit of total fields [%d] has been exceeded while adding new fields [%d]", fieldLimit, len(pc.added))
			}
		}
		for path, f := range pc.added {
			parent := pc.addedTo[path]
			name := path[strings.LastIndexByte(path, '.')+1:]
			if _, exists := parent.Properties[name]; !exists {
				parent.Properties[name] = f
			}
		}
	}
	return pc.values, changed, nil
}

func jsonErrReason(err error) string {
	if err == nil {
		return "empty document"
	}
	return err.Error()
}

func (pc *parseCtx) child(parent *fieldMapping, path, name string) *fieldMapping {
	if f, ok := parent.Properties[name]; ok {
		return f
	}
	return pc.added[path]
}

func (pc *parseCtx) object(obj *fieldMapping, prefix string, doc map[string]any, objName string) *esError {
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := doc[k]
		if k == "" || strings.Trim(k, ".") == "" {
			return mapperErr("failed to parse").cause(errIllegalArgument("field name cannot be an empty string"))
		}
		if strings.HasPrefix(prefix+k, "_") && prefix == "" && isMetaField(k) {
			return mapperErr("Field [%s] is a metadata field and cannot be added inside a document. Use the index API request parameters.", k)
		}
		if strings.Contains(k, ".") {
			i := strings.IndexByte(k, '.')
			if err := pc.value(obj, prefix, k[:i], map[string]any{k[i+1:]: v}, objName); err != nil {
				return err
			}
			continue
		}
		if err := pc.value(obj, prefix, k, v, objName); err != nil {
			return err
		}
	}
	return nil
}

func isMetaField(k string) bool {
	switch k {
	case "_id", "_index", "_source", "_type", "_routing", "_version", "_seq_no", "_primary_term", "_field_names", "_ignored", "_doc_count", "_tier":
		return true
	}
	return false
}

func effectiveDynamic(obj *fieldMapping, root *fieldMapping) string {
	if obj.Dynamic != "" {
		return obj.Dynamic
	}
	if root.Dynamic != "" {
		return root.Dynamic
	}
	return "true"
}

func (pc *parseCtx) value(obj *fieldMapping, prefix, name string, v any, objName string) *esError {
	path := prefix + name
	if arr, ok := v.([]any); ok {
		for _, e := range arr {
			if _, nested := e.([]any); nested {
				if err := pc.value(obj, prefix, name, e, objName); err != nil {
					return err
				}
				continue
			}
			if err := pc.value(obj, prefix, name, e, objName); err != nil {
				return err
			}
		}
		return nil
	}
	if v == nil {
		f := pc.child(obj, path, name)
		if f != nil && f.Params["null_value"] != nil {
			v = f.Params["null_value"]
		} else {
			return nil
		}
	}
	f := pc.child(obj, path, name)
	if f == nil {
		switch effectiveDynamic(obj, pc.m.Root) {
		case "false":
			return nil
		case "strict":
			return newErr(400, "strict_dynamic_mapping_exception", "mapping set to strict, dynamic introduction of [%s] within [%s] is not allowed", name, objName)
		}
		nf, err := pc.dynamicField(path, name, v)
		if err != nil {
			return err
		}
		if nf == nil {
			return nil
		}
		pc.added[path] = nf
		pc.addedTo[path] = obj
		f = nf
	}
	if f.Type == "object" {
		sub, ok := v.(map[string]any)
		if !ok {
			return mapperErr("object mapping for [%s] tried to parse field [%s] as object, but found a concrete value", path, name)
		}
		if !f.Enabled {
			return nil
		}
		return pc.object(f, path+".", sub, name)
	}
	if err := pc.leaf(f, path, v); err != nil {
		return err
	}
	for sub, sf := range f.Fields {
		if err := pc.leaf(sf, path+"."+sub, v); err != nil {
			return err
		}
	}
	return nil
}

func preview(v any) string {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + preview(x[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}

func (pc *parseCtx) leafErr(f *fieldMapping, path string, v any, cause *esError) *esError {
	return mapperErr("failed to parse field [%s] of type [%s] in document with id '%s'. Preview of field's value: '%s'",
		path, f.Type, pc.id, preview(v)).cause(cause)
}

func (pc *parseCtx) leaf(f *fieldMapping, path string, v any) *esError {
	fv := fieldValue{path: path, typ: f.Type}
	if _, isObj := v.(map[string]any); isObj {
		return pc.leafErr(f, path, v, errIllegalArgument("Can't get text on a START_OBJECT"))
	}
	switch f.Type {
	case "keyword", "text":
		switch x := v.(type) {
		case string:
			fv.s = x
		case jsonNumber:
			fv.s = string(x)
		case bool:
			fv.s = strconv.FormatBool(x)
		}
		if f.Type == "keyword" && f.ignoreAbove > 0 && len([]rune(fv.s)) > f.ignoreAbove {
			return nil
		}
	case "long", "integer", "short", "byte":
		n, err := parseLong(v, f.coerce, f.Type)
		if err != nil {
			if f.ignoreMal {
				return nil
			}
			return pc.leafErr(f, path, v, err)
		}
		fv.i = n
	case "double", "float", "half_float", "scaled_float":
		x, err := parseDouble(v, f.coerce)
		if err != nil {
			if f.ignoreMal {
				return nil
			}
			return pc.leafErr(f, path, v, err)
		}
		switch f.Type {
		case "float", "half_float":
			x = float64(float32(x))
		case "scaled_float":
			x = math.Round(x*f.scaling) / f.scaling
		}
		fv.f = x
	case "date", "date_nanos":
		if _, isBool := v.(bool); isBool {
			return pc.leafErr(f, path, v, errIllegalArgument("failed to parse date field [%v] with format [%s]", v, f.df.spec))
		}
		ms, ok := f.df.parse(v, time.UTC)
		if !ok {
			if f.ignoreMal {
				return nil
			}
			return pc.leafErr(f, path, v, errIllegalArgument("failed to parse date field [%v] with format [%s]", v, f.df.spec))
		}
		fv.i = ms
	case "boolean":
		switch x := v.(type) {
		case bool:
			if x {
				fv.i = 1
			}
		case string:
			switch x {
			case "true":
				fv.i = 1
			case "false", "":
			default:
				return pc.leafErr(f, path, v, errIllegalArgument("Failed to parse value [%s] as only [true] or [false] are allowed.", x))
			}
		default:
			return pc.leafErr(f, path, v, errIllegalArgument("Current token (%s) not of boolean type", tokenName(v)))
		}
	}
	if !f.index && f.Params["doc_values"] == false {
		return nil
	}
	pc.values = append(pc.values, fv)
	return nil
}

func tokenName(v any) string {
	switch v.(type) {
	case nil:
		return "VALUE_NULL"
	case []any:
		return "START_ARRAY"
	case bool:
		return "VALUE_BOOLEAN"
	case string:
		return "VALUE_STRING"
	case jsonNumber:
		return "VALUE_NUMBER"
	}
	return "START_OBJECT"
}

var longRanges = map[string][2]int64{
	"long": {math.MinInt64, math.MaxInt64}, "integer": {math.MinInt32, math.MaxInt32},
	"short": {math.MinInt16, math.MaxInt16}, "byte": {math.MinInt8, math.MaxInt8},
}

func parseLong(v any, coerce bool, typ string) (int64, *esError) {
	var s string
	switch x := v.(type) {
	case jsonNumber:
		s = string(x)
	case string:
		if !coerce {
			return 0, errIllegalArgument("Current token (VALUE_STRING) not numeric, can not use numeric value accessors")
		}
		s = strings.TrimSpace(x)
	case bool:
		return 0, errIllegalArgument("Current token (VALUE_%s) not numeric, can not use numeric value accessors", strings.ToUpper(strconv.FormatBool(x)))
	default:
		return 0, errIllegalArgument("Current token not numeric")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, newErr(400, "number_format_exception", "For input string: \"%s\"", s)
		}
		if !coerce && f != math.Trunc(f) {
			return 0, errIllegalArgument("Value [%s] has a decimal part", s)
		}
		if f >= 9.223372036854775807e18 || f < -9.223372036854775808e18 {
			return 0, errIllegalArgument("Value [%s] is out of range for a %s", s, typ)
		}
		n = int64(f)
	}
	r := longRanges[typ]
	if n < r[0] || n > r[1] {
		return 0, errIllegalArgument("Value [%s] is out of range for an %s", s, typ)
	}
	return n, nil
}

func parseDouble(v any, coerce bool) (float64, *esError) {
	var s string
	switch x := v.(type) {
	case jsonNumber:
		s = string(x)
	case string:
		if !coerce {
			return 0, errIllegalArgument("Current token (VALUE_STRING) not numeric, can not use numeric value accessors")
		}
		s = strings.TrimSpace(x)
	case bool:
		return 0, errIllegalArgument("Current token (VALUE_%s) not numeric, can not use numeric value accessors", strings.ToUpper(strconv.FormatBool(x)))
	default:
		return 0, errIllegalArgument("Current token not numeric")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, newErr(400, "number_format_exception", "For input string: \"%s\"", s)
	}
	return f, nil
}

// dynamicField maps a new field from its first value (Elasticsearch's
// dynamic field mapping table), dynamic templates first.
func (pc *parseCtx) dynamicField(path, name string, v any) (*fieldMapping, *esError) {
	var mmt string
	var isDate bool
	switch x := v.(type) {
	case string:
		mmt = "string"
		if pc.m.DateDetection {
			for _, df := range pc.m.DynamicDates {
				if _, ok := df.parse(x, time.UTC); ok {
					mmt, isDate = "date", true
					break
				}
			}
		}
		if !isDate && pc.m.NumericDetection {
			if _, err := strconv.ParseInt(x, 10, 64); err == nil {
				mmt = "long"
			} else if _, err := strconv.ParseFloat(x, 64); err == nil {
				mmt = "double"
			}
		}
	case jsonNumber:
		if strings.ContainsAny(string(x), ".eE") {
			mmt = "double"
		} else {
			mmt = "long"
		}
	case bool:
		mmt = "boolean"
	case map[string]any:
		mmt = "object"
	}
	for _, dt := range pc.m.DynamicTemplates {
		if dt.matches(path, name, mmt) {
			def := map[string]any{}
			for k, val := range dt.Mapping {
				if s, ok := val.(string); ok {
					s = strings.ReplaceAll(s, "{name}", name)
					s = strings.ReplaceAll(s, "{dynamic_type}", mmt)
					val = s
				}
				def[k] = val
			}
			return parseField(path, withDefaultType(def, mmt))
		}
	}
	switch mmt {
	case "string":
		return parseField(path, map[string]any{"type": "text", "fields": map[string]any{"keyword": map[string]any{"type": "keyword", "ignore_above": jsonNumber("256")}}})
	case "date":
		spec := "strict_date_optional_time"
		for _, df := range pc.m.DynamicDates {
			if _, ok := df.parse(v, time.UTC); ok {
				spec = df.spec
				break
			}
		}
		if spec == "strict_date_optional_time" {
			return parseField(path, map[string]any{"type": "date"})
		}
		return parseField(path, map[string]any{"type": "date", "format": spec})
	case "long":
		return parseField(path, map[string]any{"type": "long"})
	case "double":
		return parseField(path, map[string]any{"type": "float"})
	case "boolean":
		return parseField(path, map[string]any{"type": "boolean"})
	case "object":
		return parseField(path, map[string]any{"type": "object"})
	}
	return nil, nil
}

func (dt *dynamicTemplate) matches(path, name, mmt string) bool {
	if dt.MatchMappingType != "" && dt.MatchMappingType != "*" && dt.MatchMappingType != mmt {
		return false
	}
	if dt.Match != "" && !globMatch(dt.Match, name) {
		return false
	}
	if dt.Unmatch != "" && globMatch(dt.Unmatch, name) {
		return false
	}
	if dt.PathMatch != "" && !globMatch(dt.PathMatch, path) {
		return false
	}
	if dt.PathUnmatch != "" && globMatch(dt.PathUnmatch, path) {
		return false
	}
	return true
}
