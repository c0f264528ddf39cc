package activeusers

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/activeusers/activeusers/internal/table"
)

// A tracker's accounts live in shards: one lock and one table of at most
// table.MaxCapacity slots each. A directory indexed by the low bits of an
// account's mixed hash points to them (extendible hashing, as in Go's own
// maps): when a shard fills up it splits in two by one more bit, and the
// directory doubles when a shard is as deep as it is. So the number of locks
// grows with the accounts, and no lock is ever held for more than one shard's
// work. docs/design.md gives the reasoning and the sizes.

// shard is one lock and the table it guards, in one object: a Seen
// follows the directory's pointer to the shard and finds the table's
// version and array pointer there, one cache miss where a pointer to a table
// of its own was two. At 10M accounts the shards' and tables' headers are
// megabytes, mostly out of cache, and every miss on the way to a slot waits
// for the one before.
type shard struct {
	// tab comes first, so that its header (64 bytes, one cache line: see
	// table.Table) fills the shard's first line; Touch reads only that.
	tab   table.Table
	mu    sync.Mutex
	low   uint64 // the low depth bits shared by every key's mixed hash here
	depth uint   // how many low bits the shard is selected by
	dead  bool   // split: look the key up again (read and written under mu)
}

// paddedShard rounds a shard up to two 64-byte cache lines (Go's
// allocator aligns 128-byte objects to 128 bytes), so that the table's
// header is one line and no two shards share one (false sharing between
// their locks).
type paddedShard struct {
	shard
	_ [128 - unsafe.Sizeof(shard{})%128]byte
}

// shardBytes is a shard's footprint with its table's header, for Stats.
const shardBytes = int(unsafe.Sizeof(paddedShard{}))

// newShard returns a shard with a zero table, for the caller to
// initialise before publishing it.
func newShard(low uint64, depth uint) *shard {
	p := &paddedShard{shard: shard{low: low, depth: depth}}
	return &p.shard
}

// set is a set of 64-bit keys, each with the last second it was seen at,
// held in shards under a directory. A tracker has one for its accounts and,
// with WithDimensions, one for each segment's accounts. Seen never takes
// a lock of the set's own: it reads the directory atomically and locks at
// most one shard.
type set struct {
	dir     atomic.Pointer[directory]
	growing atomic.Bool // a doubling of the directory is under way; Seen never looks
	mix     table.Mixer
}

// newSet returns an empty set of shards shards (a power of two).
func newSet(mix table.Mixer, shards int) *set {
	depth := uint(bits.Len(uint(shards - 1)))
	st := &set{mix: mix}
	d := &directory{depth: depth, shards: make([]atomic.Pointer[shard], 1<<depth)}
	for i := range d.shards {
		s := newShard(uint64(i), depth)
		s.tab.Init(mix, 0)
		d.shards[i].Store(s)
	}
	st.dir.Store(d)
	return st
}

// place returns the key a hash is stored as and its placement hash. A hash of
// 0 is stored as 1: 0 marks an empty slot.
func (st *set) place(h uint64) (key, m uint64) {
	if h == 0 {
		h = 1
	}
	return h, st.mix.Mix(h)
}

// record stores key as seen at sec, deleting on the way only entries older
// than cutoff (see place for a key of 0). A key already held takes no lock
// (Touch); a new one locks its shard, splits it if it is full, and makes
// the spare arrays its table asks for (makeSpares).
func (st *set) record(key uint64, sec, cutoff uint32) {
	key, m := st.place(key)
	if st.dir.Load().lookup(m).tab.Touch(key, m, sec) {
		return
	}
	for {
		s := st.shardFor(m)
		out := s.tab.Record(key, m, sec, cutoff)
		var req table.SpareRequest
		if out == table.Inserted {
			req = s.tab.Spares()
		}
		s.unlock()
		if req.Wanted() {
			st.makeSpares(s, req)
		}
		if out != table.Full {
			return
		}
		st.split(s)
	}
}

// makeSpares makes the arrays s's table asked for, with no lock held, and
// hands them over (see table.Table.Spares): its next rebuild or split then
// allocates nothing while it holds the lock. It allocates pinned, as a
// rebuild under the lock did: unpinned, an allocation while the collector
// marks makes the goroutine assist it for every byte its pinned holds
// allocated before (the debt a pinned goroutine defers), which made this
// call one of the slowest (docs/design.md, "The growth tail").
func (st *set) makeSpares(s *shard, req table.SpareRequest) {
	procPin()
	sp := s.tab.MakeSpares(req, s.depth)
	procUnpin()
	s.lock()
	s.tab.GiveSpares(sp) // refused if the table was rebuilt or split meanwhile
	s.unlock()
}

// prefetch starts loading the slot record(key, …) will read first (see
// table.Table.Prefetch).
func (st *set) prefetch(key uint64) {
	_, m := st.place(key)
	st.dir.Load().lookup(m).tab.Prefetch(m)
}

// counts returns, for each threshold of since (made by Tracker.thresholds),
// the entries seen at or after it, placed at the index idx gives among n, and
// deletes entries older than cutoff on the way.
func (st *set) counts(since []uint32, idx []int, n int, cutoff uint32) []int {
	got := make([]int, len(since))
	st.eachShard(nil, prefetchTimes, func(s *shard) { s.tab.CountAndPrune(cutoff, since, got) })
	counts := make([]int, n)
	for k, i := range idx {
		counts[i] = got[k]
	}
	return counts
}

// stats counts the shards, entries and slots, and the heap of the set's
// tables (with their spare arrays), shards and directory.
func (st *set) stats() (shards, entries, slots, bytes int) {
	st.eachShard(nil, nil, func(s *shard) {
		shards++
		entries += s.tab.Len()
		slots += s.tab.Cap()
		bytes += s.tab.Bytes() + shardBytes
	})
	return shards, entries, slots, bytes + len(st.dir.Load().shards)*8
}

// directory maps the low bits of a mixed hash to its shard. It is replaced
// whole when it doubles; its entries change in place when a shard splits.
type directory struct {
	depth  uint
	shards []atomic.Pointer[shard]
	// frozen is set once a doubling has begun to copy shards: a split that
	// points entries here and then finds it set must point the same entries
	// of the doubled directory too, once it is published.
	frozen atomic.Bool
}

func (d *directory) lookup(m uint64) *shard {
	return d.shards[m&(uint64(len(d.shards))-1)].Load()
}

// doubled returns a directory one bit deeper pointing to the same shards.
func (d *directory) doubled() *directory {
	nd := &directory{depth: d.depth + 1, shards: make([]atomic.Pointer[shard], 2*len(d.shards))}
	for i := range nd.shards {
		nd.shards[i].Store(d.shards[i&(len(d.shards)-1)].Load())
	}
	return nd
}

// lockSpinning locks mu, spinning first. Under load, with more goroutines
// than cores, a goroutine that finds a lock held and parks waits for its turn
// behind every runnable goroutine — milliseconds — however briefly the lock is
// held; sync.Mutex spins only while no other goroutine is runnable. Holds here
// are bounded and short (an insert, or at most one shard's rebuild or
// split), so spinning for a little longer than the longest of them avoids
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

// lock takes the shard's lock and pins the goroutine to its P until unlock
// (see pin.go): a holder is never descheduled while others wait for it.
// Holds are bounded (at most one table of 1024 slots) and never block, as a
// pinned goroutine must not; the only waits inside one are for another
// pinned goroutine (double). Every hold of a shard's lock goes through lock
// and unlock.
func (s *shard) lock() {
	lockSpinning(&s.mu)
	procPin()
}

// unlock releases the lock, then unpins: releasing first, a pinned
// goroutine is never preempted holding it.
func (s *shard) unlock() {
	s.mu.Unlock()
	procUnpin()
}

// Spin budget: spinTries reads of the lock word (a cache line shared while the
// holder works, so a few nanoseconds each) between clock reads, for spinFor in
// all: twice a split of a full table, the longest hold, on the 2-core machine
// of the README.
const (
	spinTries = 64
	spinFor   = 25 * time.Microsecond
)

// shardFor returns the live shard holding keys whose mixed hash is m,
// locked (see lock).
func (st *set) shardFor(m uint64) *shard {
	for {
		s := st.dir.Load().lookup(m)
		s.lock()
		if !s.dead {
			return s
		}
		s.unlock() // split meanwhile: the directory has its halves
	}
}

// split replaces s, whose table is full, by two shards one bit deeper,
// doubling the directory first if s is as deep as it. Splits of different
// shards run at once: they change disjoint directory entries, and no lock
// but s's is held while they do. A doubling runs beside them too: it marks
// the directory frozen before copying it, and a split that finds the mark
// after pointing its entries points them again in the copy. Seen takes no
// lock of the directory's.
func (st *set) split(s *shard) {
	// s.depth never changes, and the directory only deepens.
	if s.depth == st.dir.Load().depth {
		st.double(s.depth)
	}
	s.lock()
	if s.dead { // split meanwhile
		s.unlock()
		return
	}
	s0 := newShard(s.low, s.depth+1)
	s1 := newShard(s.low|1<<s.depth, s.depth+1)
	s.tab.Split(s.depth, &s0.tab, &s1.tab)
	d := st.dir.Load()
	for {
		// Point every directory entry of s at its half: the entries i with
		// i ≡ s.low (mod 2^depth), 2^(D-depth) of them.
		for i := s.low; i < uint64(len(d.shards)); i += 1 << s.depth {
			if i>>s.depth&1 == 0 {
				d.shards[i].Store(s0)
			} else {
				d.shards[i].Store(s1)
			}
		}
		// Not frozen after those stores: a doubling's copy, if one begins,
		// comes after them and so holds them (the atomics are sequentially
		// consistent). Frozen: the copy may predate them; point it too.
		if !d.frozen.Load() {
			break
		}
		// Wait, still pinned and holding s, for the doubler, pinned too
		// (see waitPinned).
		for st.dir.Load() == d {
			waitPinned()
		}
		d = st.dir.Load()
	}
	s.dead = true
	s.unlock()
}

// double publishes a directory one bit deeper than depth, unless another
// doubling did meanwhile. One goroutine doubles at a time, pinned (see lock),
// so another that needs the same doubling waits for it spinning, pinned too:
// a lock that a goroutine could hold while descheduled would stall every
// split of the set behind it.
func (st *set) double(depth uint) {
	procPin()
	defer procUnpin()
	for st.dir.Load().depth == depth {
		if st.growing.Load() || !st.growing.CompareAndSwap(false, true) {
			waitPinned() // another goroutine is doubling, pinned
			continue
		}
		if d := st.dir.Load(); d.depth == depth {
			d.frozen.Store(true)
			st.dir.Store(d.doubled())
		}
		st.growing.Store(false)
	}
}

// eachShard calls fn with every live shard locked, one at a time — the
// only lock it holds — after calling prepare (if not nil) with none held, and
// ahead (if not nil) with the shard that comes next, which it does not
// lock (the current one is held meanwhile): a pass that reads every slot
// starts the next table on its way from memory there. Every
// account is in exactly one shard fn sees, however shards split meanwhile:
// it walks the hash space in order of the bit-reversed mixed hash, in which a
// shard's accounts are one contiguous range and a split divides that range
// in two, so a shard seen whole is never seen again in part, and one not
// seen yet is seen whole or in its halves.
func (st *set) eachShard(prepare func(), ahead func(*shard), fn func(*shard)) {
	var pos uint64 // the bit-reversed start of the range not walked yet
	for {
		if prepare != nil {
			prepare()
		}
		s := st.shardFor(bits.Reverse64(pos))
		step := uint64(1) << (64 - s.depth)
		next := pos&^(step-1) + step
		if ahead != nil && next != 0 {
			// Unlocked: it may split meanwhile, which only wastes the hint.
			ahead(st.dir.Load().lookup(bits.Reverse64(next)))
		}
		fn(s)
		s.unlock()
		if pos = next; pos == 0 {
			return // wrapped round: the whole space is walked
		}
	}
}

// prefetchTimes is eachShard's ahead for passes that read every slot's
// time (see table.Table.PrefetchTimes).
func prefetchTimes(s *shard) { s.tab.PrefetchTimes() }
