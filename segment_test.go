package activeusers

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/activeusers/activeusers/internal/table"
)

// TestSplitDuringDoublingPointsTheCopy plays the race a split can lose to a
// doubling, step by step: the doubling freezes the directory and copies it
// before the split points its entries at the halves; the split must then
// point the same entries of the copy once it is published, or lookups would
// find the retired segment there for ever.
func TestSplitDuringDoublingPointsTheCopy(t *testing.T) {
	st := newSet(table.NewMixer(1, 2), 2) // depth 1: segments 0 and 1
	st.dir.Store(st.dir.Load().doubled()) // depth 2, the segments still depth 1
	d := st.dir.Load()
	s := d.segs[0].Load()
	require.Equal(t, uint(1), s.depth)

	d.frozen.Store(true) // a doubling begins: it has copied d, before the split
	copied := d.doubled()
	done := make(chan struct{})
	go func() {
		st.split(s) // not as deep as the directory: splits without doubling
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("the split finished before the doubled directory was published")
	case <-time.After(50 * time.Millisecond):
	}
	st.dir.Store(copied) // the doubling publishes its copy
	<-done
	require.True(t, s.dead)
	for i := range copied.segs {
		assert.NotSame(t, s, copied.segs[i].Load(), "entry %d of the copy still points at the retired segment", i)
	}
	for i := range d.segs {
		assert.NotSame(t, s, d.segs[i].Load(), "entry %d of the old directory", i)
	}
}
