package activeusers

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// round is one round of a cursor: what AppendEntries gives from its since.
func round(t *Tracker, c *Cursor) map[uint64]int64 {
	since, _ := c.Begin()
	got := map[uint64]int64{}
	for _, e := range t.AppendEntries(nil, since) {
		got[e.Hash] = e.Last
	}
	c.Commit()
	return got
}

// stallingClock is a fake clock whose next reading, once armed, waits after
// reading the time until released: a Seen that read the clock, then was
// descheduled before it stored.
type stallingClock struct {
	sec     atomic.Int64
	armed   atomic.Bool
	stalled chan struct{} // receives when a reading stalls
	release chan struct{}
}

func (c *stallingClock) now() time.Time {
	t := time.Unix(c.sec.Load(), 0)
	if c.armed.CompareAndSwap(true, false) {
		c.stalled <- struct{}{}
		<-c.release
	}
	return t
}

// TestCursorTakesAStoreThatRacedItsRound: a Seen reads the clock, stalls
// while a round begins a few seconds later and reads the tracker, and then
// stores its earlier second. Since the previous round's start, the next
// round would skip it; the cursor's next round takes it.
func TestCursorTakesAStoreThatRacedItsRound(t *testing.T) {
	clk := &stallingClock{stalled: make(chan struct{}), release: make(chan struct{})}
	clk.sec.Store(t0.Unix())
	tr := New(WithClock(clk.now))
	c := tr.NewCursor()
	tr.Seen("before")
	assert.Len(t, round(tr, c), 1, "the first round takes everything")

	clk.armed.Store(true)
	done := make(chan struct{})
	go func() { tr.Seen("late"); close(done) }()
	<-clk.stalled // it has read t0 and not stored
	clk.sec.Add(5)
	since, start := c.Begin()
	assert.Equal(t, t0.Unix()+5, start.Unix())
	assert.Len(t, tr.AppendEntries(nil, since), 1, "the round reads the tracker before the store")
	c.Commit()
	close(clk.release)
	<-done

	got := round(tr, c)
	assert.Equal(t, t0.Unix(), got[xxhash.Sum64String("late")], "the next round reaches back to the late store")
	assert.Empty(t, round(tr, c), "and the one after has nothing new")
	assert.Empty(t, tr.AppendEntries(nil, time.Unix(t0.Unix()+5, 0)), "a plain since would have missed it")
}

// TestCursorTakesEarlierTimes: a SeenAt of an earlier time (a late
// arrival), a snapshot merged in, and activity after the clock steps back
// reach the next round; a round that is not committed is begun again from
// the same place.
func TestCursorTakesEarlierTimes(t *testing.T) {
	now := t0
	tr := New(fixed(&now))
	c := tr.NewCursor()
	round(tr, c)
	now = now.Add(time.Hour)
	round(tr, c)

	tr.SeenAt("replayed", t0.Add(10*time.Minute))
	got := round(tr, c)
	assert.Equal(t, map[uint64]int64{xxhash.Sum64String("replayed"): t0.Add(10 * time.Minute).Unix()}, got)

	other := New(fixed(&now))
	other.SeenAt("from a snapshot", t0.Add(20*time.Minute))
	var snap bytes.Buffer
	_, err := other.WriteTo(&snap)
	require.NoError(t, err)
	_, err = tr.ReadFrom(&snap)
	require.NoError(t, err)
	since, _ := c.Begin() // not committed: sent nowhere
	assert.Len(t, tr.AppendEntries(nil, since), 1)
	got = round(tr, c)
	assert.Equal(t, map[uint64]int64{xxhash.Sum64String("from a snapshot"): t0.Add(20 * time.Minute).Unix()}, got, "begun again from the same place")

	now = now.Add(-30 * time.Minute) // the clock steps back
	tr.Seen("after the step")
	got = round(tr, c)
	assert.Contains(t, got, xxhash.Sum64String("after the step"))

	c.Close()
	assert.Nil(t, tr.cursors.list.Load(), "a tracker with no cursor left checks nothing")
}

// TestCursorRoundsMissNothing: goroutines record accounts on a clock that
// ticks every few microseconds, some at earlier seconds, while rounds run
// back to back; after each round, every store that returned before the
// round began is in what the rounds have taken, at its second or later.
func TestCursorRoundsMissNothing(t *testing.T) {
	var sec atomic.Int64
	sec.Store(t0.Unix())
	tr := New(WithClock(func() time.Time { return time.Unix(sec.Load(), 0) }))
	c := tr.NewCursor()
	defer c.Close()
	type store struct {
		seq  int64
		hash uint64
		sec  int64
	}
	var (
		seq   atomic.Int64
		logMu sync.Mutex
		log   []store
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				sec.Add(1)
				time.Sleep(5 * time.Microsecond)
			}
		}
	})
	pool := uids(5000)
	for w := range 4 {
		wg.Go(func() {
			for i := w; ; i += 4 {
				select {
				case <-stop:
					return
				default:
				}
				uid, at := pool[i%len(pool)], sec.Load()-int64(i%3)
				tr.SeenAt(uid, time.Unix(at, 0)) // at is never ahead of the clock: recorded as is
				st := store{seq.Add(1), xxhash.Sum64String(uid), at}
				logMu.Lock()
				log = append(log, st)
				logMu.Unlock()
			}
		})
	}
	took := map[uint64]int64{}
	checked, rounds, missed := 0, 0, 0
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; rounds++ {
		before := seq.Load() // every store numbered below returned before this round begins
		for h, last := range round(tr, c) {
			took[h] = max(took[h], last)
		}
		logMu.Lock()
		pending := log[checked:]
		logMu.Unlock()
		for _, st := range pending {
			if st.seq > before {
				continue // after the round began: a later round's
			}
			if took[st.hash] < st.sec {
				missed++
			}
		}
		// Stores are logged in no strict order of seq: check again next
		// time only those after this round began.
		kept := checked
		for k, st := range pending {
			if st.seq <= before && k == kept-checked {
				kept++
			}
		}
		checked = kept
	}
	close(stop)
	wg.Wait()
	assert.Positive(t, len(log))
	assert.Zero(t, missed, "stores missed, of %d, over %d rounds", len(log), rounds)
}

// TestSeenWithACursorAllocatesNothing: the cursor's check costs Seen no
// allocation, and a late store none either.
func TestSeenWithACursorAllocatesNothing(t *testing.T) {
	now := t0
	tr := New(fixed(&now))
	c := tr.NewCursor()
	defer c.Close()
	tr.Seen("alice")
	c.Begin()
	assert.Zero(t, testing.AllocsPerRun(1000, func() { tr.Seen("alice") }))
	assert.Zero(t, testing.AllocsPerRun(1000, func() { tr.SeenAt("alice", t0.Add(-time.Minute)) }))
}

// BenchmarkSeenWithCursor is what a cursor costs Seen: returning accounts
// from 16 goroutines a core, on a tracker with no cursor and with one.
func BenchmarkSeenWithCursor(b *testing.B) {
	const users = 1 << 20
	pool := uids(users)
	for _, cursors := range []int{0, 1} {
		b.Run(fmt.Sprintf("cursors=%d", cursors), func(b *testing.B) {
			tr := New()
			defer tr.Close()
			for _, u := range pool {
				tr.Seen(u)
			}
			if cursors > 0 {
				c := tr.NewCursor()
				defer c.Close()
				c.Begin()
			}
			var seed atomic.Uint64
			b.ReportAllocs()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				x := seed.Add(0x9E3779B97F4A7C15)
				for pb.Next() {
					x ^= x << 13
					x ^= x >> 7
					x ^= x << 17
					tr.Seen(pool[x&(users-1)])
				}
			})
		})
	}
}
