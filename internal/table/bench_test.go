package table

import (
	"fmt"
	"testing"
)

// BenchmarkCount counts one full table, as a Counts pass does shard by
// shard.
func BenchmarkCount(b *testing.B) {
	mix := NewMixer(1, 2)
	tb := New(mix, 0)
	for k := uint64(1); tb.Record(k, mix.Mix(k), 1000+uint32(k%7), 1) != Full; k++ {
	}
	// Thresholds past the cutoff (1) are what the pass compares; a window
	// as long as the retention (threshold 1) costs it nothing.
	for _, since := range [][]uint32{{1007, 1003, 1}, {1007, 1005, 1003, 1}, {1007, 1005, 1003, 1002, 1}} {
		b.Run(fmt.Sprintf("thresholds=%d", len(since)-1), func(b *testing.B) {
			c := make([]int, len(since))
			b.SetBytes(int64(tb.Cap() * SlotBytes))
			for b.Loop() {
				tb.CountAndPrune(1, since, c)
			}
		})
	}
}
