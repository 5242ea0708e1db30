package agent

import (
	"context"
	"fmt"

	"github.com/falconet/falconet/metric"
	"github.com/shirou/gopsutil/v4/host"
)

// NewUptimeCollector reports system.uptime, seconds since boot.
func NewUptimeCollector() CollectFunc {
	return func(ctx context.Context) ([]metric.Metric, error) {
		up, err := host.UptimeWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("uptime: %w", err)
		}
		return []metric.Metric{gauge("system.uptime", float64(up), nil)}, nil
	}
}
