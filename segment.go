package activeusers

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/activeusers/activeusers/internal/table"
)

// A tracker's accounts live in segments: one lock and one table of at most
// table.MaxCapacity slots each. A directory indexed by the low bits of an
// account's mixed hash points to them (extendible hashing, as in Go's own
// maps): when a segment fills up it splits in two by one more bit, and the
// directory doubles when a segment is as deep as it is. So the number of locks
// grows with the accounts, and no lock is ever held for more than one segment's
// work. docs/design.md gives the reasoning and the sizes.

// segment is one lock and the table it guards.
type segment struct {
	mu    sync.Mutex
	tab   *table.Table // set at creation, never replaced: Touch reads it unlocked
	low   uint64       // the low depth bits shared by every key's mixed hash here
	depth uint         // how many low bits the segment is selected by
	dead  bool         // split: look the key up again (read and written under mu)
}

// paddedSegment rounds a segment up to one 64-byte cache line (Go's allocator
// aligns 64-byte objects to 64 bytes), so that two segments' locks never share
// one (false sharing). With thousands of segments hit at random, the adjacent-
// line prefetch that would argue for 128 matters less than the memory: a
// segment costs 64 bytes, about 0.1 bytes an account.
type paddedSegment struct {
	segment
	_ [64 - unsafe.Sizeof(segment{})%64]byte
}

// segmentBytes is a segment's footprint, for Stats.
const segmentBytes = int(unsafe.Sizeof(paddedSegment{}))

func newSegment(tab *table.Table, low uint64, depth uint) *segment {
	p := &paddedSegment{segment: segment{tab: tab, low: low, depth: depth}}
	return &p.segment
}

// set is a set of 64-bit keys, each with the last second it was seen at,
// held in segments under a directory. A tracker has one for its accounts and,
// with WithDimensions, one for its (account, segment) pairs. Seen never takes
// a lock of the set's own: it reads the directory atomically and locks at
// most one segment.
type set struct {
	dir   atomic.Pointer[directory]
	dirMu sync.RWMutex // splits share it; a directory doubling takes it alone
	mix   table.Mixer
}

// newSet returns an empty set of segments segments (a power of two).
func newSet(mix table.Mixer, segments int) *set {
	depth := uint(bits.Len(uint(segments - 1)))
	st := &set{mix: mix}
	d := &directory{depth: depth, segs: make([]atomic.Pointer[segment], 1<<depth)}
	for i := range d.segs {
		d.segs[i].Store(newSegment(table.New(mix, 0), uint64(i), depth))
	}
	st.dir.Store(d)
	return st
}

// record stores key (not 0) as seen at sec, deleting on the way only entries
// older than cutoff. A key already held takes no lock (Touch); a new one
// locks its segment, and splits it if it is full.
func (st *set) record(key uint64, sec, cutoff uint32) {
	m := st.mix.Mix(key)
	if st.dir.Load().lookup(m).tab.Touch(key, m, sec) {
		return
	}
	for {
		s := st.segmentFor(m)
		out := s.tab.Record(key, m, sec, cutoff)
		s.mu.Unlock()
		if out != table.Full {
			return
		}
		st.split(s)
	}
}

// counts returns, for each threshold of since (made by Tracker.thresholds),
// the entries seen at or after it, placed at the index idx gives among n, and
// deletes entries older than cutoff on the way.
func (st *set) counts(since []uint32, idx []int, n int, cutoff uint32) []int {
	got := make([]int, len(since))
	st.eachSegment(nil, func(s *segment) { s.tab.CountAndPrune(cutoff, since, got) })
	counts := make([]int, n)
	for k, i := range idx {
		counts[i] = got[k]
	}
	return counts
}

// stats counts the segments, entries and slots, and the heap of the set's tables, segments and directory.
func (st *set) stats() (segments, entries, slots, bytes int) {
	st.eachSegment(nil, func(s *segment) {
		segments++
		entries += s.tab.Len()
		slots += s.tab.Cap()
	})
	return segments, entries, slots, slots*table.SlotBytes + segments*segmentBytes + len(st.dir.Load().segs)*8
}

// directory maps the low bits of a mixed hash to its segment. It is replaced
// whole when it doubles; its entries change in place when a segment splits.
type directory struct {
	depth uint
	segs  []atomic.Pointer[segment]
}

func (d *directory) lookup(m uint64) *segment {
	return d.segs[m&(uint64(len(d.segs))-1)].Load()
}

// doubled returns a directory one bit deeper pointing to the same segments.
func (d *directory) doubled() *directory {
	nd := &directory{depth: d.depth + 1, segs: make([]atomic.Pointer[segment], 2*len(d.segs))}
	for i := range nd.segs {
		nd.segs[i].Store(d.segs[i&(len(d.segs)-1)].Load())
	}
	return nd
}

// lockSpinning locks mu, spinning first. Under load, with more goroutines
// than cores, a goroutine that finds a lock held and parks waits for its turn
// behind every runnable goroutine — milliseconds — however briefly the lock is
// held; sync.Mutex spins only while no other goroutine is runnable. Holds here
// are bounded and short (an insert, or at most one segment's rebuild or split,
// ~10 µs), so spinning for a little longer than the longest of them avoids
// parking whenever the holder is running; if it was descheduled, the spin
// costs that much and the goroutine parks as before.
func lockSpinning(mu *sync.Mutex) {
	for range spinTries {
		if mu.TryLock() {
			return
		}
	}
	start := time.Now()
	for time.Since(start) < spinFor {
		for range spinTries {
			if mu.TryLock() {
				return
			}
		}
	}
	mu.Lock()
}

// Spin budget: spinTries reads of the lock word (a cache line shared while the
// holder works, so a few nanoseconds each) between clock reads, for spinFor in
// all: twice a split of a full table, the longest hold, on the 2-core machine
// of the README.
const (
	spinTries = 64
	spinFor   = 25 * time.Microsecond
)

// segmentFor returns the live segment holding keys whose mixed hash is m,
// locked.
func (st *set) segmentFor(m uint64) *segment {
	for {
		s := st.dir.Load().lookup(m)
		lockSpinning(&s.mu)
		if !s.dead {
			return s
		}
		s.mu.Unlock() // split meanwhile: the directory has its halves
	}
}

// split replaces s, whose table is full, by two segments one bit deeper,
// doubling the directory first if s is as deep as it. Splits of different
// segments run at once (they change disjoint directory entries) under dirMu's
// read lock; only a doubling takes it exclusively, and it holds no segment's
// lock. Seen never takes dirMu.
func (st *set) split(s *segment) {
	// s.depth and s.low never change, and the directory's depth changes only
	// under dirMu's write lock: both are read safely here.
	st.dirMu.RLock()
	if d := st.dir.Load(); s.depth == d.depth {
		st.dirMu.RUnlock()
		st.dirMu.Lock()
		if d := st.dir.Load(); s.depth == d.depth {
			st.dir.Store(d.doubled())
		}
		st.dirMu.Unlock()
		st.dirMu.RLock()
	}
	defer st.dirMu.RUnlock()
	d := st.dir.Load()
	lockSpinning(&s.mu)
	defer s.mu.Unlock()
	if s.dead {
		return
	}
	zero, one := s.tab.Split(s.depth)
	s0 := newSegment(zero, s.low, s.depth+1)
	s1 := newSegment(one, s.low|1<<s.depth, s.depth+1)
	// Point every directory entry of s at its half: the entries i with
	// i ≡ s.low (mod 2^depth), 2^(D-depth) of them.
	for i := s.low; i < uint64(len(d.segs)); i += 1 << s.depth {
		if i>>s.depth&1 == 0 {
			d.segs[i].Store(s0)
		} else {
			d.segs[i].Store(s1)
		}
	}
	s.dead = true
}

// eachSegment calls fn with every live segment locked, one at a time — the
// only lock it holds — after calling prepare (if not nil) with none held. Every
// account is in exactly one segment fn sees, however segments split meanwhile:
// it walks the hash space in order of the bit-reversed mixed hash, in which a
// segment's accounts are one contiguous range and a split divides that range
// in two, so a segment seen whole is never seen again in part, and one not
// seen yet is seen whole or in its halves.
func (st *set) eachSegment(prepare func(), fn func(*segment)) {
	var pos uint64 // the bit-reversed start of the range not walked yet
	for {
		if prepare != nil {
			prepare()
		}
		s := st.segmentFor(bits.Reverse64(pos))
		fn(s)
		step := uint64(1) << (64 - s.depth)
		s.mu.Unlock()
		pos = pos&^(step-1) + step
		if pos == 0 {
			return // wrapped round: the whole space is walked
		}
	}
}
