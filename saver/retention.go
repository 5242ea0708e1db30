package saver

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/olivere/elastic/v7"
)

// ExpiredIndices returns, sorted, the names among names that retention
// deletes at now: daily indices (falconet-metrics-YYYY.MM.DD) whose day is
// before today minus retentionDays (UTC), and monthly rollup indices
// (falconet-rollup-<step>-YYYY.MM) whose month is before this month minus
// rollupMonths. The date in the name decides, never the creation time.
// Names that do not parse exactly are never returned; 0 keeps forever.
func ExpiredIndices(names []string, now time.Time, retentionDays, rollupMonths int) []string {
	now = now.UTC()
	var out []string
	dayCutoff := retentionCutoff(now, retentionDays)
	monthCutoff := time.Date(now.Year(), now.Month()-time.Month(rollupMonths), 1, 0, 0, 0, 0, time.UTC).Format("2006.01")
	for _, n := range names {
		if day, ok := strings.CutPrefix(n, IndexPrefix); ok {
			if retentionDays > 0 && validDate(day, "2006.01.02") && day < dayCutoff {
				out = append(out, n)
			}
			continue
		}
		if rest, ok := strings.CutPrefix(n, RollupPrefix); ok && rollupMonths > 0 {
			i := strings.LastIndexByte(rest, '-')
			if i <= 0 {
				continue
			}
			month := rest[i+1:]
			if validDate(month, "2006.01") && month < monthCutoff {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// validDate reports whether s is exactly a date in layout (zero padded, so
// that string order is time order).
func validDate(s, layout string) bool {
	t, err := time.Parse(layout, s)
	return err == nil && t.Format(layout) == s
}

// ListIndices returns the names of the saver's indices (raw and rollup).
func ListIndices(ctx context.Context, es *elastic.Client) ([]string, error) {
	var names []string
	for _, pattern := range []string{IndexPrefix + "*", RollupPrefix + "*"} {
		rows, err := es.CatIndices().Index(pattern).Columns("index").Do(ctx)
		if err != nil {
			if elastic.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("saver: list indices %s: %w", pattern, err)
		}
		for _, r := range rows {
			names = append(names, r.Index)
		}
	}
	slices.Sort(names)
	return names, nil
}

// RetentionPlan lists the indices retention would delete now (for
// -dry-run-retention).
func RetentionPlan(ctx context.Context, es *elastic.Client, cfg *ElasticsearchConfig, now time.Time) ([]string, error) {
	names, err := ListIndices(ctx, es)
	if err != nil {
		return nil, err
	}
	return ExpiredIndices(names, now, cfg.RetentionDays, cfg.RollupRetentionMonths), nil
}

// ApplyRetention deletes what RetentionPlan lists, one index at a time, and
// returns the names deleted.
func ApplyRetention(ctx context.Context, es *elastic.Client, cfg *ElasticsearchConfig, now time.Time) ([]string, error) {
	plan, err := RetentionPlan(ctx, es, cfg, now)
	if err != nil {
		return nil, err
	}
	var deleted []string
	for _, name := range plan {
		if _, err := es.DeleteIndex(name).Do(ctx); err != nil && !elastic.IsNotFound(err) {
			return deleted, fmt.Errorf("saver: delete index %s: %w", name, err)
		}
		deleted = append(deleted, name)
	}
	return deleted, nil
}

func (s *Saver) retentionLoop(ctx context.Context) {
	e := &s.cfg.Elasticsearch
	if e.RetentionDays == 0 && e.RollupRetentionMonths == 0 {
		return
	}
	t := time.NewTimer(time.Minute) // first run soon after start, when the consumer is busy catching up
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 5*e.RequestTimeout.D())
		deleted, err := ApplyRetention(rctx, s.es, e, s.now())
		cancel()
		s.m.retention.Add(float64(len(deleted)))
		if len(deleted) > 0 {
			s.logger.Info("retention deleted indices", "indices", deleted, "retention_days", e.RetentionDays)
		}
		if err != nil && ctx.Err() == nil {
			s.logger.Warn("retention failed, retrying at the next run", "err", err)
		}
		t.Reset(e.RetentionInterval.D())
	}
}
