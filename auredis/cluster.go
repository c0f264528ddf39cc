// Package auredis counts active accounts across many gateway instances, on
// Redis.
//
// Per-instance counts do not add: an account that reached three pods would be
// counted three times by sum(). A Cluster wraps each instance's local
// activeusers.Tracker, which keeps absorbing Seen at full speed, and a
// background loop pushes to Redis sorted sets — member: the account's 8-byte
// hash (activeusers.Entry.Hash), the same on every instance; score: its
// last-seen second on the Redis server's clock — only the accounts seen since
// its last successful push. Counts then answers for the whole cluster,
// exactly, window by window, with one round trip of ZCOUNTs after one that
// reads the registry of instances, and says whether the figure is complete:
// whether every instance the cluster knows has its latest push whole in what
// Redis holds now.
//
// # Guarantees
//
// A figure whose Result.IsComplete is true holds every live instance's
// latest acknowledged push (one whose Push returned nil), and any fault makes
// figures say incomplete until it is repaired:
//
//   - Exact union: accounts are spread over K sorted sets by hash, each account
//     in one, so the sum of the K ZCOUNTs counts every account once.
//   - One step per key: every read and write of a key is a Lua script on that
//     key alone (as Redis Cluster allows), which checks what the key holds and
//     acts on it atomically. Each key holds a random token from when it was
//     made; a push plans against each key's token and its server's run_id,
//     and every batch it sends, and the mark that ends it, is refused if
//     either changed: the key was deleted or evicted, or the server
//     restarted, was restored from an older file, or failed over. A push
//     that failed halfway is carried on only if neither changed.
//   - Completeness: each instance marks every key with its own member, scored
//     minus the Redis time of its push, once all of the push is in, and then
//     names that push in a registry hash, under the run_id of the server
//     holding the registry. Counts reads the registry, then each key's counts
//     and marks in one step, and counts an instance complete only if the
//     registry names its push under the current run_id and every key holds
//     that mark or a later one. A registry the server lost, or restored, or
//     that a failover replaced, is known by its run_id: until every instance
//     has had time to write to it again (Result.Settling), no figure is
//     complete — so completeness never rests on what the reader remembers.
//   - Recovery: each push probes its marks and sends everything it holds to a
//     key that lost them; a Counts that finds its own instance's push lost has
//     it pushed at once.
//   - Nothing missed: pushes follow the tracker with an activeusers.Cursor, so
//     an incremental push takes every account recorded since the last one that
//     completed, including a Seen that raced the push before it and a SeenAt
//     of an earlier time.
//   - One clock: scores and trims use the Redis server's TIME (of the node
//     holding the registry); each instance measures its clock's offset from
//     it on every push and shifts what it sends, so instance clocks may
//     differ by any amount that stays steady between two pushes.
//   - Deadlines: Push, Counts and Shutdown return by their context's deadline
//     whatever the client's options; each round trip of a push has its own.
//   - One setup: every instance must share WithKeys and the tracker's secret.
//     One with another is refused and never joins the registry; after the
//     registry is lost, one that registers first cannot lock out instances
//     that were pushing under it (a newcomer waits until its setup settles).
//   - Segments: a tracker with dimensions (activeusers.WithDimensions) also
//     pushes each segment's accounts, to K keys of its own beside the
//     accounts' K keys ("{tag}:plan=pro"), and names the segment in the
//     registry. Every instance marks the keys of every segment any instance
//     has, so a segment's figure has the overall one's guarantees. Values
//     are bounded per instance (WithMaxValues): a value one instance folded
//     into activeusers.OverflowValue counts there for that instance's
//     accounts, so keep every instance's bound above the values expected.
//
// What complete cannot know: an instance that has not reached Redis for
// WithInstanceTTL counts as gone; one that could not reach Redis when Redis
// lost its registry is unknown until it reaches it again; and instances
// whose intervals or backoffs differ are trusted to write to a new registry
// within the longest gap those already in it declare.
//
// Costs: one pipelined push per interval, of the accounts active in it (ZADD
// GT in batches), and one sorted-set member per account within retention
// (docs/benchmarks.md has the bytes it takes, measured). Compared with
// HyperLogLog (PFADD/PFCOUNT), which needs 12 KiB per counter whatever the
// cardinality, a sorted set is exact, answers any window from one key, and
// drops accounts as they expire; a HyperLogLog is approximate (±0.8%), needs
// a key per window per time bucket, and can never remove anyone.
package auredis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/activeusers/activeusers"
)

// Cluster pushes a local tracker's accounts to Redis and counts the whole
// cluster's. It is safe for concurrent use. Shutdown (or Close) it to stop the
// push loop and leave the cluster.
type Cluster struct {
	t        *activeusers.Tracker
	rdb      redis.UniversalClient
	cfg      config
	keys     []string
	registry string // the registry hash (registry.go); its node's clock is the reference
	setup    string // what every instance must agree on: key count, hash function
	id       string // this instance's id, random
	mark     string // this instance's marker member in each key

	// pushing holds a token while a push runs: one at a time, and a Push
	// waiting for another gives up at its context's deadline. It guards the
	// fields below.
	pushing   chan struct{}
	cursor    *activeusers.Cursor // what the tracker recorded since the last push
	lastStart time.Time           // tracker time the last completed push covered up to
	lastAll   time.Time           // start of the last push of everything to every key
	epoch     int64               // Redis time (ms) of the last completed push; 0 before the first
	pending   *pending            // a push that failed halfway, to carry on
	segs      []string            // the segments the last completed push marked
	buf       []activeusers.Entry
	lastSent  int // what the last completed push sent, for Stats

	doneEpoch atomic.Int64 // epoch, for Counts, which does not wait for a push
	failing   atomic.Bool  // the latest push failed: Redis lacks accounts this instance holds

	mu     sync.Mutex // guards the fields below
	stats  Stats
	offset time.Duration // Redis's clock minus the tracker's, to the second
	synced bool          // offset measured
	// offsetExact: the offset came from a reading within one tracker second.
	offsetExact bool
	// contact is the Redis time (ms) since which this instance's round trips
	// have succeeded; 0 after a failure.
	contact int64

	poke       chan struct{} // a push now: Counts found this instance's last push lost
	stop, done chan struct{}
	loopCtx    context.Context
	cancelLoop context.CancelFunc
	closeOnce  sync.Once
	abandoned  sync.WaitGroup // calls to Redis given up on at a deadline, still running
}

// Stats describes a Cluster's pushes.
type Stats struct {
	// Instance is this instance's id in the cluster's registry.
	Instance string
	// Pushes is the number of successful pushes; Failures of failed ones.
	// FullPushes counts the pushes that sent everything to at least one key
	// (the first, every WithFullPushEvery, and each after Redis lost data);
	// Resumed counts the pushes that carried on from a failed one.
	Pushes, Failures, FullPushes, Resumed int
	// Pushed is the number of accounts the last successful push sent.
	Pushed int
	// LastPush is when (by the tracker's clock) the last successful push
	// started.
	LastPush time.Time
	// LastErr is the error the latest push returned, nil if it succeeded.
	LastErr error
	// ClockOffset is the Redis server's clock minus the tracker's, as measured
	// at the latest push, to the second: what is added to every last-seen
	// time this instance sends.
	ClockOffset time.Duration
}

// New returns a Cluster pushing t's accounts to rdb, and starts its push loop
// (the first push runs at once). It returns an error for a nil tracker or
// client and for invalid options; it does not contact Redis, so an instance
// starts even while Redis is down.
func New(t *activeusers.Tracker, rdb redis.UniversalClient, opts ...Option) (*Cluster, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if t == nil {
		cfg.errs = append(cfg.errs, "nil *activeusers.Tracker")
	}
	if rdb == nil {
		cfg.errs = append(cfg.errs, "nil Redis client")
	}
	if len(cfg.errs) > 0 {
		return nil, fmt.Errorf("auredis.New: %s", strings.Join(cfg.errs, "; "))
	}
	if cfg.keys == 0 {
		cfg.keys = 1
		if _, ok := rdb.(*redis.ClusterClient); ok {
			cfg.keys = DefaultClusterKeys
		}
	}
	if cfg.maxBackoff == 0 { // a failed push is retried at least as often as the interval
		cfg.maxBackoff = min(cfg.interval, 30*time.Second)
		cfg.minBackoff = min(cfg.minBackoff, cfg.maxBackoff)
	}
	if cfg.instanceTTL == 0 {
		cfg.instanceTTL = 3 * max(cfg.interval, cfg.maxBackoff)
	}
	c := newCluster(t, rdb, cfg)
	if cfg.manual {
		close(c.done)
	} else {
		go c.loop()
	}
	return c, nil
}

func newCluster(t *activeusers.Tracker, rdb redis.UniversalClient, cfg config) *Cluster {
	var b [8]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	keys := keyNames(cfg.name, cfg.keys)
	c := &Cluster{
		t: t, rdb: rdb, cfg: cfg, keys: keys,
		registry: "{" + cfg.name + "}:instances", // not one of the keys: the same whatever WithKeys
		setup:    fmt.Sprintf("keys=%d hash=%s", cfg.keys, hashName(t)),
		id:       id,
		mark:     markPrefix + id,
		pushing:  make(chan struct{}, 1),
		cursor:   t.NewCursor(),
		poke:     make(chan struct{}, 1),
		stop:     make(chan struct{}), done: make(chan struct{}),
	}
	c.stats.Instance = id
	c.loopCtx, c.cancelLoop = context.WithCancel(context.Background())
	return c
}

// hashName names what the members are, so that instances under different
// secrets refuse to share keys rather than count each account twice.
func hashName(t *activeusers.Tracker) string {
	if s := t.SecretCheck(); s != "" {
		return "keyed:" + s
	}
	return "xxhash64"
}

func (c *Cluster) loop() {
	defer close(c.done)
	wait := time.Duration(0)
	bound := c.cfg.minBackoff
	for {
		select {
		case <-c.stop:
			return
		case <-c.poke:
		case <-time.After(wait):
		}
		err := c.Push(c.loopCtx)
		var deferred errDeferred
		switch {
		case err == nil:
			if bound != c.cfg.minBackoff && c.cfg.logger != nil {
				c.cfg.logger.Info("auredis: push succeeded again", "instance", c.id)
			}
			wait, bound = jitter(c.cfg.interval, 0.9, 1.1), c.cfg.minBackoff
		case errors.As(err, &deferred):
			wait = deferred.wait
		default:
			wait = jitter(bound, 0.5, 1)
			if c.cfg.logger != nil {
				c.cfg.logger.Warn("auredis: push failed", "instance", c.id, "err", err, "retry_in", wait)
			}
			bound = min(2*bound, c.cfg.maxBackoff)
		}
	}
}

// Close is Shutdown with ten seconds to finish.
func (c *Cluster) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Shutdown(ctx)
}

// Shutdown stops the push loop, makes one final push, so that a clean
// shutdown loses nothing, and then leaves the cluster's registry, so that the
// others stop expecting this instance at once (its accounts stay until they
// expire). It returns the final push's error — or ctx's, by its deadline, if
// the loop or the push is still waiting for Redis then (as with a hung
// server). It does not close the Redis client. Later calls, and Close, return
// nil.
func (c *Cluster) Shutdown(ctx context.Context) error {
	var err error // stays nil for every call after the first
	c.closeOnce.Do(func() {
		close(c.stop)
		defer c.cancelLoop()
		defer c.cursor.Close()
		select {
		case <-c.done:
		case <-ctx.Done():
			err = fmt.Errorf("auredis: shutdown: the push loop is still waiting for Redis: %w", ctx.Err())
			return
		}
		var deferred errDeferred
		if err = c.Push(ctx); err != nil && !errors.As(err, &deferred) {
			return
		}
		pushErr := err // a newcomer still waiting has nothing to push, and leaves
		var keys []string
		select {
		case c.pushing <- struct{}{}:
			keys = c.allKeys(c.segs)
			<-c.pushing
		case <-ctx.Done():
			err = fmt.Errorf("auredis: shutdown: waiting for the push under way: %w", ctx.Err())
			return
		}
		err = c.roundTrip(ctx, func(ctx context.Context, pipe redis.Pipeliner) {
			c.writeRegistry(ctx, pipe, "leave", c.entry(0, stateLeft), nil)
			for _, k := range keys {
				pipe.ZRem(ctx, k, c.mark)
			}
		})
		if err != nil {
			err = fmt.Errorf("auredis: shutdown: leaving the registry: %w", c.registryErr(err))
			return
		}
		err = pushErr
	})
	return err
}

// roundTrip sends what fill queues as one pipeline, bounded by the option's
// timeout and by ctx.
func (c *Cluster) roundTrip(ctx context.Context, fill func(context.Context, redis.Pipeliner)) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.timeout)
	defer cancel()
	pipe := c.rdb.Pipeline()
	fill(ctx, pipe)
	return c.byDeadline(ctx, func() error {
		cmds, err := pipe.Exec(ctx)
		if err == nil {
			return nil
		}
		// Exec returns the first command's error, and a missing field or
		// member (redis.Nil) is one; the callers read those from their
		// commands. Any other error fails the round trip.
		for _, cmd := range cmds {
			if err := cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
		}
		if len(cmds) == 0 || !errors.Is(err, redis.Nil) {
			return err
		}
		return nil
	})
}

// byDeadline runs call and returns its error, or ctx's error as soon as ctx is
// done, whichever comes first. go-redis honours a context's deadline only if
// the client was made with ContextTimeoutEnabled; otherwise a call to a hung
// server waits for the client's read timeout (3 s by default) and retries. A
// call given up on goes on in the background until the client's own timeouts
// end it; its result is dropped.
func (c *Cluster) byDeadline(ctx context.Context, call func() error) error {
	if ctx.Done() == nil {
		return call()
	}
	done := make(chan error, 1)
	c.abandoned.Add(1)
	go func() {
		defer c.abandoned.Done()
		done <- call()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns the push statistics.
func (c *Cluster) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.ClockOffset = c.offset
	return s
}
