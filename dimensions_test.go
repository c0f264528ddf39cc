package activeusers

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// segModel extends the reference model to segments: the overall model, and
// per dimension a map from (value, uid) to last activity, with the same
// first-come bound on values and the same folding as the Tracker.
type segModel struct {
	*model
	max    int
	values []map[string]bool         // per dimension: values taken
	pairs  []map[[2]string]time.Time // per dimension: (value, uid) → last
	folded []uint64                  // per dimension
}

func newSegModel(dims, max int, ret time.Duration, clock *time.Time) *segModel {
	m := &segModel{model: newModel(ret, clock), max: max}
	for range dims {
		m.values = append(m.values, map[string]bool{})
		m.pairs = append(m.pairs, map[[2]string]time.Time{})
		m.folded = append(m.folded, 0)
	}
	return m
}

func (m *segModel) seenIn(uid string, at time.Time, values ...string) {
	at, ok := m.recorded(uid, at)
	if !ok {
		return
	}
	m.seenAt(uid, at)
	for d, v := range values[:min(len(values), len(m.values))] {
		if v == "" {
			continue
		}
		if !m.values[d][v] {
			if len(m.values[d]) >= m.max || len(v) > MaxValueLen || v == OverflowValue || !utf8.ValidString(v) {
				m.folded[d]++
				v = OverflowValue
			} else {
				m.values[d][v] = true
			}
		}
		k := [2]string{v, uid}
		if old, ok := m.pairs[d][k]; !ok || at.After(old) {
			m.pairs[d][k] = at
		}
	}
}

func (m *segModel) countsByAt(at time.Time, windows ...time.Duration) Breakdown {
	b := Breakdown{Overall: m.countsAt(at, windows...)}
	for d := range m.values {
		counts := map[string][]int{OverflowValue: make([]int, len(windows))}
		for v := range m.values[d] {
			counts[v] = make([]int, len(windows))
		}
		for k, last := range m.pairs[d] {
			if m.clock.Sub(last) > m.ret {
				delete(m.pairs[d], k)
				continue
			}
			age := max(at.Sub(last), 0)
			for i, w := range windows {
				if w >= 0 && age <= min(w, m.ret) {
					counts[k[0]][i]++
				}
			}
		}
		dc := DimensionCounts{Name: "d" + strconv.Itoa(d), Folded: m.folded[d]}
		for v, c := range counts {
			if v != OverflowValue {
				dc.Values = append(dc.Values, ValueCounts{v, c})
			}
		}
		slices.SortFunc(dc.Values, func(a, b ValueCounts) int { return strings.Compare(a.Value, b.Value) })
		dc.Values = append(dc.Values, ValueCounts{OverflowValue, counts[OverflowValue]})
		b.Dimensions = append(b.Dimensions, dc)
	}
	return b
}

func (m *segModel) pairCount() int {
	n := 0
	for _, p := range m.pairs {
		n += len(p)
	}
	return n
}

// hostileValues are what untrusted requests send besides plan names.
var hostileValues = []string{
	"", OverflowValue, strings.Repeat("x", MaxValueLen), strings.Repeat("y", MaxValueLen+1),
	"\xff\xfe", "é", "with space", "free", "pro",
}

// TestSegmentsAgainstModel drives a tracker with dimensions and the extended
// model through random histories: values from a small set and hostile ones,
// bounds small enough to fold, late arrivals, times ahead of the clock and
// far-off instants, and compares every breakdown and the pairs held.
func TestSegmentsAgainstModel(t *testing.T) {
	seeds := uint64(40)
	if raceEnabled {
		seeds = 10
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { runSegmentsAgainstModel(t, seed, 300) })
	}
}

func runSegmentsAgainstModel(t *testing.T, seed uint64, steps int) {
	r := rand.New(rand.NewPCG(seed, 13))
	ret := time.Duration(1+r.IntN(200)) * time.Second
	ndims := 1 + r.IntN(3)
	maxValues := 1 + r.IntN(6)
	dims := []string{"d0", "d1", "d2"}[:ndims]
	now := t0
	tr := New(WithRetention(ret), WithShards([]int{1, 2, 64}[r.IntN(3)]), WithDimensions(dims...), WithMaxValues(maxValues), fixed(&now))
	m := newSegModel(ndims, maxValues, ret, &now)
	users := 1 + r.IntN(2000)
	pool := append(slices.Clone(hostileValues), "a", "b", "c", "d", "e", "f", "g", "h")
	windows := []time.Duration{0, time.Second, ret / 2, ret, 10 * ret, -time.Second}
	offset := func() time.Duration {
		return time.Duration(r.IntN(int(4*ret/time.Second))-int(2*ret/time.Second)) * time.Second
	}
	for range steps {
		now = now.Add(time.Duration(r.IntN(4)) * time.Second)
		for range r.IntN(150) {
			uid := "u" + strconv.Itoa(r.IntN(users))
			vals := make([]string, r.IntN(ndims+2)) // sometimes fewer, sometimes more than the dimensions
			for i := range vals {
				vals[i] = pool[r.IntN(len(pool))]
			}
			switch r.IntN(6) {
			case 0:
				at := now.Add(offset())
				tr.SeenInAt(uid, at, vals...)
				m.seenIn(uid, at, vals...)
			case 1:
				at := farOff[r.IntN(len(farOff))]
				tr.SeenInAt(uid, at, vals...)
				m.seenIn(uid, at, vals...)
			case 2:
				tr.Seen(uid)
				m.seenAt(uid, now)
			default:
				tr.SeenIn(uid, vals...)
				m.seenIn(uid, now, vals...)
			}
		}
		if r.IntN(3) == 0 {
			ws := make([]time.Duration, 1+r.IntN(4))
			for i := range ws {
				ws[i] = windows[r.IntN(len(windows))]
			}
			at := now
			if r.IntN(3) == 0 {
				at = now.Add(offset())
			}
			want := m.countsByAt(at, ws...)
			got := tr.CountsByAt(at, ws...)
			require.Equal(t, want, got, "clock %v, as of %v, windows %v", now.Sub(t0), at.Sub(now), ws)
			require.Equal(t, m.pairCount(), tr.Stats().Pairs, "after CountsBy, the pairs are what the model keeps")
		}
	}
}

// TestAccountInTwoSegmentsCountsOnceInEach is the example: an account
// active on two platforms counts once on each and once overall.
func TestAccountInTwoSegmentsCountsOnceInEach(t *testing.T) {
	now := t0
	tr := New(WithDimensions("plan", "platform"), fixed(&now))
	tr.SeenIn("alice", "pro", "ios")
	tr.SeenIn("alice", "pro", "web")
	tr.SeenIn("bob", "free", "web")
	tr.SeenIn("carol", "", "android") // no plan known
	tr.Seen("dave")                   // no segment at all
	b := tr.CountsBy(time.Hour)
	assert.Equal(t, []int{4}, b.Overall)
	assert.Equal(t, Breakdown{Overall: []int{4}, Dimensions: []DimensionCounts{
		{Name: "plan", Values: []ValueCounts{{"free", []int{1}}, {"pro", []int{1}}, {OverflowValue, []int{0}}}},
		{Name: "platform", Values: []ValueCounts{{"android", []int{1}}, {"ios", []int{1}}, {"web", []int{2}}, {OverflowValue, []int{0}}}},
	}}, b)
	assert.Equal(t, []string{"plan", "platform"}, tr.Dimensions())
}

// TestAccountBackAfterExpiryCountsOnceInItsSegment: an account whose
// overall entry was pruned while its pair was not (Counts prunes only the
// accounts) is new to the tracker when it returns, and its pair, still held,
// is updated rather than held twice.
func TestAccountBackAfterExpiryCountsOnceInItsSegment(t *testing.T) {
	now := t0
	tr := New(WithDimensions("plan"), WithRetention(time.Hour), fixed(&now))
	tr.SeenIn("alice", "pro")
	now = now.Add(2 * time.Hour)
	assert.Equal(t, []int{0}, tr.Counts(time.Hour)) // prunes alice, not her pair
	tr.SeenIn("alice", "pro")
	tr.SeenIn("alice", "pro")
	b := tr.CountsBy(time.Minute, time.Hour)
	assert.Equal(t, []int{1, 1}, b.Overall)
	assert.Equal(t, []ValueCounts{{"pro", []int{1, 1}}, {OverflowValue, []int{0, 0}}}, b.Dimensions[0].Values)
	st := tr.Stats()
	assert.Equal(t, [2]int{1, 1}, [2]int{st.Entries, st.Pairs}, "alice and her pair, once each")
}

// TestMoreValuesThanDimensionsAreIgnored: a caller that passes more values
// than the tracker has dimensions (here MaxDimensions of them, and three
// times as many values) records the first value of each dimension and
// ignores the rest.
func TestMoreValuesThanDimensionsAreIgnored(t *testing.T) {
	now := t0
	names := make([]string, MaxDimensions)
	values := make([]string, 3*MaxDimensions)
	for i := range names {
		names[i] = "d" + strconv.Itoa(i)
	}
	for i := range values {
		values[i] = "v" + strconv.Itoa(i)
	}
	tr := New(WithDimensions(names...), fixed(&now))
	tr.SeenIn("alice", values...)
	b := tr.CountsBy(time.Hour)
	require.Len(t, b.Dimensions, MaxDimensions)
	for i, d := range b.Dimensions {
		assert.Equal(t, []ValueCounts{{values[i], []int{1}}, {OverflowValue, []int{0}}}, d.Values, d.Name)
	}
	assert.Equal(t, MaxDimensions, tr.Stats().Pairs)
}

// TestValuesStayBounded: a flood of distinct values folds into the
// overflow value, counted, and memory does not grow with the values sent.
func TestValuesStayBounded(t *testing.T) {
	now := t0
	tr := New(WithDimensions("tenant"), WithMaxValues(10), fixed(&now))
	for i := range 100_000 {
		tr.SeenIn("u"+strconv.Itoa(i%1000), "tenant-"+strconv.Itoa(i))
	}
	b := tr.CountsBy(time.Hour)
	d := b.Dimensions[0]
	require.Len(t, d.Values, 11)
	assert.Equal(t, uint64(100_000-10), d.Folded)
	assert.Equal(t, OverflowValue, d.Values[10].Value)
	assert.Equal(t, 1000, d.Values[10].Counts[0], "every account was also seen with a folded value")
	assert.Equal(t, []int{1000}, b.Overall)
	st := tr.Stats()
	assert.Equal(t, 1000+10, st.Pairs, "1000 accounts in the overflow, 10 in their own tenants")
	// Values are held once: the dimension's map has 10 entries.
	assert.Len(t, *tr.dims[0].sets.Load(), 10)
}

func TestSeenInAllocs(t *testing.T) {
	tr := New(WithDimensions("plan", "platform"))
	defer tr.Close()
	tr.SeenIn("warm", "pro", "ios")
	b := []byte("user-bytes")
	allocs := testing.AllocsPerRun(1000, func() {
		tr.SeenIn("user-1", "pro", "ios")
		tr.SeenIn("user-2", "free")
		tr.SeenInAt("user-3", t0, "enterprise", "web")
		tr.SeenIn(string(b), "pro", "ios") // a conversion the compiler makes without copying
	})
	assert.Zero(t, allocs)
	// A new value past the bound folds without allocating either.
	full := New(WithDimensions("tenant"), WithMaxValues(1))
	defer full.Close()
	full.SeenIn("u", "first")
	allocs = testing.AllocsPerRun(1000, func() { full.SeenIn("u", "another") })
	assert.Zero(t, allocs)
}

func TestInvalidDimensions(t *testing.T) {
	for name, opt := range map[string]Option{
		"empty":     WithDimensions(""),
		"window":    WithDimensions("window"),
		"reserved":  WithDimensions("__name__"),
		"digit":     WithDimensions("1plan"),
		"dash":      WithDimensions("pl-an"),
		"twice":     WithDimensions("plan", "plan"),
		"too many":  WithDimensions("a", "b", "c", "d", "e", "f", "g", "h", "i"),
		"values 0":  WithMaxValues(0),
		"values 5k": WithMaxValues(MaxValues + 1),
	} {
		assert.Panics(t, func() { New(opt) }, name)
	}
	assert.NotPanics(t, func() { New(WithDimensions("plan", "platform_2", "_x"), WithMaxValues(MaxValues)).Close() })
}

// TestSegmentsConcurrent runs SeenIn, CountsBy and Stats from many goroutines
// (under -race in CI): afterwards, each segment counts exactly the accounts
// sent to it, and the bound holds although values race to be first.
func TestSegmentsConcurrent(t *testing.T) {
	tr := New(WithDimensions("plan", "platform"), WithMaxValues(4), WithShards(2))
	defer tr.Close()
	plans := []string{"free", "pro", "enterprise", "team", "x1", "x2", "x3"}
	const workers, users = 8, 20_000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < users; i += workers {
				tr.SeenIn("u"+strconv.Itoa(i), plans[i%len(plans)], "p"+strconv.Itoa(i%3))
				if i%5000 == 0 {
					tr.CountsBy(time.Hour)
					tr.Stats()
				}
			}
		})
	}
	wg.Wait()
	b := tr.CountsBy(time.Hour)
	assert.Equal(t, []int{users}, b.Overall)
	sum := 0
	for _, v := range b.Dimensions[0].Values {
		sum += v.Counts[0]
	}
	assert.Equal(t, users, sum, "each account in exactly one plan")
	assert.Len(t, b.Dimensions[0].Values, 5, "4 plans and the overflow")
	over := b.Dimensions[0].Values[4]
	require.Equal(t, OverflowValue, over.Value)
	assert.Equal(t, b.Dimensions[0].Folded, uint64(over.Counts[0]), "each account recorded once: the overflow holds what was folded")
	assert.InDelta(t, users*3/7, over.Counts[0], 3, "three of the seven plans came too late")
	for _, v := range b.Dimensions[1].Values[:3] {
		assert.InDelta(t, users/3, v.Counts[0], 1, v.Value)
	}
}

// TestPairMemory: a million (account, segment) pairs in ten segments take
// what a million accounts do, within the table's load band: 12 bytes a slot
// at a load of 0.51–0.8 is 15–23.5 bytes, plus shards and directories.
func TestPairMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("a million accounts")
	}
	tr := New(WithDimensions("plan"))
	defer tr.Close()
	plans := []string{"free", "pro", "team", "enterprise", "edu", "trial", "startup", "nonprofit", "partner", "internal"}
	const n = 1_000_000
	for i := range n {
		tr.SeenIn("account-"+strconv.Itoa(i), plans[i%10])
	}
	st := tr.Stats()
	require.Equal(t, n, st.Pairs)
	perPair := float64(st.PairBytes) / float64(st.Pairs)
	perAccount := float64(st.Bytes) / float64(st.Entries)
	t.Logf("%.1f bytes a pair (%d shards), %.1f bytes an account", perPair, st.PairShards, perAccount)
	assert.LessOrEqual(t, perPair, 20.0)
}

func TestSegmentEntriesListEachSegmentsAccounts(t *testing.T) {
	now := t0
	tr := New(WithDimensions("plan", "platform"), WithMaxValues(2), fixed(&now))
	tr.SeenInAt("a", now.Add(-time.Hour), "pro", "ios")
	tr.SeenIn("b", "pro")
	tr.SeenIn("c", "free", "web")
	tr.SeenIn("d", "team") // folded
	assert.Equal(t, []Segment{
		{"plan", "pro"}, {"plan", "free"}, {"plan", OverflowValue},
		{"platform", "ios"}, {"platform", "web"}, {"platform", OverflowValue},
	}, tr.Segments())
	hashes := func(es []Entry) map[uint64]int64 {
		m := map[uint64]int64{}
		for _, e := range es {
			m[e.Hash] = e.Last
		}
		return m
	}
	h := func(uid string) uint64 { return xxhash.Sum64String(uid) }
	assert.Equal(t, map[uint64]int64{h("a"): now.Add(-time.Hour).Unix(), h("b"): now.Unix()},
		hashes(tr.AppendSegmentEntries(nil, Segment{"plan", "pro"}, time.Time{})))
	assert.Equal(t, map[uint64]int64{h("b"): now.Unix()},
		hashes(tr.AppendSegmentEntries(nil, Segment{"plan", "pro"}, now.Add(-time.Minute))), "since")
	assert.Equal(t, map[uint64]int64{h("d"): now.Unix()},
		hashes(tr.AppendSegmentEntries(nil, Segment{"plan", OverflowValue}, time.Time{})))
	assert.Empty(t, tr.AppendSegmentEntries(nil, Segment{"plan", "nope"}, time.Time{}))
	assert.Empty(t, tr.AppendSegmentEntries(nil, Segment{"region", "eu"}, time.Time{}))
}
