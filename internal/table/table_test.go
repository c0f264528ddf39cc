package table

import (
	"math/rand/v2"
	"sync"
	"testing"
)

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
	if n != tb.n || used != tb.used {
		t.Fatalf("n = %d, used = %d; slots hold %d live, %d used", tb.n, tb.used, n, used)
	}
	if c < MinCapacity || c > MaxCapacity {
		t.Fatalf("%d slots: not within [%d, %d]", c, MinCapacity, MaxCapacity)
	}
}

// TestAgainstMap drives a table and a Go map through random inserts, sweeps,
// prunes and counts, with keys drawn from a small space so that they collide in
// probe chains, and compares them after every step.
func TestAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		mix := NewMixer(r.Uint64(), r.Uint64())
		tb := New(mix, 0)
		ref := map[uint64]uint32{}
		keys := 1 + r.IntN(800) // at most MaxCapacity×0.8: one table never fills
		now := uint32(1000)
		for range 3000 {
			now += uint32(r.IntN(3))
			cutoff := now - 100
			deleteOld := func() {
				for k, s := range ref {
					if s < cutoff {
						delete(ref, k)
					}
				}
			}
			switch op := r.IntN(100); {
			case op < 80:
				k := 1 + r.Uint64N(uint64(keys))
				sec := now - uint32(r.IntN(150))
				if tb.Record(k, mix.Mix(k), sec, cutoff) == Full {
					t.Fatalf("round %d: full with %d keys", round, keys)
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

// TestSplit: the two halves hold exactly the live entries, divided by the bit,
// and the retired table refuses every Touch.
func TestSplit(t *testing.T) {
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
	zero, one := tb.Split(3)
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
			tb.rebuild(capFor(tb.n))
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
	half, _ := tb.Split(0)
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
