package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPlotScalingWritesPNG(t *testing.T) {
	pts := []scalePoint{{Series: 1000, TargetRate: 2000, RelayCPUPer100k: 1312, SaverCPUPer100k: 2750},
		{Series: 100_000, TargetRate: 10_000, RelayCPUPer100k: 1150, SaverCPUPer100k: 1612},
		{Series: 1_000_000, TargetRate: 50_000, RelayCPUPer100k: 848, SaverCPUPer100k: 1212}}
	dir := t.TempDir()
	for _, logX := range []bool{false, true} {
		path := filepath.Join(dir, map[bool]string{false: "rate.png", true: "series.png"}[logX])
		if err := plotScaling(pts, path, "test", "x", logX, func(p scalePoint) float64 {
			if logX {
				return float64(p.Series)
			}
			return p.TargetRate
		}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || len(b) < 8 || string(b[1:4]) != "PNG" {
			t.Fatalf("%s: not a PNG (%d bytes, %v)", path, len(b), err)
		}
	}
}

func TestStepTicks(t *testing.T) {
	for _, tc := range []struct{ lo, hi float64 }{{0, 2750}, {0, 7}, {0, 120000}, {0, 0.5}} {
		ts := stepTicks{}.Ticks(tc.lo, tc.hi)
		if len(ts) < 2 || len(ts) > 7 {
			t.Errorf("Ticks(%g, %g): %d ticks, want 2 to 7", tc.lo, tc.hi, len(ts))
		}
	}
}

func TestPercentile(t *testing.T) {
	xs := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if got := percentile(xs, 0.5); got != 5 {
		t.Errorf("p50 = %g, want 5", got)
	}
	if got := percentile(xs, 0.99); got != 10 {
		t.Errorf("p99 = %g, want 10", got)
	}
}
