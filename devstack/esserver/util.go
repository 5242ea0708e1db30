package esserver

import (
	"encoding/json"
	"fmt"
)

var errNotObject = reasonErr("Malformed content, must start with an object")

var errTrailing = reasonErr("Unexpected character: trailing content after the JSON value")

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("esserver: " + err.Error())
	}
	return b
}

// reasonErr is an error whose text is an Elasticsearch reason, worded (and
// capitalized) as Elasticsearch words it.
type reasonErr string

func (r reasonErr) Error() string { return string(r) }

func reasonf(format string, args ...any) error { return reasonErr(fmt.Sprintf(format, args...)) }
