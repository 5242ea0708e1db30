package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/falconet/falconet/metric"
	"github.com/shirou/gopsutil/v4/load"
)

// NewProcessCollector reports proc.total (processes), proc.running,
// proc.blocked (in uninterruptible sleep), and the per-second rates
// proc.forks and cpu.switches (context switches).
func NewProcessCollector() CollectFunc {
	var mu sync.Mutex
	rates := newRateTracker()
	return func(ctx context.Context) ([]metric.Metric, error) {
		mu.Lock()
		defer mu.Unlock()
		s, err := load.MiscWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("processes: %w", err)
		}
		now := time.Now()
		ms := []metric.Metric{
			gauge("proc.total", float64(s.ProcsTotal), nil),
			gauge("proc.running", float64(s.ProcsRunning), nil),
			gauge("proc.blocked", float64(s.ProcsBlocked), nil),
		}
		if v, ok := rates.rate("forks", uint64(s.ProcsCreated), now); ok {
			ms = append(ms, gauge("proc.forks", v, nil))
		}
		if v, ok := rates.rate("ctxt", uint64(s.Ctxt), now); ok {
			ms = append(ms, gauge("cpu.switches", v, nil))
		}
		rates.endRound()
		return ms, nil
	}
}
