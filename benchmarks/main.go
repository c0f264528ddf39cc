// Command benchmarks runs activeusers and the trackers a Go engineer would
// otherwise write side by side, on the same work in one process, and prints
// one table of medians with each figure's ratio to the single-mutex baseline
// and to the xsync tracker.
//
//	go run ./benchmarks                       # full run: about 25 minutes on 2 cores
//	go run ./benchmarks -quick                # under a minute, as CI runs it
//	go run ./benchmarks -runs 3 -charts docs  # the figures and charts in docs/
//
// Contenders are measured in turn within each run, and runs repeat, so that
// drift in a shared machine's speed falls on all of them alike.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/activeusers/activeusers"
)

type options struct {
	retention   time.Duration
	quick       bool
	parallel    []int
	shardSweep  []int
	charts      string
	replot      string
	runs        int
	benchtime   time.Duration
	sizes       []int
	latUsers    int
	latDur      time.Duration
	tailUsers   int // returning users held for the closed-loop tail
	tailGrow    int // new users the growing closed-loop tail ends at
	newUsers    int // inserts timed by each new-user Seen measurement
	tailCalls   int
	procs       []int
	contenders  map[string]bool
	bestShards  int
	jsonOut     bool
	benchOut    string
	seenUsers   int
	scrapeEvery time.Duration
	perMilli    int
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("benchmarks", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `benchmarks: activeusers and the trackers a Go engineer would otherwise write
(a map under one mutex, sync.Map, xsync's map), side by side on the same work
in one process: Seen, Counts, heap, GC, and Seen's latency during scrapes and
in closed loops while holding and while growing to 10M accounts. It prints one
table of medians with each figure's ratio to the mutex-map baseline and to xsync.

A full run takes about 25 minutes on a 2-core machine (-runs 3: about 15);
-quick takes under a minute. Charts are written only with -charts.

  go run ./benchmarks -quick
  go run ./benchmarks -runs 3 -charts docs -json > docs/benchmarks.json

Flags:
`)
		fs.PrintDefaults()
	}
	var o options
	var sizes, procs, names, parallel, sweep string
	fs.BoolVar(&o.quick, "quick", false, "small sizes and short runs: finishes in under a minute")
	fs.IntVar(&o.runs, "runs", 0, "runs of every measurement; the table shows medians (default 5, quick 3)")
	fs.DurationVar(&o.benchtime, "benchtime", 0, "time per Seen and Counts benchmark (default 1s, quick 100ms)")
	fs.StringVar(&sizes, "users", "", "comma-separated user counts for Counts and heap rows (default 100000,1000000,10000000; quick 100000)")
	fs.IntVar(&o.latUsers, "latency-users", 0, "users held during the latency run (default 1000000, quick 200000)")
	fs.DurationVar(&o.latDur, "latency-time", 0, "length of each latency run (default 3s, quick 500ms)")
	fs.IntVar(&o.tailUsers, "tail-users", 0, "returning users for the closed-loop tail (default 1000000, quick 200000)")
	fs.IntVar(&o.newUsers, "new-users", 0, "inserts each new-user Seen measurement times, into one fresh tracker per contender (default 2097152, quick 262144)")
	fs.IntVar(&o.tailGrow, "tail-grow", 0, "new users the growing closed-loop tail ends at (default 10000000, quick 1000000)")
	fs.IntVar(&o.tailCalls, "tail-calls", 0, "timed calls of the returning closed-loop tail (default 10000000, quick 1000000)")
	fs.StringVar(&procs, "procs", "", "comma-separated GOMAXPROCS values for the Seen rows (default: the current one)")
	fs.StringVar(&names, "contenders", "", "comma-separated contenders to run (default all: activeusers,activeusers+plan,activeusers+plan+platform,mutexmap,syncmap,xsync,floor)")
	fs.IntVar(&o.bestShards, "shards", 0, "also run activeusers with this shard count (default: the best of -shard-sweep, if not the default)")
	fs.StringVar(&parallel, "goroutines", "", "comma-separated goroutines per GOMAXPROCS for the Seen sweep (default 1,4,16,64; quick 16)")
	fs.StringVar(&sweep, "shard-sweep", "", "comma-separated shard counts to measure Seen at (default 1,4,16,64,256; quick 4,64)")
	fs.StringVar(&o.charts, "charts", "", "write SVG charts into this folder (default: none)")
	fs.StringVar(&o.replot, "replot", "", "only write the charts (-charts) of a run saved with -json, measuring nothing")
	fs.BoolVar(&o.jsonOut, "json", false, "print JSON instead of the table")
	fs.DurationVar(&o.retention, "retention", 7*24*time.Hour, "activeusers' retention, and the longest window every Counts asks for (720h for MAU)")
	fs.StringVar(&o.benchOut, "bench-out", "", "also write every run's Seen and Counts figures to this file in Go benchmark format, for benchstat")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.retention < 24*time.Hour || o.retention > activeusers.MaxRetention || o.retention%time.Second != 0 {
		return o, fmt.Errorf("-retention %v: must be whole seconds, from 24h to %v", o.retention, activeusers.MaxRetention)
	}
	o.seenUsers, o.scrapeEvery, o.perMilli = 1<<20, 100*time.Millisecond, 50
	def := func(v *int, full, quick int) {
		if *v == 0 {
			*v = full
			if o.quick {
				*v = quick
			}
		}
	}
	def(&o.runs, 5, 3)
	def(&o.latUsers, 1_000_000, 200_000)
	def(&o.tailUsers, 1_000_000, 200_000)
	def(&o.tailGrow, 10_000_000, 1_000_000)
	def(&o.newUsers, newUsersPer, 1<<18)
	def(&o.tailCalls, 10_000_000, 1_000_000)
	if o.benchtime == 0 {
		o.benchtime = map[bool]time.Duration{false: time.Second, true: 100 * time.Millisecond}[o.quick]
	}
	if o.latDur == 0 {
		o.latDur = map[bool]time.Duration{false: 3 * time.Second, true: 500 * time.Millisecond}[o.quick]
	}
	if o.quick {
		o.seenUsers = 1 << 17
	}
	var err error
	if sizes == "" {
		sizes = map[bool]string{false: "100000,1000000,10000000", true: "100000"}[o.quick]
	}
	if o.sizes, err = intList(sizes); err != nil {
		return o, fmt.Errorf("-users: %w", err)
	}
	if parallel == "" {
		parallel = map[bool]string{false: "1,4,16,64", true: "16"}[o.quick]
	}
	if o.parallel, err = intList(parallel); err != nil {
		return o, fmt.Errorf("-goroutines: %w", err)
	}
	if sweep == "" {
		sweep = map[bool]string{false: "1,4,16,64,256", true: "4,64"}[o.quick]
	}
	if o.shardSweep, err = intList(sweep); err != nil {
		return o, fmt.Errorf("-shard-sweep: %w", err)
	}
	if procs == "" {
		procs = strconv.Itoa(runtime.GOMAXPROCS(0))
	}
	if o.procs, err = intList(procs); err != nil {
		return o, fmt.Errorf("-procs: %w", err)
	}
	if names != "" {
		o.contenders = map[string]bool{}
		for _, n := range strings.Split(names, ",") {
			o.contenders[strings.TrimSpace(n)] = true
		}
	}
	if o.runs < 1 || o.latUsers < 1 || o.newUsers < 1 || o.bestShards < 0 {
		return o, fmt.Errorf("-runs, -latency-users, -new-users and -shards must be positive")
	}
	return o, nil
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive whole number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// Result is one row of the table: a metric for one contender over all runs.
type Result struct {
	Metric    string    `json:"metric"`
	Unit      string    `json:"unit"`
	Contender string    `json:"contender"`
	Runs      []float64 `json:"runs"`
	Median    float64   `json:"median"`
	// Ratios of the baseline's and xsync's medians to this one: above 1 means
	// this contender is that many times faster or smaller.
	VsMutexmap float64 `json:"vs_mutexmap,omitempty"`
	VsXsync    float64 `json:"vs_xsync,omitempty"`
	// OfPlain is, for activeusers counting by segment, its median over plain
	// activeusers': how many times the plain tracker's cost (time, memory).
	OfPlain float64 `json:"of_plain,omitempty"`
	// Group and X place the row on a chart: the series of one group, one per
	// contender, plotted against X.
	Group string  `json:"group,omitempty"`
	X     float64 `json:"x,omitempty"`
}

// at places a row on a chart.
type at struct {
	group string
	x     float64
}

type collector struct {
	metrics    []string // in first-seen order
	contenders []string // in first-seen order
	results    map[string]*Result
	bench      io.Writer
}

func (c *collector) add(metric, unit, contender string, v float64, on ...at) {
	key := metric + "\x00" + contender
	r, ok := c.results[key]
	if !ok {
		r = &Result{Metric: metric, Unit: unit, Contender: contender}
		if len(on) > 0 {
			r.Group, r.X = on[0].group, on[0].x
		}
		c.results[key] = r
		if !slices.Contains(c.metrics, metric) {
			c.metrics = append(c.metrics, metric)
		}
		if !slices.Contains(c.contenders, contender) {
			c.contenders = append(c.contenders, contender)
		}
	}
	r.Runs = append(r.Runs, v)
}

// keys lists the results by metric, then contender.
func (c *collector) keys() []string {
	var ks []string
	for _, m := range c.metrics {
		for _, n := range c.contenders {
			if _, ok := c.results[m+"\x00"+n]; ok {
				ks = append(ks, m+"\x00"+n)
			}
		}
	}
	return ks
}

func (c *collector) benchLine(name string, r testing.BenchmarkResult) {
	if c.bench != nil {
		fmt.Fprintf(c.bench, "Benchmark%s-%d\t%d\t%.2f ns/op\t%d B/op\t%d allocs/op\n",
			name, runtime.GOMAXPROCS(0), r.N, float64(r.T.Nanoseconds())/float64(r.N), r.AllocedBytesPerOp(), r.AllocsPerOp())
	}
}

func (c *collector) finish() []Result {
	med := map[string]float64{}
	keys := c.keys()
	out := make([]Result, 0, len(keys))
	for _, k := range keys {
		r := c.results[k]
		r.Median = median(r.Runs)
		med[k] = r.Median
	}
	for _, k := range keys {
		r := c.results[k]
		if b, ok := med[r.Metric+"\x00mutexmap"]; ok && r.Median > 0 {
			r.VsMutexmap = b / r.Median
		}
		if x, ok := med[r.Metric+"\x00xsync"]; ok && r.Median > 0 {
			r.VsXsync = x / r.Median
		}
		if p, ok := med[r.Metric+"\x00activeusers"]; ok && p > 0 && strings.HasPrefix(r.Contender, "activeusers+") {
			r.OfPlain = r.Median / p
		}
		out = append(out, *r)
	}
	return out
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0) // asked for the usage, which is printed
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmarks:", err)
		os.Exit(2)
	}
	if o.replot != "" {
		if o.charts == "" {
			fmt.Fprintln(os.Stderr, "benchmarks: -replot needs -charts, the folder to write into")
			os.Exit(2)
		}
		if err := replot(o.replot, o.charts); err != nil {
			fmt.Fprintln(os.Stderr, "benchmarks:", err)
			os.Exit(1)
		}
		return
	}
	testing.Init()
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchmarks:", err)
		os.Exit(1)
	}
}

// timedInserts runs a new-user benchmark over exactly o.newUsers inserts
// rather than for the benchtime. The cost of an insert depends on how full
// the tracker is (and, for xsync, on whether its last doubling falls inside
// the run), so a count that b.N decides measured each contender at a
// different size: with a second's benchtime b.N landed between 2.1M and
// 3.6M, and xsync's figure moved from 461 to 844 ns with it.
func timedInserts(o options, f func(b *testing.B)) testing.BenchmarkResult {
	return fixedCount(o, o.newUsers, f)
}

// fixedCount runs benchmark f over exactly n operations.
func fixedCount(o options, n int, f func(b *testing.B)) testing.BenchmarkResult {
	flag.Set("test.benchtime", strconv.Itoa(n)+"x")
	defer flag.Set("test.benchtime", o.benchtime.String())
	return testing.Benchmark(f)
}

// newUsersOrder is the order in which run measures the contenders' new
// users: cs in a loop of their own, one right after another, reversed in
// every other run. This ratio moved most from run to run (xsync's figure
// 481–912 ns across full runs), and a drift of this shared machine's speed
// between two adjacent measurements, taken in alternating order, favours
// neither side.
func newUsersOrder(cs []Contender, run int) []Contender {
	order := slices.Clone(cs)
	if run%2 == 0 {
		slices.Reverse(order)
	}
	return order
}

func run(o options, w io.Writer) error {
	flag.Set("test.benchtime", o.benchtime.String())
	setRetention(o.retention)
	defer setRetention(7 * 24 * time.Hour)
	var cs []Contender
	for _, c := range contenders() {
		if o.contenders == nil || o.contenders[c.Name] {
			cs = append(cs, c)
		}
	}
	if len(cs) == 0 {
		return fmt.Errorf("no contender matches -contenders")
	}
	col := &collector{results: map[string]*Result{}}
	if o.benchOut != "" {
		f, err := os.Create(o.benchOut)
		if err != nil {
			return err
		}
		defer f.Close()
		fmt.Fprintf(f, "goos: %s\ngoarch: %s\npkg: github.com/activeusers/activeusers/benchmarks\ncpu: %s\n", runtime.GOOS, runtime.GOARCH, cpuName())
		col.bench = f
	}
	start := time.Now()
	defaultProcs := runtime.GOMAXPROCS(0)
	best := o.bestShards
	for run := 1; run <= o.runs; run++ {
		// The shard sweep: the tuning guide's data, and the best count.
		if o.contenders == nil || o.contenders["activeusers"] {
			for _, n := range o.shardSweep {
				c := withShards(n)
				progress("run %d/%d  shard sweep: %d shards", run, o.runs, n)
				tr := filled(c, o.seenUsers)
				r := testing.Benchmark(func(b *testing.B) { SeenReturning(b, tr, o.seenUsers, 16) })
				tr.Close()
				col.add(fmt.Sprintf("Seen, returning users, %d shards", n), "ns/op", "activeusers", nsPerOp(r), at{"shards-returning", float64(n)})
				col.benchLine(fmt.Sprintf("Seen/returning/shards=%d/impl=activeusers", n), r)
				r = timedInserts(o, func(b *testing.B) { SeenNew(b, c) })
				col.add(fmt.Sprintf("Seen, new users, %d shards", n), "ns/op", "activeusers", nsPerOp(r), at{"shards-new", float64(n)})
				col.benchLine(fmt.Sprintf("Seen/new/shards=%d/impl=activeusers", n), r)
			}
			if run == 1 && best == 0 {
				best = bestShards(col, o.shardSweep)
				progress("best shard count: %d (default %d)", best, activeusers.DefaultShards)
			}
			if run == 1 && best != activeusers.DefaultShards && best > 0 {
				cs = slices.Insert(cs, 1, withShards(best))
			}
		}
		for _, procs := range o.procs {
			runtime.GOMAXPROCS(procs)
			for _, c := range cs {
				tr := filled(c, o.seenUsers)
				for _, par := range o.parallel {
					progress("run %d/%d  GOMAXPROCS=%d  %-24s Seen, %d goroutines a core", run, o.runs, procs, c.Name, par)
					r := testing.Benchmark(func(b *testing.B) { SeenReturning(b, tr, o.seenUsers, par) })
					m := fmt.Sprintf("Seen, returning users, %d goroutines a core (GOMAXPROCS=%d)", par, procs)
					col.add(m, "ns/op", c.Name, nsPerOp(r), at{fmt.Sprintf("goroutines-procs%d", procs), float64(par)})
					col.benchLine(fmt.Sprintf("Seen/returning/procs=%d/goroutines=%d/impl=%s", procs, par, c.Name), r)
					if par == 16 || len(o.parallel) == 1 {
						col.add(fmt.Sprintf("Seen allocs/op (GOMAXPROCS=%d)", procs), "allocs/op", c.Name, float64(r.AllocsPerOp()))
					}
				}
				tr.Close()
			}
			for _, c := range newUsersOrder(cs, run) {
				progress("run %d/%d  GOMAXPROCS=%d  %-24s Seen, new users", run, o.runs, procs, c.Name)
				r := timedInserts(o, func(b *testing.B) { SeenNew(b, c) })
				col.add(fmt.Sprintf("Seen, new users, 16 goroutines a core (GOMAXPROCS=%d)", procs), "ns/op", c.Name, nsPerOp(r))
				col.benchLine(fmt.Sprintf("Seen/new/procs=%d/impl=%s", procs, c.Name), r)
			}
		}
		runtime.GOMAXPROCS(defaultProcs)
		for _, n := range o.sizes {
			for _, c := range cs {
				if c.Name == "floor" {
					continue
				}
				progress("run %d/%d  %-24s Counts over %d users", run, o.runs, c.Name, n)
				tr := filled(c, n)
				r := testing.Benchmark(func(b *testing.B) { CountsOver(b, tr, n) })
				col.add(fmt.Sprintf("Counts, %s users", human(n)), "ms", c.Name, nsPerOp(r)/1e6, at{"counts", float64(n)})
				col.benchLine(fmt.Sprintf("Counts/users=%d/impl=%s", n, c.Name), r)
				if n <= 1_000_000 { // larger sizes do not fit in cache anyway
					progress("run %d/%d  %-24s Counts over %d users, cache cold", run, o.runs, c.Name, n)
					r = fixedCount(o, coldCalls, func(b *testing.B) { CountsOverCold(b, tr, n) })
					col.add(fmt.Sprintf("Counts, %s users, cache cold", human(n)), "ms", c.Name, nsPerOp(r)/1e6)
					col.benchLine(fmt.Sprintf("Counts/users=%d/cache=cold/impl=%s", n, c.Name), r)
				}
				tr.Close()
			}
			dropPool() // the shared uids would be scanned by every GC below
			for _, c := range cs {
				if c.Name == "floor" {
					continue
				}
				progress("run %d/%d  %-24s heap at %d users", run, o.runs, c.Name, n)
				h := MeasureHeap(c, n)
				col.add(fmt.Sprintf("heap per user, %s users", human(n)), "bytes", c.Name, h.BytesPerUser, at{"heap", float64(n)})
				col.add(fmt.Sprintf("GC-scanned heap per user, %s users", human(n)), "bytes", c.Name, h.ScanBytesPerUser)
				col.add(fmt.Sprintf("full GC, %s users", human(n)), "ms", c.Name, float64(h.FullGC)/1e6, at{"gc", float64(n)})
			}
		}
		for _, c := range cs {
			if c.Name == "floor" {
				continue
			}
			progress("run %d/%d  %-24s Seen latency during scrapes of %d users", run, o.runs, c.Name, o.latUsers)
			l := MeasureLatency(c, o.latUsers, o.perMilli, o.scrapeEvery, o.latDur)
			m := fmt.Sprintf("Seen during scrapes of %s users", human(o.latUsers))
			for _, q := range []struct {
				name string
				p    float64
				d    time.Duration
			}{{"p50", 50, l.P50}, {"p90", 90, l.P90}, {"p99", 99, l.P99}, {"p99.9", 99.9, l.P999}, {"p99.99", 99.99, l.P9999}} {
				col.add(m+", "+q.name, "µs", c.Name, float64(q.d)/1e3, at{"latency", q.p})
			}
		}
		// The closed-loop tail: 16 goroutines a core, each timing every one of
		// its own Seen calls, of returning users and while growing from empty.
		// The floor shows what the harness and the scheduler alone cost.
		for _, c := range cs {
			if c.Name != "activeusers" && c.Name != "activeusers+plan" && c.Name != "xsync" && c.Name != "floor" {
				continue
			}
			for _, sc := range []struct {
				group, label string
				users        int
				grow         bool
			}{
				{"tail-returning", fmt.Sprintf("%s returning users", human(o.tailUsers)), o.tailUsers, false},
				{"tail-growing", fmt.Sprintf("growing to %s new users", human(o.tailGrow)), o.tailGrow, true},
			} {
				progress("run %d/%d  %-24s Seen closed loop, %s", run, o.runs, c.Name, sc.label)
				tl := MeasureTail(c, sc.users, o.tailCalls, 16, sc.grow)
				m := "Seen closed loop, " + sc.label
				for _, q := range []struct {
					name string
					x    float64
					d    time.Duration
				}{{"p50", 0, tl.P50}, {"p99.9", 1, tl.P999}, {"p99.99", 2, tl.P9999}, {"max", 3, tl.Max}} {
					col.add(m+", "+q.name, "µs", c.Name, float64(q.d)/1e3, at{sc.group, q.x})
				}
			}
		}
		dropPool() // the growing tail's uid strings would weigh on every later GC
	}
	results := col.finish()
	progress("done in %v", time.Since(start).Round(time.Second))
	if o.charts != "" {
		if err := writeCharts(o.charts, machine()+", "+time.Now().Format("2006-01-02"), results); err != nil {
			return err
		}
		progress("charts written to %s", o.charts)
	}
	if o.jsonOut {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"machine": machine(), "date": time.Now().Format("2006-01-02"), "best_shards": best, "results": results})
	}
	printTable(w, o, results)
	if best > 0 {
		fmt.Fprintf(w, "best shard count for Seen of returning users: %d (default %d)\n", best, activeusers.DefaultShards)
	}
	return nil
}

// bestShards is the shard count of the sweep whose Seen of returning users
// was fastest so far.
func bestShards(col *collector, sweep []int) int {
	best, bestNs := 0, 0.0
	for _, n := range sweep {
		r := col.results[fmt.Sprintf("Seen, returning users, %d shards", n)+"\x00activeusers"]
		if r == nil {
			continue
		}
		if ns := median(r.Runs); best == 0 || ns < bestNs {
			best, bestNs = n, ns
		}
	}
	return best
}

func nsPerOp(r testing.BenchmarkResult) float64 { return float64(r.T.Nanoseconds()) / float64(r.N) }

func human(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

func machine() string {
	return fmt.Sprintf("%s, %d cores (GOMAXPROCS=%d), %s %s/%s", cpuName(), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func cpuName() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				return strings.TrimSpace(v)
			}
		}
	}
	return "unknown CPU"
}

func printTable(w io.Writer, o options, results []Result) {
	fmt.Fprintf(w, "%s; median of %d runs; %s\n\n", machine(), o.runs, time.Now().Format("2006-01-02"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tcontender\tmedian\tunit\tvs mutexmap\tvs xsync\tof plain\t")
	last := ""
	for _, r := range results {
		metric := r.Metric
		if metric == last {
			metric = ""
		} else if last != "" {
			fmt.Fprintln(tw, "\t\t\t\t\t\t\t")
		}
		last = r.Metric
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", metric, r.Contender, num(r.Median), r.Unit, ratio(r.VsMutexmap), ratio(r.VsXsync), ratio(r.OfPlain))
	}
	tw.Flush()
	fmt.Fprintln(w, "\nratios: the other's median over this one's; above 1× this contender is faster or smaller.")
	fmt.Fprintln(w, "of plain: activeusers counting by segment (ten plans; and three platforms), its median over plain activeusers': the cost of segments.")
}

func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func ratio(v float64) string {
	if v == 0 {
		return "-"
	}
	return num(v) + "×"
}
