package table

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// countByDefinition is what countRun computes, slot by slot: from the first
// slot on, up to the first expired entry (live, older than cutoff), the
// slots whose time reaches each threshold.
func countByDefinition(s []uint32, cutoff uint32, th [4]uint64) (stop int, c [4]int) {
	for stop < len(s) && (s[stop] == 0 || s[stop] >= cutoff) {
		for j, t := range th {
			if uint64(s[stop]) >= t {
				c[j]++
			}
		}
		stop++
	}
	return stop, c
}

// checkCountRun compares countRun, whose loops are unrolled and on amd64
// vectorised, with countByDefinition on one array.
func checkCountRun(t *testing.T, secs []uint32, cutoff uint32, th [4]uint64) {
	t.Helper()
	s := make([]atomic.Uint32, len(secs))
	for i, v := range secs {
		s[i].Store(v)
	}
	var c [4]int
	stop := countRun(s, cutoff, &th, &c)
	wantStop, want := countByDefinition(secs, cutoff, th)
	if stop != wantStop || c != want {
		t.Fatalf("countRun(%v, cutoff %d, thresholds %v) = %d, %v; want %d, %v", secs, cutoff, th, stop, c, wantStop, want)
	}
}

// thresholdsFor returns nth thresholds above cutoff, at most top, and the
// rest unused (1<<32), as CountAndPrune passes them.
func thresholdsFor(r *rand.Rand, nth int, cutoff, top uint32) [4]uint64 {
	th := [4]uint64{1 << 32, 1 << 32, 1 << 32, 1 << 32}
	for j := range nth {
		th[j] = uint64(cutoff) + 1 + uint64(r.Uint32N(top-cutoff))
	}
	return th
}

// TestCountRunMatchesTheDefinition runs countRun over random arrays: empty
// slots, live times on both sides of each threshold, now and then an expired
// entry, lengths around the vector loop's turn of eight, one to four
// thresholds, and times near 0, near 1<<31 (where the vector loop's signed
// compare would go wrong without its flip: 2038) and near 1<<32.
func TestCountRunMatchesTheDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for _, base := range []uint32{0, 1<<31 - 40, 1<<32 - 100} {
		for range 20000 {
			n := r.IntN(40)
			if r.IntN(10) == 0 {
				n = r.IntN(MaxCapacity + 1)
			}
			cutoff := base + 1 + r.Uint32N(20)
			if r.IntN(20) == 0 {
				cutoff = base // nothing expires
			}
			expired := 0.0
			if r.IntN(2) == 0 {
				expired = 0.02
			}
			secs := make([]uint32, n)
			for i := range secs {
				switch x := r.Float64(); {
				case x < 0.33:
					secs[i] = 0
				case x < 0.33+expired && cutoff > base+1:
					secs[i] = base + 1 + r.Uint32N(cutoff-base-1) // live, older than cutoff
				default:
					secs[i] = cutoff + r.Uint32N(40)
				}
			}
			checkCountRun(t, secs, cutoff, thresholdsFor(r, 1+r.IntN(4), cutoff, cutoff+45))
		}
	}
}

// FuzzCountRun checks countRun against its definition on arrays of small
// times (a byte each), where thresholds, the cutoff and the times meet
// often.
func FuzzCountRun(f *testing.F) {
	f.Add([]byte{0, 5, 9, 3, 7, 7, 8, 0, 1, 2, 9, 9, 9, 9, 9, 9, 9}, uint8(4), uint8(7), uint8(9), uint8(2))
	f.Add([]byte{10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 3}, uint8(5), uint8(10), uint8(11), uint8(1))
	f.Add([]byte{}, uint8(0), uint8(1), uint8(2), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, cutoff, t0, t1, nth uint8) {
		secs := make([]uint32, len(data))
		for i, b := range data {
			secs[i] = uint32(b)
		}
		th := [4]uint64{1 << 32, 1 << 32, 1 << 32, 1 << 32}
		for j, v := range []uint8{t0, t1, t0 ^ t1, t0 + t1}[:nth%5] {
			th[j] = uint64(cutoff) + 1 + uint64(v) // above the cutoff, as CountAndPrune passes them
		}
		checkCountRun(t, secs, uint32(cutoff), th)
	})
}

// TestCountFastCountsEveryNumberOfThresholds checks that the vector loop,
// where there is one, is what counts one to four thresholds, and what it
// counts before the scalar loops take over: a test of countRun's results
// alone would pass as well if it were never called.
func TestCountFastCountsEveryNumberOfThresholds(t *testing.T) {
	if !vectorCount {
		t.Skip("no vector loop on this platform or with -tags purego")
	}
	secs := make([]uint32, 21)
	s := make([]atomic.Uint32, len(secs))
	for i := range s {
		secs[i] = uint32(100 + i)
		s[i].Store(secs[i])
	}
	all := [4]uint64{105, 110, 115, 102}
	for nth := 1; nth <= 4; nth++ {
		th := [4]uint64{1 << 32, 1 << 32, 1 << 32, 1 << 32}
		copy(th[:nth], all[:nth])
		var c [4]int
		got := countFast(s, 50, &th, &c)
		_, want := countByDefinition(secs[:16], 50, th)
		if got != 16 || c != want {
			t.Errorf("countFast with thresholds %v read %d slots and counted %v, want 16 and %v", th, got, c, want)
		}
	}
	s[9].Store(20) // expired: the loop stops before its turn of eight
	for _, th := range [][4]uint64{{105, 110, 1 << 32, 1 << 32}, all} {
		var c [4]int
		got := countFast(s, 50, &th, &c)
		if _, want := countByDefinition(secs[:8], 50, th); got != 8 || c != want {
			t.Errorf("countFast with thresholds %v stopped at %d with %v, want 8 with %v", th, got, c, want)
		}
	}
}
