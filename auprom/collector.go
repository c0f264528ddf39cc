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
package auprom

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/activeusers/activeusers"
)

// DefaultWindows are the windows exported unless WithWindows says otherwise.
var DefaultWindows = []time.Duration{24 * time.Hour, 7 * 24 * time.Hour}

// An Option configures a Collector.
type Option func(*config)

type config struct {
	namespace, subsystem, name, help string
	constLabels                      prometheus.Labels
	windows                          []time.Duration
	cluster                          CountsFunc
	timeout                          time.Duration
}

// CountsFunc is a source of counts other than the tracker, such as
// (*auredis.Cluster).CountsOrLocal: it returns the counts, whether they are
// the whole cluster's (false: it fell back to this instance's own), and the
// error that made it fall back.
type CountsFunc func(ctx context.Context, windows ...time.Duration) (counts []int, cluster bool, err error)

// WithCluster makes the collector report counts from fn, given timeout per
// scrape, instead of the tracker's own, and adds a gauge
// <name>_cluster_reachable: 1 while the counts are the cluster's, 0 while fn
// falls back to the local ones — so a dashboard can tell a cluster-wide figure
// from a single instance's. Default: the tracker's own counts, no extra gauge.
func WithCluster(fn CountsFunc, timeout time.Duration) Option {
	return func(c *config) { c.cluster, c.timeout = fn, timeout }
}

// WithWindows sets the windows exported, each as one sample labelled
// window="5m", "24h", "7d"…. Default: DefaultWindows (24h and 7d).
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
// segment at a time: a scrape costs about 3–4 ms per million accounts (on the
// 2-core machine of the README) and never holds up the tracker's Seen for
// longer than one segment's part of it.
type Collector struct {
	t         *activeusers.Tracker
	desc      *prometheus.Desc
	windows   []time.Duration
	labels    []string
	cluster   CountsFunc
	timeout   time.Duration
	reachable *prometheus.Desc // with WithCluster
}

// NewCollector returns a Collector of t's counts. It returns an error for a
// nil tracker, an invalid metric name or label, and for windows that are
// duplicated, not positive, not whole seconds or longer than t's retention —
// so that a bad configuration fails at start-up, never as a broken exposition
// at scrape time.
func NewCollector(t *activeusers.Tracker, opts ...Option) (*Collector, error) {
	c := config{name: "active_users", help: "Distinct accounts active within the window (last activity at most that long ago).", windows: DefaultWindows}
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
	for l := range c.constLabels {
		if l == "window" {
			return nil, fmt.Errorf("auprom: the const label \"window\" clashes with the window label")
		}
		if !model.LegacyValidation.IsValidLabelName(l) {
			return nil, fmt.Errorf("auprom: %q is not a valid label name", l)
		}
	}
	col := &Collector{
		t:       t,
		desc:    prometheus.NewDesc(fq, c.help, []string{"window"}, c.constLabels),
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
	if c.reachable != nil {
		ch <- c.reachable
	}
}

// Collect implements prometheus.Collector with one Counts call.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	var counts []int
	if c.cluster == nil {
		counts = c.t.Counts(c.windows...)
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		var cluster bool
		counts, cluster, _ = c.cluster(ctx, c.windows...)
		cancel()
		if len(counts) != len(c.windows) { // a broken source: say so, report local
			counts, cluster = c.t.Counts(c.windows...), false
		}
		ch <- prometheus.MustNewConstMetric(c.reachable, prometheus.GaugeValue, map[bool]float64{true: 1}[cluster])
	}
	for i, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), c.labels[i])
	}
}
