package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// chart describes one SVG: the rows of a group, one line per contender.
type chart struct {
	file, title, x, y string
	group             string
	logX, logY        bool
	xTicks            []float64 // labelled ticks on X, if not the default
	xLabel            func(float64) string
}

func charts(procs int) []chart {
	pow := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	return []chart{
		{file: "seen-goroutines.svg", title: "Seen of returning users, by goroutines per core", x: "goroutines per GOMAXPROCS (log)",
			y: "ns per Seen (log)", group: fmt.Sprintf("goroutines-procs%d", procs), logX: true, logY: true, xTicks: []float64{1, 4, 16, 64}, xLabel: pow},
		{file: "seen-shards.svg", title: "activeusers Seen by shard count (tuning)", x: "initial shards (log)",
			y: "ns per Seen", group: "shards-*", logX: true, xTicks: []float64{1, 4, 16, 64, 256}, xLabel: pow},
		{file: "heap-users.svg", title: "Heap kept per user, after the callers' uid strings are gone", x: "users (log)",
			y: "bytes per user (log)", group: "heap", logX: true, logY: true, xTicks: []float64{1e5, 1e6, 1e7}, xLabel: func(v float64) string { return human(int(v)) }},
		{file: "seen-latency.svg", title: "One Seen call while Counts runs every 100 ms", x: "percentile",
			y: "µs per Seen (log)", group: "latency", logY: true},
		{file: "seen-tail.svg", title: "One Seen call in a closed loop, 16 goroutines a core", x: "percentile",
			y: "µs per Seen (log)", group: "tail-*", logY: true},
	}
}

func writeCharts(dir string, results []Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	made := machine() + ", " + time.Now().Format("2006-01-02")
	for _, c := range charts(maxProcs(results)) {
		series := map[string]plotter.XYs{}
		var names []string
		for _, r := range results {
			if !match(c.group, r.Group) || r.Median <= 0 {
				continue
			}
			name := r.Contender
			switch c.group {
			case "shards-*":
				name = map[string]string{"shards-returning": "returning users", "shards-new": "new users"}[r.Group]
			case "tail-*":
				name += map[string]string{"tail-returning": ", returning", "tail-growing": ", growing"}[r.Group]
			}
			if _, ok := series[name]; !ok {
				names = append(names, name)
			}
			series[name] = append(series[name], plotter.XY{X: r.X, Y: r.Median})
		}
		if len(names) == 0 {
			continue
		}
		p := plot.New()
		p.Title.Text = c.title + "\n" + made
		p.X.Label.Text, p.Y.Label.Text = c.x, c.y
		if c.logX {
			p.X.Scale = plot.LogScale{}
		}
		if c.logY {
			p.Y.Scale = plot.LogScale{}
			p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		}
		if c.group == "latency" {
			// Percentiles as evenly spaced categories.
			labels := []string{"p50", "p90", "p99", "p99.9", "p99.99"}
			for _, n := range names {
				for i := range series[n] {
					series[n][i].X = float64(slices.Index([]float64{50, 90, 99, 99.9, 99.99}, series[n][i].X))
				}
			}
			p.NominalX(labels...)
		} else if c.group == "tail-*" {
			p.NominalX("p50", "p99.9", "p99.99", "max") // X is already the index
		} else if c.xTicks != nil {
			var ticks []plot.Tick
			for _, v := range c.xTicks {
				ticks = append(ticks, plot.Tick{Value: v, Label: c.xLabel(v)})
			}
			p.X.Tick.Marker = plot.ConstantTicks(ticks)
		}
		var args []any
		for _, n := range names {
			pts := series[n]
			slices.SortFunc(pts, func(a, b plotter.XY) int {
				switch {
				case a.X < b.X:
					return -1
				case a.X > b.X:
					return 1
				}
				return 0
			})
			args = append(args, n, pts)
		}
		if err := plotutil.AddLinePoints(p, args...); err != nil {
			return fmt.Errorf("%s: %w", c.file, err)
		}
		p.Legend.Top = true
		if err := p.Save(9*vg.Inch, 5.5*vg.Inch, filepath.Join(dir, c.file)); err != nil {
			return fmt.Errorf("%s: %w", c.file, err)
		}
	}
	return nil
}

func match(pattern, group string) bool {
	if m, _ := filepath.Match(pattern, group); m {
		return true
	}
	return false
}

// maxProcs is the largest GOMAXPROCS the goroutine sweep ran at.
func maxProcs(results []Result) int {
	best := 1
	for _, r := range results {
		var p int
		if _, err := fmt.Sscanf(r.Group, "goroutines-procs%d", &p); err == nil && p > best {
			best = p
		}
	}
	return best
}
