package auprom

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/activeusers/activeusers"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func tracker(now *time.Time) *activeusers.Tracker {
	return activeusers.New(activeusers.WithClock(func() time.Time { return *now }))
}

func TestCollectorExportsEachWindow(t *testing.T) {
	now := t0
	tr := tracker(&now)
	tr.SeenAt("a", now.Add(-2*time.Minute))
	tr.SeenAt("b", now.Add(-2*time.Hour))
	tr.SeenAt("c", now.Add(-3*24*time.Hour))
	c, err := NewCollector(tr)
	require.NoError(t, err)
	want := `
# HELP active_users Distinct accounts active within the window (last activity at most that long ago).
# TYPE active_users gauge
active_users{window="24h"} 2
active_users{window="7d"} 3
`
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want)))
	lint, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	assert.Empty(t, lint, "follows Prometheus naming practice")

	c, err = NewCollector(tr, WithNamespace("gw"), WithSubsystem("auth"), WithName("accounts_active"),
		WithHelp("Accounts."), WithConstLabels(prometheus.Labels{"region": "eu"}),
		WithWindows(5*time.Minute, time.Hour, 48*time.Hour))
	require.NoError(t, err)
	want = `
# HELP gw_auth_accounts_active Accounts.
# TYPE gw_auth_accounts_active gauge
gw_auth_accounts_active{region="eu",window="5m"} 1
gw_auth_accounts_active{region="eu",window="1h"} 1
gw_auth_accounts_active{region="eu",window="2d"} 2
`
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want)))
}

func TestCollectorBadConfig(t *testing.T) {
	now := t0
	tr := tracker(&now)
	for _, c := range []struct {
		t    *activeusers.Tracker
		opts []Option
		want string
	}{
		{nil, nil, "nil *activeusers.Tracker"},
		{tr, []Option{WithWindows()}, "no windows"},
		{tr, []Option{WithWindows(time.Hour, time.Hour)}, "given twice"},
		{tr, []Option{WithWindows(0)}, "not positive"},
		{tr, []Option{WithWindows(-time.Minute)}, "not positive"},
		{tr, []Option{WithWindows(30 * 24 * time.Hour)}, "longer than the tracker's retention"},
		{tr, []Option{WithName("active users")}, "not a valid metric name"},
		{tr, []Option{WithConstLabels(prometheus.Labels{"window": "x"})}, "clashes"},
		{tr, []Option{WithConstLabels(prometheus.Labels{"bad-label": "x"})}, "bad-label"},
	} {
		_, err := NewCollector(c.t, c.opts...)
		assert.ErrorContains(t, err, c.want)
	}
	assert.Panics(t, func() { MustNewCollector(nil) })
}

// One scrape, one Counts call: a registry gathering twice sees the tracker as
// it is at each gather.
func TestCollectorFollowsTracker(t *testing.T) {
	now := t0
	tr := tracker(&now)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(MustNewCollector(tr))
	assert.Equal(t, 2, testutil.CollectAndCount(reg, "active_users"))
	tr.Seen("x")
	n, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	got, err := reg.Gather()
	require.NoError(t, err)
	assert.Equal(t, 1.0, got[0].GetMetric()[0].GetGauge().GetValue())
}

func TestCollectorReportsClusterCompleteness(t *testing.T) {
	now := t0
	tr := tracker(&now)
	tr.Seen("local")
	state := "complete"
	fn := func(ctx context.Context, ws ...time.Duration) (ClusterCounts, error) {
		if _, ok := ctx.Deadline(); !ok {
			return ClusterCounts{}, errors.New("no deadline")
		}
		switch state {
		case "down":
			return ClusterCounts{Counts: tr.Counts(ws...), Instances: 1, Complete: 1}, errors.New("redis: connection refused")
		case "partial":
			return ClusterCounts{Counts: []int{30, 50}, Cluster: true, Instances: 3, Complete: 2, ClockOffset: -1500 * time.Millisecond}, nil
		}
		return ClusterCounts{Counts: []int{40, 70}, Cluster: true, Instances: 3, Complete: 3, ClockOffset: 2 * time.Second}, nil
	}
	c, err := NewCollector(tr, WithCluster(fn, time.Second))
	require.NoError(t, err)
	head := `
# HELP active_users Distinct accounts active within the window (last activity at most that long ago).
# TYPE active_users gauge
# HELP active_users_cluster_clock_offset_seconds The cluster's reference clock (the Redis server's) minus this instance's.
# TYPE active_users_cluster_clock_offset_seconds gauge
# HELP active_users_cluster_complete 1 if active_users is the whole cluster's with every known instance's latest push in it, else 0.
# TYPE active_users_cluster_complete gauge
# HELP active_users_cluster_instances Instances the cluster knows (state=known) and those whose latest push is whole in active_users (state=complete).
# TYPE active_users_cluster_instances gauge
# HELP active_users_cluster_reachable 1 if active_users reports the whole cluster's counts, 0 if it fell back to this instance's own.
# TYPE active_users_cluster_reachable gauge
`
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(head+`
active_users{window="24h"} 40
active_users{window="7d"} 70
active_users_cluster_clock_offset_seconds 2
active_users_cluster_complete 1
active_users_cluster_instances{state="complete"} 3
active_users_cluster_instances{state="known"} 3
active_users_cluster_reachable 1
`)))
	state = "partial"
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(head+`
active_users{window="24h"} 30
active_users{window="7d"} 50
active_users_cluster_clock_offset_seconds -1.5
active_users_cluster_complete 0
active_users_cluster_instances{state="complete"} 2
active_users_cluster_instances{state="known"} 3
active_users_cluster_reachable 1
`)), "a partial figure says so")
	state = "down"
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(head+`
active_users{window="24h"} 1
active_users{window="7d"} 1
active_users_cluster_clock_offset_seconds 0
active_users_cluster_complete 0
active_users_cluster_instances{state="complete"} 1
active_users_cluster_instances{state="known"} 1
active_users_cluster_reachable 0
`)), "falls back to the local counts, and says so")

	_, err = NewCollector(tr, WithCluster(fn, 0))
	assert.ErrorContains(t, err, "positive timeout")
}

// TestCollectorExportsEachSegment: a tracker with dimensions exports the overall
// series with the dimension labels empty, each segment's with its own, and
// the folded counter, from one CountsBy; a cluster source's breakdown is
// exported the same way.
func TestCollectorExportsEachSegment(t *testing.T) {
	now := t0
	tr := activeusers.New(activeusers.WithClock(func() time.Time { return now }),
		activeusers.WithDimensions("plan", "platform"), activeusers.WithMaxValues(2))
	tr.SeenIn("a", "pro", "ios")
	tr.SeenIn("a", "pro", "web")
	tr.SeenInAt("b", now.Add(-48*time.Hour), "free", "web")
	tr.SeenIn("c", "team") // a third plan: folded
	tr.Seen("d")
	c, err := NewCollector(tr)
	require.NoError(t, err)
	want := `
# HELP active_users Distinct accounts active within the window (last activity at most that long ago).
# TYPE active_users gauge
active_users{plan="",platform="",window="24h"} 3
active_users{plan="",platform="",window="7d"} 4
active_users{plan="free",platform="",window="24h"} 0
active_users{plan="free",platform="",window="7d"} 1
active_users{plan="pro",platform="",window="24h"} 1
active_users{plan="pro",platform="",window="7d"} 1
active_users{plan="__overflow__",platform="",window="24h"} 1
active_users{plan="__overflow__",platform="",window="7d"} 1
active_users{plan="",platform="ios",window="24h"} 1
active_users{plan="",platform="ios",window="7d"} 1
active_users{plan="",platform="web",window="24h"} 1
active_users{plan="",platform="web",window="7d"} 2
active_users{plan="",platform="__overflow__",window="24h"} 0
active_users{plan="",platform="__overflow__",window="7d"} 0
# HELP active_users_values_folded_total Recordings whose value was folded into __overflow__ (beyond the tracker's bound of values, too long or not UTF-8), by dimension.
# TYPE active_users_values_folded_total counter
active_users_values_folded_total{dimension="plan"} 1
active_users_values_folded_total{dimension="platform"} 0
`
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want)))
	lint, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	assert.Empty(t, lint)

	_, err = NewCollector(tr, WithConstLabels(prometheus.Labels{"plan": "x"}))
	assert.ErrorContains(t, err, "clashes")

	// From a cluster source: its breakdown, not the local one.
	src := func(ctx context.Context, ws ...time.Duration) (ClusterCounts, error) {
		return ClusterCounts{Counts: []int{10, 20}, Cluster: true, Instances: 2, Complete: 2, Dimensions: []activeusers.DimensionCounts{
			{Name: "plan", Values: []activeusers.ValueCounts{{Value: "pro", Counts: []int{4, 8}}, {Value: activeusers.OverflowValue, Counts: []int{0, 0}}}, Folded: 7},
		}}, nil
	}
	c, err = NewCollector(tr, WithCluster(src, time.Second))
	require.NoError(t, err)
	want = `
# HELP active_users Distinct accounts active within the window (last activity at most that long ago).
# TYPE active_users gauge
active_users{plan="",platform="",window="24h"} 10
active_users{plan="",platform="",window="7d"} 20
active_users{plan="pro",platform="",window="24h"} 4
active_users{plan="pro",platform="",window="7d"} 8
active_users{plan="__overflow__",platform="",window="24h"} 0
active_users{plan="__overflow__",platform="",window="7d"} 0
# HELP active_users_values_folded_total Recordings whose value was folded into __overflow__ (beyond the tracker's bound of values, too long or not UTF-8), by dimension.
# TYPE active_users_values_folded_total counter
active_users_values_folded_total{dimension="plan"} 7
`
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want), "active_users", "active_users_values_folded_total"))
}
