// Package table is the flat, pointer-free hash table behind each shard: 64-bit
// keys mapped to 32-bit Unix seconds, open addressing with linear probing and
// backward-shift deletion.
//
// A Go map[uint64]uint32 spends 16 bytes a slot plus control bytes, iterates
// slowly and never shrinks. Here a slot is 12 bytes (key halves and time side by
// side, so a Seen touches one cache line), the capacity is any integer (so the
// load factor stays within a narrow band instead of halving at every doubling),
// and the table shrinks when a sweep leaves it mostly empty. Nothing in it holds
// a pointer, so the garbage collector never scans it.
//
// A Table is not safe for concurrent use; each shard guards its own with a mutex.
package table

import (
	"math/bits"
)

// Load factor band. Linear probing stays fast up to about 0.8 (an unsuccessful
// probe then reads ~13 slots, about two cache lines); above it probe chains grow
// quadratically. Growing to 0.625 rather than 0.4 (doubling) keeps the heap per
// entry between 12/0.8 = 15 and 12/0.625 = 19.2 bytes at every size, at the cost
// of resizing ~4× as often as doubling would (each resize is one shard's worth
// of work, and the amortised cost is a few slot moves per insert).
const (
	maxLoadNum, maxLoadDen = 4, 5 // grow or sweep above 0.8
	// after a full sweep, grow only if the table is still above 0.7: a sweep that
	// freed at least a tenth of the slots buys a tenth of the capacity in inserts
	// before the next one, which bounds the amortised sweep cost at ~10 slot
	// reads per insert.
	keepLoadNum, keepLoadDen     = 7, 10
	targetLoadNum, targetLoadDen = 5, 8 // resize to 0.625
	// Shrink when a prune leaves the table under half full, back to 0.625: so
	// once pruned, a table holds 12/0.8 = 15 to 12/0.5 = 24 bytes an entry. The
	// band 0.5–0.8 still leaves a fifth of the entries to expire between a
	// shrink and the next, so a table does not resize back and forth.
	shrinkBelowDen = 2

	// MinCapacity is the smallest table: with 256 shards an empty tracker's
	// tables take 256×16×12 bytes = 48 KiB.
	MinCapacity = 16

	// SweepStep is how many slots each insert examines for expired entries. In
	// steady churn an expired entry lingers for at most one trip of the cursor
	// round the table, capacity/SweepStep inserts, during which at most that
	// many entries expire: expired entries fill at most 1/SweepStep of the slots
	// (12.5%), half that on average, which is 8–20% of the entries at the loads
	// kept. TestChurnWithoutCounts measures it: at least 88% of what is held is
	// within retention. Eight 12-byte slots are 96 bytes: under two cache lines
	// read sequentially.
	SweepStep = 8
)

// slot is one entry. The key is split in two halves so that the struct is 12
// bytes with 4-byte alignment rather than 16 with 8. An empty slot is all
// zeros: callers never store a key of 0 (they map a hash of 0 to 1) nor a
// second of 0 (1970-01-01T00:00:00, clamped to 1), so a pass over the table can
// tell an empty slot by its time alone.
type slot struct {
	lo, hi uint32
	sec    uint32
}

func (s *slot) empty() bool { return s.sec == 0 }
func (s *slot) key() uint64 { return uint64(s.hi)<<32 | uint64(s.lo) }

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
// input bit even for small keys. Shards take the low bits of the result, slots
// the high bits. About 2 ns.
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

// Table maps keys to the last second they were seen at.
type Table struct {
	slots  []slot
	n      int // occupied slots
	cursor int // next slot the incremental sweep examines
	mix    Mixer
}

// New returns an empty table with room for capacity entries at the target load.
func New(mix Mixer, capacity int) Table {
	return Table{slots: make([]slot, capFor(capacity)), mix: mix}
}

func capFor(n int) int {
	c := n * targetLoadDen / targetLoadNum
	if c < MinCapacity {
		c = MinCapacity
	}
	return c
}

// Len is the number of entries held.
func (t *Table) Len() int { return t.n }

// Cap is the number of slots.
func (t *Table) Cap() int { return len(t.slots) }

// home is the slot a placement hash belongs in: the high half of m×len, which
// maps uniformly onto any length without a division (Lemire's fast range).
func home(m uint64, n int) int {
	hi, _ := bits.Mul64(m, uint64(n))
	return int(hi)
}

// find returns the slot holding key, or the empty slot that ends its probe
// chain (where key would go), and whether key was found.
func (t *Table) find(key, m uint64) (*slot, bool) {
	s := t.slots
	i := home(m, len(s))
	lo, hi := uint32(key), uint32(key>>32)
	for {
		e := &s[i]
		if e.lo == lo && e.hi == hi {
			return e, true
		}
		if e.sec == 0 {
			return e, false
		}
		if i++; i == len(s) {
			i = 0
		}
	}
}

// Record records key (whose placement hash is m, and which is not 0) as seen
// at sec (which is not 0), keeping the later of sec and any time already held,
// and reports whether the key was new. A new key also pays for the table's
// upkeep: the incremental sweep of SweepStep slots and, when the table is full,
// a whole prune and perhaps a resize, all deleting only entries older than
// cutoff. The caller derives cutoff from its clock, never from sec: a time from
// the future must not expire entries its clock still retains.
func (t *Table) Record(key, m uint64, sec, cutoff uint32) bool {
	e, found := t.find(key, m)
	if found {
		if sec > e.sec {
			e.sec = sec
		}
		return false
	}
	*e = slot{lo: uint32(key), hi: uint32(key >> 32), sec: sec}
	t.n++
	t.Sweep(SweepStep, cutoff)
	if t.n*maxLoadDen > len(t.slots)*maxLoadNum {
		t.Prune(cutoff)
		if t.n*keepLoadDen > len(t.slots)*keepLoadNum {
			t.resize(capFor(t.n))
		}
	}
	return true
}

// Merge is Record without the upkeep, for bulk loads that prune once at the end:
// the key's time becomes the later of sec and what is held. It grows the table
// as needed.
func (t *Table) Merge(key, m uint64, sec uint32) {
	if (t.n+1)*maxLoadDen > len(t.slots)*maxLoadNum {
		t.resize(capFor(t.n + 1))
	}
	e, found := t.find(key, m)
	if !found {
		*e = slot{lo: uint32(key), hi: uint32(key >> 32)}
		t.n++
	}
	e.sec = max(e.sec, sec)
}

// Sweep examines up to steps slots from the cursor onwards, deleting entries
// older than cutoff. It is the bounded, incremental half of pruning: inserts call
// it so that churn cleans up after itself without anyone calling Counts.
func (t *Table) Sweep(steps int, cutoff uint32) {
	s := t.slots
	i := t.cursor
	if i >= len(s) {
		i = 0
	}
	for ; steps > 0; steps-- {
		if e := &s[i]; !e.empty() && e.sec < cutoff {
			t.deleteAt(i) // a later entry may have shifted into i: look again
			continue
		}
		if i++; i == len(s) {
			i = 0
		}
	}
	t.cursor = i
}

// deleteAt empties slot i and shifts later members of its probe chain back so
// that no chain has a gap (backward-shift deletion: no tombstones, so probe
// lengths never degrade with churn).
func (t *Table) deleteAt(i int) {
	s := t.slots
	hole, j := i, i
	for {
		if j++; j == len(s) {
			j = 0
		}
		e := s[j]
		if e.empty() {
			break
		}
		h := home(t.mix.Mix(e.key()), len(s))
		// e may fill the hole unless its home lies cyclically in (hole, j].
		if hole <= j {
			if hole < h && h <= j {
				continue
			}
		} else if h > hole || h <= j {
			continue
		}
		s[hole] = e
		hole = j
	}
	s[hole] = slot{}
	t.n--
}

// Prune deletes every entry older than cutoff and shrinks the table if that
// left it mostly empty.
func (t *Table) Prune(cutoff uint32) {
	t.CountAndPrune(cutoff, nil, nil)
}

// CountAndPrune adds to counts[k] the number of entries seen at or after
// since[k] (which must not be 0). Entries older than cutoff are deleted on the
// way and never counted, and the table shrinks if that left it mostly empty.
//
// The pass starts just after an empty slot and wraps round to it: backward
// shifts never cross an empty slot, so every move during the pass goes from a
// slot not yet visited to the current one or later, and no entry is counted
// twice or missed.
func (t *Table) CountAndPrune(cutoff uint32, since []uint32, counts []int) {
	start := 0
	for !t.slots[start].empty() {
		start++ // the load factor is at most 0.8: an empty slot exists
	}
	var th [4]uint64
	for k := range th {
		th[k] = 1 << 32 // counts nothing
		if k < len(since) {
			th[k] = uint64(since[k])
		}
	}
	var c [4]int
	t.countRange(start+1, len(t.slots), cutoff, &th, &c, since, counts)
	t.countRange(0, start, cutoff, &th, &c, since, counts)
	for k := range min(len(counts), len(c)) {
		counts[k] += c[k]
	}
	t.maybeShrink()
}

// countRange counts slots [from, to). The first four thresholds are counted
// by a tight loop that keeps its counters in registers and calls nothing; it
// stops at each expired entry so that the deletion (rare) happens out here.
// Further thresholds (rarer still) take a slow loop.
func (t *Table) countRange(from, to int, cutoff uint32, th *[4]uint64, c *[4]int, since []uint32, counts []int) {
	for i := from; i < to; {
		run := countRun(t.slots[i:to], cutoff, th, c)
		if len(since) > len(th) {
			countRest(t.slots[i:i+run], since[len(th):], counts[len(th):])
		}
		if i += run; i < to {
			t.deleteAt(i) // a later entry may shift into i: the next run looks again
		}
	}
}

// countRun counts the entries of s into c until the first entry older than
// cutoff, and returns its index (len(s) if none).
//
// It is branch-free but for that stop: a third of the slots are empty, at
// random, and a branch on emptiness mispredicts often enough to more than
// double the time of the pass. Empty slots have time 0, which no threshold
// reaches and which sec-1 turns into the largest uint32, never below cutoff-1.
// Each threshold costs three instructions a slot: (sec - th) >> 63 is -1 if
// sec < th and 0 otherwise, so the count is the slots passed plus the sum.
func countRun(s []slot, cutoff uint32, th *[4]uint64, c *[4]int) int {
	switch {
	case th[2] == 1<<32:
		return countRun2(s, cutoff, th, c)
	case th[3] == 1<<32:
		return countRun3(s, cutoff, th, c)
	}
	t0, t1, t2, t3 := int64(th[0]), int64(th[1]), int64(th[2]), int64(th[3])
	var a0, a1, a2, a3 int64
	lim := max(cutoff, 1) - 1
	i := 0
	for ; i < len(s); i++ {
		sec := s[i].sec
		if sec-1 < lim {
			break
		}
		v := int64(sec)
		a0 += (v - t0) >> 63
		a1 += (v - t1) >> 63
		a2 += (v - t2) >> 63
		a3 += (v - t3) >> 63
	}
	c[0] += i + int(a0)
	c[1] += i + int(a1)
	c[2] += i + int(a2)
	c[3] += i + int(a3)
	return i
}

// countRun3 is countRun for three thresholds (5m, 24h, 7d): each accumulator
// left out takes about a tenth off the pass, which is why the common counts of
// windows have loops of their own.
func countRun3(s []slot, cutoff uint32, th *[4]uint64, c *[4]int) int {
	t0, t1, t2 := int64(th[0]), int64(th[1]), int64(th[2])
	var a0, a1, a2 int64
	lim := max(cutoff, 1) - 1
	i := 0
	for ; i < len(s); i++ {
		sec := s[i].sec
		if sec-1 < lim {
			break
		}
		v := int64(sec)
		a0 += (v - t0) >> 63
		a1 += (v - t1) >> 63
		a2 += (v - t2) >> 63
	}
	c[0] += i + int(a0)
	c[1] += i + int(a1)
	c[2] += i + int(a2)
	return i
}

// countRun2 is countRun for one or two thresholds, the default scrape (24h
// and 7d).
func countRun2(s []slot, cutoff uint32, th *[4]uint64, c *[4]int) int {
	t0, t1 := int64(th[0]), int64(th[1])
	var a0, a1 int64
	lim := max(cutoff, 1) - 1
	i := 0
	for ; i < len(s); i++ {
		sec := s[i].sec
		if sec-1 < lim {
			break
		}
		v := int64(sec)
		a0 += (v - t0) >> 63
		a1 += (v - t1) >> 63
	}
	c[0] += i + int(a0)
	c[1] += i + int(a1)
	return i
}

func countRest(s []slot, since []uint32, counts []int) {
	for i := range s {
		if e := &s[i]; !e.empty() {
			for k, th := range since {
				if e.sec >= th {
					counts[k]++
				}
			}
		}
	}
}

func (t *Table) maybeShrink() {
	if len(t.slots) > MinCapacity && t.n*shrinkBelowDen < len(t.slots) {
		if c := capFor(t.n); c < len(t.slots) {
			t.resize(c)
		}
	}
}

// Range calls fn for every entry seen at or after since, in slot order. It
// neither deletes nor moves entries.
func (t *Table) Range(since uint32, fn func(key uint64, sec uint32)) {
	for i := range t.slots {
		if e := &t.slots[i]; !e.empty() && e.sec >= since {
			fn(e.key(), e.sec)
		}
	}
}

func (t *Table) resize(c int) {
	old := t.slots
	s := make([]slot, c)
	for k := range old {
		e := old[k]
		if e.empty() {
			continue
		}
		i := home(t.mix.Mix(e.key()), c)
		for !s[i].empty() {
			if i++; i == c {
				i = 0
			}
		}
		s[i] = e
	}
	t.slots = s
	t.cursor = 0
}
