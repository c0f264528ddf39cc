package activeusers

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A Cursor follows what a Tracker records for an exporter that copies it
// elsewhere in rounds — the auredis package pushes each round to Redis — so
// that no round misses an account recorded while the round before it read
// the tracker.
//
// Taking, each round, the accounts last seen since the previous round began
// is not enough: a Seen that read the clock before a round began and stored
// after the round had read its part of the tracker records a second earlier
// than the round's start, which the next round would then skip; so would a
// SeenAt with an earlier time, a snapshot loaded, or any activity once the
// clock steps back. A Cursor notes every store of a second earlier than its
// round's start, and Begin reaches back to the earliest:
//
//	cur := t.NewCursor()
//	defer cur.Close()
//	for { // each round
//		since, _ := cur.Begin()
//		entries := t.AppendEntries(nil, since)
//		if send(entries) == nil {
//			cur.Commit()
//		}
//	}
//
// A round that is not committed is simply begun again: Begin reaches back
// to the start of the last committed round, or further. Begin, Commit and
// Close are for one goroutine; Seen and the rest may run at any time. A
// tracker with a cursor pays for it on every Seen with one atomic load and a
// comparison.
type Cursor struct {
	t     *Tracker
	start atomic.Int64 // the round's start (Unix second): a store of an earlier second is late
	late  atomic.Int64 // the earliest second stored late since Begin; math.MaxInt64 if none
	from  int64        // where the next round reaches back to
	begun int64        // the start of the round begun last
}

// NewCursor returns a Cursor over t. Its first round reaches back to the
// beginning: every account held.
func (t *Tracker) NewCursor() *Cursor {
	c := &Cursor{t: t}
	c.start.Store(math.MinInt64) // no round yet: nothing is late
	c.late.Store(math.MaxInt64)
	t.cursors.mu.Lock()
	defer t.cursors.mu.Unlock()
	var cs []*Cursor
	if p := t.cursors.list.Load(); p != nil {
		cs = slices.Clone(*p)
	}
	cs = append(cs, c)
	t.cursors.list.Store(&cs)
	return c
}

// Begin starts a round at the tracker's now and returns since, the time to
// pass to AppendEntries and AppendSegmentEntries: every account recorded
// since the last committed round began has a last-seen time at or after it
// (time.Unix(0, 0) for the first round: everything), and start, the round's
// own start.
func (c *Cursor) Begin() (since, start time.Time) {
	now := c.t.nowSec()
	c.begun = now
	// A store from here on that records a second before now is noted as
	// late; one noted before this Swap is already in the tracker (it is
	// noted after it is stored), so this round takes it.
	c.start.Store(now)
	c.from = min(c.from, c.late.Swap(math.MaxInt64))
	return time.Unix(c.from, 0), time.Unix(now, 0)
}

// Commit records that the round begun last reached its destination: the
// next round reaches back to its start (or to anything stored late since).
func (c *Cursor) Commit() { c.from = c.begun }

// Close stops the cursor following the tracker.
func (c *Cursor) Close() {
	t := c.t
	t.cursors.mu.Lock()
	defer t.cursors.mu.Unlock()
	p := t.cursors.list.Load()
	if p == nil {
		return
	}
	cs := slices.DeleteFunc(slices.Clone(*p), func(o *Cursor) bool { return o == c })
	if len(cs) == 0 {
		t.cursors.list.Store(nil)
		return
	}
	t.cursors.list.Store(&cs)
}

// cursorList is the Tracker's part: the cursors following it, replaced
// whole when one comes or goes.
type cursorList struct {
	list atomic.Pointer[[]*Cursor]
	mu   sync.Mutex
}

// noteLate notes, in each cursor whose round began after second sec, a
// store of sec: the round may have read the tracker before it.
func noteLate(cs []*Cursor, sec int64) {
	for _, c := range cs {
		if sec >= c.start.Load() {
			continue
		}
		for late := c.late.Load(); sec < late && !c.late.CompareAndSwap(late, sec); late = c.late.Load() {
		}
	}
}
