// Package activeusers counts the distinct accounts active within sliding windows
// (the last 5 minutes, 24 hours, 7 days, …) at a cost to the request path of
// one hash and, for an account already held, no lock.
//
// A gateway calls Seen on every authenticated request and a metrics scrape calls
// Counts every few seconds:
//
//	t := activeusers.New()
//	defer t.Close()
//	t.Seen(accountID)                            // on every request
//	n := t.Counts(24*time.Hour, 7*24*time.Hour)  // on every scrape
//
// # Words
//
// Each word below means one thing, here and in every file:
//
//   - account: what Seen is told of, by its id; held as the 64-bit xxhash of
//     the id (its key), so the tracker never retains callers' strings.
//   - window: how far back a count looks (24h); an account counts in a window
//     if its last activity, to the second, is at most that old.
//   - retention: the longest window; an account is dropped once older.
//   - table: a hash table of at most 1024 slots of 12 bytes (key and second),
//     holding no pointers (internal/table).
//   - shard: one lock and its table (shard.go). A tracker's accounts are
//     spread over shards by hash; a shard splits in two when its table is
//     full, and a directory indexed by the hash finds it.
//   - set: the shards holding one collection of accounts, with their
//     directory: a tracker has one for all its accounts, and one for each
//     segment.
//   - dimension: what accounts are also counted by (plan, platform, region,
//     tenant), named with WithDimensions.
//   - segment: one value of one dimension (plan=pro), and the accounts
//     recorded in it (SeenIn).
//
// To count by plan, platform, region or tenant as well, name the dimensions
// and give each request's values; every segment's count comes with the
// overall one, and the values a dimension keeps are bounded (WithMaxValues):
//
//	t := activeusers.New(activeusers.WithDimensions("plan", "platform"))
//	t.SeenIn(accountID, "pro", "ios")
//	b := t.CountsBy(24 * time.Hour)  // b.Overall, b.Dimensions[0].Values…
//
// Around the Tracker, reach for:
//
//   - Middleware, to count the accounts of a net/http server's requests
//     without writing the Seen call yourself.
//   - Persist (or SaveFile/LoadFile, WriteTo/ReadFrom), so that a restart
//     does not reset the 7-day figure to zero: it loads a snapshot at start
//     and saves one every interval and on Close.
//   - github.com/activeusers/activeusers/auprom, to export the counts to
//     Prometheus as a gauge per window, one Counts call per scrape.
//   - github.com/activeusers/activeusers/auotel, to export them as an
//     OpenTelemetry observable gauge instead.
//   - github.com/activeusers/activeusers/auredis, when several instances
//     serve the same accounts and one exact cluster-wide figure is wanted:
//     per-instance counts cannot be added, since an account that reached two
//     instances would count twice.
//
// The adapters with dependencies beyond the standard library are modules of
// their own, so importing this package brings in nothing but xxhash.
package activeusers

import (
	"encoding/binary"
	"math"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/activeusers/activeusers/internal/coarseclock"
	"github.com/activeusers/activeusers/internal/table"
)

// Tracker records when each account was last active and counts the accounts
// active within any window up to its retention.
//
// It is safe for concurrent use by any number of goroutines. Accounts are
// spread by a seeded hash of their id over shards, whose tables hold no
// pointers and so are invisible to the garbage collector. A Seen of an
// account already held takes no lock at all; a new account locks one shard.
// Counts, snapshots and entry iteration lock one shard at a time, so no call
// ever holds up another for more than one shard's work, however many accounts
// there are. Each table is pruned of expired entries a few slots at a time as
// new accounts arrive, so memory tracks the accounts within retention even if
// Counts is never called.
//
// Times have a resolution of one second: Seen records the whole second it was
// called in, and an account counts in a window if its age (now minus its last
// second, in whole seconds) is at most the window. Only the tracker's clock
// decides what is past retention: times ahead of it are recorded as its now.
// Two distinct ids hash to the same 64-bit key, and so count once, with
// probability about n²/2⁶⁵ for n accounts (3·10⁻⁸ at a million, 3·10⁻⁶ at
// ten million).
//
// The zero Tracker is not usable; call New. Call Close when done with it to stop
// the clock goroutine (a Tracker that becomes unreachable stops it too).
//
// A Tracker answers "how many distinct accounts", not "which ones": it cannot
// list ids. It counts exactly, in memory proportional to the accounts within
// retention (15 to 24 bytes each once pruned, by the tables' load); for
// approximate counts of billions of ids in constant memory a HyperLogLog
// sketch is the better tool.
type Tracker struct {
	all    *set         // the accounts
	dims   []*dimension // with WithDimensions: each value's accounts
	retSec int64
	pn     *pseudonyms // with WithSecret: what hashes become on their way out

	clock     *coarseclock.Clock // the default clock; nil with WithClock
	userClock func() time.Time
	closeOnce sync.Once
	cleanup   runtime.Cleanup
	cursors   cursorList // the Cursors following what is recorded
}

// New returns a Tracker configured by opts. It panics if an option is out of
// range; the message names the option and what it allows.
func New(opts ...Option) *Tracker {
	c := defaultConfig()
	for _, o := range opts {
		o(&c)
	}
	if len(c.errs) > 0 {
		msg := "activeusers.New: " + c.errs[0]
		for _, e := range c.errs[1:] {
			msg += "; " + e
		}
		panic(msg)
	}
	shards := 1 << bits.Len(uint(c.shards-1)) // rounded up to a power of two
	t := &Tracker{
		all:       newSet(table.NewMixer(rand.Uint64(), rand.Uint64()), shards),
		retSec:    int64(c.retention / time.Second),
		userClock: c.clock,
	}
	for _, name := range c.dims {
		mix := table.NewMixer(rand.Uint64(), rand.Uint64())
		t.dims = append(t.dims, newDimension(name, c.maxValues, min(shards, valueShards), mix))
	}
	if c.secret != nil {
		t.pn = newPseudonyms(c.secret)
	}
	if t.userClock == nil {
		t.clock = coarseclock.Start()
		// A Tracker dropped without Close must not leak its clock goroutine. The
		// cleanup holds the clock, not the Tracker, so it does not keep it alive.
		t.cleanup = runtime.AddCleanup(t, (*coarseclock.Clock).Stop, t.clock)
	}
	return t
}

// Close stops the goroutine behind the default clock. The Tracker keeps
// working after Close, reading the wall clock directly. Close is idempotent and
// always returns nil; it has nothing to do with WithClock.
func (t *Tracker) Close() error {
	t.closeOnce.Do(func() {
		if t.clock != nil {
			t.cleanup.Stop()
			t.clock.Stop()
		}
	})
	return nil
}

// Retention is how long an account is kept after its last activity.
func (t *Tracker) Retention() time.Duration { return time.Duration(t.retSec) * time.Second }

// Now is the time by the tracker's clock, to the second: what Seen records and
// Counts measures ages from.
func (t *Tracker) Now() time.Time { return time.Unix(t.nowSec(), 0) }

// nowSec is the current Unix second by the tracker's clock.
func (t *Tracker) nowSec() int64 {
	if t.clock != nil {
		return t.clock.Now()
	}
	return t.userClock().Unix()
}

// atOrNow returns the second an activity at at is recorded at — at, or the
// clock's now if at is ahead of it — and now: only the clock decides what is
// past retention, so a time ahead of it can neither expire other accounts
// early nor keep this one longer than a Seen would.
func (t *Tracker) atOrNow(at time.Time) (sec, now int64) {
	now = t.nowSec()
	return min(at.Unix(), now), now
}

// toSec clamps a Unix second into the range stored: 32 bits, and never 0,
// which marks an empty slot (so 1970-01-01T00:00:01 to 2106-02-07T06:28:15).
func toSec(s int64) uint32 {
	if s < 1 {
		return 1
	}
	if s > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(s)
}

// cutoff is the oldest second still within retention at now.
func (t *Tracker) cutoff(now int64) uint32 { return toSec(now - t.retSec) }

// Seen records that the account uid is active now. An empty uid is ignored.
// Of an account already held, it takes no lock and allocates nothing; of a
// new one, it locks one shard, never waiting for longer than another call's
// work on that shard, and now and then allocates the shard's next table.
func (t *Tracker) Seen(uid string) {
	if uid == "" {
		return
	}
	t.seen(xxhash.Sum64String(uid), t.nowSec())
}

// SeenBytes is Seen for an id held in a byte slice; it does not retain uid.
func (t *Tracker) SeenBytes(uid []byte) {
	if len(uid) == 0 {
		return
	}
	t.seen(xxhash.Sum64(uid), t.nowSec())
}

// SeenID is Seen for a numeric account id, with no string to build: it
// hashes the id's 8 bytes, big-endian, so it counts the same account as
// SeenBytes of those bytes — not as Seen of the id's decimal string. Use one
// form for an account everywhere it is counted (every instance of a
// cluster, every snapshot merged).
func (t *Tracker) SeenID(id uint64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], id)
	t.seen(xxhash.Sum64(b[:]), t.nowSec())
}

// seen records the account whose key is h as seen at now, the clock's
// second.
func (t *Tracker) seen(h uint64, now int64) { t.record(h, toSec(now), t.cutoff(now)) }

// record stores key h as seen at sec in its shard's table (shard.go),
// deleting on the way only entries older than cutoff.
func (t *Tracker) record(h uint64, sec, cutoff uint32) {
	t.all.record(h, sec, cutoff)
	t.stored(sec)
}

// stored tells the cursors, if any, that a second sec has just been stored
// (cursor.go). It must come after the store: a cursor whose round began
// before it is then either seen by the round's read of the tracker or noted
// here (every atomic operation, and a lock, is ordered: if this load finds
// the old start, the store came before the round began, and so before it
// read).
func (t *Tracker) stored(sec uint32) {
	if p := t.cursors.list.Load(); p != nil {
		noteLate(*p, int64(sec))
	}
}

// SeenAt records that uid was active at time at, for log replay, late
// arrivals and tests. An account's last activity is the latest time it was
// seen at, whatever the order of calls, so SeenAt with a time earlier than one
// already recorded changes nothing. A time ahead of the tracker's clock is
// recorded as the clock's now, and a time already past retention is ignored.
func (t *Tracker) SeenAt(uid string, at time.Time) {
	if uid == "" {
		return
	}
	sec, now := t.atOrNow(at)
	if s, cutoff := toSec(sec), t.cutoff(now); s >= cutoff { // else past retention: never counted
		t.record(xxhash.Sum64String(uid), s, cutoff)
	}
}

// Counts returns, for each window, the number of distinct accounts whose last
// activity is at most that old now: age ≤ window, in whole seconds. A window
// longer than the retention counts as the retention; a negative window counts
// nothing. Counts locks one shard at a time and prunes expired entries as it
// goes, so it costs one pass over the tables but never holds up Seen for
// longer than one shard's part of it.
func (t *Tracker) Counts(windows ...time.Duration) []int {
	now := t.nowSec()
	return t.counts(now, now, windows)
}

// CountsAt is Counts as of the instant at, for tests and for reports about a
// given moment: ages are measured from at, and an account last seen after at
// has age 0. Which accounts are held is still the clock's business: CountsAt
// counts only accounts within retention by the clock and deletes only those
// past it, so asking about any instant, past or future, loses nothing.
func (t *Tracker) CountsAt(at time.Time, windows ...time.Duration) []int {
	return t.counts(at.Unix(), t.nowSec(), windows)
}

// counts measures ages from at and prunes by now, the clock's second.
func (t *Tracker) counts(at, now int64, windows []time.Duration) []int {
	since, idx := t.thresholds(at, windows)
	return t.all.counts(since, idx, len(windows), t.cutoff(now))
}

// thresholds returns, for each window that is not negative, the oldest second
// an account may have been last seen at to count in it as of at, and that
// window's index. An account counts in window w if at - last ≤ w, that is
// last ≥ at - w (an account seen after at has age 0 and counts in every
// window). Negative windows count nothing and are left out of the pass (which
// still prunes). Entries older than the cutoff are deleted, never counted,
// whatever at is.
func (t *Tracker) thresholds(at int64, windows []time.Duration) (since []uint32, idx []int) {
	for i, w := range windows {
		if w < 0 {
			continue
		}
		secs := min(int64(w/time.Second), t.retSec)
		since = append(since, toSec(at-secs))
		idx = append(idx, i)
	}
	return since, idx
}

// Len returns the number of accounts held now. It may include accounts past
// retention that have not been pruned yet; Counts with a window of the
// retention gives the number within it.
func (t *Tracker) Len() int {
	n := 0
	t.all.eachShard(nil, nil, func(s *shard) { n += s.tab.Len() })
	return n
}

// Stats describes a Tracker's memory. It is cheap to read: one brief lock of
// each shard, no pass over the tables.
type Stats struct {
	// Shards is the number of shards: locks, and tables of at most 1024
	// slots. It starts at WithShards and grows with the accounts.
	Shards int
	// Entries is the number of accounts held, as Len.
	Entries int
	// Slots is the total capacity of the shards' tables; Entries/Slots is
	// the load factor: at most 0.8, and at least 0.5 after a Counts pass
	// (tables at their minimum size aside).
	Slots int
	// Bytes is the heap the tables, shards and directory occupy: 12 bytes a
	// slot and 48 a slot array (of the tables, and of spare arrays made for
	// a table's next rebuild or split), 128 a shard (its lock and its
	// table's header) and 8 a directory entry. The slots hold no pointers;
	// the directory, shards and arrays' headers hold a few for every 300–800
	// accounts.
	Bytes int

	// Pairs is the number of (account, segment) pairs held, with
	// WithDimensions: an account active in two segments is two. PairShards,
	// PairSlots and PairBytes are Shards, Slots and Bytes for the segments'
	// sets (not included above); PairBytes also counts the values' names.
	Pairs, PairShards, PairSlots, PairBytes int
}

// Stats returns the tracker's current Stats.
func (t *Tracker) Stats() Stats {
	var st Stats
	st.Shards, st.Entries, st.Slots, st.Bytes = t.all.stats()
	for _, d := range t.dims {
		vals, _ := d.snapshot()
		for _, v := range vals {
			segs, n, slots, bytes := v.set.stats()
			st.PairShards += segs
			st.Pairs += n
			st.PairSlots += slots
			st.PairBytes += bytes + len(v.name) + valueBytes
		}
	}
	return st
}
