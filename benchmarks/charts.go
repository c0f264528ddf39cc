package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
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
		{file: "counts-users.svg", title: "One Counts call (three windows) against the users held", x: "users (log)",
			y: "ms per Counts (log)", group: "counts", logX: true, logY: true, xTicks: []float64{1e5, 1e6, 1e7}, xLabel: func(v float64) string { return human(int(v)) }},
		{file: "heap-users.svg", title: "Heap kept per user, after the callers' uid strings are gone", x: "users (log)",
			y: "bytes per user (log)", group: "heap", logX: true, logY: true, xTicks: []float64{1e5, 1e6, 1e7}, xLabel: func(v float64) string { return human(int(v)) }},
		{file: "seen-latency.svg", title: "One Seen call while Counts runs every 100 ms", x: "percentile",
			y: "µs per Seen (log)", group: "latency", logY: true},
		{file: "seen-tail.svg", title: "One Seen call in a closed loop, 16 goroutines a core", x: "percentile",
			y: "µs per Seen (log)", group: "tail-*", logY: true},
	}
}

// writeCharts writes the charts of results into dir; made names the machine
// and the day they were measured.
func writeCharts(dir, made string, results []Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
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
		p.Title.TextStyle.Font.Size = vg.Points(11)
		p.X.Label.Text, p.Y.Label.Text = c.x, c.y
		if c.logX {
			p.X.Scale = plot.LogScale{}
		}
		if c.logY {
			p.Y.Scale = plot.LogScale{}
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
		legend := plot.NewLegend()
		legend.Top, legend.Left = true, true
		legend.TextStyle.Font.Size = vg.Points(10)
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
			line, points, err := plotter.NewLinePoints(pts)
			if err != nil {
				return fmt.Errorf("%s: %w", c.file, err)
			}
			col, dashed := style(n)
			line.Color, line.Width, points.Color, points.Shape = col, vg.Points(1.5), col, draw.CircleGlyph{}
			if dashed {
				line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			}
			p.Add(line, points)
			legend.Add(n, line, points)
		}
		if c.logY {
			p.Y.Tick.Marker = logTicks{}
		}
		if err := save(p, legend, names, filepath.Join(dir, c.file)); err != nil {
			return fmt.Errorf("%s: %w", c.file, err)
		}
	}
	return nil
}

// replot writes the charts of a run saved with -json into dir, without
// measuring anything again.
func replot(file, dir string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var run struct {
		Machine, Date string
		Results       []Result
	}
	if err := json.Unmarshal(b, &run); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if len(run.Results) == 0 {
		return fmt.Errorf("%s: no results: not a run saved with -json", file)
	}
	return writeCharts(dir, run.Machine+", "+run.Date, run.Results)
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

// save writes p as an SVG, its legend in a column of its own to the right,
// never over the data. Its text names the plot's font and then generic
// families, so that a viewer without the font draws it in one it has
// (embedding the font would make each chart half a megabyte).
func save(p *plot.Plot, legend plot.Legend, names []string, file string) error {
	const w, h = 10 * vg.Inch, 5.5 * vg.Inch
	c := vgsvg.New(w, h)
	dc := draw.New(c)
	lw := vg.Length(0)
	for _, n := range names {
		lw = max(lw, legend.TextStyle.Width(n))
	}
	lw += legend.ThumbnailWidth + legend.Padding*2 + vg.Points(60)
	p.Draw(draw.Crop(dc, 0, -lw, 0, 0))
	legend.Draw(draw.Crop(dc, w-lw+vg.Points(8), 0, 0, -vg.Points(40))) // below the title
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return err
	}
	svg := strings.ReplaceAll(b.String(), "font-family:Liberation Serif;", "font-family:'Liberation Serif','DejaVu Serif','Times New Roman',serif;")
	return os.WriteFile(file, []byte(svg), 0o644)
}

// palette is the Okabe–Ito colours, told apart by readers with any kind of
// colour blindness, one per contender.
var palette = map[string]color.Color{
	"activeusers":               color.RGBA{213, 94, 0, 255},    // vermillion
	"activeusers+plan":          color.RGBA{204, 121, 167, 255}, // reddish purple
	"activeusers+plan+platform": color.RGBA{230, 159, 0, 255},   // orange
	"xsync":                     color.RGBA{0, 114, 178, 255},   // blue
	"syncmap":                   color.RGBA{0, 158, 115, 255},   // bluish green
	"mutexmap":                  color.RGBA{0, 0, 0, 255},       // black
	"floor":                     color.RGBA{86, 180, 233, 255},  // sky blue
	"returning users":           color.RGBA{213, 94, 0, 255},
	"new users":                 color.RGBA{0, 114, 178, 255},
}

// style is a series' colour, by its contender, and whether it is dashed (the
// growing half of the tail chart, and activeusers with another shard count).
func style(name string) (color.Color, bool) {
	base, suffix, _ := strings.Cut(name, ", ")
	base, shards, _ := strings.Cut(base, "/")
	if c, ok := palette[base]; ok {
		return c, suffix == "growing" || shards != ""
	}
	return color.RGBA{128, 128, 128, 255}, suffix == "growing"
}

// logTicks labels a log axis at every power of ten over a range of more
// than four decades, at 1, 2 and 5 times each over two to four, and at every
// integer multiple over less, so that the labels are numbers a reader can
// use and never crowd.
type logTicks struct{}

func (logTicks) Ticks(min, max float64) []plot.Tick {
	lo, hi := math.Floor(math.Log10(min)), math.Ceil(math.Log10(max))
	steps := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9}
	switch decades := math.Log10(max / min); {
	case decades > 4:
		steps = []float64{1}
	case decades > 1.5:
		steps = []float64{1, 2, 5}
	}
	var ticks []plot.Tick
	for e := lo; e <= hi; e++ {
		for m := 1.0; m < 10; m++ {
			v := m * math.Pow(10, e)
			if v < min || v > max {
				continue
			}
			t := plot.Tick{Value: v}
			if slices.Contains(steps, m) {
				t.Label = strconv.FormatFloat(v, 'f', -1, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}
