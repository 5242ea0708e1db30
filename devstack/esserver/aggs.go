package esserver

import "time"

type docRef struct {
	ix  *index
	ord int32
}

type aggSpec struct {
	name string
}

func parseAggs(obj map[string]any) ([]*aggSpec, *esError) {
	return nil, errUnsupported("aggregations (yet)")
}

func (a *aggSpec) compute(docs []docRef, now time.Time) (any, *esError) { return nil, nil }
