package table

import "testing"

var countN = 1_000_000

func BenchmarkCount(b *testing.B) {
	mix := NewMixer(1, 2)
	tb := New(mix, 0)
	for k := uint64(1); k <= uint64(countN); k++ {
		tb.Record(k, mix.Mix(k), 1000+uint32(k%7), 1)
	}
	since := []uint32{1007, 1003, 1}
	c := make([]int, 3)
	for b.Loop() {
		tb.CountAndPrune(1, since, c)
	}
}
