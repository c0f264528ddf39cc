// Package auotel exports an activeusers.Tracker's counts as an OpenTelemetry
// observable gauge.
//
//	reg, err := auotel.Register(otel.Meter("gateway"), tracker)
//	defer reg.Unregister()
//
// reports, at every collection, one value per window from a single Counts
// call: the gauge "activeusers.count", unit "{user}", attribute
// activeusers.window="24h", "7d"…. The names follow OpenTelemetry's semantic
// conventions: namespaced under the library's own prefix, dot-separated, and
// "count" for the number of the things the namespace names (active users).
// A Prometheus backend shows it as activeusers_count{activeusers_window="24h"}.
//
// The window series are nested (everyone in the 24h figure is in the 7d one):
// never sum across the window attribute.
//
// A tracker made WithDimensions("plan", "platform") is reported from one
// CountsBy call a collection: the overall points with the window attribute
// alone, and each segment's with the window and its dimension's attribute,
// keyed by the dimension's name (plan="pro"); the observable counter
// FoldedName counts, by attribute DimensionAttribute, the recordings folded
// into activeusers.OverflowValue.
package auotel

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/activeusers/activeusers"
)

// DefaultWindows returns the windows reported unless WithWindows says
// otherwise: 24h and 7d. It returns a new slice each time, so no caller can
// change another's default.
func DefaultWindows() []time.Duration { return []time.Duration{24 * time.Hour, 7 * 24 * time.Hour} }

// An Option configures Register.
type Option func(*config)

type config struct {
	name, description, windowKey string
	windows                      []time.Duration
	cluster                      CountsFunc
}

// ClusterCounts is what a cluster-wide source reports: the counts, one per
// window; whether they are the whole cluster's (false: it fell back to this
// instance's own); how many instances the cluster knows and how many of those
// have their latest push whole in the figure; and this instance's clock
// offset from the cluster's reference. Its fields are those of
// auredis.Result, so auotel.ClusterCounts(r) converts one.
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
	// a source that leaves it nil gets no segment points.
	Dimensions []activeusers.DimensionCounts
}

// CountsFunc is a source of counts other than the tracker. With auredis:
//
//	func(ctx context.Context, ws ...time.Duration) (auotel.ClusterCounts, error) {
//		r, err := cluster.CountsOrLocal(ctx, ws...)
//		return auotel.ClusterCounts(r), err
//	}
type CountsFunc func(ctx context.Context, windows ...time.Duration) (ClusterCounts, error)

// Names of the gauges WithCluster adds.
const (
	ClusterReachableName   = "activeusers.cluster.reachable"
	ClusterCompleteName    = "activeusers.cluster.complete"
	ClusterInstancesName   = "activeusers.cluster.instances"
	ClusterClockOffsetName = "activeusers.cluster.clock_offset"
	// ClusterStateAttribute is ClusterInstancesName's attribute: "known" or
	// "complete".
	ClusterStateAttribute = "activeusers.state"
)

// WithCluster makes the gauge report counts from fn (with the collection's
// context, which should carry a deadline) instead of the tracker's own, and
// registers four more gauges so that a dashboard never shows a partial or
// local figure as the cluster's — the ones auprom.WithCluster exports:
// ClusterReachableName (1 while the counts are the cluster's, 0 while fn
// falls back to the instance's own), ClusterCompleteName (1 while the counts are
// the whole cluster's with every instance it knows in them whole, else 0),
// ClusterInstancesName ({instance}, attribute activeusers.state = "known" or
// "complete") and ClusterClockOffsetName (s, the cluster's reference clock
// minus this instance's). Default: the tracker's own counts, no extra gauges.
func WithCluster(fn CountsFunc) Option { return func(c *config) { c.cluster = fn } }

// FoldedName is the counter of recordings folded into
// activeusers.OverflowValue, for a tracker with dimensions, with the
// attribute DimensionAttribute naming the dimension.
const (
	FoldedName         = "activeusers.values_folded"
	DimensionAttribute = "activeusers.dimension"
)

// Default names, after OpenTelemetry's semantic conventions for naming.
const (
	// DefaultName is the instrument's name: the count of active users, in
	// the library's namespace.
	DefaultName = "activeusers.count"
	// DefaultWindowAttribute is the attribute carrying the window's label.
	DefaultWindowAttribute = "activeusers.window"
)

// WithWindows sets the windows reported, each with the window attribute set to
// "5m", "24h", "7d"…. Default: DefaultWindows() (24h and 7d).
func WithWindows(ws ...time.Duration) Option { return func(c *config) { c.windows = ws } }

// WithName sets the instrument name, for an application that keeps its
// metrics under its own namespace ("gateway.user.active"). Default:
// DefaultName, "activeusers.count".
func WithName(name string) Option { return func(c *config) { c.name = name } }

// WithWindowAttribute sets the key of the attribute carrying the window.
// Default: DefaultWindowAttribute, "activeusers.window".
func WithWindowAttribute(key string) Option { return func(c *config) { c.windowKey = key } }

// WithDescription sets the instrument description. Default: "Distinct accounts
// active within the window (last activity at most that long ago)."
func WithDescription(d string) Option { return func(c *config) { c.description = d } }

// Register creates an Int64ObservableGauge on meter whose callback makes one
// Counts call per collection and observes one value per window. It returns an
// error for a nil meter or tracker and for windows that are duplicated, not
// positive, not whole seconds or longer than t's retention. Unregister the
// returned Registration to stop reporting.
func Register(meter metric.Meter, t *activeusers.Tracker, opts ...Option) (metric.Registration, error) {
	c := config{name: DefaultName, description: "Distinct accounts active within the window (last activity at most that long ago).", windowKey: DefaultWindowAttribute, windows: DefaultWindows()}
	for _, o := range opts {
		o(&c)
	}
	if meter == nil {
		return nil, fmt.Errorf("auotel: nil metric.Meter")
	}
	if t == nil {
		return nil, fmt.Errorf("auotel: nil *activeusers.Tracker")
	}
	if c.name == "" {
		return nil, fmt.Errorf("auotel: empty instrument name")
	}
	if c.windowKey == "" {
		return nil, fmt.Errorf("auotel: empty window attribute key")
	}
	if err := t.CheckWindows(c.windows...); err != nil {
		return nil, fmt.Errorf("auotel: %w", err)
	}
	windows := append([]time.Duration(nil), c.windows...)
	attrs := make([]metric.ObserveOption, len(windows))
	for i, w := range windows {
		// Built once: an attribute set per observation would allocate on
		// every collection.
		attrs[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String(c.windowKey, activeusers.WindowLabel(w))))
	}
	key, ok := claim(meter, c.name)
	if !ok {
		return nil, fmt.Errorf("auotel: %q is already registered on this meter: a second callback would repeat every Counts pass and report each point twice (Unregister the first, or use another name)", c.name)
	}
	gauge, err := meter.Int64ObservableGauge(c.name, metric.WithUnit("{user}"), metric.WithDescription(c.description))
	if err != nil {
		release(key)
		return nil, fmt.Errorf("auotel: %w", err)
	}
	instruments := []metric.Observable{gauge}
	dims := t.Dimensions()
	var folded metric.Int64ObservableCounter
	if len(dims) > 0 {
		folded, err = meter.Int64ObservableCounter(FoldedName, metric.WithUnit("{recording}"),
			metric.WithDescription("Recordings whose value was folded into "+activeusers.OverflowValue+" (beyond the tracker's bound of values, too long or not UTF-8), by dimension."))
		if err != nil {
			release(key)
			return nil, fmt.Errorf("auotel: %w", err)
		}
		instruments = append(instruments, folded)
	}
	// segment observes one dimension's breakdown.
	segment := func(o metric.Observer, b []activeusers.DimensionCounts) {
		for _, d := range b {
			if !slices.Contains(dims, d.Name) {
				continue
			}
			for _, v := range d.Values {
				if len(v.Counts) != len(windows) {
					continue
				}
				for i, n := range v.Counts {
					o.ObserveInt64(gauge, int64(n), metric.WithAttributes(
						attribute.String(c.windowKey, activeusers.WindowLabel(windows[i])), attribute.String(d.Name, v.Value)))
				}
			}
			o.ObserveInt64(folded, int64(d.Folded), metric.WithAttributes(attribute.String(DimensionAttribute, d.Name)))
		}
	}
	var reachable, complete, instances metric.Int64ObservableGauge
	var offset metric.Float64ObservableGauge
	if c.cluster != nil {
		reachable, err = meter.Int64ObservableGauge(ClusterReachableName, metric.WithUnit("1"),
			metric.WithDescription("1 if "+c.name+" reports the whole cluster's counts, 0 if it fell back to this instance's own."))
		if err == nil {
			complete, err = meter.Int64ObservableGauge(ClusterCompleteName, metric.WithUnit("1"),
				metric.WithDescription("1 if "+c.name+" is the whole cluster's with every known instance's latest push in it, else 0."))
		}
		if err == nil {
			instances, err = meter.Int64ObservableGauge(ClusterInstancesName, metric.WithUnit("{instance}"),
				metric.WithDescription("Instances the cluster knows (known) and those whose latest push is whole in "+c.name+" (complete)."))
		}
		if err == nil {
			offset, err = meter.Float64ObservableGauge(ClusterClockOffsetName, metric.WithUnit("s"),
				metric.WithDescription("The cluster's reference clock (the Redis server's) minus this instance's."))
		}
		if err != nil {
			release(key)
			return nil, fmt.Errorf("auotel: %w", err)
		}
		instruments = append(instruments, reachable, complete, instances, offset)
	}
	known := metric.WithAttributeSet(attribute.NewSet(attribute.String(ClusterStateAttribute, "known")))
	whole := metric.WithAttributeSet(attribute.NewSet(attribute.String(ClusterStateAttribute, "complete")))
	reg, err := meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		if err := ctx.Err(); err != nil {
			return err // the collection was cancelled or timed out: skip the walk
		}
		if c.cluster == nil {
			b := activeusers.Breakdown{}
			if len(dims) == 0 {
				b.Overall = t.Counts(windows...)
			} else {
				b = t.CountsBy(windows...)
			}
			for i, n := range b.Overall {
				o.ObserveInt64(gauge, int64(n), attrs[i])
			}
			segment(o, b.Dimensions)
			return nil
		}
		r, _ := c.cluster(ctx, windows...)
		if len(r.Counts) != len(windows) { // a broken source: report local
			r = ClusterCounts{Counts: t.Counts(windows...)}
		}
		for i, n := range r.Counts {
			o.ObserveInt64(gauge, int64(n), attrs[i])
		}
		segment(o, r.Dimensions)
		b2i := func(b bool) int64 {
			if b {
				return 1
			}
			return 0
		}
		o.ObserveInt64(reachable, b2i(r.Cluster))
		o.ObserveInt64(complete, b2i(r.Cluster && !r.Settling && r.Complete == r.Instances))
		o.ObserveInt64(instances, int64(r.Instances), known)
		o.ObserveInt64(instances, int64(r.Complete), whole)
		o.ObserveFloat64(offset, r.ClockOffset.Seconds())
		return nil
	}, instruments...)
	if err != nil {
		release(key)
		return nil, fmt.Errorf("auotel: %w", err)
	}
	return &registration{Registration: reg, key: key}, nil
}

// registered holds the (meter, instrument name) pairs with a live
// registration, so that registering one twice is an error rather than a
// silent doubling of the work per collection.
var registered sync.Map // regKey → struct{}

type regKey struct {
	meter metric.Meter
	name  string
}

// claim records a registration of name on meter and reports whether it is the
// only one. A meter whose type cannot be a map key (no SDK's is) is not
// tracked: ok, with a zero key.
func claim(meter metric.Meter, name string) (k regKey, ok bool) {
	if !reflect.TypeOf(meter).Comparable() {
		return regKey{}, true
	}
	// A comparable type may still hold an uncomparable value (a struct with
	// an interface field holding a slice): hashing it panics. Such a meter is
	// not tracked either.
	defer func() {
		if recover() != nil {
			k, ok = regKey{}, true
		}
	}()
	k = regKey{meter, name}
	_, loaded := registered.LoadOrStore(k, struct{}{})
	return k, !loaded
}

func release(k regKey) {
	if k.meter != nil {
		registered.Delete(k)
	}
}

// registration releases its claim when unregistered.
type registration struct {
	metric.Registration
	key  regKey
	once sync.Once
}

func (r *registration) Unregister() error {
	err := r.Registration.Unregister()
	if err == nil {
		r.once.Do(func() { release(r.key) })
	}
	return err
}
