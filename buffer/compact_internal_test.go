package buffer

import (
	"testing"
	"time"
)

func TestCompactDue(t *testing.T) {
	const MiB = 1 << 20
	def := DefaultConfig() // 64 MiB and half the file
	off := def
	off.CompactFreeBytes, off.CompactFreeRatio = 0, 0
	for _, tc := range []struct {
		name                  string
		cfg                   Config
		free, file, live      int64
		sinceIdle             time.Duration
		wantDue, wantIdleRule bool
	}{
		{"idle file, nothing free", def, 0, MiB, 10 << 10, time.Hour, false, false},
		{"drained 100 MB backlog: 36 MB file nearly all free", def, 35 * MiB, 36 * MiB, 200 << 10, time.Hour, true, true},
		{"drained, but an idle compaction ran 10 s ago", def, 35 * MiB, 36 * MiB, 200 << 10, 10 * time.Second, false, false},
		{"drained, under 1 MiB free: not worth it", def, MiB / 2, MiB, 100 << 10, time.Hour, false, false},
		{"large backlog half drained: copy would cost 40 MB to free 40 MB", def, 40 * MiB, 80 * MiB, 38 * MiB, time.Hour, false, false},
		{"large backlog, 64 MiB free and half the file: the configured rule", def, 70 * MiB, 120 * MiB, 48 * MiB, time.Hour, true, false},
		{"large backlog, 64 MiB free but under half the file", def, 70 * MiB, 200 * MiB, 128 * MiB, time.Hour, false, false},
		{"small live data but free under half the file", def, 3 * MiB, 8 * MiB, 4 * MiB, time.Hour, false, false},
		{"automatic compaction off", off, 35 * MiB, 36 * MiB, 0, time.Hour, false, false},
	} {
		due, idle := compactDue(tc.cfg, tc.free, tc.file, tc.live, tc.sinceIdle)
		if due != tc.wantDue || idle != tc.wantIdleRule {
			t.Errorf("%s: got due=%v idle=%v, want due=%v idle=%v", tc.name, due, idle, tc.wantDue, tc.wantIdleRule)
		}
	}
}
