package activeusers

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// An Option configures a Tracker. Options are applied in order by New, which
// panics with a message naming the option if any value is out of range: a
// misconfigured tracker is a programming error, found at start-up rather than
// as a wrong gauge in production.
type Option func(*config)

type config struct {
	shards    int
	retention time.Duration
	clock     func() time.Time
	secret    []byte
	dims      []string
	maxValues int
	errs      []string
}

const (
	// DefaultShards is how many shards a new tracker starts with. Each is
	// one lock and one table of at most 1024 slots; shards split as accounts
	// arrive, so this matters only while a tracker holds fewer than about
	// DefaultShards×600 accounts. A Seen of a returning account takes no
	// lock; a new account locks its shard, so the shards are what lets
	// inserts on different cores proceed at once, and a Counts pass holds one
	// shard at a time. An empty shard costs 376 bytes: 128 for the shard
	// (its lock and its table's header), 240 for its smallest table (16
	// slots of 12 bytes, and the array's 48-byte header) and 8 for its
	// directory entry; 94 KiB for the default.
	DefaultShards = 256

	// MaxShards bounds WithShards: past it the empty shards alone (376
	// bytes each, 23.5 MiB at this bound) outweigh any contention they could
	// relieve.
	MaxShards = 1 << 16

	// DefaultRetention is how long an entry is kept after its last activity
	// unless WithRetention says otherwise: long enough for a 7-day window.
	DefaultRetention = 7 * 24 * time.Hour

	// MaxRetention is the longest retention accepted; times are stored as 32-bit
	// Unix seconds and ages are computed in 32 bits.
	MaxRetention = (1<<31 - 1) * time.Second
)

func defaultConfig() config {
	return config{shards: DefaultShards, retention: DefaultRetention, maxValues: DefaultMaxValues}
}

// WithShards sets how many shards the tracker starts with, rounded up to a
// power of two; it must be between 1 and MaxShards. Shards split as the
// tracker fills, whatever the start. Default: DefaultShards (256).
func WithShards(n int) Option {
	return func(c *config) {
		if n < 1 || n > MaxShards {
			c.errs = append(c.errs, fmt.Sprintf("WithShards(%d): the shard count must be between 1 and %d", n, MaxShards))
			return
		}
		c.shards = n
	}
}

// WithRetention sets how long an account is kept after its last activity.
// Nothing older is kept, so a window longer than the retention counts as the
// retention. It is truncated to whole seconds and must be between one second
// and MaxRetention. Default: DefaultRetention (7×24h).
func WithRetention(d time.Duration) Option {
	return func(c *config) {
		if d < time.Second || d > MaxRetention {
			c.errs = append(c.errs, fmt.Sprintf("WithRetention(%v): the retention must be between 1s and %v", d, MaxRetention))
			return
		}
		c.retention = d
	}
}

// WithClock makes Seen and Counts read the time from now instead of the
// built-in clock. Default: a shared clock of one-second resolution that one
// goroutine updates each second (time.Now costs as much as the rest of Seen);
// with WithClock no goroutine is started and now is called on every Seen, so it
// should be cheap. The …At methods read it too: it alone decides what is
// past retention.
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now == nil {
			c.errs = append(c.errs, "WithClock(nil): the clock must be a non-nil function")
			return
		}
		c.clock = now
	}
}

// WithSecret makes every account hash that leaves the tracker — Entry.Hash
// from AppendEntries, snapshot entries, and through them the members the
// auredis package writes to Redis — a keyed pseudo-random permutation of the
// 64-bit xxhash of the id, under a key derived from secret (see docs/design.md,
// "Privacy"). Without the secret, a Redis dump or a snapshot file says nothing
// about which ids were active, even to someone who can list every candidate
// id; an unkeyed hash would let them hash each candidate and look it up. Every
// instance of a cluster and every tracker that loads another's snapshots must
// use the same secret: a snapshot written under a secret loads only into a
// tracker with the same one. The secret must be at least MinSecretLen bytes;
// it is copied. It costs Seen nothing: the tracker holds plain hashes and
// applies the permutation (ten AES-128 blocks) to each entry on
// its way out. Default: none, hashes leave as the plain xxhash.
func WithSecret(secret []byte) Option {
	return func(c *config) {
		if len(secret) < MinSecretLen {
			c.errs = append(c.errs, fmt.Sprintf("WithSecret: the secret is %d bytes, it must be at least %d", len(secret), MinSecretLen))
			return
		}
		c.secret = append([]byte(nil), secret...)
	}
}

// WithDimensions names the dimensions accounts are counted by, besides
// overall: WithDimensions("plan", "platform") makes SeenIn(uid, "pro", "ios")
// count uid in plan=pro and in platform=ios, and CountsBy report every value
// of each. Names must be distinct, non-empty, at most MaxDimensions of them,
// and valid Prometheus label names other than "window" (letters, digits and
// underscores, not starting with a digit or "__"), since exporters use them as
// labels. Each (account, segment) pair costs about as much memory as an
// account. Default: none; SeenIn is then Seen.
func WithDimensions(names ...string) Option {
	return func(c *config) {
		if len(names) > MaxDimensions {
			c.errs = append(c.errs, fmt.Sprintf("WithDimensions: %d dimensions, at most %d", len(names), MaxDimensions))
			return
		}
		for i, n := range names {
			if !labelName(n) || n == "window" {
				c.errs = append(c.errs, fmt.Sprintf("WithDimensions: %q is not a usable label name (letters, digits, underscores; not a digit or \"__\" first; not \"window\")", n))
				return
			}
			if slices.Contains(names[:i], n) {
				c.errs = append(c.errs, fmt.Sprintf("WithDimensions: %q named twice", n))
				return
			}
		}
		c.dims = slices.Clone(names)
	}
}

// labelName reports whether n is a Prometheus label name not reserved for
// internal use.
func labelName(n string) bool {
	if n == "" || strings.HasPrefix(n, "__") {
		return false
	}
	for i, r := range n {
		if !(r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || i > 0 && '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

// WithMaxValues bounds how many distinct values each dimension holds, from 1
// to MaxValues. Values arrive first come, first served, and stay for the
// tracker's life; once a dimension holds n, every new value counts in
// OverflowValue, so memory and the exported label sets stay bounded however
// many distinct values untrusted requests send. Set it above the values you
// expect (the number of plans, platforms, tenants), and watch
// DimensionCounts.Folded. Default: DefaultMaxValues (64).
func WithMaxValues(n int) Option {
	return func(c *config) {
		if n < 1 || n > MaxValues {
			c.errs = append(c.errs, fmt.Sprintf("WithMaxValues(%d): the bound must be between 1 and %d", n, MaxValues))
			return
		}
		c.maxValues = n
	}
}
