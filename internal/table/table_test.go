package table

import (
	"math/rand/v2"
	"testing"
)

// Get returns the time held for key and whether it is present (tests only).
func (t *Table) Get(key uint64) (uint32, bool) {
	e, found := t.find(key, t.mix.Mix(key))
	return e.sec, found
}

// check verifies the linear-probing invariant: every entry is reachable from its
// home slot without crossing an empty slot, and n counts the occupied slots.
func check(t *testing.T, tb *Table) {
	t.Helper()
	n := 0
	for i := range tb.slots {
		e := tb.slots[i]
		if e.empty() {
			continue
		}
		n++
		h := home(tb.mix.Mix(e.key()), len(tb.slots))
		for j := h; j != i; j = (j + 1) % len(tb.slots) {
			if tb.slots[j].empty() {
				t.Fatalf("entry %x at %d: gap at %d after its home %d", e.key(), i, j, h)
			}
		}
	}
	if n != tb.n {
		t.Fatalf("n = %d, occupied = %d", tb.n, n)
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
		keys := 1 + r.IntN(2000)
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
				tb.Record(k, mix.Mix(k), sec, cutoff)
				if old, ok := ref[k]; !ok || sec > old {
					ref[k] = sec
				}
			case op < 90:
				k := 1 + r.Uint64N(uint64(keys))
				sec := now - uint32(r.IntN(150))
				tb.Merge(k, mix.Mix(k), sec)
				if old, ok := ref[k]; !ok || sec > old {
					ref[k] = sec
				}
			case op < 95:
				tb.Prune(cutoff)
				deleteOld()
			default:
				// Windows of 0, 10, 50, 100 and 1000 seconds (past now: 1000 is
				// "everything"), six of them so the slow path past four runs too.
				// A random number of them, to take each specialised path.
				since := []uint32{now, now - 10, now - 50, now - 100, 1, now - 3}[:1+r.IntN(6)]
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
				if load := float64(tb.n) / float64(len(tb.slots)); load < 0.5 && len(tb.slots) > MinCapacity {
					t.Fatalf("round %d: load %.3f below 0.5 after a prune (%d in %d slots)", round, load, tb.n, len(tb.slots))
				}
			}
			check(t, &tb)
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
			load := float64(tb.n) / float64(len(tb.slots))
			if load > 0.8+1e-9 {
				t.Fatalf("load %.3f above 0.8", load)
			}
		}
	}
}

// TestWalkWraps puts a probe chain across the end of the slice and deletes
// inside it during a Count, the case where a careless walk visits an entry twice.
func TestWalkWraps(t *testing.T) {
	mix := NewMixer(7, 9)
	for trial := range 200 {
		tb := New(mix, 0)
		c := len(tb.slots)
		// Find keys whose home is the last slot.
		var keys []uint64
		for k := uint64(1); len(keys) < 6; k++ {
			if home(mix.Mix(k), c) == c-1 {
				keys = append(keys, k)
			}
		}
		for i, k := range keys {
			sec := uint32(100)
			if (i+trial)%2 == 0 {
				sec = 10 // expired
			}
			tb.Merge(k, mix.Mix(k), sec)
		}
		check(t, &tb)
		live := tb.Len()
		for i := range keys {
			if (i+trial)%2 == 0 {
				live--
			}
		}
		got := []int{0}
		tb.CountAndPrune(50, []uint32{1}, got)
		if got[0] != live || tb.Len() != live {
			t.Fatalf("trial %d: counted %d, len %d, want %d", trial, got[0], tb.Len(), live)
		}
		check(t, &tb)
	}
}

// TestChurnStaysPruned inserts many generations of keys that each expire, with
// no Count or Prune call, and checks that inserts alone keep the table mostly
// live and its size bounded.
func TestChurnStaysPruned(t *testing.T) {
	mix := NewMixer(3, 5)
	tb := New(mix, 0)
	const perSec, ret = 100, 100 // 10,000 live keys
	k := uint64(1)
	for now := uint32(1); now < 10*ret*20; now++ { // 20 retentions over
		for range perSec {
			tb.Record(k, mix.Mix(k), now, now-min(now, ret))
			k++
		}
		if now > 2*ret {
			live := 0
			tb.Range(now-ret, func(uint64, uint32) { live++ })
			if frac := float64(live) / float64(tb.Len()); frac < 0.8 {
				t.Fatalf("second %d: only %.2f of %d entries live", now, frac, tb.Len())
			}
			if bytes := len(tb.slots) * SlotBytes / live; bytes > 28 {
				t.Fatalf("second %d: %d bytes per live entry", now, bytes)
			}
		}
	}
}
