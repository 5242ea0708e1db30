package main

import (
	"context"
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// scalePoint is one step: a rate or a cardinality, and what relay and
// saver spent on it.
type scalePoint struct {
	Series          int     `json:"series"`
	TargetRate      float64 `json:"target_rate_metrics_per_s"`
	Metrics         int     `json:"metrics"`
	RelayRate       float64 `json:"relay_rate_metrics_per_s"` // acked by Kafka
	SaverRate       float64 `json:"saver_rate_metrics_per_s"` // stored in ES, from the step's start
	RelayCPUPer100k float64 `json:"relay_cpu_ms_per_100k"`
	SaverCPUPer100k float64 `json:"saver_cpu_ms_per_100k"`
	RelayRSSMB      float64 `json:"relay_rss_mb"`
	SaverRSSMB      float64 `json:"saver_rss_mb"`
}

type scalingResult struct {
	Rate   []scalePoint `json:"by_rate"`
	Series []scalePoint `json:"by_series"`
	Plots  []string     `json:"plots"`
}

// step feeds n metrics of g at rate (paced, in agent batches of 500) and
// measures until the saver stored them all.
func scaleStep(p *pipeline, f *feeder, g gen, rate float64, n int, storedBefore float64) (scalePoint, error) {
	pt := scalePoint{Series: g.series, TargetRate: rate, Metrics: n}
	const per = 500
	payloads := g.payloads(n, per)
	rc0, sc0, start := p.relay.cpu(), p.saver.cpu(), time.Now()
	i := 0
	f.paced(context.Background(), rate, time.Duration(float64(n)/rate*float64(time.Second))+time.Second, per, func(int) ([]byte, int) {
		if i >= len(payloads) {
			return nil, 0
		}
		i++
		return payloads[i-1], min(per, n-(i-1)*per)
	})
	if err := f.waitEmpty(5 * time.Minute); err != nil {
		return pt, err
	}
	relayDone := time.Now()
	rc1 := p.relay.cpu()
	if _, err := p.saver.waitStored(context.Background(), storedBefore+float64(n), 5*time.Minute); err != nil {
		return pt, err
	}
	saverDone := time.Now()
	per100k := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / (float64(n) / 1e5) }
	pt.RelayRate = float64(n) / relayDone.Sub(start).Seconds()
	pt.SaverRate = float64(n) / saverDone.Sub(start).Seconds()
	pt.RelayCPUPer100k = per100k(rc1 - rc0)
	pt.SaverCPUPer100k = per100k(p.saver.cpu() - sc0)
	pt.RelayRSSMB, pt.SaverRSSMB = p.relay.rssMB(), p.saver.rssMB()
	return pt, nil
}

func scalingPhase(b bins, dir, out string) (any, []figure, error) {
	res := &scalingResult{}
	p, err := startPipeline(b, dir, "")
	if err != nil {
		return res, nil, err
	}
	defer p.stop()
	f, err := newFeeder(p.relay.addr, 4)
	if err != nil {
		return res, nil, err
	}
	defer f.close()
	base := time.Now().Add(-7 * time.Hour).Unix()
	stepNo := 0
	nextGen := func(series int) gen {
		stepNo++
		return gen{series: series, base: base + int64(stepNo)*3100}
	}
	stored := 0.0
	for _, rate := range []float64{2_000, 10_000, 25_000, 50_000} {
		n := int(rate * 8)
		pt, err := scaleStep(p, f, nextGen(10_000), rate, n, stored)
		if err != nil {
			return res, nil, fmt.Errorf("rate %.0f: %w", rate, err)
		}
		stored += float64(n)
		res.Rate = append(res.Rate, pt)
		logf("scaling: %6.0f metrics/s (10k series): relay %.0f CPU-ms/100k, saver %.0f CPU-ms/100k (saver kept %.0f/s)", rate, pt.RelayCPUPer100k, pt.SaverCPUPer100k, pt.SaverRate)
	}
	for _, series := range []int{1_000, 100_000, 1_000_000} {
		n := max(300_000, series)
		pt, err := scaleStep(p, f, nextGen(series), 25_000, n, stored)
		if err != nil {
			return res, nil, fmt.Errorf("series %d: %w", series, err)
		}
		stored += float64(n)
		res.Series = append(res.Series, pt)
		logf("scaling: %7d series (25k metrics/s, %d metrics): relay %.0f CPU-ms/100k, saver %.0f CPU-ms/100k", series, n, pt.RelayCPUPer100k, pt.SaverCPUPer100k)
	}
	ratePNG, seriesPNG := filepath.Join(out, "scaling-rate.png"), filepath.Join(out, "scaling-series.png")
	if err := plotScaling(res.Rate, ratePNG, "CPU per 100k metrics vs metric rate (10k series)", "metric rate (metrics/s)", false,
		func(pt scalePoint) float64 { return pt.TargetRate }); err != nil {
		return res, nil, err
	}
	if err := plotScaling(res.Series, seriesPNG, "CPU per 100k metrics vs series cardinality (25k metrics/s)", "series (log)", true,
		func(pt scalePoint) float64 { return float64(pt.Series) }); err != nil {
		return res, nil, err
	}
	res.Plots = []string{"bench/scaling-rate.png", "bench/scaling-series.png"}
	lo, hi := res.Series[0], res.Series[len(res.Series)-1]
	rlo, rhi := res.Rate[0], res.Rate[len(res.Rate)-1]
	figs := []figure{
		{Name: "relay CPU/100k at 1M series", Value: hi.RelayCPUPer100k, Unit: "CPU-ms/100k", Anchor: "same at 1k series", AnchorVal: lo.RelayCPUPer100k,
			Ratio: hi.RelayCPUPer100k / lo.RelayCPUPer100k, Goal: "none in issue 15 (plot)", Note: "bench/scaling-series.png"},
		{Name: "saver CPU/100k at 1M series", Value: hi.SaverCPUPer100k, Unit: "CPU-ms/100k", Anchor: "same at 1k series", AnchorVal: lo.SaverCPUPer100k,
			Ratio: hi.SaverCPUPer100k / lo.SaverCPUPer100k, Goal: "none in issue 15 (plot)", Note: "bench/scaling-series.png"},
		{Name: fmt.Sprintf("relay CPU/100k at %.0fk metrics/s", rhi.TargetRate/1000), Value: rhi.RelayCPUPer100k, Unit: "CPU-ms/100k",
			Anchor: fmt.Sprintf("same at %.0fk/s", rlo.TargetRate/1000), AnchorVal: rlo.RelayCPUPer100k, Ratio: rhi.RelayCPUPer100k / rlo.RelayCPUPer100k,
			Goal: "none in issue 15 (plot)", Note: "bench/scaling-rate.png"},
		{Name: fmt.Sprintf("saver CPU/100k at %.0fk metrics/s", rhi.TargetRate/1000), Value: rhi.SaverCPUPer100k, Unit: "CPU-ms/100k",
			Anchor: fmt.Sprintf("same at %.0fk/s", rlo.TargetRate/1000), AnchorVal: rlo.SaverCPUPer100k, Ratio: rhi.SaverCPUPer100k / rlo.SaverCPUPer100k,
			Goal: "none in issue 15 (plot)", Note: fmt.Sprintf("bench/scaling-rate.png; the saver kept up at %.0f/s at this step", rhi.SaverRate)},
	}
	return res, figs, nil
}

// plotScaling draws relay and saver CPU per 100k metrics against x.
func plotScaling(pts []scalePoint, path, title, xlabel string, logX bool, x func(scalePoint) float64) error {
	pl := plot.New()
	pl.Title.Text = title
	pl.X.Label.Text = xlabel
	pl.Y.Label.Text = "CPU-ms per 100k metrics"
	pl.Y.Min = 0
	pl.Y.Tick.Marker = stepTicks{}
	if logX {
		pl.X.Scale = plot.LogScale{}
		pl.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	for _, s := range []struct {
		name string
		c    color.RGBA
		y    func(scalePoint) float64
	}{
		{"relay", color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 255}, func(p scalePoint) float64 { return p.RelayCPUPer100k }},
		{"saver", color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 255}, func(p scalePoint) float64 { return p.SaverCPUPer100k }},
	} {
		xys := make(plotter.XYs, len(pts))
		for i, p := range pts {
			xys[i] = plotter.XY{X: x(p), Y: s.y(p)}
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		line.Color, points.Color = s.c, s.c
		pl.Add(line, points)
		pl.Legend.Add(s.name, line, points)
	}
	pl.Legend.Left = true // bottom left: the lines run across the top
	pl.Add(plotter.NewGrid())
	return pl.Save(7*vg.Inch, 4.5*vg.Inch, path)
}

// stepTicks labels about six round steps (DefaultTicks labels only two on
// these ranges).
type stepTicks struct{}

func (stepTicks) Ticks(lo, hi float64) []plot.Tick {
	if hi <= lo {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', 4, 64)}}
	}
	step := math.Pow(10, math.Floor(math.Log10(hi-lo))-1)
	for (hi-lo)/step > 6 {
		switch {
		case (hi-lo)/(step*2) <= 6:
			step *= 2
		case (hi-lo)/(step*5) <= 6:
			step *= 5
		default:
			step *= 10
		}
	}
	var ts []plot.Tick
	for i := math.Ceil(lo / step); i*step <= hi; i++ {
		v := i * step
		ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', 6, 64)})
	}
	return ts
}
