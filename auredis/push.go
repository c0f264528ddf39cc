package auredis

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/activeusers/activeusers"
)

// markPrefix starts each instance's marker member. Account members are 8
// bytes, so a marker, longer, is never mistaken for one; its score is minus
// the instance's latest epoch, below every account's (scores are seconds ≥ 1),
// so no ZCOUNT of a window counts it and no trim removes it.
const markPrefix = "\x00instance:"

// batchesPerTrip bounds one round trip of a push: a million accounts go in 32
// round trips of 32k members, not one 1M-member request buffered whole, and
// one round trip stays well within its timeout with many instances pushing.
const batchesPerTrip = 16

// pending is a push that has sent part of its entries (c.buf[:next]); the
// next push carries on from there unless Redis lost what it had sent.
type pending struct {
	start  time.Time // tracker time the push covers up to
	keys   []string  // the keys it pushes to: the accounts', then each segment's
	blocks []block   // where each set's entries end in c.buf
	all    []bool    // per key: everything held, not only what changed since c.since
	next   int
	sent   int
	// repair: it resends what Redis lost or carries on from a failed push,
	// so Redis lacks more than the usual interval's accounts until it ends.
	repair bool
}

// block is one set's entries in a push's buffer: they end at end, and go to
// the K keys from first.
type block struct{ end, first int }

// peer is what the registry says of one instance: "heartbeat epoch
// interval", with " behind" while it repairs, or "heartbeat left".
type peer struct {
	heartbeat int64 // Redis time (ms) of its latest round trip
	epoch     int64 // Redis time (ms) of its latest completed push; its marks carry minus this
	interval  int64 // its push interval (ms): a heartbeat much older than this means its pushes fail
	left      bool  // shut down cleanly
	behind    bool  // pushing what Redis lost or a failed push left out
}

func (p peer) String() string {
	if p.left {
		return strconv.FormatInt(p.heartbeat, 10) + " left"
	}
	s := strconv.FormatInt(p.heartbeat, 10) + " " + strconv.FormatInt(p.epoch, 10) + " " + strconv.FormatInt(p.interval, 10)
	if p.behind {
		s += " behind"
	}
	return s
}

func parsePeer(v string) (peer, bool) {
	f := strings.Fields(v)
	var p peer
	if len(f) == 4 && f[3] == "behind" {
		p.behind, f = true, f[:3]
	}
	if len(f) < 2 || len(f) > 3 {
		return peer{}, false
	}
	var err error
	if p.heartbeat, err = strconv.ParseInt(f[0], 10, 64); err != nil {
		return peer{}, false
	}
	if f[1] == "left" && len(f) == 2 {
		p.left = true
		return p, true
	}
	if p.epoch, err = strconv.ParseInt(f[1], 10, 64); err != nil || len(f) != 3 {
		return peer{}, false
	}
	p.interval, err = strconv.ParseInt(f[2], 10, 64)
	return p, err == nil
}

// overdue says whether p has missed two pushes: it has not reached Redis for
// twice its interval and one round trip's timeout, so it holds accounts
// Redis has not got.
func (c *Cluster) overdue(p peer, nowMs int64) bool {
	return p.heartbeat < nowMs-2*p.interval-c.cfg.timeout.Milliseconds()
}

func member(hash uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], hash)
	return string(b[:])
}

// jitter returns d scaled by a random factor in [lo, hi).
func jitter(d time.Duration, lo, hi float64) time.Duration {
	return time.Duration(float64(d) * (lo + rand.Float64()*(hi-lo)))
}

// Push sends to Redis every account seen since the last successful push —
// everything held the first time, every WithFullPushEvery, and to any key
// that no longer holds this instance's last push — with ZADD GT so a score
// only ever moves forward, trims the accounts past retention, and marks each
// key as holding this push. The loop calls it every interval; call it
// yourself to push at once. Each round trip has the WithTimeout deadline (or
// ctx's, if sooner); a push that fails halfway keeps its progress, and the
// next one carries on from there.
func (c *Cluster) Push(ctx context.Context) error {
	c.pushMu.Lock()
	defer c.pushMu.Unlock()
	full, resumed, err := c.push(ctx)
	c.failing.Store(err != nil)
	if err != nil {
		err = fmt.Errorf("auredis: push to %s: %w", c.keys[0], err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.LastErr = err
	if err != nil {
		c.stats.Failures++
		return err
	}
	c.stats.Pushes++
	c.stats.Pushed = c.pendingSent
	c.stats.LastPush = c.since
	if full {
		c.stats.FullPushes++
	}
	if resumed {
		c.stats.Resumed++
	}
	return nil
}

// push runs under pushMu.
func (c *Cluster) push(ctx context.Context) (full, resumed bool, err error) {
	// Round trip 1: Redis's clock, the cluster's configuration and registry,
	// and this instance's marks.
	var (
		timeCmd  *redis.Cmd
		setupCmd *redis.StringCmd
		reg      *redis.MapStringStringCmd
		segsCmd  *redis.StringSliceCmd
		before   = c.allKeys(c.segs) // the keys as of the last push
		marks    = make([]*redis.FloatCmd, len(before))
		local    = segmentNames(c.t.Segments())
	)
	localNow := c.t.Now()
	sentAt := time.Now()
	// Registering here, before any data, lets the others know this instance
	// exists — and expect its push — from its first round trip.
	me := peer{epoch: c.epoch, interval: c.cfg.interval.Milliseconds(), behind: c.pending != nil || c.failing.Load()}
	_, rest, _ := strings.Cut(me.String(), " ")
	err = c.roundTrip(ctx, func(ctx context.Context, pipe redis.Pipeliner) {
		timeCmd = pipe.Eval(ctx, registerScript, []string{c.registry}, c.id, rest)
		pipe.HSetNX(ctx, c.registry, "config", c.setup)
		setupCmd = pipe.HGet(ctx, c.registry, "config")
		reg = pipe.HGetAll(ctx, c.registry)
		if len(local) > 0 {
			pipe.SAdd(ctx, c.segments, local) // go-redis flattens a []string into members
		}
		segsCmd = pipe.SMembers(ctx, c.segments)
		for j, k := range before {
			marks[j] = pipe.ZScore(ctx, k, c.mark)
		}
	})
	if err != nil {
		c.lostContact()
		return false, false, err
	}
	redisNow, err := parseTime(timeCmd)
	if err != nil {
		return false, false, err
	}
	if got := setupCmd.Val(); got != c.setup {
		return false, false, fmt.Errorf("the cluster registered in %s has %q, this instance %q: every instance needs the same WithKeys and secret", c.registry, got, c.setup)
	}
	offset := c.measured(localNow, c.t.Now(), sentAt, redisNow)
	if !c.exactOffset() {
		// That reading crossed a tracker second: read again rather than push
		// with an offset that may be a second off.
		if offset, err = c.readClock(ctx); err != nil {
			return false, false, err
		}
	}
	now := func() int64 { return redisNow.Add(time.Since(sentAt)).UnixMilli() }
	departed := c.learn(reg.Val(), redisNow.UnixMilli())

	// Every segment any instance has: this instance marks all of their keys,
	// so that a reader counting a segment finds every instance's mark there.
	segs := mergeSegments(segsCmd.Val(), local)
	keys := c.allKeys(segs)
	markOf := make(map[string]*redis.FloatCmd, len(before))
	for j, k := range before {
		markOf[k] = marks[j]
	}
	p := c.pending
	if p != nil && !slices.Equal(p.keys, keys) {
		p = nil // segments appeared meanwhile: start again with their keys
	}
	intact := make([]bool, len(keys))
	var lost []string
	for j, k := range keys {
		m, known := markOf[k]
		if !known {
			continue // a segment new to this instance: everything goes to it
		}
		// A mark newer than the last push completed is this instance's own,
		// from a push whose last round trip failed after marking the keys.
		intact[j] = c.epoch > 0 && m.Err() == nil && m.Val() <= -float64(c.epoch)
		if !intact[j] && c.epoch > 0 {
			lost = append(lost, k)
		}
		if !intact[j] && p != nil && !p.all[j] {
			p = nil // Redis lost some of what the failed push sent: start again
		}
	}
	if len(lost) > 0 && c.cfg.logger != nil {
		c.cfg.logger.Info("auredis: Redis no longer holds this instance's last push; pushing everything it holds", "instance", c.id, "keys", lost)
	}
	if p != nil {
		resumed, p.repair = true, true
	} else {
		start := c.t.Now()
		p = &pending{start: start, keys: keys, all: make([]bool, len(keys))}
		everything := start.Sub(c.lastAll) >= c.cfg.fullEvery || start.Before(c.since)
		from := c.since
		for j := range p.all {
			p.all[j] = everything || !intact[j]
			if p.all[j] {
				from = time.Time{}
			}
		}
		c.buf = c.t.AppendEntries(c.buf[:0], from)
		p.blocks = append(p.blocks, block{end: len(c.buf)})
		for i, s := range segs {
			c.buf = c.t.AppendSegmentEntries(c.buf, parseSegment(s), from)
			p.blocks = append(p.blocks, block{end: len(c.buf), first: (1 + i) * len(c.keys)})
		}
		p.repair = len(lost) > 0
		c.pending = p
	}
	for _, a := range p.all {
		full = full || a
	}

	offSec, nowSec := int64(offset/time.Second), redisNow.Unix()
	oldest := nowSec - int64(c.t.Retention()/time.Second)
	since := c.since.Unix()
	epoch := max(redisNow.UnixMilli(), c.epoch+1)
	zs := make([][]redis.Z, len(keys))
	for {
		var i, sent int
		var last bool
		err := c.roundTrip(ctx, func(ctx context.Context, pipe redis.Pipeliner) {
			flush := func(j int) {
				if len(zs[j]) > 0 {
					pipe.ZAddGT(ctx, keys[j], zs[j]...) // copies the members into its arguments
					sent += len(zs[j])
					zs[j] = zs[j][:0]
				}
			}
			batches, b := 0, 0
			for i = p.next; i < len(c.buf) && batches < batchesPerTrip; i++ {
				for i >= p.blocks[b].end {
					b++
				}
				e := c.buf[i]
				j := p.blocks[b].first + keyOf(e.Hash, len(c.keys))
				score := min(e.Last+offSec, nowSec) // on Redis's clock, never ahead of it
				if (!p.all[j] && e.Last < since) || score < oldest {
					continue
				}
				zs[j] = append(zs[j], redis.Z{Score: float64(max(score, 1)), Member: member(e.Hash)})
				if len(zs[j]) == c.cfg.batch {
					flush(j)
					batches++
				}
			}
			for j := range zs {
				flush(j)
			}
			last = i == len(c.buf)
			me := peer{heartbeat: now(), epoch: c.epoch, interval: c.cfg.interval.Milliseconds(), behind: p.repair}
			if last {
				cut := "(" + strconv.FormatInt(oldest, 10)
				for _, k := range keys {
					// LT: a newer epoch is a lower score, so a mark only
					// ever moves to a newer push. This round trip may reach
					// Redis again after a later push has marked the keys (a
					// client's retry after a read timeout; a round trip
					// given up on at its deadline and sent late), and must
					// not make the keys look as if they had lost that push.
					pipe.ZAddLT(ctx, k, redis.Z{Score: -float64(epoch), Member: c.mark})
					pipe.ZRemRangeByScore(ctx, k, "0", cut)
				}
				for _, id := range departed {
					pipe.HDel(ctx, c.registry, id)
					for _, k := range keys {
						pipe.ZRem(ctx, k, markPrefix+id)
					}
				}
			}
			pipe.HSet(ctx, c.registry, c.id, me.String())
		})
		if err != nil {
			c.lostContact()
			return full, resumed, err // p.next is kept: the next push carries on
		}
		p.next, p.sent = i, p.sent+sent
		if last {
			break
		}
	}
	// The registry names the new epoch only once every key holds its mark,
	// so that a reader never finds the registry ahead of a key.
	err = c.roundTrip(ctx, func(ctx context.Context, pipe redis.Pipeliner) {
		me := peer{heartbeat: now(), epoch: epoch, interval: c.cfg.interval.Milliseconds()}
		pipe.HSet(ctx, c.registry, c.id, me.String())
	})
	if err != nil {
		c.lostContact()
		return full, resumed, err // the next push marks the keys again, then the registry
	}
	c.epoch, c.since, c.pending, c.pendingSent = epoch, p.start, nil, p.sent
	c.segs = segs
	c.doneEpoch.Store(epoch)
	if !slices.Contains(p.all, false) {
		c.lastAll = p.start
	}
	return full, resumed, nil
}

// allKeys returns the accounts' keys followed by each segment's: segment s's
// key j shares the hash tag, and so the slot and node, of the accounts' key
// j.
func (c *Cluster) allKeys(segs []string) []string {
	keys := slices.Clone(c.keys)
	for _, s := range segs {
		for _, k := range c.keys {
			keys = append(keys, k+":"+s)
		}
	}
	return keys
}

// segmentNames names segments as the cluster's segment set holds them:
// "dimension=value". A dimension is a label name, without "=", so the first
// "=" splits a name back.
func segmentNames(segs []activeusers.Segment) []string {
	names := make([]string, len(segs))
	for i, s := range segs {
		names[i] = s.Dimension + "=" + s.Value
	}
	return names
}

func parseSegment(name string) activeusers.Segment {
	d, v, _ := strings.Cut(name, "=")
	return activeusers.Segment{Dimension: d, Value: v}
}

// mergeSegments returns the union of two lists of segment names, sorted, so
// that every instance orders the same segments the same way.
func mergeSegments(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// timeScript reads the Redis server's clock on the node holding its key (the
// registry), so that every instance reads one clock, in a cluster too (a
// TIME command without a key goes to any node).
const timeScript = "return redis.call('TIME')"

// registerScript is timeScript that also records, in the registry hash
// KEYS[1], field ARGV[1], a heartbeat at that time followed by ARGV[2].
const registerScript = `local t = redis.call('TIME')
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.0f', t[1] * 1000 + math.floor(t[2] / 1000)) .. ' ' .. ARGV[2])
return t`

func parseTime(cmd *redis.Cmd) (time.Time, error) {
	v, err := cmd.Slice()
	if err != nil {
		return time.Time{}, err
	}
	if len(v) == 2 {
		s, err1 := strconv.ParseInt(fmt.Sprint(v[0]), 10, 64)
		us, err2 := strconv.ParseInt(fmt.Sprint(v[1]), 10, 64)
		if err1 == nil && err2 == nil {
			return time.Unix(s, us*1000), nil
		}
	}
	return time.Time{}, fmt.Errorf("unexpected reply to TIME: %v", v)
}

// measured takes a reading of Redis's clock, redisNow, made during the round
// trip that began at sentAt, and returns the offset to use: whole seconds to
// add to the tracker's seconds to get Redis's. The tracker's clock read
// localSend when the trip began and localRecv when it ended. If they are the
// same second L, the reading was taken while the tracker showed L, so the
// Redis second that corresponds to L is floor(redisNow − L): exact when the
// clocks tick together, as on one machine. A trip that crossed a tracker
// second is ambiguous by one. The offset moves by more than a second — a
// clock that stepped — on an unambiguous reading, and by more than two on an
// ambiguous one (to be made exact by the next unambiguous one); by no less,
// since clocks whose ticks are a fraction of a second apart would otherwise
// flip between two neighbouring offsets. An offset that came from an
// ambiguous reading is replaced by the first unambiguous one.
func (c *Cluster) measured(localSend, localRecv, sentAt, redisNow time.Time) time.Duration {
	rtt := time.Since(sentAt)
	d := redisNow.Sub(localSend)
	k := d.Truncate(time.Second)
	if k > d {
		k -= time.Second // floor, for negative offsets too
	}
	exact := localRecv.Equal(localSend)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.redisAt, c.readAt = redisNow, sentAt.Add(rtt/2)
	diff := (k - c.offset).Abs()
	switch {
	case !c.synced:
		c.offset, c.offsetExact, c.synced = k, exact, true
	case exact && (!c.offsetExact && diff != 0 || diff > time.Second):
		c.offset, c.offsetExact = k, true
	case !exact && diff > 2*time.Second: // a step, whatever the ambiguity
		c.offset, c.offsetExact = k, false
	}
	return c.offset
}

// readClock reads Redis's clock in a round trip of its own until a reading
// falls within one tracker second (three tries; a round trip is far shorter
// than a second, so the second try almost always does), and returns the
// offset.
func (c *Cluster) readClock(ctx context.Context) (time.Duration, error) {
	var offset time.Duration
	for range 3 {
		var timeCmd *redis.Cmd
		local, sentAt := c.t.Now(), time.Now()
		if err := c.roundTrip(ctx, func(ctx context.Context, pipe redis.Pipeliner) {
			timeCmd = pipe.Eval(ctx, timeScript, []string{c.registry})
		}); err != nil {
			return 0, err
		}
		redisNow, err := parseTime(timeCmd)
		if err != nil {
			return 0, err
		}
		if offset = c.measured(local, c.t.Now(), sentAt, redisNow); c.exactOffset() {
			break
		}
	}
	return offset, nil
}

// exactOffset says whether the offset came from a reading within one
// tracker second.
func (c *Cluster) exactOffset() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offsetExact
}

// redisNowMs is the Redis server's clock now, in milliseconds, from the last
// reading and the monotonic time since.
func (c *Cluster) redisNowMs() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.redisAt.Add(time.Since(c.readAt)).UnixMilli()
}

// lostContact notes a failed round trip: the others' heartbeats are not
// aging for them alone until this instance reaches Redis again.
func (c *Cluster) lostContact() {
	c.mu.Lock()
	c.contact = 0
	c.mu.Unlock()
}

// learn merges the registry into what this instance knows of the others and
// returns the instances gone for longer than the TTL, for the push to remove.
func (c *Cluster) learn(reg map[string]string, nowMs int64) (departed []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.contact == 0 {
		c.contact = nowMs
	}
	// An instance is gone once it has not reached Redis for the TTL while
	// this one could: after an outage every instance gets the TTL from the
	// moment this one reached Redis again to do the same.
	ttl := c.cfg.instanceTTL.Milliseconds()
	gone := func(p peer) bool { return p.heartbeat < nowMs-ttl && c.contact < nowMs-ttl }
	for id, v := range reg {
		if id == "config" || id == c.id {
			continue
		}
		p, ok := parsePeer(v)
		if !ok {
			continue
		}
		if gone(p) {
			departed = append(departed, id)
			delete(c.known, id)
			continue
		}
		if k, ok := c.known[id]; ok && !p.left {
			// A registry restored from an older file must not make an
			// instance look complete with an older push: keep the newest.
			p.heartbeat, p.epoch = max(p.heartbeat, k.heartbeat), max(p.epoch, k.epoch)
		}
		c.known[id] = p
	}
	for id, p := range c.known {
		if gone(p) {
			delete(c.known, id)
		}
	}
	return departed
}
