package activeusers

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"

	"github.com/activeusers/activeusers/internal/table"
)

// Counting by segment. A dimension (plan, platform, region, tenant) is named
// when the tracker is made; a segment is one value of one dimension
// (plan=pro). Each segment is a set of its own, like the tracker's set of all
// accounts: SeenIn records the account in that, as Seen does, and in the set
// of each value given. So a segment counts exactly as the whole does (64-bit
// keys, the same pruning and passes), and an account in two segments is one
// entry in each.

const (
	// MaxDimensions bounds WithDimensions: each dimension of a request costs
	// SeenIn one more table touch.
	MaxDimensions = 8

	// DefaultMaxValues is how many distinct values a dimension holds unless
	// WithMaxValues says otherwise: room for plans, platforms, regions and
	// the like, and at most 64 label values a window for an exporter.
	DefaultMaxValues = 64

	// MaxValues bounds WithMaxValues: each value is a set of shards of its
	// own, at least 4 KiB empty (16 shards of the smallest table).
	MaxValues = 4096

	// MaxValueLen is the longest value a dimension accepts, in bytes; a longer
	// one folds into OverflowValue. Plan, platform and tenant names are short;
	// a request that sends kilobytes in a header is not naming a segment.
	MaxValueLen = 64

	// OverflowValue is the value that every value beyond a dimension's bound
	// folds into: those that arrive when it already holds its WithMaxValues
	// values, those longer than MaxValueLen, those that are not valid UTF-8,
	// and OverflowValue itself. Its counts are exported like any value's.
	OverflowValue = "__overflow__"

	// valueShards is how many shards a value's set starts with (or the
	// tracker's WithShards, if fewer): enough that the first inserts of a
	// new value from many goroutines do not all wait for one lock, small
	// enough that an empty value costs 4 KiB. They split as accounts arrive.
	valueShards = 16
)

// dimension maps the values of one dimension to their sets, up to its bound.
type dimension struct {
	name     string
	max      int
	shards   int         // a new value's set starts with these
	mix      table.Mixer // shared by the dimension's sets: they never mix keys
	overflow *set
	sets     atomic.Pointer[map[string]*set] // replaced whole on each new value
	mu       sync.Mutex                      // serialises adding values
	values   []value                         // in order of arrival, under mu
	folded   atomic.Uint64
}

// valueBytes is what a value costs besides its name and its set: its map
// entry (a string header and a pointer, and a control byte, rounded up) and
// its place in values, for Stats.
const valueBytes = 16 + 8 + 8 + 24 + 8

// value is one segment: a value and its set.
type value struct {
	name string
	set  *set
}

func newDimension(name string, max, shards int, mix table.Mixer) *dimension {
	d := &dimension{name: name, max: max, shards: shards, mix: mix, overflow: newSet(mix, shards)}
	m := map[string]*set{}
	d.sets.Store(&m)
	return d
}

// set returns the set of value v (not empty), making it if v is new and the
// dimension has room, and the overflow set otherwise. A value already held
// costs one lookup in a map no larger than the bound; it never allocates.
func (d *dimension) set(v string) *set {
	m := *d.sets.Load()
	if s, ok := m[v]; ok {
		return s
	}
	if len(m) >= d.max || len(v) > MaxValueLen || v == OverflowValue || !utf8.ValidString(v) {
		d.folded.Add(1)
		return d.overflow
	}
	s := d.add(v)
	if s == d.overflow {
		d.folded.Add(1) // the bound was reached meanwhile
	}
	return s
}

// add gives v a set of its own if the dimension has room, and returns it;
// else the overflow set (the caller counts the fold, if it is one).
func (d *dimension) add(v string) *set {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := *d.sets.Load()
	if s, ok := m[v]; ok {
		return s // added meanwhile
	}
	if len(m) >= d.max {
		return d.overflow
	}
	v = strings.Clone(v) // the caller's string may be a view of a request's bytes
	s := newSet(d.mix, d.shards)
	nm := make(map[string]*set, len(m)+1)
	maps.Copy(nm, m)
	nm[v] = s
	d.values = append(d.values, value{v, s})
	d.sets.Store(&nm)
	return s
}

// load returns the set a snapshot's value v goes to: its own if the
// dimension has it or room for it, else the overflow set. Values folded on
// loading are not counted in Folded, which counts recordings.
func (d *dimension) load(v string) *set {
	if v == OverflowValue {
		return d.overflow
	}
	if s, ok := (*d.sets.Load())[v]; ok {
		return s
	}
	if len(v) > MaxValueLen || !utf8.ValidString(v) {
		return d.overflow
	}
	return d.add(v)
}

// snapshot returns the values taken so far, in order of arrival, then the
// overflow value, and the count folded.
func (d *dimension) snapshot() ([]value, uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append(slices.Clone(d.values), value{OverflowValue, d.overflow}), d.folded.Load()
}

// SeenIn records that the account uid is active now, overall as Seen does and
// in one segment of each dimension: values[i] is its value of the i-th
// dimension given to WithDimensions. An empty value leaves its dimension out;
// values beyond the dimensions are ignored; so is an empty uid. A value the
// dimension has not held yet takes the next of its WithMaxValues places, and
// once they are taken it counts in OverflowValue (see there for what else
// does). SeenIn does not allocate (the values' slice stays on the caller's
// stack); each value costs one map lookup and one table touch more than
// Seen. On a tracker without dimensions it is Seen.
func (t *Tracker) SeenIn(uid string, values ...string) {
	if uid == "" {
		return
	}
	now := t.nowSec()
	t.recordIn(xxhash.Sum64String(uid), now, now, values)
}

// SeenInAt is SeenIn at time at, with SeenAt's rules for times ahead of the
// clock or past retention.
func (t *Tracker) SeenInAt(uid string, at time.Time, values ...string) {
	if uid == "" {
		return
	}
	sec, now := t.atOrNow(at)
	t.recordIn(xxhash.Sum64String(uid), sec, now, values)
}

// recordIn records h as seen at sec (at most now) overall and in the segments
// values name, pruning by now, the clock's second: the only time that decides
// what is past retention. SeenIn and SeenInAt come here.
func (t *Tracker) recordIn(h uint64, sec, now int64, values []string) {
	cutoff, s32 := t.cutoff(now), toSec(sec)
	if s32 < cutoff {
		return // already past retention: it would never be counted
	}
	if len(values) == 0 {
		t.record(h, s32, cutoff)
		return
	}
	if len(values) > len(t.dims) {
		values = values[:len(t.dims)]
	}
	var sets [MaxDimensions]*set
	for i, v := range values {
		if v != "" {
			sets[i] = t.dims[i].set(v)
		}
	}
	t.recordSets(h, s32, cutoff, sets[:len(t.dims)])
}

// recordSets records h as seen at sec overall and in each set of sets (one
// for each dimension) that is not nil.
func (t *Tracker) recordSets(h uint64, sec, cutoff uint32, sets []*set) {
	// Each segment's slot is a cache miss of its own, costing about what a
	// whole Seen does: start each on its way before recording the account
	// overall, so that the misses overlap (docs/design.md, "A segment's
	// second touch").
	for _, st := range sets {
		if st != nil {
			st.prefetch(h)
		}
	}
	t.all.record(h, sec, cutoff)
	for _, st := range sets {
		if st != nil {
			st.record(h, sec, cutoff)
		}
	}
	t.stored(sec)
}

// Dimensions returns the names given to WithDimensions, in order.
func (t *Tracker) Dimensions() []string {
	names := make([]string, len(t.dims))
	for i, d := range t.dims {
		names[i] = d.name
	}
	return names
}

// Breakdown is what CountsBy returns: the counts overall and by segment, for
// the same windows, in the order they were asked for.
type Breakdown struct {
	// Overall is what Counts would return: each account once, whatever its
	// segments, and including accounts recorded by Seen without any.
	Overall []int
	// Dimensions has one element for each dimension, in WithDimensions order.
	Dimensions []DimensionCounts
}

// DimensionCounts is one dimension's part of a Breakdown.
type DimensionCounts struct {
	Name string
	// Values has every value the dimension has taken, sorted, and then
	// OverflowValue, always: a value whose accounts have all expired counts 0
	// rather than disappearing, and there are at most WithMaxValues+1. An
	// account counts once in each value it was recorded in within the window,
	// so the values' counts may sum to more than Overall (an account on two
	// platforms) or less (accounts recorded with no value for this dimension).
	Values []ValueCounts
	// Folded is how many recordings went to OverflowValue since the tracker
	// was made: a value beyond the bound, too long, not UTF-8.
	Folded uint64
}

// ValueCounts is one segment's counts, one for each window.
type ValueCounts struct {
	Value  string
	Counts []int
}

// CountsBy returns, for each window, the distinct accounts active within it
// overall and in each segment of each dimension, with Counts's rules. It makes
// one pass over the accounts and one over the (account, segment) pairs, one
// shard's lock at a time, and prunes both as it goes.
func (t *Tracker) CountsBy(windows ...time.Duration) Breakdown {
	now := t.nowSec()
	return t.countsBy(now, now, windows)
}

// CountsByAt is CountsBy as of the instant at, with CountsAt's rules.
func (t *Tracker) CountsByAt(at time.Time, windows ...time.Duration) Breakdown {
	return t.countsBy(at.Unix(), t.nowSec(), windows)
}

func (t *Tracker) countsBy(at, now int64, windows []time.Duration) Breakdown {
	b := Breakdown{Overall: t.counts(at, now, windows)}
	if len(t.dims) == 0 {
		return b
	}
	since, idx := t.thresholds(at, windows)
	cutoff := t.cutoff(now)
	b.Dimensions = make([]DimensionCounts, len(t.dims))
	for i, d := range t.dims {
		vals, folded := d.snapshot()
		dc := DimensionCounts{Name: d.name, Folded: folded, Values: make([]ValueCounts, len(vals))}
		for k, v := range vals {
			dc.Values[k] = ValueCounts{Value: v.name, Counts: v.set.counts(since, idx, len(windows), cutoff)}
		}
		// Sorted by value, the overflow value (last) aside.
		slices.SortFunc(dc.Values[:len(vals)-1], func(a, b ValueCounts) int { return strings.Compare(a.Value, b.Value) })
		b.Dimensions[i] = dc
	}
	return b
}

// Segment names one segment: a dimension and one of its values.
type Segment struct{ Dimension, Value string }

// Segments returns every segment the tracker has: each dimension's values in
// the order they arrived, then its OverflowValue. Values are never removed,
// so a segment once returned is returned by every later call.
func (t *Tracker) Segments() []Segment {
	var out []Segment
	for _, d := range t.dims {
		vals, _ := d.snapshot()
		for _, v := range vals {
			out = append(out, Segment{d.name, v.name})
		}
	}
	return out
}

// AppendSegmentEntries is AppendEntries for the accounts of one segment:
// those recorded in it by SeenIn, each with its last activity in that
// segment. It appends nothing for a segment the tracker does not have. The
// auredis package pushes each segment this way.
func (t *Tracker) AppendSegmentEntries(dst []Entry, s Segment, since time.Time) []Entry {
	st := t.segmentSet(s)
	if st == nil {
		return dst
	}
	t.forEntries(st, toSec(since.Unix()), func(n int) { dst = slices.Grow(dst, n) }, func(key uint64, sec uint32) {
		dst = append(dst, Entry{Hash: key, Last: int64(sec)})
	})
	return dst
}

// segmentSet returns the set of segment s, or nil.
func (t *Tracker) segmentSet(s Segment) *set {
	for _, d := range t.dims {
		if d.name != s.Dimension {
			continue
		}
		if s.Value == OverflowValue {
			return d.overflow
		}
		return (*d.sets.Load())[s.Value]
	}
	return nil
}

// Folded returns, for each dimension in WithDimensions order, how many
// recordings went to OverflowValue since the tracker was made: what CountsBy
// reports as DimensionCounts.Folded, without a pass over the accounts.
func (t *Tracker) Folded() []uint64 {
	out := make([]uint64, len(t.dims))
	for i, d := range t.dims {
		out[i] = d.folded.Load()
	}
	return out
}
