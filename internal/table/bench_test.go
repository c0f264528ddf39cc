package table

import "testing"

// BenchmarkCount counts one full table, as a Counts pass does segment by
// segment.
func BenchmarkCount(b *testing.B) {
	mix := NewMixer(1, 2)
	tb := New(mix, 0)
	for k := uint64(1); tb.Record(k, mix.Mix(k), 1000+uint32(k%7), 1) != Full; k++ {
	}
	since := []uint32{1007, 1003, 1}
	c := make([]int, 3)
	b.SetBytes(int64(tb.Cap() * SlotBytes))
	for b.Loop() {
		tb.CountAndPrune(1, since, c)
	}
}
