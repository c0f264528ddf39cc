// Package table is the flat, pointer-free hash table behind each shard of a
// tracker: 64-bit keys mapped to 32-bit Unix seconds, open addressing with
// linear probing, at most MaxCapacity slots.
//
// A Go map[uint64]uint32 spends 16 bytes a slot plus control bytes, iterates
// slowly and never shrinks. Here a slot is 12 bytes (an 8-byte key in an
// array of keys, its 4-byte time in an array of times: a counting pass reads
// only the times, and a lookup reads two lines at once), the capacity is any
// integer up to MaxCapacity (so the load factor stays within a narrow band
// instead of halving at every doubling), and the table shrinks when a prune
// leaves it under half full. Nothing in it holds a pointer, so the garbage collector never scans it.
//
// Concurrency. Writers (Record, CountAndPrune, Split) hold the
// owner's lock. Touch, the returning user's path, takes no lock and may run
// beside any of them: an entry never moves within a live slot array — deletion
// leaves a tombstone (the key stays, its time becomes 0) — so a key found at a
// slot stays at that slot, and every replacement of the array (to grow, shrink,
// drop tombstones or split) happens while a version number is odd. Touch raises
// a time with a compare-and-swap and then checks the version: if the array was
// being replaced, its update may have gone to the old one, and it says so.
package table

import (
	"math"
	"math/bits"
	"sync/atomic"
	"unsafe"
)

// Load factor band. Linear probing stays fast up to about 0.8 (an unsuccessful
// probe then reads ~13 slots, about two cache lines); above it probe chains grow
// quadratically. Tombstones count towards the load (they lengthen probes like
// live entries) until a rebuild drops them. Rebuilding to 0.625 rather than 0.4
// (doubling) keeps the heap per entry between 12/0.8 = 15 and 12/0.625 = 19.2
// bytes while a small table fills, at the cost of rebuilding ~4× as often as
// doubling would; from half of MaxCapacity a table grows straight to it
// (growCap), so at 0.51–0.8 there, 15–24 bytes. Every rebuild is bounded by
// MaxCapacity.
const (
	maxLoadNum, maxLoadDen       = 4, 5 // rebuild (or split) before passing 0.8
	targetLoadNum, targetLoadDen = 5, 8 // rebuild to 0.625
	// Shrink when a prune leaves the table under half full, back to 0.625: so
	// once pruned, a table holds 12/0.8 = 15 to 12/0.5 = 24 bytes an entry. The
	// band 0.5–0.8 still leaves a fifth of the entries to expire between a
	// shrink and the next, so a table does not rebuild back and forth.
	shrinkBelowDen = 2
	// Rebuild after a prune that leaves more than an eighth of the slots as
	// tombstones, so that probes stay short whatever the churn.
	maxTombDen = 8

	// MinCapacity is the smallest table: 16 slots, 192 bytes.
	MinCapacity = 16

	// MaxCapacity bounds a table, and so every piece of work done under its
	// owner's lock: a rebuild, a split, a prune or a counting pass reads at most
	// 1024 slots (12 KiB, a few microseconds). A tracker grows by splitting full
	// tables rather than by enlarging them, so no lock is ever held for work
	// proportional to the number of users, at a million users or a billion.
	// Smaller tables would mean more shards (each a 128-byte shard and a
	// 48-byte array header, 0.2–0.35 bytes an account at this size) and more
	// directory, and made the growth tail no shorter when measured
	// (docs/design.md).
	MaxCapacity = 1024

	// SweepStep is how many slots each insert examines for expired entries
	// (while the table may hold any: Table.low skips the sweep only while
	// every entry is within the cutoff, so the bound below holds). In
	// steady churn an expired entry lingers for at most one trip of the cursor
	// round the table, capacity/SweepStep inserts, during which at most that
	// many entries expire: expired entries fill at most 1/SweepStep of the slots
	// (12.5%), half that on average, which is 8–20% of the entries at the loads
	// kept. TestChurnWithoutCounts measures it: at least 88% of what is held is
	// within retention. Eight times are 32 bytes: at most two cache lines.
	SweepStep = 8
)

// A slot array holds its keys, then its times: two arrays in one
// allocation. A counting pass reads only times, so it reads 4 bytes a slot,
// consecutive, rather than 12 with a key and a time side by side; a lookup
// reads the line of its key and the line of its time, two loads the
// processor issues together (their addresses are known at once).
//
// An empty slot is all zeros: callers never store a key of 0 (they map a
// hash of 0 to 1) nor a second of 0 (1970-01-01T00:00:00, clamped to 1), so a
// time of 0 means "not live": empty if the key is 0 too, a tombstone
// otherwise. A pass that only counts can tell live slots by their time alone.
//
// The fields are atomics because Touch reads them, and raises times, without
// the owner's lock. The key of a slot in a live array is written once, before
// its time (which publishes it), and never again.

// SlotBytes is the size of one slot, for memory accounting.
const SlotBytes = 12

// Mixer turns a stored key into a placement hash with per-tracker secret seeds,
// so that uids chosen by an attacker (who can compute the unseeded xxhash) cannot
// be steered into one shard or one probe chain. The stored key stays the plain
// hash, so snapshots and other instances agree on it.
type Mixer struct{ s0, s1 uint64 }

// NewMixer returns a Mixer with the given seeds. The multiplier is forced odd
// and non-trivial.
func NewMixer(s0, s1 uint64) Mixer {
	return Mixer{s0: s0, s1: s1 | 1<<63 | 1}
}

// Mix is a seeded 64×64→128-bit multiply folded to 64 bits (wyhash's "mum"),
// followed by murmur3's finaliser so that every output bit depends on every
// input bit even for small keys. Shards take the low bits of the result,
// slots the high bits.
func (m Mixer) Mix(key uint64) uint64 {
	hi, lo := bits.Mul64(key^m.s0, m.s1)
	x := hi ^ lo
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// slots is one slot array, published whole through an atomic pointer.
type slots struct {
	keys []atomic.Uint64
	secs []atomic.Uint32 // the tail of keys' allocation
}

// len is the number of slots.
func (a *slots) len() int { return len(a.keys) }

// at returns slot i's key and time.
func (a *slots) at(i int) (*atomic.Uint64, *atomic.Uint32) { return &a.keys[i], &a.secs[i] }

// newSlots returns c empty slots: c keys, then c times, in one allocation.
func newSlots(c int) *slots {
	w := make([]atomic.Uint64, slotWords(c))
	return &slots{w[:c:c], unsafe.Slice((*atomic.Uint32)(unsafe.Pointer(&w[c])), c)}
}

// slotWords is how many 8-byte words c slots take: c keys, then c times,
// two to a word.
func slotWords(c int) int { return c + (c+1)/2 }

// words returns the array's whole allocation, keys then times, as plain
// words: for writing it while no other goroutine can see it.
func (a *slots) words() []uint64 {
	return unsafe.Slice((*uint64)(unsafe.Pointer(&a.keys[0])), slotWords(a.len()))
}

// Table maps keys to the last second they were seen at.
//
// Its fields fit one 64-byte cache line (TestTableFitsOneCacheLine): a Seen
// reads ver and arr, an insert most of the rest, and at 10M accounts the
// tables' headers are megabytes, mostly out of cache: a header that
// straddled two lines made every Seen slower (docs/design.md, "The growth
// tail"). Hence the 32-bit counts, which MaxCapacity bounds.
type Table struct {
	// ver is odd while the slot array is being replaced, and stays odd once
	// the table is retired by Split. Touch reads it before and after.
	ver    atomic.Uint32
	n      int32 // live entries
	used   int32 // live entries and tombstones
	cursor int32 // next slot the incremental sweep examines
	arr    atomic.Pointer[slots]
	mix    Mixer
	// spare holds empty arrays made outside the lock for the next rebuild
	// ([0]) or split (both halves); asked is set once a caller has been told
	// to make them (see Spares).
	spare [2]*slots
	full  bool // at MaxCapacity and full of live entries: due to be split
	asked bool
	// low is at most the time of every live entry (MaxUint32 when there
	// has been none): inserts lower it, and a pass that deletes everything
	// older than a cutoff raises it to that cutoff. While it is not older
	// than the cutoff, an insert's sweep would delete nothing and is
	// skipped (see Record).
	low uint32
}

// Init makes t, a zero Table no other goroutine can see yet, empty with
// room for capacity entries at the target load (at most MaxCapacity slots).
// A Table is held inside another struct, as a shard holds its own: one
// pointer fewer to follow, and so one cache miss fewer, on the way to a
// slot.
func (t *Table) Init(mix Mixer, capacity int) {
	t.mix, t.low = mix, math.MaxUint32
	t.arr.Store(newSlots(capFor(capacity)))
}

func capFor(n int) int {
	return min(max(n*targetLoadDen/targetLoadNum, MinCapacity), MaxCapacity)
}

// growCap is the capacity a table grows to for n entries: capFor(n), but
// MaxCapacity from half of it on. A half left by a split (about 410 entries in
// 655 slots) would otherwise rebuild twice before it splits again, at 524
// entries to 839 slots and at 671 to 1024; going straight to 1024 at 524
// copies each account about 2.3 times between two splits instead of 3.9 (a
// new account's Seen is faster: docs/design.md, "What a count reads"), for a load of 0.51–0.8
// rather than 0.64–0.8 in that stretch. It lands at or just above half,
// where a prune shrinks a table; if one does, the table shrinks to capFor(n)
// (at most 819 slots) and grows again only at 0.8 of that, after about a
// quarter more entries (511 → 655): one rebuild each way, as the entries
// come and go, never a rebuild back and forth.
func growCap(n int) int {
	if n >= MaxCapacity/2 {
		return MaxCapacity
	}
	return capFor(n)
}

// fits reports whether n entries and tombstones fit in c slots within the load
// band.
func fits(n, c int) bool { return n*maxLoadDen <= c*maxLoadNum }

// Len is the number of entries held.
func (t *Table) Len() int { return int(t.n) }

// Cap is the number of slots.
func (t *Table) Cap() int { return t.arr.Load().len() }

// home is the slot a placement hash belongs in: the high half of m×len, which
// maps uniformly onto any length without a division (Lemire's fast range).
func home(m uint64, n int) int {
	hi, _ := bits.Mul64(m, uint64(n))
	return int(hi)
}

// find returns the index of the live slot holding key, or of the empty slot
// that ends its probe chain (where key would go), and whether key was found.
// Tombstones, even of the same key, are passed over.
func find(a *slots, key, m uint64) (int, bool) {
	n := a.len()
	i := home(m, n)
	for {
		k, sec := a.at(i)
		// Both loads first: the first probe's two lines arrive together.
		kv, live := k.Load(), sec.Load() != 0
		if kv == key && live {
			return i, true
		}
		if kv == 0 {
			return i, false
		}
		if i++; i == n {
			i = 0
		}
	}
}

// Touch raises the time of key (placement hash m) to sec if the table holds it,
// without the owner's lock, and reports whether that is done. False means the
// key is not held or the table was being rebuilt or split meanwhile: the
// caller must take the lock and call Record (which is idempotent). Touch never
// allocates and never inserts.
func (t *Table) Touch(key, m uint64, sec uint32) bool {
	v := t.ver.Load()
	if v&1 != 0 {
		return false
	}
	a := t.arr.Load()
	i, found := find(a, key, m)
	if !found {
		return false
	}
	_, e := a.at(i)
	for {
		old := e.Load()
		if old >= sec {
			return true // already as recent: whichever array holds it, it holds that
		}
		if old == 0 {
			return false // tombstoned meanwhile: the caller inserts it again
		}
		if e.CompareAndSwap(old, sec) {
			// The slot still held key (keys never change in a live array; a
			// tombstone has time 0, which the swap would not match). If the
			// array was being replaced meanwhile the copy may predate the swap.
			return t.ver.Load() == v
		}
	}
}

// Prefetch starts the first slot a Touch or Record of the key whose
// placement hash is m would read on its way from memory, its key's line and
// its time's line, and returns without waiting for them. A caller about to
// look a key up in two tables prefetches the second first, so that the two
// tables' misses overlap instead of following one another. It changes
// nothing and takes no lock; a rebuild meanwhile only wastes it.
//
// Where there is a prefetch instruction it uses that (prefetchSlot), which
// unlike a load never holds back what follows (docs/design.md, "A segment's
// second touch"). Elsewhere it loads the two lines, which still overlaps
// the misses.
func (t *Table) Prefetch(m uint64) {
	a := t.arr.Load()
	k, sec := a.at(home(m, a.len()))
	prefetchSlot(unsafe.Pointer(k), unsafe.Pointer(sec))
}

// PrefetchTimes starts every line of the table's times on its way into the
// cache and returns at once. A pass over many tables calls it for the next
// table before counting the current one: the times of each table are one
// stream of 1–4 KiB at a place of its own, and the processor's prefetchers
// only find such a stream after its first misses (docs/design.md, "What a
// count reads", has the A/B). It changes nothing, takes no
// lock, and costs nothing on a platform without the instruction.
func (t *Table) PrefetchTimes() {
	s := t.arr.Load().secs
	prefetchLines(unsafe.Pointer(&s[0]), (len(s)*4+63)/64)
}

// Outcome says what Record did.
type Outcome uint8

const (
	Updated  Outcome = iota // the key was held; its time is now the later of the two
	Inserted                // the key was new and is now held
	Full                    // the key was new and does not fit: the table is at MaxCapacity and full of live entries; Split it and record again
)

// Record records key (whose placement hash is m, and which is not 0) as seen
// at sec (which is not 0), keeping the later of sec and any time already held.
// A new key also pays for the table's upkeep: the incremental sweep of
// SweepStep slots (unless no entry can be older than cutoff) and, when the
// table would pass its load band, a whole prune and a rebuild, all deleting
// only entries older than cutoff. The caller
// derives cutoff from its clock, never from sec: a time from the future must
// not expire entries its clock still retains. The caller holds the lock.
func (t *Table) Record(key, m uint64, sec, cutoff uint32) Outcome {
	a := t.arr.Load()
	i, found := find(a, key, m)
	if found {
		_, e := a.at(i)
		for {
			old := e.Load()
			if old >= sec || e.CompareAndSwap(old, sec) {
				return Updated
			}
			if old == 0 { // impossible under the lock, but never spin on it
				break
			}
		}
	}
	if t.full {
		return Full // its split is under way: no need to scan it again
	}
	if !fits(int(t.used)+1, a.len()) {
		if !t.makeRoom(cutoff) {
			t.full = true
			return Full
		}
		a = t.arr.Load()
		i, _ = find(a, key, m)
	}
	// The key before the time: Touch, which reads without the lock, takes
	// a slot as live only once its time is set.
	k, e := a.at(i)
	k.Store(key)
	e.Store(sec)
	t.n++
	t.used++
	t.low = min(t.low, sec)
	if t.low < cutoff {
		t.sweep(SweepStep, cutoff)
	}
	return Inserted
}

// makeRoom deletes what is older than cutoff and rebuilds the array without
// tombstones for one more entry: at the target load, or at MaxCapacity once
// that holds half of it (see growCap). It reports whether one more entry
// then fits.
func (t *Table) makeRoom(cutoff uint32) bool {
	t.expire(cutoff)
	t.low = max(t.low, cutoff)
	n := int(t.n)
	c := growCap(n + 1)
	if !fits(n+1, c) {
		return false
	}
	t.rebuild(c)
	return true
}

// expire tombstones every entry older than cutoff.
func (t *Table) expire(cutoff uint32) {
	s := t.arr.Load().secs
	for i := range s {
		t.expireAt(&s[i], cutoff)
	}
}

// expireAt tombstones the entry whose time e is if it is live and older than
// cutoff. A Touch may raise its time meanwhile: the swap then fails and the
// entry stays.
func (t *Table) expireAt(e *atomic.Uint32, cutoff uint32) {
	for {
		sec := e.Load()
		if sec == 0 || sec >= cutoff {
			return
		}
		if e.CompareAndSwap(sec, 0) {
			t.n--
			return
		}
	}
}

// sweep examines up to steps slots from the cursor onwards, deleting entries
// older than cutoff. It is the bounded, incremental half of pruning: inserts call
// it so that churn cleans up after itself without anyone calling Counts.
func (t *Table) sweep(steps int, cutoff uint32) {
	a := t.arr.Load()
	n := a.len()
	i := int(t.cursor)
	if i >= n {
		i = 0
	}
	for ; steps > 0; steps-- {
		_, e := a.at(i)
		t.expireAt(e, cutoff)
		if i++; i == n {
			i = 0
		}
	}
	t.cursor = int32(i)
}

// CountAndPrune adds to counts[k] the number of entries seen at or after
// since[k] (which must not be 0). Entries older than cutoff are deleted on the
// way and never counted, and the table is rebuilt smaller, or without its
// tombstones, if that left it under half full or with many tombstones. Entries
// never move within the pass: deletion leaves tombstones.
//
// A threshold at or below cutoff (a window as long as the retention, such as
// the 7d or 30d gauge) counts every entry the pass leaves, which is Len
// afterwards: it costs the pass nothing. Up to four others are counted by
// countRun, more by countRest.
func (t *Table) CountAndPrune(cutoff uint32, since []uint32, counts []int) {
	s := t.arr.Load().secs
	th := [4]uint64{1 << 32, 1 << 32, 1 << 32, 1 << 32} // counts nothing
	var at [4]int                                       // th[j] is since[at[j]]
	nth, rest := 0, len(since)
	for k, sk := range since {
		if sk <= cutoff {
			continue
		}
		if nth == len(th) {
			rest = k
			break
		}
		th[nth], at[nth] = uint64(sk), k
		nth++
	}
	var c [4]int
	for i := 0; i < len(s); {
		run := countRun(s[i:], cutoff, &th, &c)
		if rest < len(since) {
			countRest(s[i:i+run], cutoff, since[rest:], counts[rest:])
		}
		if i += run; i < len(s) {
			t.expireAt(&s[i], cutoff)
			// If a Touch raised it meanwhile it is live and within the
			// cutoff: the next run counts it.
		}
	}
	for j := range nth {
		counts[at[j]] += c[j]
	}
	for k, sk := range since {
		if sk <= cutoff {
			counts[k] += int(t.n) // every entry left is seen at or after cutoff
		}
	}
	t.low = max(t.low, cutoff)
	t.tidy()
}

// tidy rebuilds the array after a prune if it is under half full (to shrink
// it) or an eighth tombstones (to keep probes short). A prune that deleted
// anything makes spares moot (they were sized for a table without
// tombstones): it drops them, so an idle table never keeps them.
func (t *Table) tidy() {
	if t.used != t.n {
		t.spare, t.asked = [2]*slots{}, false
	}
	c := t.arr.Load().len()
	if n, used := int(t.n), int(t.used); (c > MinCapacity && n*shrinkBelowDen < c) || (used-n)*maxTombDen > c {
		t.rebuild(capFor(n))
	}
}

// countRun counts the live entries whose seconds s holds into c until the
// first one older than cutoff, and returns its index (len(s) if none). On
// amd64, countFast counts eight slots a turn first, in SSE2; the loop below
// takes over where it stops (or counts every slot, elsewhere).
//
// The loop is branch-free but for that stop: a third of the slots are empty,
// at random, and a branch on emptiness mispredicts often enough to more than
// double the time of the pass. Empty slots and tombstones have time 0, which
// no threshold reaches and which sec-1 turns into the largest uint32, never
// below cutoff-1. Each threshold costs three instructions a slot:
// (sec - th) >> 63 is -1 if sec < th and 0 otherwise, so the count is the
// slots passed plus the sum. An unused threshold, 1<<32, counts nothing.
func countRun(s []atomic.Uint32, cutoff uint32, th *[4]uint64, c *[4]int) int {
	i := countFast(s, cutoff, th, c) // the vector loop, where there is one
	t0, t1, t2, t3 := int64(th[0]), int64(th[1]), int64(th[2]), int64(th[3])
	var a0, a1, a2, a3 int64
	lim := max(cutoff, 1) - 1
	j := i
	for ; j < len(s); j++ {
		sec := s[j].Load()
		if sec-1 < lim {
			break
		}
		v := int64(sec)
		a0 += (v - t0) >> 63
		a1 += (v - t1) >> 63
		a2 += (v - t2) >> 63
		a3 += (v - t3) >> 63
	}
	n := j - i
	c[0] += n + int(a0)
	c[1] += n + int(a1)
	c[2] += n + int(a2)
	c[3] += n + int(a3)
	return j
}

// countRest adds to counts[k] the live entries of s seen at or after
// since[k], for each threshold of since past cutoff.
func countRest(s []atomic.Uint32, cutoff uint32, since []uint32, counts []int) {
	for i := range s {
		if sec := s[i].Load(); sec != 0 {
			for k, th := range since {
				if th > cutoff && sec >= th {
					counts[k]++
				}
			}
		}
	}
}

// Range calls fn for every live entry seen at or after since, in slot order.
// It changes nothing.
func (t *Table) Range(since uint32, fn func(key uint64, sec uint32)) {
	a := t.arr.Load()
	for i := range a.secs {
		if sec := a.secs[i].Load(); sec != 0 && sec >= since {
			fn(a.keys[i].Load(), sec)
		}
	}
}

// rebuild replaces the array by one of c slots holding the live entries and
// no tombstones. The version is odd meanwhile, so a Touch that raises a time
// in the old array after this copied it finds out. It takes the spare array
// if that has c slots; any spare left is moot afterwards and dropped.
func (t *Table) rebuild(c int) {
	t.ver.Add(1)
	old, a, n := t.arr.Load(), t.takeSpare(0, c), 0
	for j := range old.secs {
		if sec := old.secs[j].Load(); sec != 0 {
			key := old.keys[j].Load()
			a.put(key, t.mix.Mix(key), sec)
			n++
		}
	}
	t.arr.Store(a)
	t.n, t.used, t.cursor = int32(n), int32(n), 0
	t.spare, t.asked = [2]*slots{}, false
	t.ver.Add(1)
}

// put places key, whose placement hash is m, with time sec in a, an array
// no other goroutine can see yet and that has room. It uses plain loads and
// stores: an atomic store is a locked exchange on amd64, and the array is
// published afterwards through an atomic pointer, which orders these writes
// before any read of it.
func (a *slots) put(key, m uint64, sec uint32) {
	c := len(a.keys)
	i := home(m, c)
	for *(*uint64)(unsafe.Pointer(&a.keys[i])) != 0 {
		if i++; i == c {
			i = 0
		}
	}
	*(*uint64)(unsafe.Pointer(&a.keys[i])) = key
	*(*uint32)(unsafe.Pointer(&a.secs[i])) = sec
}

// Split retires the table and fills zero and one, two zero Tables no other
// goroutine can see yet (see Init), with its live entries: zero with those
// whose placement hash has bit b clear, one with those that have it set. A
// retired table's version stays odd, so every Touch of it fails and its
// caller looks the key up again; the caller must stop recording into it.
//
// Two passes over the entries: one counts each half, to size its array; the
// other copies every entry to its half. (Under the owner's lock nothing
// becomes live or dead between them: Touch only raises live times.)
func (t *Table) Split(b uint, zero, one *Table) {
	t.ver.Add(1) // never added back: retired
	old := t.arr.Load()
	n0 := 0
	for j := range old.secs {
		if old.secs[j].Load() != 0 && t.mix.Mix(old.keys[j].Load())>>b&1 == 0 {
			n0++
		}
	}
	halves := [2]*slots{t.takeSpare(0, capFor(n0)), t.takeSpare(1, capFor(int(t.n)-n0))}
	var got [2]int
	for j := range old.secs {
		if sec := old.secs[j].Load(); sec != 0 {
			key := old.keys[j].Load()
			m := t.mix.Mix(key)
			h := m >> b & 1
			halves[h].put(key, m, sec)
			got[h]++
		}
	}
	for h, out := range [2]*Table{zero, one} {
		out.mix, out.n, out.used, out.low = t.mix, int32(got[h]), int32(got[h]), t.low
		out.arr.Store(halves[h])
	}
}

// Spare arrays. A rebuild or a split needs one or two new arrays, 8–12 KiB
// each in a growing tracker, whose pages are often fresh from the OS and
// fault in as the copy writes them. Allocated under the owner's lock, most
// took a few microseconds, but hundreds in a 10M-account growth took over
// 50 (docs/design.md, "The growth tail"), and every insert into the shard
// waited for them. So a table close to its next rebuild or split asks for
// the arrays it will need (Spares); the goroutine whose insert asked makes
// them after unlocking (MakeSpares) and hands them over under the lock
// (GiveSpares). The rebuild or split then copies into memory already faulted
// in, and allocates under the lock only if the spares did not arrive or no
// longer fit (a prune meanwhile changed the sizes).
const (
	// spareAhead is how many inserts before its next rebuild or split a
	// table asks for spares. The spares are made within microseconds; at
	// the insert rates measured (2M new accounts a second over a thousand
	// shards or more) a shard sees that many inserts in milliseconds.
	// Few, so that few tables hold spares at once: they are memory not yet
	// holding accounts (12 KiB for a rebuild to MaxCapacity, about 16 KiB
	// for a split's halves), held by about 1 table in 50 in a steady growth
	// (for 8 of the 409 inserts between two splits).
	spareAhead = 4
	// spareMinCap is the smallest array worth a spare. Smaller ones come
	// from the allocator's per-P cache in well under a microsecond, and
	// only small tables (a tracker's first few thousand accounts) make them.
	spareMinCap = MaxCapacity / 2
	// spareSlackDen bounds how much larger than asked a spare may be and
	// still be used: a split's halves are sized by a count made without the
	// lock, before the last few inserts (spareAhead slots of margin, about
	// 1%); a spare further off was made moot by a prune and is dropped.
	spareSlackDen = 16
)

// SpareRequest says which arrays a table's next rebuild or split will need.
// The zero value asks for none.
type SpareRequest struct {
	ver   uint32 // the version when asked: spares made for another array are refused
	c     int    // a rebuild's capacity, or 0 for a split's halves
	split bool
}

// Wanted reports whether the request asks for anything.
func (r SpareRequest) Wanted() bool { return r.c != 0 || r.split }

// Spares reports, once per slot array, that the table is within spareAhead
// inserts of a rebuild or split that will allocate at least spareMinCap
// slots, and which. It asks only while no entry has expired (a growing
// table), when the next sizes are known: a table under MaxCapacity will
// rebuild to growCap(limit+1), one at MaxCapacity will split. If entries
// expire before, the spares may not fit and are dropped. The caller
// holds the lock, calls it after an insert, and if Wanted, unlocks and calls
// MakeSpares.
func (t *Table) Spares() SpareRequest {
	c := t.arr.Load().len()
	if t.asked || t.used != t.n || fits(int(t.used)+spareAhead, c) {
		return SpareRequest{} // asked already, or tombstones make the next size unsure, or not close yet
	}
	t.asked = true
	if c == MaxCapacity {
		return SpareRequest{ver: t.ver.Load(), split: true}
	}
	next := growCap(c*maxLoadNum/maxLoadDen + 1)
	if next < spareMinCap {
		return SpareRequest{}
	}
	return SpareRequest{ver: t.ver.Load(), c: next}
}

// Spares is a set of arrays made for one table's next rebuild or split.
type Spares struct {
	ver uint32
	a   [2]*slots
}

// MakeSpares makes the arrays r asks for, with their pages written so that
// they are faulted in. It takes no lock and must be called without the
// owner's: it allocates, and for a split, whose halves are split by bit b of
// the placement hash, counts each half's entries in the current array (with
// atomic loads: an estimate, the last inserts before the split add up to
// spareAhead to either half).
func (t *Table) MakeSpares(r SpareRequest, b uint) Spares {
	sp := Spares{ver: r.ver}
	if !r.split {
		sp.a[0] = newFaulted(r.c)
		return sp
	}
	a := t.arr.Load()
	var n [2]int
	for j := range a.secs {
		if a.secs[j].Load() != 0 {
			n[t.mix.Mix(a.keys[j].Load())>>b&1]++
		}
	}
	for h := range sp.a {
		sp.a[h] = newFaulted(capFor(n[h] + spareAhead))
	}
	return sp
}

// GiveSpares hands the table the arrays MakeSpares made, unless its array
// was replaced since they were asked for (or it was split: a retired table's
// version stays odd). The caller holds the lock.
func (t *Table) GiveSpares(sp Spares) {
	if t.ver.Load() == sp.ver {
		t.spare = sp.a
	}
}

// ArrayBytes is what one slot array costs besides its slots: the object
// holding its two slice headers.
const ArrayBytes = int(unsafe.Sizeof(slots{}))

// Bytes is the heap the table's slot arrays take, its spares' included:
// SlotBytes a slot and ArrayBytes an array. (The allocator rounds each up
// to its size class; the table's own header is its owner's.)
func (t *Table) Bytes() int {
	b := t.Cap()*SlotBytes + ArrayBytes
	for _, a := range t.spare {
		if a != nil {
			b += a.len()*SlotBytes + ArrayBytes
		}
	}
	return b
}

// SpareCap is the number of slots in spare arrays the table holds.
func (t *Table) SpareCap() int {
	c := 0
	for _, a := range t.spare {
		if a != nil {
			c += a.len()
		}
	}
	return c
}

// takeSpare returns spare array h, if there is one of c slots or a little
// more (see spareSlackDen), or else a new array of c slots. Spare h is
// dropped either way.
func (t *Table) takeSpare(h, c int) *slots {
	a := t.spare[h]
	t.spare[h] = nil
	if a != nil && a.len() >= c && a.len()-c <= c/spareSlackDen {
		// Zero it again, in order: the copy then writes into lines
		// already in cache, as into an array the allocator has just
		// zeroed. Made milliseconds ago, the spare's lines are cold, and
		// the copy's writes at random places each missed.
		clear(a.words())
		return a
	}
	return newSlots(c)
}

// newFaulted returns newSlots(c) with every page of its memory faulted in
// (touchPages), so that a later copy into it takes no page fault under the
// lock: a fresh span's memory is not zeroed by the allocator (the OS gives
// it zeroed) and so not yet touched. docs/design.md ("Tricks, and what each
// buys") has the A/B that keeps the touching, and drops the madvise that
// once preceded it.
func newFaulted(c int) *slots {
	a := newSlots(c)
	touchPages(a.words())
	return a
}

// touchPages writes a word on every page of w's memory.
func touchPages(w []uint64) {
	for i := 0; i < len(w); i += pageWords {
		w[i] = 0
	}
	w[len(w)-1] = 0
}

// pageWords is the words in the smallest page of the platforms Go runs on
// (4 KiB); on larger pages some writes are redundant.
const pageWords = 4096 / 8
