package agent

import (
	"context"
	"fmt"
	"sync"

	"github.com/falconet/falconet/metric"
	"github.com/shirou/gopsutil/v4/cpu"
)

// NewCPUCollector reports the share of CPU time spent in each mode since the
// previous round, in percent of all CPUs: cpu.user, cpu.nice, cpu.system,
// cpu.idle, cpu.iowait, cpu.irq, cpu.softirq, cpu.steal, cpu.guest and
// cpu.busy (100 - idle). The first round only takes the baseline.
func NewCPUCollector() CollectFunc {
	var (
		mu   sync.Mutex
		prev *cpu.TimesStat
	)
	return func(ctx context.Context) ([]metric.Metric, error) {
		mu.Lock()
		defer mu.Unlock()
		ts, err := cpu.TimesWithContext(ctx, false)
		if err != nil {
			return nil, fmt.Errorf("cpu: %w", err)
		}
		if len(ts) == 0 {
			return nil, fmt.Errorf("cpu: no totals in /proc/stat")
		}
		cur := ts[0]
		last := prev
		prev = &cur
		if last == nil {
			return nil, nil
		}
		return cpuPercents(*last, cur), nil
	}
}

// cpuPercents computes per-mode percentages between two samples. Linux
// already counts guest time inside user (and guest_nice inside nice), so the
// total leaves them out. A mode whose counter went backwards (iowait does on
// some kernels) counts as zero; no time passed gives nothing.
func cpuPercents(a, b cpu.TimesStat) []metric.Metric {
	d := func(x, y float64) float64 {
		if y < x {
			return 0
		}
		return y - x
	}
	user, nice, system := d(a.User, b.User), d(a.Nice, b.Nice), d(a.System, b.System)
	idle, iowait := d(a.Idle, b.Idle), d(a.Iowait, b.Iowait)
	irq, softirq, steal := d(a.Irq, b.Irq), d(a.Softirq, b.Softirq), d(a.Steal, b.Steal)
	guest := d(a.Guest, b.Guest) + d(a.GuestNice, b.GuestNice)
	total := user + nice + system + idle + iowait + irq + softirq + steal
	if total <= 0 {
		return nil
	}
	p := func(v float64) float64 { return percent(v, total) }
	return []metric.Metric{
		gauge("cpu.user", p(user), nil),
		gauge("cpu.nice", p(nice), nil),
		gauge("cpu.system", p(system), nil),
		gauge("cpu.idle", p(idle), nil),
		gauge("cpu.iowait", p(iowait), nil),
		gauge("cpu.irq", p(irq), nil),
		gauge("cpu.softirq", p(softirq), nil),
		gauge("cpu.steal", p(steal), nil),
		gauge("cpu.guest", p(guest), nil),
		gauge("cpu.busy", 100-p(idle), nil),
	}
}
