package table

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"unsafe"
)

// New returns a table of its own, initialised by Init (tests only: a
// tracker's tables live inside their shards).
func New(mix Mixer, capacity int) *Table {
	t := new(Table)
	t.Init(mix, capacity)
	return t
}

// Get returns the time held for key and whether it is present (tests only).
func (t *Table) Get(key uint64) (uint32, bool) {
	a := t.arr.Load()
	i, found := find(a, key, t.mix.Mix(key))
	if !found {
		return 0, false
	}
	_, sec := a.at(i)
	return sec.Load(), true
}

// check verifies the linear-probing invariant: every live entry is reachable
// from its home slot without crossing an empty slot (tombstones keep chains
// whole), no key is live twice, and n and used count what the slots hold.
func check(t *testing.T, tb *Table) {
	t.Helper()
	a := tb.arr.Load()
	c := a.len()
	key := func(i int) uint64 { k, _ := a.at(i); return k.Load() }
	n, used := 0, 0
	seen := map[uint64]bool{}
	for i := range c {
		k, sec := a.at(i)
		if k.Load() == 0 {
			if sec.Load() != 0 {
				t.Fatalf("slot %d: a time without a key", i)
			}
			continue
		}
		used++
		if sec.Load() == 0 {
			continue
		}
		n++
		if seen[k.Load()] {
			t.Fatalf("key %x live twice", k.Load())
		}
		seen[k.Load()] = true
		h := home(tb.mix.Mix(k.Load()), c)
		for j := h; j != i; j = (j + 1) % c {
			if key(j) == 0 {
				t.Fatalf("entry %x at %d: gap at %d after its home %d", k.Load(), i, j, h)
			}
		}
	}
	if n != int(tb.n) || used != int(tb.used) {
		t.Fatalf("n = %d, used = %d; slots hold %d live, %d used", tb.n, tb.used, n, used)
	}
	if c < MinCapacity || c > MaxCapacity {
		t.Fatalf("%d slots: not within [%d, %d]", c, MinCapacity, MaxCapacity)
	}
}

// TestAgainstMap drives a table and a Go map through random inserts, sweeps,
// prunes and counts, with keys drawn from a small space so that they collide in
// probe chains, and compares them after every step. Spare arrays are made
// whenever the table asks, and given at once, later (perhaps after the
// rebuild they were made for) or never.
func TestAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	given := 0
	defer func() {
		if given == 0 {
			t.Error("no spares were given: the history never took that path")
		}
		t.Logf("%d spares given", given)
	}()
	for round := range 50 {
		var pending []Spares
		mix := NewMixer(r.Uint64(), r.Uint64())
		tb := New(mix, 0)
		ref := map[uint64]uint32{}
		keys := 1 + r.IntN(800) // at most MaxCapacity×0.8: one table never fills
		now := uint32(1000)
		// In every other round the clock stands still and no entry expires,
		// as while a tracker grows: the table then asks for spares.
		still := round%2 == 0
		for range 3000 {
			if !still {
				now += uint32(r.IntN(3))
			}
			cutoff := now - 100
			deleteOld := func() {
				for k, s := range ref {
					if s < cutoff {
						delete(ref, k)
					}
				}
			}
			switch op := r.IntN(100); {
			case op < 5 && len(pending) > 0:
				tb.GiveSpares(pending[0])
				pending = pending[1:]
				given++
			case op < 80:
				k := 1 + r.Uint64N(uint64(keys))
				sec := now - uint32(r.IntN(map[bool]int{false: 150, true: 100}[still]))
				switch tb.Record(k, mix.Mix(k), sec, cutoff) {
				case Full:
					t.Fatalf("round %d: full with %d keys", round, keys)
				case Inserted:
					if req := tb.Spares(); req.Wanted() {
						switch sp := tb.MakeSpares(req, 0); r.IntN(3) {
						case 0:
							tb.GiveSpares(sp)
							given++
						case 1:
							pending = append(pending, sp)
						}
					}
				}
				if old, ok := ref[k]; !ok || sec > old || old < cutoff {
					ref[k] = sec // (an expired entry may have been swept: it comes back at sec)
				}
			case op < 90:
				k := 1 + r.Uint64N(uint64(keys))
				sec := now - uint32(r.IntN(150))
				if !tb.Touch(k, mix.Mix(k), sec) {
					break // not held (or swept): Touch never inserts
				}
				if old, ok := ref[k]; !ok || sec > old {
					ref[k] = sec
				}
			case op < 95:
				tb.CountAndPrune(cutoff, nil, nil)
				deleteOld()
				if tb.used != tb.n && tb.SpareCap() != 0 {
					t.Fatalf("round %d: a prune that deleted entries kept %d spare slots", round, tb.SpareCap())
				}
			default:
				// Windows of 0, 3, 10, 50, 70, 100, 200 and 1000 seconds (100 is
				// the cutoff's, 200 and 1000 past it: "everything", counted
				// without a look at the slots), in an order that puts five
				// shorter than the cutoff's first, then one longer, so the slow
				// path past four runs too, beside a window it must leave out.
				// A random number of them, to take each specialised path.
				since := []uint32{now, now - 10, now - 100, now - 50, 1, now - 3, now - 70, now - 200}[:1+r.IntN(8)]
				got := make([]int, len(since))
				tb.CountAndPrune(cutoff, since, got)
				deleteOld()
				want := make([]int, len(since))
				for _, s := range ref {
					for i, th := range since {
						if s >= th {
							want[i]++
						}
					}
				}
				for i := range since {
					if got[i] != want[i] {
						t.Fatalf("round %d: since %d: got %d, want %d", round, since[i], got[i], want[i])
					}
				}
				if tb.Len() != len(ref) {
					t.Fatalf("round %d: after Count, Len %d, want %d", round, tb.Len(), len(ref))
				}
				if load := float64(tb.n) / float64(tb.Cap()); load < 0.5 && tb.Cap() > MinCapacity {
					t.Fatalf("round %d: load %.3f below 0.5 after a prune (%d in %d slots)", round, load, tb.n, tb.Cap())
				}
			}
			check(t, tb)
			// Every live entry of the reference is present with its time; the
			// table may hold expired entries the reference has dropped.
			for k, s := range ref {
				if s < cutoff {
					continue
				}
				if got, ok := tb.Get(k); !ok || got != s {
					t.Fatalf("round %d: key %d: got %d,%v want %d", round, k, got, ok, s)
				}
			}
			if load := float64(tb.used) / float64(tb.Cap()); load > 0.8+1e-9 {
				t.Fatalf("load %.3f above 0.8", load)
			}
		}
	}
}

// TestSplitDividesLiveEntriesByTheBit: the two halves hold exactly the live entries, divided by the bit,
// and the retired table refuses every Touch.
func TestSplitDividesLiveEntriesByTheBit(t *testing.T) {
	mix := NewMixer(7, 9)
	tb := New(mix, 0)
	var keys []uint64
	for k := uint64(1); ; k++ {
		out := tb.Record(k, mix.Mix(k), 100+uint32(k%3), 50)
		if out == Full {
			break
		}
		keys = append(keys, k)
	}
	if tb.Cap() != MaxCapacity || len(keys) != MaxCapacity*4/5 {
		t.Fatalf("full at %d slots with %d keys", tb.Cap(), len(keys))
	}
	tb.CountAndPrune(101, nil, nil) // a third expire: tombstones, to be dropped
	zero, one := new(Table), new(Table)
	tb.Split(3, zero, one)
	check(t, zero)
	check(t, one)
	for _, k := range keys {
		m := mix.Mix(k)
		live := 100+uint32(k%3) >= 101
		want, other := zero, one
		if m>>3&1 == 1 {
			want, other = one, zero
		}
		if _, ok := want.Get(k); ok != live {
			t.Fatalf("key %d: in its half %v, want %v", k, ok, live)
		}
		if _, ok := other.Get(k); ok {
			t.Fatalf("key %d in the wrong half", k)
		}
		if tb.Touch(k, m, 200) {
			t.Fatal("a retired table took a Touch")
		}
	}
	if zero.Len()+one.Len() != tb.Len() {
		t.Fatalf("halves hold %d+%d of %d", zero.Len(), one.Len(), tb.Len())
	}
}

// TestTouchDuringRebuild: a Touch that raced a rebuild reports failure, so
// its caller records again under the lock, and no raise is lost. Run it under
// -race.
func TestTouchDuringRebuild(t *testing.T) {
	mix := NewMixer(3, 4)
	tb := New(mix, 0)
	const n = 500
	for k := uint64(1); k <= n; k++ {
		tb.Record(k, mix.Mix(k), 10, 1)
	}
	var mu sync.Mutex // the owner's lock
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			mu.Lock()
			tb.rebuild(capFor(int(tb.n)))
			mu.Unlock()
		}
	})
	for sec := uint32(11); sec < 200; sec++ {
		for k := uint64(1); k <= n; k++ {
			if !tb.Touch(k, mix.Mix(k), sec) {
				mu.Lock()
				tb.Record(k, mix.Mix(k), sec, 1)
				mu.Unlock()
			}
		}
	}
	close(done)
	wg.Wait()
	for k := uint64(1); k <= n; k++ {
		if got, ok := tb.Get(k); !ok || got != 199 {
			t.Fatalf("key %d: %d, %v; want 199", k, got, ok)
		}
	}
	check(t, tb)
}

// TestChurnStaysPruned inserts many generations of keys that each expire, with
// no CountAndPrune call, and checks that inserts alone keep the table mostly
// live and its size bounded.
func TestChurnStaysPruned(t *testing.T) {
	mix := NewMixer(3, 5)
	tb := New(mix, 0)
	const perSec, ret = 6, 100 // 600 live keys: one table's worth
	k := uint64(1)
	for now := uint32(1); now < 10*ret*20; now++ { // 20 retentions over
		for range perSec {
			if tb.Record(k, mix.Mix(k), now, now-min(now, ret)) == Full {
				t.Fatalf("second %d: full", now)
			}
			k++
		}
		if now > 2*ret {
			live := 0
			tb.Range(now-ret, func(uint64, uint32) { live++ })
			if frac := float64(live) / float64(tb.Len()); frac < 0.8 {
				t.Fatalf("second %d: only %.2f of %d entries live", now, frac, tb.Len())
			}
			if bytes := tb.Cap() * SlotBytes / live; bytes > 28 {
				t.Fatalf("second %d: %d bytes per live entry", now, bytes)
			}
		}
	}
}

// TestGrowsStraightToMaxCapacityFromHalf: a split's half rebuilds once on its
// way to the next split, straight to MaxCapacity; a prune that takes it back
// under half shrinks it once, and it grows to MaxCapacity again only from a
// load of 0.625 — no rebuilding back and forth at the boundary.
func TestGrowsStraightToMaxCapacityFromHalf(t *testing.T) {
	mix := NewMixer(11, 13)
	tb := New(mix, 0)
	k := uint64(1)
	for tb.Record(k, mix.Mix(k), 100, 50) != Full {
		k++
	}
	half := new(Table)
	tb.Split(0, half, new(Table))
	// rebuilds records keys of half (bit 0 of the mix clear) at sec, and
	// returns the capacities its array was replaced with, until n entries.
	rebuilds := func(n int, sec uint32) (caps []int) {
		for half.Len() < n {
			k++
			m := mix.Mix(k)
			if m&1 != 0 {
				continue
			}
			before := half.arr.Load()
			if half.Record(k, m, sec, 50) != Inserted {
				t.Fatalf("key %d not inserted at %d entries", k, half.Len())
			}
			if half.arr.Load() != before {
				caps = append(caps, half.Cap())
			}
		}
		return caps
	}
	if got := rebuilds(MaxCapacity*4/5, 100); len(got) != 1 || got[0] != MaxCapacity {
		t.Fatalf("from a split's half (%d entries) to full: rebuilt to %v, want once to %d", tb.Len()/2, got, MaxCapacity)
	}
	check(t, half)
	// Expire all but 500: the prune shrinks it.
	kept := 0
	for _, j := range liveIndexes(half) {
		if kept < 500 {
			kept++
			continue
		}
		_, sec := half.arr.Load().at(j)
		sec.Store(60) // older than the cutoff below
	}
	half.CountAndPrune(100, nil, nil)
	check(t, half)
	if half.Len() != 500 || half.Cap() != capFor(500) {
		t.Fatalf("after the prune: %d entries in %d slots, want 500 in %d", half.Len(), half.Cap(), capFor(500))
	}
	got := rebuilds(MaxCapacity*4/5, 200)
	if len(got) != 1 || got[0] != MaxCapacity {
		t.Fatalf("growing again: rebuilt to %v, want once to %d", got, MaxCapacity)
	}
	check(t, half)
}

// liveIndexes returns the indexes of tb's live slots.
func liveIndexes(tb *Table) []int {
	var idx []int
	a := tb.arr.Load()
	for i := range a.len() {
		if _, sec := a.at(i); sec.Load() != 0 {
			idx = append(idx, i)
		}
	}
	return idx
}

// mallocs returns how many heap allocations f made.
func mallocs(f func()) uint64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}

// grow records new keys into tb, whose keys' placement hashes have bit b
// equal to half (any if half < 0), until Record says Full, acting on every
// spare request as a tracker does (give false: asking, and dropping what is
// made). It returns the allocations of the Records that rebuilt the array.
func grow(t *testing.T, tb *Table, k *uint64, b uint, half int, give bool) (rebuilds int, allocs uint64) {
	t.Helper()
	for {
		*k++
		m := tb.mix.Mix(*k)
		if half >= 0 && int(m>>b&1) != half {
			continue
		}
		before := tb.arr.Load()
		var out Outcome
		n := mallocs(func() { out = tb.Record(*k, m, 100, 50) })
		if out == Full {
			return rebuilds, allocs
		}
		if tb.arr.Load() != before && tb.Cap() >= spareMinCap {
			rebuilds++
			allocs += n
		}
		if req := tb.Spares(); req.Wanted() {
			sp := tb.MakeSpares(req, b)
			if give {
				tb.GiveSpares(sp)
			}
		}
	}
}

// TestSparesTakeAllocationsOutOfTheHold: a growing table given the spares it
// asks for rebuilds to MaxCapacity and splits without allocating an array,
// so its owner's lock is never held for an allocation; without them it
// allocates each one, and holds the same entries either way.
func TestSparesTakeAllocationsOutOfTheHold(t *testing.T) {
	mix := NewMixer(3, 5)
	for _, give := range []bool{true, false} {
		tb := New(mix, 0)
		k := uint64(0)
		grow(t, tb, &k, 0, -1, give)
		zero, one := new(Table), new(Table)
		n := mallocs(func() { tb.Split(0, zero, one) })
		// Each array is two allocations: its memory and its header.
		if want := map[bool]uint64{true: 0, false: 4}[give]; n != want {
			t.Errorf("spares given %v: the split allocated %d times, want %d", give, n, want)
		}
		if zero.SpareCap()+one.SpareCap() != 0 {
			t.Errorf("a split's halves hold spares")
		}
		check(t, zero)
		check(t, one)
		rebuilds, allocs := grow(t, zero, &k, 0, 0, give)
		if rebuilds != 1 || zero.Cap() != MaxCapacity {
			t.Fatalf("the half rebuilt %d times to %d slots, want once to %d", rebuilds, zero.Cap(), MaxCapacity)
		}
		if want := map[bool]uint64{true: 0, false: 2}[give]; allocs != want {
			t.Errorf("spares given %v: the rebuild to %d allocated %d times, want %d", give, MaxCapacity, allocs, want)
		}
		check(t, zero)
		if zero.Len() != MaxCapacity*maxLoadNum/maxLoadDen {
			t.Errorf("full at %d entries, want %d", zero.Len(), MaxCapacity*maxLoadNum/maxLoadDen)
		}
	}
}

// TestSparesMadeMootAreDropped: spares sized for a table without expired
// entries are dropped by a prune that deletes some, by a rebuild that cannot
// use them, and refused if they arrive after the table was rebuilt.
func TestSparesMadeMootAreDropped(t *testing.T) {
	mix := NewMixer(7, 9)
	// fill records keys until the table asks for spares, and returns the request.
	fill := func(tb *Table, k *uint64, sec uint32) SpareRequest {
		for {
			*k++
			if tb.Record(*k, mix.Mix(*k), sec, 50) == Full {
				t.Fatal("full without asking for spares")
			}
			if req := tb.Spares(); req.Wanted() {
				return req
			}
		}
	}
	k := uint64(0)
	tb := New(mix, 0)
	req := fill(tb, &k, 100)
	tb.GiveSpares(tb.MakeSpares(req, 0))
	if tb.SpareCap() == 0 {
		t.Fatal("spares given were not kept")
	}
	if tb.Spares().Wanted() {
		t.Fatal("asked twice for one array's spares")
	}
	// A prune that deletes three entries, too few to rebuild the table.
	for _, j := range liveIndexes(tb)[:3] {
		_, sec := tb.arr.Load().at(j)
		sec.Store(60)
	}
	arr := tb.arr.Load()
	tb.CountAndPrune(61, nil, nil)
	check(t, tb)
	if tb.arr.Load() != arr {
		t.Fatal("the prune rebuilt the table")
	}
	if tb.SpareCap() != 0 {
		t.Errorf("a prune that deleted entries kept %d spare slots", tb.SpareCap())
	}

	// Spares that arrive after the rebuild they were made for are refused.
	tb = New(mix, 0)
	req = fill(tb, &k, 100)
	sp := tb.MakeSpares(req, 0)
	grow(t, tb, &k, 0, -1, false) // rebuilds on the way to Full, without them
	tb.GiveSpares(sp)
	if tb.SpareCap() != 0 {
		t.Errorf("spares made for a replaced array were kept: %d slots", tb.SpareCap())
	}
	// And by a retired table.
	tb.Split(0, new(Table), new(Table))
	tb.GiveSpares(sp)
	if tb.SpareCap() != 0 {
		t.Errorf("a split table kept spares")
	}

	// A spare too large (an eighth over) is dropped by the rebuild that
	// cannot use it.
	tb = New(mix, 0)
	req = fill(tb, &k, 100)
	if req.split || req.c == MaxCapacity {
		t.Fatalf("the first request is %+v, want a rebuild under %d", req, MaxCapacity)
	}
	big := req.c + req.c/8
	tb.GiveSpares(tb.MakeSpares(SpareRequest{ver: req.ver, c: big}, 0))
	for tb.Cap() < req.c {
		k++
		tb.Record(k, mix.Mix(k), 100, 50)
	}
	check(t, tb)
	if tb.Cap() != req.c || tb.SpareCap() != 0 {
		t.Errorf("a rebuild to %d slots with a spare of %d: %d slots, %d spare", req.c, big, tb.Cap(), tb.SpareCap())
	}
}

// TestTableFitsOneCacheLine: a table's header is one cache line (see Table).
func TestTableFitsOneCacheLine(t *testing.T) {
	if size := unsafe.Sizeof(Table{}); size > 64 {
		t.Errorf("a Table is %d bytes, over one 64-byte cache line", size)
	}
}

// TestSweepSkippedWhileNothingCanExpire: an insert sweeps only while some
// entry may be older than the cutoff (low), and a pass that deletes all
// such entries stops the sweeps again until time passes it.
func TestSweepSkippedWhileNothingCanExpire(t *testing.T) {
	mix := NewMixer(7, 9)
	tb := New(mix, 100)
	for k := uint64(1); k <= 40; k++ {
		tb.Record(k, mix.Mix(k), 100, 50)
	}
	if tb.cursor != 0 || tb.low != 100 {
		t.Fatalf("inserts within the cutoff swept: cursor %d, low %d", tb.cursor, tb.low)
	}
	// Time passes the first 40: every insert now sweeps, and what it
	// sweeps past is deleted.
	for k := uint64(41); k <= 50; k++ {
		tb.Record(k, mix.Mix(k), 200, 150)
	}
	if want := 10 * SweepStep % tb.Cap(); int(tb.cursor) != want {
		t.Fatalf("cursor %d after 10 inserts past the low, want %d", tb.cursor, want)
	}
	if tb.Len() >= 50 {
		t.Fatalf("the sweeps deleted nothing: %d entries", tb.Len())
	}
	check(t, tb)
	// A count deletes the rest of the old ones, and the sweeps stop.
	counts := []int{0}
	tb.CountAndPrune(150, []uint32{150}, counts)
	if counts[0] != 10 || tb.Len() != 10 || tb.low != 150 {
		t.Fatalf("after the pass: counted %d, %d entries, low %d; want 10, 10, 150", counts[0], tb.Len(), tb.low)
	}
	cur := tb.cursor
	tb.Record(51, mix.Mix(51), 210, 150)
	if tb.cursor != cur {
		t.Fatal("an insert swept a table with nothing older than the cutoff")
	}
	// Halves of a split keep the bound.
	zero, one := new(Table), new(Table)
	tb.Split(0, zero, one)
	if zero.low != 150 || one.low != 150 {
		t.Fatalf("halves' low %d and %d, want 150", zero.low, one.low)
	}
}
