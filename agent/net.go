package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/falconet/falconet/metric"
	"github.com/shirou/gopsutil/v4/net"
)

// NewNetCollector reports per network interface except loopback, tagged
// iface=, per-second rates since the previous round: net.if.in.bytes,
// net.if.out.bytes, net.if.in.packets, net.if.out.packets, net.if.in.errors,
// net.if.out.errors, net.if.in.dropped, net.if.out.dropped. Counters that
// wrap (32-bit drivers) are handled; a reset (interface re-created) gives no
// rate for that round.
func NewNetCollector() CollectFunc {
	var mu sync.Mutex
	rates := newRateTracker()
	return func(ctx context.Context) ([]metric.Metric, error) {
		mu.Lock()
		defer mu.Unlock()
		stats, err := net.IOCountersWithContext(ctx, true)
		if err != nil {
			return nil, fmt.Errorf("net: %w", err)
		}
		now := time.Now()
		var ms []metric.Metric
		for _, s := range stats {
			if s.Name == "lo" {
				continue
			}
			for _, c := range []struct {
				name string
				v    uint64
			}{
				{"net.if.in.bytes", s.BytesRecv}, {"net.if.out.bytes", s.BytesSent},
				{"net.if.in.packets", s.PacketsRecv}, {"net.if.out.packets", s.PacketsSent},
				{"net.if.in.errors", s.Errin}, {"net.if.out.errors", s.Errout},
				{"net.if.in.dropped", s.Dropin}, {"net.if.out.dropped", s.Dropout},
			} {
				if v, ok := rates.rate(s.Name+"\x00"+c.name, c.v, now); ok {
					ms = append(ms, gauge(c.name, v, map[string]string{"iface": s.Name}))
				}
			}
		}
		rates.endRound()
		return ms, nil
	}
}
