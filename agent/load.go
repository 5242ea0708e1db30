package agent

import (
	"context"
	"fmt"

	"github.com/falconet/falconet/metric"
	"github.com/shirou/gopsutil/v4/load"
)

// NewLoadCollector reports the load averages: load.1min, load.5min,
// load.15min.
func NewLoadCollector() CollectFunc {
	return func(ctx context.Context) ([]metric.Metric, error) {
		a, err := load.AvgWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		return []metric.Metric{
			gauge("load.1min", a.Load1, nil),
			gauge("load.5min", a.Load5, nil),
			gauge("load.15min", a.Load15, nil),
		}, nil
	}
}
