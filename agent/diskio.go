package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/falconet/falconet/metric"
	"github.com/shirou/gopsutil/v4/disk"
)

// skipDiskPrefixes are block devices that are not disks.
var skipDiskPrefixes = []string{"loop", "ram", "zram", "fd", "sr"}

// NewDiskIOCollector reports per block device, tagged device=, rates since
// the previous round: disk.io.read_requests and disk.io.write_requests (per
// second), disk.io.read_bytes and disk.io.write_bytes (bytes per second),
// disk.io.util (percent of time busy), disk.io.avgqu-sz (average queue
// length), disk.io.await (ms per completed request), and the gauge
// disk.io.in_progress. The first round only takes the baseline; a device's
// counters that go backwards (reset) give no rate for that round.
func NewDiskIOCollector() CollectFunc {
	var mu sync.Mutex
	rates := newRateTracker()
	return func(ctx context.Context) ([]metric.Metric, error) {
		mu.Lock()
		defer mu.Unlock()
		stats, err := disk.IOCountersWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("diskio: %w", err)
		}
		now := time.Now()
		names := make([]string, 0, len(stats))
		for name := range stats {
			names = append(names, name)
		}
		sort.Strings(names)
		var ms []metric.Metric
		for _, name := range names {
			if skipDisk(name) {
				continue
			}
			s := stats[name]
			tags := func() map[string]string { return map[string]string{"device": name} }
			r := func(field string, v uint64) (float64, bool) { return rates.rate(name+"\x00"+field, v, now) }
			reads, ok1 := r("reads", s.ReadCount)
			writes, ok2 := r("writes", s.WriteCount)
			rbytes, ok3 := r("rbytes", s.ReadBytes)
			wbytes, ok4 := r("wbytes", s.WriteBytes)
			busy, ok5 := r("iotime", s.IoTime)           // ms per second
			weighted, ok6 := r("weighted", s.WeightedIO) // ms per second
			waited, ok7 := r("iowait", s.ReadTime+s.WriteTime)
			ms = append(ms, gauge("disk.io.in_progress", float64(s.IopsInProgress), tags()))
			if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) {
				continue
			}
			await := 0.0
			if ios := reads + writes; ios > 0 {
				await = waited / ios
			}
			util := busy / 10
			if util > 100 {
				util = 100
			}
			ms = append(ms,
				gauge("disk.io.read_requests", reads, tags()),
				gauge("disk.io.write_requests", writes, tags()),
				gauge("disk.io.read_bytes", rbytes, tags()),
				gauge("disk.io.write_bytes", wbytes, tags()),
				gauge("disk.io.util", util, tags()),
				gauge("disk.io.avgqu-sz", weighted/1000, tags()),
				gauge("disk.io.await", await, tags()),
			)
		}
		rates.endRound()
		return ms, nil
	}
}

func skipDisk(name string) bool {
	for _, p := range skipDiskPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
