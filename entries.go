package activeusers

import (
	"slices"
	"time"

	"github.com/activeusers/activeusers/internal/table"
)

// Entry is one account as a Tracker holds it.
type Entry struct {
	// Hash is the 64-bit xxhash (seed 0) of the account id, the same on every
	// instance, so it can stand for the account elsewhere (another process, a
	// Redis sorted set). A hash of 0 is stored as 1. With WithSecret it is
	// the keyed pseudonym of that hash instead, the same on every instance
	// with the same secret.
	Hash uint64
	// Last is when the account was last seen, in Unix seconds.
	Last int64
}

// AppendEntries appends to dst every account last seen at or after since, in
// no particular order, and returns the extended slice. It copies one shard
// at a time under that shard's lock alone (at most 1024 slots), and grows
// dst only between shards, so no lock is held for longer than one shard's
// copy. Passing the start of the previous call as since gives the accounts
// seen since then, which is how the auredis package pushes only what changed.
func (t *Tracker) AppendEntries(dst []Entry, since time.Time) []Entry {
	t.forEntries(t.all, toSec(since.Unix()), func(n int) { dst = slices.Grow(dst, n) }, func(key uint64, sec uint32) {
		dst = append(dst, Entry{Hash: key, Last: int64(sec)})
	})
	return dst
}

// forEntries calls each for every entry of st seen at or after since, shard by
// shard, under each shard's lock alone; grow is called with no lock held
// before each shard, with the most entries a shard can hold, so that the
// caller's buffer never grows while a lock is held.
// With WithSecret, each gets the pseudonym of each hash, never the hash.
func (t *Tracker) forEntries(st *set, since uint32, grow func(n int), each func(key uint64, sec uint32)) {
	if t.pn != nil {
		plain, buf := each, new([16]byte)
		each = func(key uint64, sec uint32) { plain(t.pn.encode(key, buf), sec) }
	}
	st.eachShard(func() { grow(table.MaxCapacity) }, prefetchTimes, func(s *shard) { s.tab.Range(since, each) })
}
