package agent

import (
	"context"
	"fmt"

	"github.com/falconet/falconet/metric"
	"github.com/shirou/gopsutil/v4/mem"
)

// NewMemoryCollector reports memory and swap in bytes and percent:
// mem.memtotal, mem.memused, mem.memfree, mem.memavailable, mem.buffers,
// mem.cached, mem.memused.percent, mem.memfree.percent (available / total),
// mem.swaptotal, mem.swapused, mem.swapfree and, when there is swap,
// mem.swapused.percent and mem.swapfree.percent.
func NewMemoryCollector() CollectFunc {
	return func(ctx context.Context) ([]metric.Metric, error) {
		v, err := mem.VirtualMemoryWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("memory: %w", err)
		}
		total := float64(v.Total)
		ms := []metric.Metric{
			gauge("mem.memtotal", total, nil),
			gauge("mem.memused", float64(v.Used), nil),
			gauge("mem.memfree", float64(v.Free), nil),
			gauge("mem.memavailable", float64(v.Available), nil),
			gauge("mem.buffers", float64(v.Buffers), nil),
			gauge("mem.cached", float64(v.Cached), nil),
			gauge("mem.memused.percent", percent(total-float64(v.Available), total), nil),
			gauge("mem.memfree.percent", percent(float64(v.Available), total), nil),
		}
		s, err := mem.SwapMemoryWithContext(ctx)
		if err != nil {
			return ms, fmt.Errorf("memory: swap: %w", err)
		}
		ms = append(ms,
			gauge("mem.swaptotal", float64(s.Total), nil),
			gauge("mem.swapused", float64(s.Used), nil),
			gauge("mem.swapfree", float64(s.Free), nil),
		)
		if s.Total > 0 {
			ms = append(ms,
				gauge("mem.swapused.percent", percent(float64(s.Used), float64(s.Total)), nil),
				gauge("mem.swapfree.percent", percent(float64(s.Free), float64(s.Total)), nil),
			)
		}
		return ms, nil
	}
}
