package auotel

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/activeusers/activeusers"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func setup(t *testing.T) (*sdkmetric.ManualReader, *sdkmetric.MeterProvider, *activeusers.Tracker, *time.Time) {
	now := t0
	tr := activeusers.New(activeusers.WithClock(func() time.Time { return now }))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	return reader, mp, tr, &now
}

// collect returns the gauge's points by window, or an error.
func collect(ctx context.Context, reader *sdkmetric.ManualReader) (map[string]int64, metricdata.Metrics, error) {
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		return nil, metricdata.Metrics{}, err
	}
	got := map[string]int64{}
	var m metricdata.Metrics
	for _, sm := range rm.ScopeMetrics {
		for _, mm := range sm.Metrics {
			m = mm
			for _, p := range mm.Data.(metricdata.Gauge[int64]).DataPoints {
				w, ok := p.Attributes.Value(attribute.Key(DefaultWindowAttribute))
				if !ok {
					w, _ = p.Attributes.Value(attribute.Key("gw.window"))
				}
				got[w.AsString()] = p.Value
			}
		}
	}
	return got, m, nil
}

func TestGaugeReportsEachWindow(t *testing.T) {
	reader, mp, tr, now := setup(t)
	tr.SeenAt("a", now.Add(-time.Minute))
	tr.SeenAt("b", now.Add(-3*24*time.Hour))
	reg, err := Register(mp.Meter("test"), tr)
	require.NoError(t, err)

	got, m, err := collect(context.Background(), reader)
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"24h": 1, "7d": 2}, got)
	assert.Equal(t, "activeusers.count", m.Name, "namespaced, dot-separated, per the semantic conventions")
	assert.Equal(t, "{user}", m.Unit)
	assert.Contains(t, m.Description, "Distinct accounts")

	tr.Seen("c")
	got, _, err = collect(context.Background(), reader)
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"24h": 2, "7d": 3}, got, "each collection counts afresh")

	require.NoError(t, reg.Unregister())
	got, _, err = collect(context.Background(), reader)
	require.NoError(t, err)
	assert.Empty(t, got, "nothing reported after Unregister")
}

func TestGaugeOptionsNameWhatIsExported(t *testing.T) {
	reader, mp, tr, _ := setup(t)
	tr.Seen("a")
	_, err := Register(mp.Meter("test"), tr, WithName("gw.accounts.active"), WithWindowAttribute("gw.window"), WithDescription("Accounts."), WithWindows(5*time.Minute, time.Hour))
	require.NoError(t, err)
	got, m, err := collect(context.Background(), reader)
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"5m": 1, "1h": 1}, got)
	assert.Equal(t, "gw.accounts.active", m.Name)
	assert.Equal(t, "Accounts.", m.Description)
	for _, p := range m.Data.(metricdata.Gauge[int64]).DataPoints {
		assert.True(t, p.Attributes.HasValue("gw.window"), "the window attribute carries the key asked for")
		assert.False(t, p.Attributes.HasValue(DefaultWindowAttribute))
	}
	_, err = Register(mp.Meter("x"), tr, WithName(""))
	assert.ErrorContains(t, err, "empty instrument name")
	_, err = Register(mp.Meter("x"), tr, WithWindowAttribute(""))
	assert.ErrorContains(t, err, "empty window attribute key")
}

func TestGaugeHonoursContext(t *testing.T) {
	reader, mp, tr, _ := setup(t)
	tr.Seen("a")
	_, err := Register(mp.Meter("test"), tr)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, _, err := collect(ctx, reader)
	if err == nil {
		assert.Empty(t, got, "a cancelled collection observes nothing")
	} else {
		assert.ErrorIs(t, err, context.Canceled)
	}
}

func TestGaugeBadConfig(t *testing.T) {
	_, mp, tr, _ := setup(t)
	m := mp.Meter("test")
	for _, c := range []struct {
		err  error
		want string
	}{
		{func() error { _, err := Register(nil, tr); return err }(), "nil metric.Meter"},
		{func() error { _, err := Register(m, nil); return err }(), "nil *activeusers.Tracker"},
		{func() error { _, err := Register(m, tr, WithWindows(time.Hour, time.Hour)); return err }(), "given twice"},
		{func() error { _, err := Register(m, tr, WithWindows(0)); return err }(), "not positive"},
		{func() error { _, err := Register(m, tr, WithWindows(8*24*time.Hour)); return err }(), "longer than the tracker's retention"},
		{func() error { _, err := Register(m, tr, WithName("")); return err }(), "auotel"},
	} {
		assert.ErrorContains(t, c.err, c.want)
	}
}

// TestRegisterTwice: a second registration of the same instrument on one meter
// would repeat every Counts pass; it is refused until the first is gone.
func TestRegisterTwice(t *testing.T) {
	reader, mp, tr, _ := setup(t)
	tr.Seen("a")
	meter := mp.Meter("test")
	reg, err := Register(meter, tr)
	require.NoError(t, err)
	_, err = Register(meter, tr)
	require.ErrorContains(t, err, "already registered on this meter")
	_, err = Register(mp.Meter("test"), tr)
	require.ErrorContains(t, err, "already registered", "the provider hands out the same meter for the same scope")

	other, err := Register(meter, tr, WithName("gw.accounts.active"))
	require.NoError(t, err, "another name is another instrument")
	require.NoError(t, other.Unregister())
	_, err = Register(mp.Meter("other-scope"), tr)
	require.NoError(t, err, "another meter is fine")

	require.NoError(t, reg.Unregister())
	again, err := Register(meter, tr)
	require.NoError(t, err, "after Unregister it can be registered again")
	defer again.Unregister()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			assert.Len(t, m.Data.(metricdata.Gauge[int64]).DataPoints, 2, "%s: one point per window", sm.Scope.Name)
		}
	}
}

// wrappedMeter is a comparable type whose value may not be: its interface
// field holds a slice-backed value.
type wrappedMeter struct {
	metric.Meter
	tag any
}

// TestRegisterUncomparableMeter: a meter that cannot be a map key is
// registered (untracked) rather than panicking.
func TestRegisterUncomparableMeter(t *testing.T) {
	_, mp, tr, _ := setup(t)
	m := wrappedMeter{Meter: mp.Meter("wrapped"), tag: []int{1}}
	var reg metric.Registration
	require.NotPanics(t, func() {
		var err error
		reg, err = Register(m, tr)
		require.NoError(t, err)
	})
	require.NoError(t, reg.Unregister())
}

func TestGaugeReportsClusterCompleteness(t *testing.T) {
	reader, mp, tr, _ := setup(t)
	tr.Seen("local")
	partial, settling, local := true, false, false
	fn := func(ctx context.Context, ws ...time.Duration) (ClusterCounts, error) {
		switch {
		case local:
			return ClusterCounts{Counts: []int{1, 1}, Instances: 1, Complete: 1}, errors.New("redis down")
		case settling:
			return ClusterCounts{Counts: []int{40, 70}, Cluster: true, Instances: 3, Complete: 3, Settling: true}, nil
		}
		if partial {
			return ClusterCounts{Counts: []int{30, 50}, Cluster: true, Instances: 3, Complete: 2, ClockOffset: -1500 * time.Millisecond}, nil
		}
		return ClusterCounts{Counts: []int{40, 70}, Cluster: true, Instances: 3, Complete: 3, ClockOffset: 2 * time.Second}, nil
	}
	_, err := Register(mp.Meter("test"), tr, WithCluster(fn))
	require.NoError(t, err)
	read := func() map[string]float64 {
		var rm metricdata.ResourceMetrics
		require.NoError(t, reader.Collect(context.Background(), &rm))
		got := map[string]float64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case metricdata.Gauge[int64]:
					for _, p := range d.DataPoints {
						key := m.Name
						for _, kv := range p.Attributes.ToSlice() {
							key += " " + kv.Value.AsString()
						}
						got[key] = float64(p.Value)
					}
				case metricdata.Gauge[float64]:
					for _, p := range d.DataPoints {
						got[m.Name] = p.Value
					}
				}
			}
		}
		return got
	}
	assert.Equal(t, map[string]float64{
		"activeusers.count 24h": 30, "activeusers.count 7d": 50,
		"activeusers.cluster.reachable":          1,
		"activeusers.cluster.complete":           0,
		"activeusers.cluster.instances known":    3,
		"activeusers.cluster.instances complete": 2,
		"activeusers.cluster.clock_offset":       -1.5,
	}, read(), "a partial figure says so")
	partial = false
	got := read()
	assert.Equal(t, 1.0, got["activeusers.cluster.complete"])
	assert.Equal(t, 40.0, got["activeusers.count 24h"])
	settling, local = true, false
	got = read()
	assert.Equal(t, 0.0, got["activeusers.cluster.complete"], "a settling registry is not complete")
	settling, local = false, true
	got = read()
	assert.Equal(t, 0.0, got["activeusers.cluster.reachable"], "a local fallback is not the cluster's")
	assert.Equal(t, 0.0, got["activeusers.cluster.complete"])
}

// TestGaugeReportsEachSegment: a tracker with dimensions reports the overall
// points with the window attribute alone, each segment's with its dimension's
// attribute too, and the folded counter by dimension.
func TestGaugeReportsEachSegment(t *testing.T) {
	now := t0
	tr := activeusers.New(activeusers.WithClock(func() time.Time { return now }),
		activeusers.WithDimensions("plan", "platform"), activeusers.WithMaxValues(1))
	tr.SeenIn("a", "pro", "ios")
	tr.SeenIn("b", "free", "ios") // free: folded
	tr.SeenInAt("c", now.Add(-3*24*time.Hour), "pro")
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	_, err := Register(mp.Meter("test"), tr)
	require.NoError(t, err)

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	points := map[string]int64{} // "window plan platform" → value
	folded := map[string]int64{}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		switch data := m.Data.(type) {
		case metricdata.Gauge[int64]:
			for _, p := range data.DataPoints {
				w, _ := p.Attributes.Value(DefaultWindowAttribute)
				plan, _ := p.Attributes.Value("plan")
				platform, _ := p.Attributes.Value("platform")
				points[w.AsString()+" "+plan.AsString()+" "+platform.AsString()] = p.Value
				assert.LessOrEqual(t, p.Attributes.Len(), 2, "the window and at most one dimension")
			}
		case metricdata.Sum[int64]:
			assert.Equal(t, FoldedName, m.Name)
			assert.True(t, data.IsMonotonic)
			for _, p := range data.DataPoints {
				d, _ := p.Attributes.Value(DimensionAttribute)
				folded[d.AsString()] = p.Value
			}
		}
	}
	assert.Equal(t, map[string]int64{
		"24h  ": 2, "7d  ": 3,
		"24h pro ": 1, "7d pro ": 2, "24h __overflow__ ": 1, "7d __overflow__ ": 1,
		"24h  ios": 2, "7d  ios": 2, "24h  __overflow__": 0, "7d  __overflow__": 0,
	}, points)
	assert.Equal(t, map[string]int64{"plan": 1, "platform": 0}, folded)
}
