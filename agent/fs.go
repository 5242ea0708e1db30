package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/falconet/falconet/metric"
	"github.com/shirou/gopsutil/v4/disk"
)

// pseudoFS are filesystem types that hold no user data; they are not reported.
var pseudoFS = map[string]bool{
	"proc": true, "sysfs": true, "devtmpfs": true, "devpts": true, "tmpfs": true, "ramfs": true,
	"cgroup": true, "cgroup2": true, "securityfs": true, "pstore": true, "debugfs": true,
	"tracefs": true, "configfs": true, "fusectl": true, "mqueue": true, "hugetlbfs": true,
	"bpf": true, "autofs": true, "binfmt_misc": true, "rpc_pipefs": true, "nsfs": true,
	"efivarfs": true, "selinuxfs": true, "squashfs": true, "iso9660": true, "devfs": true,
	"aufs": true, "overlay": true, "fuse.lxcfs": true, "fuse.gvfsd-fuse": true, "fuse.portal": true,
	"none": true, "rootfs": true, "nfsd": true,
}

// statfsTimeout bounds one statfs call: a dead network mount must not stall
// the round.
const statfsTimeout = 5 * time.Second

// NewFilesystemCollector reports usage and inodes of every mounted
// filesystem that holds data (pseudo filesystems skipped, each device once,
// under its shortest mount point): df.bytes.total, df.bytes.used,
// df.bytes.free, df.bytes.used.percent, df.inodes.total, df.inodes.used,
// df.inodes.free, df.inodes.used.percent, tagged mount= and fstype=. An
// overlay root (a container) is reported.
//
// A statfs that hangs (dead NFS server) is abandoned after 5 s: its mount is
// reported as an error and skipped until that call returns. The stuck call's
// goroutine is the one goroutine the agent cannot end: the kernel holds it.
func NewFilesystemCollector() CollectFunc {
	var (
		mu   sync.Mutex
		hung = make(map[string]bool) // mount points with a statfs still in the kernel
	)
	return func(ctx context.Context) ([]metric.Metric, error) {
		parts, err := disk.PartitionsWithContext(ctx, true)
		if err != nil {
			return nil, fmt.Errorf("filesystem: %w", err)
		}
		var ms []metric.Metric
		var errs []error
		for _, p := range dataFilesystems(parts) {
			mu.Lock()
			stuck := hung[p.Mountpoint]
			mu.Unlock()
			if stuck {
				errs = append(errs, fmt.Errorf("filesystem %s: previous statfs still blocked", p.Mountpoint))
				continue
			}
			type result struct {
				u   *disk.UsageStat
				err error
			}
			done := make(chan result, 1)
			mu.Lock()
			hung[p.Mountpoint] = true
			mu.Unlock()
			go func(mount string) {
				u, err := disk.UsageWithContext(context.Background(), mount)
				mu.Lock()
				delete(hung, mount)
				mu.Unlock()
				done <- result{u, err}
			}(p.Mountpoint)
			var r result
			select {
			case r = <-done:
			case <-time.After(statfsTimeout):
				errs = append(errs, fmt.Errorf("filesystem %s: statfs blocked for %v", p.Mountpoint, statfsTimeout))
				continue
			case <-ctx.Done():
				return ms, ctx.Err()
			}
			if r.err != nil {
				errs = append(errs, fmt.Errorf("filesystem %s: %w", p.Mountpoint, r.err))
				continue
			}
			u := r.u
			if u.Total == 0 {
				continue
			}
			tags := func() map[string]string { return map[string]string{"mount": p.Mountpoint, "fstype": p.Fstype} }
			ms = append(ms,
				gauge("df.bytes.total", float64(u.Total), tags()),
				gauge("df.bytes.used", float64(u.Used), tags()),
				gauge("df.bytes.free", float64(u.Free), tags()),
				gauge("df.bytes.used.percent", u.UsedPercent, tags()),
			)
			if u.InodesTotal > 0 { // btrfs and some others have no inode table
				ms = append(ms,
					gauge("df.inodes.total", float64(u.InodesTotal), tags()),
					gauge("df.inodes.used", float64(u.InodesUsed), tags()),
					gauge("df.inodes.free", float64(u.InodesFree), tags()),
					gauge("df.inodes.used.percent", u.InodesUsedPercent, tags()),
				)
			}
		}
		return ms, errors.Join(errs...)
	}
}

// dataFilesystems drops pseudo filesystems and repeated mounts of one device
// (bind mounts), keeping the shortest mount point.
func dataFilesystems(parts []disk.PartitionStat) []disk.PartitionStat {
	byDevice := make(map[string]int)
	var out []disk.PartitionStat
	for _, p := range parts {
		if pseudoFS[p.Fstype] && (p.Fstype != "overlay" || p.Mountpoint != "/") {
			continue
		}
		if strings.HasPrefix(p.Mountpoint, "/proc/") || strings.HasPrefix(p.Mountpoint, "/sys/") {
			continue
		}
		key := p.Device
		if p.Fstype == "overlay" || p.Device == "" {
			key = p.Mountpoint
		}
		if i, ok := byDevice[key]; ok {
			if len(p.Mountpoint) < len(out[i].Mountpoint) {
				out[i] = p
			}
			continue
		}
		byDevice[key] = len(out)
		out = append(out, p)
	}
	return out
}
