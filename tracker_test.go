package activeusers

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/activeusers/activeusers/internal/table"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// model is the design this library replaces, kept as the reference the Tracker
// is checked against: one map from uid to last activity, counted by walking it.
// Like the Tracker it lets only the clock decide what is past retention (the
// original pruned at whatever instant it was asked about, so a 5m scrape or a
// count "as of next year" erased history), records a time ahead of the clock
// as the clock's now, and clamps windows to the retention.
type model struct {
	last  map[string]time.Time
	ret   time.Duration
	clock *time.Time // the tracker's clock
}

func newModel(ret time.Duration, clock *time.Time) *model {
	return &model{last: map[string]time.Time{}, ret: ret, clock: clock}
}

func (m *model) seenAt(uid string, at time.Time) {
	at, ok := m.recorded(uid, at)
	if !ok {
		return
	}
	if old, ok := m.last[uid]; !ok || at.After(old) {
		m.last[uid] = at
	}
}

// recorded is the time a record of uid at at keeps — a time ahead of the
// clock is the clock's now — and false if nothing is recorded: an empty uid,
// or a time past retention.
func (m *model) recorded(uid string, at time.Time) (time.Time, bool) {
	if uid == "" {
		return at, false
	}
	if at.After(*m.clock) {
		at = *m.clock
	}
	return at, m.clock.Sub(at) <= m.ret
}

// countsAt measures ages from at; what is past retention by the clock is
// dropped and never counted.
func (m *model) countsAt(at time.Time, windows ...time.Duration) []int {
	counts := make([]int, len(windows))
	for uid, last := range m.last {
		if m.clock.Sub(last) > m.ret {
			delete(m.last, uid)
			continue
		}
		age := max(at.Sub(last), 0)
		for i, w := range windows {
			if age <= min(w, m.ret) {
				counts[i]++
			}
		}
	}
	return counts
}

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func sec(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

func fixed(now *time.Time) Option { return WithClock(func() time.Time { return *now }) }

// TestSlidingWindows walks a tracker through a history on a fake clock, one
// step a row: windows are inclusive, clamp to the retention, and only the clock
// expires an account.
func TestSlidingWindows(t *testing.T) {
	const h, d = time.Hour, 24 * time.Hour
	var now time.Time
	tr := New(WithRetention(7*d), fixed(&now))
	steps := []struct {
		clock  time.Time
		seen   string        // uid seen now (may be empty)
		at     time.Duration // CountsAt(clock+at, 1h, 24h, 7d, 30d)
		counts []int
	}{
		{t0, "a", 0, []int{1, 1, 1, 1}},
		{t0.Add(h), "b", 0, []int{2, 2, 2, 2}},                     // a's age is exactly 1h: inclusive
		{t0.Add(h + time.Second), "", 0, []int{1, 2, 2, 2}},        // a is 1h1s old
		{t0.Add(h + time.Second), "", -h, []int{2, 2, 2, 2}},       // as of an hour ago both have age 0 (b is "in the future")
		{t0.Add(h + time.Second), "", 8 * d, []int{0, 0, 0, 0}},    // as of 8 days ahead: nobody, and nothing deleted
		{t0.Add(-30 * time.Minute), "a", 0, []int{2, 2, 2, 2}},     // the clock steps back: a stays at t0, both age 0
		{t0.Add(25 * h), "", 0, []int{0, 1, 2, 2}},                 // b is exactly 24h old
		{t0.Add(7 * d), "", 0, []int{0, 0, 2, 2}},                  // a is exactly 7d old: still kept
		{t0.Add(7*d + time.Second), "", 0, []int{0, 0, 1, 1}},      // a is past retention; 30d counts as 7d
		{t0.Add(7*d + time.Second), "", -7 * d, []int{1, 1, 1, 1}}, // as of t0+1s, but a is gone by the clock
		{t0.Add(7*d + h + time.Second), "", 0, []int{0, 0, 0, 0}},
	}
	for i, s := range steps {
		now = s.clock
		if s.seen != "" {
			tr.Seen(s.seen)
		}
		got := tr.CountsAt(now.Add(s.at), h, d, 7*d, 30*d)
		assert.Equal(t, s.counts, got, "step %d at %v", i, now.Sub(t0))
	}
	assert.Equal(t, 0, tr.Len(), "Counts prunes what is past retention")
}

// TestTimeAheadOfClockDeletesNothing is the reported loss: accounts 6.5 days
// old, inside a 7-day retention, must survive SeenAt a day ahead of the clock,
// CountsAt a year ahead, and SeenAt in the year 3000 (which must not keep an
// account for centuries either).
func TestTimeAheadOfClockDeletesNothing(t *testing.T) {
	for _, shards := range []int{1, 256} {
		t.Run(fmt.Sprint("shards=", shards), func(t *testing.T) {
			now := t0
			tr := New(WithShards(shards), fixed(&now))
			for i := range 1000 {
				tr.SeenAt("old"+strconv.Itoa(i), now.Add(-156*time.Hour))
			}
			for i := range 50 {
				tr.SeenAt("ahead"+strconv.Itoa(i), now.Add(24*time.Hour))
			}
			week := 7 * 24 * time.Hour
			assert.Equal(t, []int{1050, 50}, tr.Counts(week, 0), "the day-ahead times are recorded as now")
			assert.Equal(t, []int{0}, tr.CountsAt(now.AddDate(1, 0, 0), week), "nobody is active a year on")
			assert.Equal(t, 1050, tr.Len(), "and asking deleted nothing")
			tr.SeenAt("far", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC))
			assert.Equal(t, []int{1051, 51}, tr.Counts(week, 0))
			now = now.Add(week + time.Second)
			assert.Equal(t, []int{0}, tr.Counts(week), "the year-3000 account expires a week later like any other")
		})
	}
}

// TestAgainstModel drives the Tracker and the model through random histories on
// a fake clock that never goes back (TestClockStepsBack covers that), with late arrivals
// (some beyond retention), times ahead of the clock, far-off instants, and
// counts as of past and future instants, and compares every answer.
func TestAgainstModel(t *testing.T) {
	seeds := uint64(60)
	if raceEnabled {
		seeds = 15 // CI also runs all 60, 30 times, without -race
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { runAgainstModel(t, seed, 400) })
	}
}

// farOff are instants a user reaches by accident: the epoch and before, the
// end of the stored range and past it.
var farOff = []time.Time{
	time.Unix(0, 0), time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Unix(1<<32-1, 0), time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC),
}

func runAgainstModel(t *testing.T, seed uint64, steps int) {
	r := rand.New(rand.NewPCG(seed, 99))
	ret := time.Duration(1+r.IntN(200)) * time.Second
	shards := []int{1, 2, 4, 64}[r.IntN(4)]
	now := t0
	tr := New(WithRetention(ret), WithShards(shards), fixed(&now))
	m := newModel(ret, &now)
	users := 1 + r.IntN(3000)
	windows := []time.Duration{0, time.Second, ret / 2, ret, ret + time.Second, 10 * ret, -time.Second, 1500 * time.Millisecond}
	// offset is a time near now: behind or ahead by up to twice the retention.
	offset := func() time.Duration {
		return time.Duration(r.IntN(int(4*ret/time.Second))-int(2*ret/time.Second)) * time.Second
	}
	for range steps {
		now = now.Add(time.Duration(r.IntN(4)) * time.Second)
		for range r.IntN(200) {
			uid := "u" + strconv.Itoa(r.IntN(users))
			switch r.IntN(6) {
			case 0: // a late arrival or a time ahead of the clock
				at := now.Add(offset())
				tr.SeenAt(uid, at)
				m.seenAt(uid, at)
			case 1:
				at := farOff[r.IntN(len(farOff))]
				tr.SeenAt(uid, at)
				m.seenAt(uid, at)
			case 2:
				tr.SeenBytes([]byte(uid))
				m.seenAt(uid, now)
			default:
				tr.Seen(uid)
				m.seenAt(uid, now)
			}
		}
		if r.IntN(3) == 0 {
			ws := make([]time.Duration, 1+r.IntN(5))
			for i := range ws {
				ws[i] = windows[r.IntN(len(windows))]
			}
			at := now
			switch r.IntN(4) {
			case 0:
				at = now.Add(offset())
			case 1:
				at = farOff[r.IntN(len(farOff))]
			}
			want := m.countsAt(at, ws...)
			got := tr.CountsAt(at, ws...)
			require.Equal(t, want, got, "clock %v, as of %v, windows %v", now.Sub(t0), at.Sub(now), ws)
			require.Equal(t, len(m.last), tr.Len(), "after Counts, Len is what the model keeps")
		}
	}
}

// FuzzAgainstModel reads a history from the fuzzer's bytes: each byte is one
// step (move the clock on, see a uid now, late or ahead of the clock,
// or count as of now, the past or the future).
func FuzzAgainstModel(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 255, 128, 64})
	f.Add([]byte("the quick brown fox jumps over the lazy dog"))
	f.Add([]byte{2, 10, 18, 6, 8 + 6, 255, 7, 15, 0, 8, 7})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const ret = 20 * time.Second
		now := t0
		tr := New(WithRetention(ret), WithShards(2), fixed(&now))
		m := newModel(ret, &now)
		for _, op := range ops {
			arg := int(op >> 3) // 0..31
			uid := "u" + strconv.Itoa(arg)
			off := time.Duration(arg-16) * 2 * time.Second // -32s..+30s
			ws := []time.Duration{0, time.Duration(arg) * time.Second, ret, 2 * ret}
			switch op & 7 {
			case 0:
				now = now.Add(time.Duration(arg) * time.Second)
			case 1:
				now = now.Add(2 * time.Duration(arg) * time.Second)
			case 2, 3:
				tr.Seen(uid)
				m.seenAt(uid, now)
			case 4:
				tr.SeenAt(uid, now.Add(off))
				m.seenAt(uid, now.Add(off))
			case 5:
				at := farOff[arg%len(farOff)]
				tr.SeenAt(uid, at)
				m.seenAt(uid, at)
			case 6:
				require.Equal(t, m.countsAt(now, ws...), tr.CountsAt(now, ws...))
			default:
				require.Equal(t, m.countsAt(now.Add(off), ws...), tr.CountsAt(now.Add(off), ws...), "as of %v", off)
			}
		}
		ws := []time.Duration{0, ret / 2, ret}
		require.Equal(t, m.countsAt(now, ws...), tr.CountsAt(now, ws...))
		require.Equal(t, len(m.last), tr.Len())
	})
}

func TestClockStepsBack(t *testing.T) {
	now := sec(1000)
	tr := New(WithRetention(100*time.Second), fixed(&now))
	tr.Seen("a")
	now = sec(900) // the clock steps back 100s
	tr.Seen("b")
	// a was seen "in the future": its age is 0, never negative, and never wraps
	// round to a huge age that would drop it.
	assert.Equal(t, []int{2, 2}, tr.Counts(0, time.Second))
	now = sec(1000)
	assert.Equal(t, []int{1, 2}, tr.Counts(0, 100*time.Second))
	// Far before 1970 is past retention and ignored; after 2106 is ahead of
	// the clock and recorded as now.
	tr.SeenAt("old", time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC))
	tr.SeenAt("new", time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC))
	assert.Equal(t, []int{2, 3}, tr.Counts(0, 100*time.Second))
	assert.Equal(t, 3, tr.Len())
}

func TestEmptyUIDsAreIgnoredAndLongOnesCount(t *testing.T) {
	now := t0
	tr := New(fixed(&now))
	tr.Seen("")
	tr.SeenBytes(nil)
	tr.SeenBytes([]byte{})
	tr.SeenAt("", now)
	assert.Equal(t, 0, tr.Len(), "empty uids are ignored")

	big := strings.Repeat("x", 1<<20)
	tr.Seen(big)
	tr.SeenBytes([]byte(big))
	assert.Equal(t, 1, tr.Len(), "a 1 MiB uid is one account, whichever method saw it")
	tr.Seen(big[:len(big)-1])
	assert.Equal(t, []int{2}, tr.Counts(time.Hour))
}

func TestInvalidOptions(t *testing.T) {
	for _, c := range []struct {
		opt  Option
		want string
	}{
		{WithShards(0), "WithShards(0): the shard count must be between 1 and 65536"},
		{WithShards(-4), "WithShards(-4)"},
		{WithShards(1<<16 + 1), "WithShards(65537)"},
		{WithRetention(0), "WithRetention(0s): the retention must be between 1s and"},
		{WithRetention(-time.Hour), "WithRetention(-1h0m0s)"},
		{WithRetention(999 * time.Millisecond), "WithRetention(999ms)"},
		{WithRetention(100 * 365 * 24 * time.Hour), "WithRetention(876000h0m0s)"},
		{WithClock(nil), "WithClock(nil): the clock must be a non-nil function"},
	} {
		msg := func() (msg any) {
			defer func() { msg = recover() }()
			New(c.opt)
			return nil
		}()
		require.IsType(t, "", msg, c.want)
		assert.True(t, strings.HasPrefix(msg.(string), "activeusers.New: "+c.want), "got %q, want it to start %q", msg, c.want)
	}
	assert.PanicsWithValue(t, "activeusers.New: WithShards(0): the shard count must be between 1 and 65536; WithClock(nil): the clock must be a non-nil function",
		func() { New(WithShards(0), WithClock(nil)) }, "every invalid option is named")
}

func TestOptionsApplied(t *testing.T) {
	tr := New(WithShards(5), WithRetention(90*time.Minute+500*time.Millisecond))
	defer tr.Close()
	assert.Equal(t, 8, tr.Stats().Shards, "rounded up to a power of two")
	assert.Equal(t, 90*time.Minute, tr.Retention(), "truncated to whole seconds")
	d := New()
	defer d.Close()
	assert.Equal(t, DefaultShards, d.Stats().Shards)
	assert.Equal(t, DefaultRetention, d.Retention())
}

// TestDefaultClock uses the real coarse clock: Seen and Counts agree on "now".
func TestDefaultClock(t *testing.T) {
	tr := New()
	tr.Seen("a")
	tr.Seen("b")
	assert.Equal(t, []int{2, 2}, tr.Counts(5*time.Second, 24*time.Hour))
	require.NoError(t, tr.Close())
	require.NoError(t, tr.Close(), "Close is idempotent")
	tr.Seen("c") // still works after Close, on the wall clock
	assert.Equal(t, []int{3}, tr.Counts(5*time.Second))
}

// TestDroppedTrackerStopsClock: a Tracker that is never closed must not leak
// its clock goroutine once unreachable (goleak in TestMain checks the rest).
func TestDroppedTrackerStopsClock(t *testing.T) {
	func() { New().Seen("a") }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		if goleak.Find() == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(goleak.Find())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConcurrentCallsCountExactly runs Seen, SeenAt, Counts and Len from many
// goroutines (run it under -race) and checks exact totals: every goroutine
// sees its own disjoint uids plus a shared set, while Counts and Len run
// alongside.
func TestConcurrentCallsCountExactly(t *testing.T) {
	now := t0
	var mu sync.Mutex // guards now, read by the clock
	clock := WithClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	tr := New(WithShards(8), WithRetention(time.Hour), clock)
	const workers, each, shared = 16, 2000, 500
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var scrapes sync.WaitGroup
	scrapes.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				c := tr.Counts(time.Hour)
				if c[0] > workers*each+shared {
					t.Errorf("count %d above the number of uids", c[0])
				}
				_ = tr.Len()
			}
		}
	})
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				tr.Seen(fmt.Sprintf("w%d-%d", w, i))
				tr.SeenAt(fmt.Sprintf("shared-%d", i%shared), t0.Add(-time.Duration(i)*time.Second))
			}
		})
	}
	wg.Wait()
	close(stop)
	scrapes.Wait()
	assert.Equal(t, []int{workers*each + shared}, tr.Counts(time.Hour))
	// Advance past retention: everything goes, concurrently pruned by Seen.
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				tr.Seen(fmt.Sprintf("late%d-%d", w, i))
			}
		})
	}
	wg.Wait()
	assert.Equal(t, []int{workers * each, workers * each}, tr.Counts(0, time.Hour), "all seen at the same second: age 0")
	assert.Equal(t, workers*each, tr.Len())
}

// TestChurnWithoutCounts: users churn through the retention many times over and
// nobody calls Counts; inserts alone must keep at least 80% of what is held
// within retention, and the heap proportional to the live users.
func TestChurnWithoutCounts(t *testing.T) {
	now := t0
	tr := New(WithRetention(100*time.Second), fixed(&now))
	perSec := 500 // 50,000 live users
	if raceEnabled {
		perSec = 100
	}
	u := 0
	worst, worstBytes := 1.0, 0
	defer func() { t.Logf("lowest share within retention: %.3f; most bytes per live user: %d", worst, worstBytes) }()
	for s := range 2000 { // 20 retentions
		now = sec(s)
		for range perSec {
			tr.Seen("user" + strconv.Itoa(u))
			u++
		}
		if s%50 == 49 && s > 200 {
			st := tr.Stats()
			live := 100 * perSec // within retention, by construction
			worst, worstBytes = min(worst, float64(live)/float64(st.Entries)), max(worstBytes, st.Bytes/live)
			require.GreaterOrEqual(t, float64(live)/float64(st.Entries), 0.80,
				"second %d: %d held for %d live", s, st.Entries, live)
			require.LessOrEqual(t, st.Bytes/live, 28, "bytes per live user")
		}
	}
}

// TestMemoryAfterExpiry: however much of the population expires, a Counts
// pass leaves the tables between half and 0.8 full: at most 24 bytes of table
// per account held.
func TestMemoryAfterExpiry(t *testing.T) {
	for _, gone := range []float64{0.3, 0.6, 0.9} {
		now := t0
		tr := New(WithRetention(time.Hour), fixed(&now))
		n := 200_000
		if raceEnabled {
			n = 40_000
		}
		old := int(gone * float64(n))
		for i := range n {
			at := now
			if i < old {
				at = now.Add(-time.Hour) // expires a second from now
			}
			tr.SeenAt("u"+strconv.Itoa(i), at)
		}
		now = now.Add(time.Second)
		require.Equal(t, []int{n - old}, tr.Counts(time.Hour))
		st := tr.Stats()
		perEntry := float64(st.Slots*12) / float64(st.Entries)
		t.Logf("%.0f%% expired: load %.3f, %.1f table bytes per account", 100*gone, float64(st.Entries)/float64(st.Slots), perEntry)
		assert.LessOrEqual(t, perEntry, 24.0)
		assert.GreaterOrEqual(t, perEntry, 15.0)
	}
}

func TestSeenAllocs(t *testing.T) {
	now := t0
	for _, tr := range []*Tracker{New(), New(fixed(&now))} {
		defer tr.Close()
		uids := make([]string, 1000)
		for i := range uids {
			uids[i] = "user-" + strconv.Itoa(i)
			tr.Seen(uids[i])
		}
		b := []byte("user-7")
		i := 0
		allocs := testing.AllocsPerRun(1000, func() {
			tr.Seen(uids[i%len(uids)])
			tr.SeenBytes(b)
			tr.SeenID(uint64(i % 1000))
			tr.SeenAt(uids[i%len(uids)], now)
			i++
		})
		assert.Zero(t, allocs, "Seen, SeenBytes, SeenID and SeenAt of returning users")
		allocs = testing.AllocsPerRun(100, func() {
			tr.Seen(uids[i%len(uids)]) // mostly returning, the odd insert or resize aside
			i++
		})
		assert.Zero(t, allocs)
	}
}

// TestShardsStayBounded: as accounts arrive, shards split rather than
// grow, so no table, and no piece of work under one lock, passes
// table.MaxCapacity slots; the counts stay exact across the splits.
func TestShardsStayBounded(t *testing.T) {
	now := t0
	tr := New(fixed(&now))
	const n = 400_000
	for i := range n {
		tr.Seen("user" + strconv.Itoa(i))
	}
	require.Equal(t, []int{n}, tr.Counts(time.Hour))
	st := tr.Stats()
	assert.Greater(t, st.Shards, DefaultShards, "full shards split")
	biggest := 0
	tr.all.eachShard(nil, nil, func(s *shard) { biggest = max(biggest, s.tab.Cap()) })
	assert.LessOrEqual(t, biggest, table.MaxCapacity)
	assert.Equal(t, n, st.Entries)
	load := float64(st.Entries) / float64(st.Slots)
	t.Logf("%d shards, largest table %d slots, load %.3f, %.1f bytes an account", st.Shards, biggest, load, float64(st.Bytes)/n)
	assert.GreaterOrEqual(t, load, 0.5)
	assert.LessOrEqual(t, load, 0.8)
}

func TestSeenIDIsSeenBytesOfTheBigEndianID(t *testing.T) {
	now := t0
	tr := New(fixed(&now))
	tr.SeenID(42)
	tr.SeenBytes([]byte{0, 0, 0, 0, 0, 0, 0, 42})
	assert.Equal(t, []int{1}, tr.Counts(time.Hour), "the same account")
	tr.Seen("42")
	assert.Equal(t, []int{2}, tr.Counts(time.Hour), "not the decimal string's")
}

// TestConcurrentGrowthLosesNothing: from one shard, goroutines insert
// distinct accounts while others count and read Stats, so that splits race
// each other, directory doublings and counting passes; afterwards every
// account is held exactly once.
func TestConcurrentGrowthLosesNothing(t *testing.T) {
	workers, per := 8, 40_000
	if raceEnabled {
		per = 10_000
	}
	tr := New(WithShards(1))
	defer tr.Close()
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
					tr.Counts(time.Hour)
					tr.Stats()
				}
			}
		})
	}
	var inserters sync.WaitGroup
	for w := range workers {
		inserters.Go(func() {
			for i := range per {
				tr.Seen("g" + strconv.Itoa(w) + "-" + strconv.Itoa(i))
			}
		})
	}
	inserters.Wait()
	close(done)
	wg.Wait()
	n := workers * per
	assert.Equal(t, []int{n}, tr.Counts(time.Hour))
	assert.Equal(t, n, tr.Len())
	st := tr.Stats()
	assert.Greater(t, st.Shards, 64, "it grew by splitting")
	biggest := 0
	tr.all.eachShard(nil, nil, func(s *shard) { biggest = max(biggest, s.tab.Cap()) })
	assert.LessOrEqual(t, biggest, table.MaxCapacity)
}

// TestEmptyShardsCost: an empty shard costs what DefaultShards's doc says,
// 376 bytes with its smallest table and its directory entry.
func TestEmptyShardsCost(t *testing.T) {
	for _, n := range []int{1, 256} {
		st := New(WithShards(n), WithClock(time.Now)).Stats()
		assert.Equal(t, n, st.Shards)
		assert.Equal(t, 376*n, st.Bytes, "%d shards", n)
	}
}
