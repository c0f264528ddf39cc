package auredis

import (
	"context"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/activeusers/activeusers"
)

// segFleet is a fleet whose trackers count by plan and platform, with a
// model of what each segment holds cluster-wide.
type segFleet struct {
	*fleet
	pairs map[activeusers.Segment]map[string]time.Time // segment → account → last
}

// newSegFleet starts an instance for each dims[i], bound to maxValues[i]
// values a dimension.
func newSegFleet(t *testing.T, s *server, dims [][]string, maxValues []int, opts ...Option) *segFleet {
	f := &segFleet{fleet: &fleet{t: t, now: newClock(), last: map[string]time.Time{}}, pairs: map[activeusers.Segment]map[string]time.Time{}}
	for i, d := range dims {
		tr := activeusers.New(activeusers.WithClock(f.now.Now), activeusers.WithRetention(24*time.Hour),
			activeusers.WithDimensions(d...), activeusers.WithMaxValues(maxValues[i]))
		c, _ := attach(t, s, tr, opts...)
		f.trs, f.cs = append(f.trs, tr), append(f.cs, c)
	}
	return f
}

// seeIn has instance i see accounts prefix-0 … prefix-(n-1) now, account u in
// plans[u%len] and platforms[u%len] (those the instance counts by; the
// values it folds go to the overflow value on it alone).
func (f *segFleet) seeIn(i int, prefix string, n int, plans, platforms []string) {
	dims := f.trs[i].Dimensions()
	for u := range n {
		id, at := prefix+strconv.Itoa(u), f.now.Now()
		byDim := map[string]string{"plan": plans[u%len(plans)], "platform": platforms[u%len(platforms)]}
		var vals []string
		for _, d := range dims {
			vals = append(vals, byDim[d])
		}
		f.trs[i].SeenInAt(id, at, vals...)
		f.last[id] = at
	}
	// What the instance holds per segment, from itself: folding is its own.
	for _, seg := range f.trs[i].Segments() {
		for _, e := range f.trs[i].AppendSegmentEntries(nil, seg, time.Time{}) {
			m := f.pairs[seg]
			if m == nil {
				m = map[string]time.Time{}
				f.pairs[seg] = m
			}
			m[strconv.FormatUint(e.Hash, 16)] = time.Unix(e.Last, 0)
		}
	}
}

// want is the cluster's breakdown by the model, for instance i's dimensions.
func (f *segFleet) want(i int, at time.Time) []activeusers.DimensionCounts {
	var out []activeusers.DimensionCounts
	folded := f.trs[i].Folded()
	for k, d := range f.trs[i].Dimensions() {
		dc := activeusers.DimensionCounts{Name: d, Folded: folded[k]}
		var over []int
		for seg, accts := range f.pairs {
			if seg.Dimension != d {
				continue
			}
			c := union(at, accts)
			if seg.Value == activeusers.OverflowValue {
				over = c
				continue
			}
			dc.Values = append(dc.Values, activeusers.ValueCounts{Value: seg.Value, Counts: c})
		}
		slices.SortFunc(dc.Values, func(a, b activeusers.ValueCounts) int { return strings.Compare(a.Value, b.Value) })
		if over == nil {
			over = make([]int, len(windows))
		}
		dc.Values = append(dc.Values, activeusers.ValueCounts{Value: activeusers.OverflowValue, Counts: over})
		out = append(out, dc)
	}
	return out
}

// TestSegmentsAcrossTheCluster: three instances, two counting by plan and
// platform, one by plan only, one bound to three values so that it folds a
// fourth plan the others keep. Every instance reports each segment as the
// exact union of what the instances hold in it, complete; a segment key lost
// makes the figure incomplete until the instances that hold it push again.
func TestSegmentsAcrossTheCluster(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	s := startServer(t)
	f := newSegFleet(t, s, [][]string{{"plan", "platform"}, {"plan", "platform"}, {"plan"}}, []int{4, 4, 3}, WithKeys(4))
	ctx := context.Background()
	plans := []string{"free", "pro", "team"}
	f.seeIn(0, "acct-", 900, plans, []string{"ios", "web"})
	f.seeIn(1, "acct-", 600, plans, []string{"ios", "web"}) // the same accounts, on both
	f.seeIn(1, "b-", 400, []string{"free", "enterprise"}, []string{"android"})
	f.seeIn(2, "c-", 300, []string{"enterprise", "free", "pro", "team"}, []string{"-"}) // a fourth plan: folded here
	// An instance without dimensions in the same cluster: it must mark the
	// segments' keys too, or no figure would ever be complete.
	plain, pc, _ := instance(t, s, f.now, WithKeys(4))
	at := f.now.Now()
	plain.SeenAt("only-overall", at)
	f.last["only-overall"] = at
	pushAll := func() { // twice: each push marks the segments the ones before it named
		for range 2 {
			f.pushAll()
			require.NoError(t, pc.Push(ctx))
		}
	}
	pushAll()
	at = f.now.Now()
	for i, c := range f.cs {
		r, err := c.CountsAt(ctx, at, windows...)
		require.NoError(t, err)
		assert.True(t, r.IsComplete(), "instance %d: %+v", i, r)
		assert.Equal(t, union(at, f.last), r.Counts, "instance %d: overall", i)
		assert.Equal(t, f.want(i, at), r.Dimensions, "instance %d: each segment the union of what the instances hold in it", i)
	}
	r, _ := f.cs[0].CountsAt(ctx, at, windows...)
	require.Len(t, r.Dimensions, 2)
	plan := r.Dimensions[0].Values
	assert.Equal(t, []string{"enterprise", "free", "pro", "team", activeusers.OverflowValue}, valueNames(plan))
	assert.Equal(t, 400/2+75, plan[0].Counts[3], "enterprise: half of b- on instance 1, a quarter of c- (instance 2 keeps it, folding team)")
	assert.Equal(t, 75, plan[4].Counts[3], "the overflow: c- accounts on team, which instance 2 folded")
	assert.Equal(t, uint64(0), r.Dimensions[0].Folded, "instance 0 folded nothing")

	// A segment's key lost: incomplete, then exact once pushed again.
	rdb := client(s)
	defer rdb.Close()
	lost := f.cs[0].keys[1] + ":plan=pro"
	require.NoError(t, rdb.Del(ctx, lost).Err())
	r = f.counts(1)
	assert.False(t, r.IsComplete(), "%+v", r)
	assert.Less(t, r.Dimensions[0].Values[2].Counts[3], f.want(1, at)[0].Values[2].Counts[3], "pro is missing accounts")
	time.Sleep(time.Second) // the next push sends what changed and the lost key whole
	pushAll()
	at = f.now.Now()
	r, err := f.cs[1].CountsAt(ctx, at, windows...)
	require.NoError(t, err)
	assert.True(t, r.IsComplete(), "%+v", r)
	assert.Equal(t, f.want(1, at), r.Dimensions)
	// The folded count is each instance's own.
	r2, _ := f.cs[2].CountsAt(ctx, at, windows...)
	assert.Equal(t, uint64(75), r2.Dimensions[0].Folded)
}

func valueNames(vs []activeusers.ValueCounts) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Value)
	}
	return out
}

// TestSegmentsFallBackToLocal: CountsOrLocal's fallback carries the local
// breakdown.
func TestSegmentsFallBackToLocal(t *testing.T) {
	s := startServer(t)
	f := newSegFleet(t, s, [][]string{{"plan"}}, []int{4})
	f.seeIn(0, "a-", 10, []string{"free", "pro"}, []string{"-"})
	s.stop()
	before := f.trs[0].CountsBy(windows...).Dimensions
	r, err := f.cs[0].CountsOrLocal(ctxWithTimeout(t, time.Second), windows...)
	require.Error(t, err)
	assert.False(t, r.Cluster)
	assertLocalBreakdown(t, before, f.trs[0].CountsBy(windows...).Dimensions, r.Dimensions)
}

// assertLocalBreakdown checks that a fallback's breakdown is the tracker's
// own, read just before or just after it: the clock runs, and a second that
// ends between the two readings moves the 0s window.
func assertLocalBreakdown(t *testing.T, before, after, got []activeusers.DimensionCounts) {
	t.Helper()
	if !reflect.DeepEqual(got, before) {
		assert.Equal(t, after, got, "the local breakdown, read just after (or before: %v)", before)
	}
}

// TestSegmentCountsWhenRedisHangs: with dimensions, Counts makes two round
// trips (the segments known, then the counts); against a server that hangs
// rather than dies, it still returns by its context's deadline, and the
// fallback carries the local breakdown.
func TestSegmentCountsWhenRedisHangs(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	s := startServer(t)
	f := newSegFleet(t, s, [][]string{{"plan"}}, []int{4})
	f.seeIn(0, "a-", 10, []string{"free", "pro"}, []string{"-"})
	require.NoError(t, f.cs[0].Push(context.Background()))
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGSTOP))
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			s.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	defer resume()

	const deadline, margin = 300 * time.Millisecond, 200 * time.Millisecond
	start := time.Now()
	_, err := f.cs[0].Counts(ctxWithTimeout(t, deadline), windows...)
	took := time.Since(start)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, took, deadline+margin, "Counts returns by its deadline")
	local := f.trs[0].CountsBy(windows...).Dimensions
	start = time.Now()
	r, err := f.cs[0].CountsOrLocal(ctxWithTimeout(t, deadline), windows...)
	require.Error(t, err)
	assert.Less(t, time.Since(start), deadline+margin)
	assert.False(t, r.Cluster)
	assertLocalBreakdown(t, local, f.trs[0].CountsBy(windows...).Dimensions, r.Dimensions)
	resume()
	f.cs[0].Close()
	f.cs[0].abandoned.Wait()
}
