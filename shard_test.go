package activeusers

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/activeusers/activeusers/internal/table"
)

// TestSplitDuringDoublingPointsTheCopy plays the race a split can lose to a
// doubling, step by step: the doubling freezes the directory and copies it
// before the split points its entries at the halves; the split must then
// point the same entries of the copy once it is published, or lookups would
// find the retired shard there for ever.
func TestSplitDuringDoublingPointsTheCopy(t *testing.T) {
	st := newSet(table.NewMixer(1, 2), 2) // depth 1: shards 0 and 1
	st.dir.Store(st.dir.Load().doubled()) // depth 2, the shards still depth 1
	d := st.dir.Load()
	s := d.shards[0].Load()
	require.Equal(t, uint(1), s.depth)

	// This goroutine is the doubler from here to the publication, pinned as
	// the real one is (set.double): the split waits for it spinning, pinned,
	// so an unpinned doubler could be stopped by a garbage collection that in
	// turn waits for the spinning split to stop — for ever. (It did, once in
	// a few hundred runs beside an allocating test.) A doubling is short; this
	// one lasts 50 ms, and a collection that began meanwhile would wait for
	// it with every P stopped but this one, the split's too: so no collection
	// starts until it is done. And the race needs two Ps, as in a tracker:
	// one doubler and one split, both running.
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("the split and the doubler both spin pinned: this race needs GOMAXPROCS ≥ 2")
	}
	runtime.GC()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	procPin()
	d.frozen.Store(true) // a doubling begins: it has copied d, before the split
	copied := d.doubled()
	done := make(chan struct{})
	go func() {
		st.split(s) // not as deep as the directory: splits without doubling
		close(done)
	}()
	// Wait until the split has pointed the old directory's entries (it then
	// spins for the publication), and at least 50 ms, in which it must not
	// finish.
	early := false
	for start := time.Now(); !early && time.Since(start) < 5*time.Second; {
		if time.Since(start) > 50*time.Millisecond && d.shards[0].Load() != s {
			break
		}
		select { // never blocks: a pinned goroutine must not
		case <-done:
			early = true
		default:
		}
	}
	reached := d.shards[0].Load() != s
	st.dir.Store(copied) // the doubling publishes its copy
	procUnpin()
	require.False(t, early, "the split finished before the doubled directory was published")
	require.True(t, reached, "the split did not point the old directory within 5 s")
	<-done
	require.True(t, s.dead)
	for i := range copied.shards {
		assert.NotSame(t, s, copied.shards[i].Load(), "entry %d of the copy still points at the retired shard", i)
	}
	for i := range d.shards {
		assert.NotSame(t, s, d.shards[i].Load(), "entry %d of the old directory", i)
	}
}

// TestStatsCountSpareArrays: the insert that brings a table close to its
// next rebuild has the spare array made before it returns, held by the
// table and counted in the set's bytes until the rebuild uses it.
func TestStatsCountSpareArrays(t *testing.T) {
	st := newSet(table.NewMixer(3, 4), 1)
	s := st.dir.Load().shards[0].Load()
	const sec, cutoff = 100, 50
	key := uint64(0)
	for s.tab.SpareCap() == 0 {
		key++
		st.record(key, sec, cutoff)
		require.Less(t, key, uint64(table.MaxCapacity), "no spare was made on the way to a full table")
	}
	_, entries, slots, bytes := st.stats()
	spare := s.tab.SpareCap()
	assert.Equal(t, int(key), entries)
	assert.Equal(t, (slots+spare)*table.SlotBytes+2*table.ArrayBytes+shardBytes+8, bytes)
	// The rebuild takes it: no spare is left, and the table has its size.
	for cap0 := s.tab.Cap(); s.tab.Cap() == cap0; {
		key++
		st.record(key, sec, cutoff)
	}
	assert.Equal(t, spare, s.tab.Cap(), "the rebuild made an array of another size")
	assert.Equal(t, 0, s.tab.SpareCap())
}

// TestShardHoldsItsTableHeaderInItsFirstLine: a shard is two cache
// lines, and its table's header is the first, so the directory's pointer
// leads a lookup straight to the table's version and array.
func TestShardHoldsItsTableHeaderInItsFirstLine(t *testing.T) {
	var s paddedShard
	assert.Equal(t, uintptr(128), unsafe.Sizeof(s), "a shard is two cache lines")
	assert.Zero(t, unsafe.Offsetof(s.tab))
	assert.LessOrEqual(t, unsafe.Sizeof(s.tab), uintptr(64), "the table's header fits one line")
	st := newSet(table.NewMixer(1, 2), 64)
	for i := range st.dir.Load().shards {
		p := uintptr(unsafe.Pointer(st.dir.Load().shards[i].Load()))
		assert.Zero(t, p%128, "shard %d does not start a 128-byte line pair", i)
	}
}
