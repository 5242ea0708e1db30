package agent

import (
	"context"
	"math"
	"os"
	"testing"
	"time"

	"github.com/falconet/falconet/metric"
	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
)

// byName indexes metrics by name (the last one wins for tagged series).
func byName(ms []metric.Metric) map[string]metric.Metric {
	out := make(map[string]metric.Metric, len(ms))
	for _, m := range ms {
		out[m.Name] = m
	}
	return out
}

// twoRounds runs a collector twice (rate collectors need a baseline).
func twoRounds(t *testing.T, fn CollectFunc) (first, second []metric.Metric) {
	t.Helper()
	ctx := context.Background()
	first, err := fn(ctx)
	if err != nil {
		t.Fatalf("first round: %v", err)
	}
	// Let the kernel counters move; rates need elapsed time, not a sync.
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		_ = math.Sqrt(float64(time.Now().UnixNano())) // burn a little CPU so cpu times advance
	}
	second, err = fn(ctx)
	if err != nil {
		t.Fatalf("second round: %v", err)
	}
	return first, second
}

func checkValid(t *testing.T, ms []metric.Metric) {
	t.Helper()
	Stamp(ms, "test-host", time.Now(), 10*time.Second)
	for _, m := range ms {
		if err := m.Validate(); err != nil {
			t.Errorf("invalid metric %+v: %v", m, err)
		}
	}
}

func inRange(t *testing.T, ms map[string]metric.Metric, name string, lo, hi float64) {
	t.Helper()
	m, ok := ms[name]
	if !ok {
		t.Errorf("%s missing", name)
		return
	}
	if m.Value < lo || m.Value > hi {
		t.Errorf("%s = %v, want within [%v, %v]", name, m.Value, lo, hi)
	}
}

func TestCPUCollector(t *testing.T) {
	first, second := twoRounds(t, NewCPUCollector())
	if len(first) != 0 {
		t.Errorf("first round gave %d metrics, want none (baseline only)", len(first))
	}
	checkValid(t, second)
	got := byName(second)
	sum := 0.0
	for _, n := range []string{"cpu.user", "cpu.nice", "cpu.system", "cpu.idle", "cpu.iowait", "cpu.irq", "cpu.softirq", "cpu.steal"} {
		inRange(t, got, n, 0, 100)
		sum += got[n].Value
	}
	if math.Abs(sum-100) > 0.01 {
		t.Errorf("modes sum to %v%%, want 100%%", sum)
	}
	inRange(t, got, "cpu.busy", 0, 100)
	inRange(t, got, "cpu.guest", 0, 100)
}

func TestCPUPercents(t *testing.T) {
	a := cpu.TimesStat{User: 100, System: 50, Idle: 800, Iowait: 10, Steal: 5}
	tests := []struct {
		name string
		b    cpu.TimesStat
		want map[string]float64
	}{
		{"busy user", cpu.TimesStat{User: 150, System: 50, Idle: 850, Iowait: 10, Steal: 5},
			map[string]float64{"cpu.user": 50, "cpu.idle": 50, "cpu.busy": 50, "cpu.iowait": 0}},
		{"iowait and steal", cpu.TimesStat{User: 100, System: 50, Idle: 800, Iowait: 40, Steal: 15},
			map[string]float64{"cpu.iowait": 75, "cpu.steal": 25, "cpu.busy": 100}},
		{"iowait went backwards counts as zero", cpu.TimesStat{User: 100, System: 50, Idle: 900, Iowait: 8, Steal: 5},
			map[string]float64{"cpu.idle": 100, "cpu.iowait": 0}},
		{"guest is inside user, not added to the total", cpu.TimesStat{User: 200, System: 50, Idle: 900, Iowait: 10, Steal: 5, Guest: 100},
			map[string]float64{"cpu.user": 50, "cpu.guest": 50, "cpu.idle": 50}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := byName(cpuPercents(a, tt.b))
			for n, want := range tt.want {
				if math.Abs(got[n].Value-want) > 1e-9 {
					t.Errorf("%s = %v, want %v", n, got[n].Value, want)
				}
			}
		})
	}
	if ms := cpuPercents(a, a); ms != nil {
		t.Errorf("no time passed: got %d metrics, want none", len(ms))
	}
}

func TestLoadCollector(t *testing.T) {
	ms, err := NewLoadCollector()(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, ms)
	got := byName(ms)
	for _, n := range []string{"load.1min", "load.5min", "load.15min"} {
		inRange(t, got, n, 0, 10_000)
	}
}

func TestMemoryCollector(t *testing.T) {
	ms, err := NewMemoryCollector()(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, ms)
	got := byName(ms)
	total := got["mem.memtotal"].Value
	if total < 64<<20 || total > 1<<50 {
		t.Fatalf("mem.memtotal = %v bytes, want a real machine's size", total)
	}
	inRange(t, got, "mem.memused", 1, total)
	inRange(t, got, "mem.memfree", 0, total)
	inRange(t, got, "mem.memavailable", 0, total)
	inRange(t, got, "mem.memused.percent", 0, 100)
	if s := got["mem.memused.percent"].Value + got["mem.memfree.percent"].Value; math.Abs(s-100) > 1e-6 {
		t.Errorf("used%% + free%% = %v, want 100", s)
	}
	if _, ok := got["mem.swaptotal"]; !ok {
		t.Errorf("mem.swaptotal missing")
	}
	if got["mem.swaptotal"].Value == 0 {
		if _, ok := got["mem.swapused.percent"]; ok {
			t.Errorf("mem.swapused.percent reported without swap")
		}
	}
}

func TestFilesystemCollector(t *testing.T) {
	ms, err := NewFilesystemCollector()(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, ms)
	if len(ms) == 0 {
		t.Fatal("no filesystem reported; want at least the root")
	}
	mounts := map[string]bool{}
	for _, m := range ms {
		mounts[m.Tags["mount"]] = true
		if pseudoFS[m.Tags["fstype"]] && m.Tags["fstype"] != "overlay" {
			t.Errorf("pseudo filesystem %s (%s) reported", m.Tags["mount"], m.Tags["fstype"])
		}
		switch m.Name {
		case "df.bytes.used.percent", "df.inodes.used.percent":
			if m.Value < 0 || m.Value > 100 {
				t.Errorf("%s %s = %v, want within [0, 100]", m.Name, m.Tags["mount"], m.Value)
			}
		case "df.bytes.total":
			if m.Value <= 0 {
				t.Errorf("%s %s = %v, want > 0", m.Name, m.Tags["mount"], m.Value)
			}
		}
	}
	if !mounts["/"] {
		t.Errorf("root filesystem missing; reported %v", mounts)
	}
}

func TestDataFilesystems(t *testing.T) {
	parts := []disk.PartitionStat{
		{Device: "proc", Mountpoint: "/proc", Fstype: "proc"},
		{Device: "/dev/vda", Mountpoint: "/run/netns", Fstype: "ext4"},
		{Device: "/dev/vda", Mountpoint: "/", Fstype: "ext4"},
		{Device: "tmpfs", Mountpoint: "/dev/shm", Fstype: "tmpfs"},
		{Device: "overlay", Mountpoint: "/var/lib/docker/overlay2/x/merged", Fstype: "overlay"},
		{Device: "/dev/vdb1", Mountpoint: "/data", Fstype: "xfs"},
		{Device: "cgroup", Mountpoint: "/sys/fs/cgroup/cpu", Fstype: "cgroup"},
	}
	got := dataFilesystems(parts)
	want := []string{"/", "/data"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want mounts %v", got, want)
	}
	for i := range want {
		if got[i].Mountpoint != want[i] {
			t.Errorf("mount %d = %s, want %s", i, got[i].Mountpoint, want[i])
		}
	}
	// A container's overlay root is its data.
	got = dataFilesystems([]disk.PartitionStat{{Device: "overlay", Mountpoint: "/", Fstype: "overlay"}})
	if len(got) != 1 {
		t.Errorf("overlay root: got %v, want it reported", got)
	}
}

func TestDiskIOCollector(t *testing.T) {
	first, second := twoRounds(t, NewDiskIOCollector())
	for _, m := range first {
		if m.Name != "disk.io.in_progress" {
			t.Errorf("first round gave rate %s, want only gauges", m.Name)
		}
	}
	checkValid(t, second)
	for _, m := range second {
		if skipDisk(m.Tags["device"]) {
			t.Errorf("device %s should be skipped", m.Tags["device"])
		}
		if m.Value < 0 {
			t.Errorf("%s %s = %v, want >= 0", m.Name, m.Tags["device"], m.Value)
		}
		if m.Name == "disk.io.util" && m.Value > 100 {
			t.Errorf("disk.io.util %s = %v, want <= 100", m.Tags["device"], m.Value)
		}
	}
}

func TestNetCollector(t *testing.T) {
	first, second := twoRounds(t, NewNetCollector())
	if len(first) != 0 {
		t.Errorf("first round gave %d metrics, want none", len(first))
	}
	checkValid(t, second)
	ifaces, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, e := range ifaces {
		if e.Name() != "lo" {
			want[e.Name()] = true
		}
	}
	got := map[string]bool{}
	for _, m := range second {
		got[m.Tags["iface"]] = true
	}
	for name := range want {
		if !got[name] {
			t.Errorf("interface %s (in /sys/class/net) not reported; reported %v", name, got)
		}
	}
	for _, m := range second {
		if m.Tags["iface"] == "lo" {
			t.Errorf("loopback reported")
		}
		if m.Value < 0 || m.Value > 1e12 {
			t.Errorf("%s %s = %v, want within [0, 1e12]", m.Name, m.Tags["iface"], m.Value)
		}
	}
}

func TestProcessCollector(t *testing.T) {
	_, second := twoRounds(t, NewProcessCollector())
	checkValid(t, second)
	got := byName(second)
	inRange(t, got, "proc.total", 2, 1e7) // at least init and this test
	inRange(t, got, "proc.running", 0, 1e7)
	inRange(t, got, "proc.blocked", 0, 1e7)
	inRange(t, got, "proc.forks", 0, 1e7)
	inRange(t, got, "cpu.switches", 0, 1e9)
}

func TestUptimeCollector(t *testing.T) {
	ms, err := NewUptimeCollector()(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, ms)
	inRange(t, byName(ms), "system.uptime", 1, 100*365*86400)
}

// BenchmarkCollectRound is one full round of every built-in collector.
func BenchmarkCollectRound(b *testing.B) {
	var fns []CollectFunc
	for _, bi := range Builtins() {
		fns = append(fns, bi.New())
	}
	ctx := context.Background()
	n := 0
	for b.Loop() {
		n = 0
		for _, fn := range fns {
			ms, err := fn(ctx)
			if err != nil {
				b.Fatal(err)
			}
			n += len(ms)
		}
	}
	b.ReportMetric(float64(n), "metrics/round")
}

// BenchmarkCollector is one round of each built-in collector.
func BenchmarkCollector(b *testing.B) {
	ctx := context.Background()
	for _, bi := range Builtins() {
		b.Run(bi.Name, func(b *testing.B) {
			fn := bi.New()
			for b.Loop() {
				if _, err := fn(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
