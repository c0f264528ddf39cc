// Package auprom exports an activeusers.Tracker's counts to Prometheus.
//
//	reg.MustRegister(auprom.MustNewCollector(tracker))
//
// exposes, on every scrape, one gauge per window from a single Counts call:
//
//	# HELP active_users Distinct accounts active within the window (last activity at most that long ago).
//	# TYPE active_users gauge
//	active_users{window="24h"} 48211
//	active_users{window="7d"} 190355
//
// Give the metric your application's prefix with WithNamespace
// ("gateway_active_users"), as Prometheus's naming guidance asks. The window
// series are nested — everyone in the 24h figure is also in the 7d one — so
// never sum across window. Per-instance figures cannot be summed across pods
// either (an account that reached two pods counts in both); with WithCluster
// every pod reports the cluster's figure, so aggregate with max, not sum:
//
//	max without (instance, pod) (gateway_active_users{window="24h"})
//
// Daily, weekly and monthly active users: keep 30 days and export the three
// windows (a window may not exceed the tracker's retention):
//
//	t := activeusers.New(activeusers.WithRetention(30 * 24 * time.Hour))
//	col := auprom.MustNewCollector(t, auprom.WithWindows(24*time.Hour, 7*24*time.Hour, 30*24*time.Hour))
//
// which exposes window="24h", "7d" and "30d". Stickiness (DAU/MAU) in PromQL:
//
//	active_users{window="24h"} / ignoring(window) active_users{window="30d"}
//
// # Segments
//
// A tracker made WithDimensions("plan", "platform") is exported from one
// CountsBy call a scrape: the same metric with one label per dimension, the
// overall series with every dimension label empty (which Prometheus stores as
// absent) and each segment's series with its own dimension's label set:
//
//	active_users{window="24h"} 48211
//	active_users{plan="free",window="24h"} 41002
//	active_users{plan="pro",window="24h"} 7300
//	active_users{platform="ios",window="24h"} 20017
//	active_users_values_folded_total{dimension="plan"} 0
//
// Select the overall figure with every dimension label empty —
// active_users{window="24h",plan="",platform=""} — and one dimension's
// breakdown with its label non-empty: active_users{window="24h",plan!=""}.
// An account on two platforms counts once in each, so a dimension's series
// need not sum to the overall one. The labels' values are bounded by the
// tracker's WithMaxValues, plus activeusers.OverflowValue; the counter says
// how many recordings were folded into it. Share of active users per plan,
// and DAU/MAU per plan:
//
//	active_users{window="24h",plan!=""} / ignoring(plan) group_left active_users{window="24h",plan="",platform=""}
//	active_users{window="24h",plan!=""} / ignoring(window) active_users{window="30d",plan!=""}
package auprom

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/activeusers/activeusers"
)

// DefaultWindows returns the windows exported unless WithWindows says
// otherwise: 24h and 7d. It returns a new slice each time, so no caller can
// change another's default.
func DefaultWindows() []time.Duration { return []time.Duration{24 * time.Hour, 7 * 24 * time.Hour} }

// An Option configures a Collector.
type Option func(*config)

type config struct {
	namespace, subsystem, name, help string
	constLabels                      prometheus.Labels
	windows                          []time.Duration
	cluster                          CountsFunc
	timeout                          time.Duration
}

// ClusterCounts is what a cluster-wide source reports: the counts, one per
// window; whether they are the whole cluster's (false: it fell back to this
// instance's own); how many instances the cluster knows and how many of those
// have their latest push whole in the figure; and this instance's clock
// offset from the cluster's reference. Its fields are those of
// auredis.Result, so auprom.ClusterCounts(r) converts one.
type ClusterCounts struct {
	Counts    []int
	Cluster   bool
	Instances int
	Complete  int
	// Settling is true while the cluster's registry is too new to know every
	// instance (after Redis lost or replaced it): no figure is complete.
	Settling    bool
	ClockOffset time.Duration
	// Dimensions is the breakdown by segment, for a tracker with dimensions;
	// a source that leaves it nil gets no segment series.
	Dimensions []activeusers.DimensionCounts
}

// CountsFunc is a source of counts other than the tracker. With auredis:
//
//	func(ctx context.Context, ws ...time.Duration) (auprom.ClusterCounts, error) {
//		r, err := cluster.CountsOrLocal(ctx, ws...)
//		return auprom.ClusterCounts(r), err
//	}
type CountsFunc func(ctx context.Context, windows ...time.Duration) (ClusterCounts, error)

// WithCluster makes the collector report counts from fn, given timeout per
// scrape, instead of the tracker's own, and adds four gauges so that a
// dashboard never shows a partial or local figure as the cluster's:
//
//   - <name>_cluster_reachable: 1 while the counts are the cluster's, 0 while
//     fn falls back to the local ones;
//   - <name>_cluster_complete: 1 while they are the cluster's and every
//     instance it knows has its latest push in them (and the cluster's
//     registry is not settling after Redis lost or replaced it);
//   - <name>_cluster_instances{state="known"|"complete"}: how many instances
//     the cluster knows, and how many of those are in the figure whole;
//   - <name>_cluster_clock_offset_seconds: the cluster's reference clock
//     minus this instance's.
//
// Alert on min(<name>_cluster_complete) == 0 for longer than a few push
// intervals. Default: the tracker's own counts, no extra gauges.
func WithCluster(fn CountsFunc, timeout time.Duration) Option {
	return func(c *config) { c.cluster, c.timeout = fn, timeout }
}

// WithWindows sets the windows exported, each as one sample labelled
// window="5m", "24h", "7d"…. Default: DefaultWindows() (24h and 7d).
func WithWindows(ws ...time.Duration) Option { return func(c *config) { c.windows = ws } }

// WithNamespace and WithSubsystem prefix the metric name, as in
// prometheus.GaugeOpts. Default: none.
func WithNamespace(ns string) Option { return func(c *config) { c.namespace = ns } }

// WithSubsystem: see WithNamespace.
func WithSubsystem(s string) Option { return func(c *config) { c.subsystem = s } }

// WithName sets the metric name. Default: "active_users".
func WithName(name string) Option { return func(c *config) { c.name = name } }

// WithHelp sets the help text. Default: "Distinct accounts active within the
// window (last activity at most that long ago)."
func WithHelp(help string) Option { return func(c *config) { c.help = help } }

// WithConstLabels adds labels with fixed values to every sample, such as the
// service or the instance's role. Default: none.
func WithConstLabels(l prometheus.Labels) Option { return func(c *config) { c.constLabels = l } }

// Collector is a prometheus.Collector reporting a Tracker's distinct counts.
// Each Collect makes exactly one Counts call, which walks the tracker one
// shard at a time: a scrape costs one pass over the tables and never holds
// up the tracker's Seen for longer than one shard's part of it.
type Collector struct {
	t       *activeusers.Tracker
	desc    *prometheus.Desc
	windows []time.Duration
	labels  []string
	dims    []string // the tracker's dimensions: a label each
	folded  *prometheus.Desc
	cluster CountsFunc
	timeout time.Duration
	// With WithCluster:
	reachable, complete, instances, offset *prometheus.Desc
}

// NewCollector returns a Collector of t's counts. It returns an error for a
// nil tracker, an invalid metric name or label, and for windows that are
// duplicated, not positive, not whole seconds or longer than t's retention —
// so that a bad configuration fails at start-up, never as a broken exposition
// at scrape time.
func NewCollector(t *activeusers.Tracker, opts ...Option) (*Collector, error) {
	c := config{name: "active_users", help: "Distinct accounts active within the window (last activity at most that long ago).", windows: DefaultWindows()}
	for _, o := range opts {
		o(&c)
	}
	if t == nil {
		return nil, fmt.Errorf("auprom: nil *activeusers.Tracker")
	}
	if err := t.CheckWindows(c.windows...); err != nil {
		return nil, fmt.Errorf("auprom: %w", err)
	}
	// Prometheus now accepts any UTF-8 name, but names outside the classic
	// [a-zA-Z_:][a-zA-Z0-9_:]* need quoting in PromQL and break older tooling:
	// refuse them here, where the mistake is made.
	fq := prometheus.BuildFQName(c.namespace, c.subsystem, c.name)
	if !model.LegacyValidation.IsValidMetricName(fq) {
		return nil, fmt.Errorf("auprom: %q is not a valid metric name", fq)
	}
	dims := t.Dimensions()
	for l := range c.constLabels {
		if l == "window" || slices.Contains(dims, l) {
			return nil, fmt.Errorf("auprom: the const label %q clashes with the window or a dimension label", l)
		}
		if !model.LegacyValidation.IsValidLabelName(l) {
			return nil, fmt.Errorf("auprom: %q is not a valid label name", l)
		}
	}
	col := &Collector{
		t:       t,
		desc:    prometheus.NewDesc(fq, c.help, append([]string{"window"}, dims...), c.constLabels),
		dims:    dims,
		windows: append([]time.Duration(nil), c.windows...),
		cluster: c.cluster,
		timeout: c.timeout,
	}
	if c.cluster != nil {
		if c.timeout <= 0 {
			return nil, fmt.Errorf("auprom: WithCluster needs a positive timeout, not %v", c.timeout)
		}
		col.reachable = prometheus.NewDesc(fq+"_cluster_reachable",
			"1 if "+fq+" reports the whole cluster's counts, 0 if it fell back to this instance's own.", nil, c.constLabels)
		col.complete = prometheus.NewDesc(fq+"_cluster_complete",
			"1 if "+fq+" is the whole cluster's with every known instance's latest push in it, else 0.", nil, c.constLabels)
		col.instances = prometheus.NewDesc(fq+"_cluster_instances",
			"Instances the cluster knows (state=known) and those whose latest push is whole in "+fq+" (state=complete).", []string{"state"}, c.constLabels)
		col.offset = prometheus.NewDesc(fq+"_cluster_clock_offset_seconds",
			"The cluster's reference clock (the Redis server's) minus this instance's.", nil, c.constLabels)
	}
	if len(dims) > 0 {
		col.folded = prometheus.NewDesc(fq+"_values_folded_total",
			"Recordings whose value was folded into "+activeusers.OverflowValue+" (beyond the tracker's bound of values, too long or not UTF-8), by dimension.", []string{"dimension"}, c.constLabels)
	}
	for _, w := range c.windows {
		col.labels = append(col.labels, activeusers.WindowLabel(w))
	}
	// A Desc built from a bad name or label records the error rather than
	// panicking; surface it here, where it can be handled.
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(col); err != nil {
		return nil, fmt.Errorf("auprom: %w", err)
	}
	return col, nil
}

// MustNewCollector is NewCollector that panics on error, for wiring at start-up.
func MustNewCollector(t *activeusers.Tracker, opts ...Option) *Collector {
	c, err := NewCollector(t, opts...)
	if err != nil {
		panic(err)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	if c.folded != nil {
		ch <- c.folded
	}
	if c.cluster != nil {
		ch <- c.reachable
		ch <- c.complete
		ch <- c.instances
		ch <- c.offset
	}
}

// Collect implements prometheus.Collector with one Counts call (CountsBy,
// for a tracker with dimensions).
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	var counts []int
	var dims []activeusers.DimensionCounts
	if c.cluster == nil {
		if len(c.dims) == 0 {
			counts = c.t.Counts(c.windows...)
		} else {
			b := c.t.CountsBy(c.windows...)
			counts, dims = b.Overall, b.Dimensions
		}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		r, _ := c.cluster(ctx, c.windows...)
		cancel()
		if len(r.Counts) != len(c.windows) { // a broken source: say so, report local
			r = ClusterCounts{Counts: c.t.Counts(c.windows...)}
		}
		counts, dims = r.Counts, r.Dimensions
		whole := r.Cluster && !r.Settling && r.Complete == r.Instances
		ch <- prometheus.MustNewConstMetric(c.reachable, prometheus.GaugeValue, b2f(r.Cluster))
		ch <- prometheus.MustNewConstMetric(c.complete, prometheus.GaugeValue, b2f(whole))
		ch <- prometheus.MustNewConstMetric(c.instances, prometheus.GaugeValue, float64(r.Instances), "known")
		ch <- prometheus.MustNewConstMetric(c.instances, prometheus.GaugeValue, float64(r.Complete), "complete")
		ch <- prometheus.MustNewConstMetric(c.offset, prometheus.GaugeValue, r.ClockOffset.Seconds())
	}
	lv := make([]string, 1+len(c.dims)) // window, then each dimension's value or ""
	for i, n := range counts {
		lv[0] = c.labels[i]
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), lv...)
	}
	for _, d := range dims {
		k := slices.Index(c.dims, d.Name)
		if k < 0 {
			continue // a source's dimension the tracker does not have
		}
		for _, v := range d.Values {
			if len(v.Counts) != len(c.windows) {
				continue
			}
			lv[1+k] = v.Value
			for i, n := range v.Counts {
				lv[0] = c.labels[i]
				ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), lv...)
			}
		}
		lv[1+k] = ""
		ch <- prometheus.MustNewConstMetric(c.folded, prometheus.CounterValue, float64(d.Folded), d.Name)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
