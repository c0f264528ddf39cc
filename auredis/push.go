package auredis

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/activeusers/activeusers"
)

// A push runs in four phases, each a function below, each one or more round
// trips:
//
//  1. join: write this instance's entry in the registry (or be refused), and
//     read the registry and Redis's clock.
//  2. plan: probe every key — its server, its token, this instance's mark —
//     and decide what each needs: what changed since the last push, if it
//     holds that push whole; everything, if not. A push that failed halfway
//     is carried on only if every key is still the one it sent to.
//  3. send: the accounts, in batches, each batch a script that first checks
//     that its key is still the one planned for.
//  4. commit: mark every key as holding this push (the same check), then
//     name the push in the registry.
//
// Readers (Counts) count an instance's push only once the registry names it
// and every key holds its mark; any fault in between leaves the instance
// short of that, never a key that lost what a push sent looking whole.

// Members that are not accounts. Account members are 8 bytes, so these,
// longer, are never mistaken for one.
const (
	// markPrefix starts each instance's mark; its score is minus the
	// instance's latest epoch, below every account's (scores are seconds ≥
	// 1), so no count of a window counts it and no trim removes it.
	markPrefix = "\x00instance:"
	// tokenPrefix starts a key's token, scored -inf.
	tokenPrefix = "\x00token:"
)

// batchesPerTrip bounds one round trip of a push: a million accounts go in 32
// round trips of 32k members, not one 1M-member request buffered whole, and
// one round trip stays well within its timeout with many instances pushing.
const batchesPerTrip = 16

// incarnation is what a push planned for in one key: the server holding it
// and its token. While both are the same, the key holds everything the push
// has sent it.
type incarnation struct{ node, token string }

// pending is a push's plan and its progress, kept when the push fails
// halfway so that the next one can carry on.
type pending struct {
	start, since time.Time     // the cursor's round: its start, and what it reaches back to
	segs         []string      // the segments it pushes
	keys         []string      // the accounts' keys, then each segment's
	inc          []incarnation // per key, what the plan was made against
	all          []bool        // per key: send everything held, not only what changed
	blocks       []block       // where each set's entries end in c.buf
	next, sent   int
	// repair: it resends what Redis lost or carries on from a failed push,
	// so Redis lacks more than the usual interval's accounts until it ends.
	repair bool
}

// block is one set's entries in a push's buffer: they end at end, and go to
// the K keys from first.
type block struct{ end, first int }

// round is what a push learned when it joined.
type round struct {
	reg      registry
	offset   time.Duration // Redis's clock minus the tracker's, to the second
	departed []string      // instances gone, for the commit to remove
}

// errDeferred is returned while a newcomer waits for the cluster's setup to
// settle (see registryScript).
type errDeferred struct{ wait time.Duration }

func (e errDeferred) Error() string {
	return fmt.Sprintf("deferred: the cluster's setup was registered by instances that have not pushed yet; pushing once it settles, in %v", e.wait)
}

func member(hash uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], hash)
	return string(b[:])
}

// jitter returns d scaled by a random factor in [lo, hi).
func jitter(d time.Duration, lo, hi float64) time.Duration {
	return time.Duration(float64(d) * (lo + mrand.Float64()*(hi-lo)))
}

// Push sends to Redis every account recorded since the last successful push —
// everything held the first time, every WithFullPushEvery, and to any key
// that no longer holds this instance's last push — with ZADD GT so a score
// only ever moves forward, trims the accounts past retention, and marks each
// key as holding this push. The loop calls it every interval; call it
// yourself to push at once. It waits for a push under way to end, up to
// ctx's deadline; each round trip has the WithTimeout deadline (or ctx's, if
// sooner); a push that fails halfway keeps its progress, and the next one
// carries on from there if Redis still holds what it sent.
func (c *Cluster) Push(ctx context.Context) error {
	select {
	case c.pushing <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("auredis: push to %s: waiting for the push under way: %w", c.keys[0], ctx.Err())
	}
	defer func() { <-c.pushing }()
	full, resumed, err := c.push(ctx)
	var deferred errDeferred
	c.failing.Store(err != nil && !errors.As(err, &deferred))
	if err != nil {
		err = fmt.Errorf("auredis: push to %s: %w", c.keys[0], err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.LastErr = err
	switch {
	case deferred.wait > 0:
		return err
	case err != nil:
		c.stats.Failures++
		return err
	}
	c.stats.Pushes++
	c.stats.Pushed = c.lastSent
	c.stats.LastPush = c.lastStart
	if full {
		c.stats.FullPushes++
	}
	if resumed {
		c.stats.Resumed++
	}
	return nil
}

// push runs with c.pushing held.
func (c *Cluster) push(ctx context.Context) (full, resumed bool, err error) {
	rnd, err := c.join(ctx)
	if err != nil {
		return false, false, err
	}
	p, resumed, err := c.plan(ctx, rnd)
	if err != nil {
		return false, false, err
	}
	full = slices.Contains(p.all, true)
	if err := c.send(ctx, rnd, p); err != nil {
		return full, resumed, err
	}
	return full, resumed, c.commit(ctx, rnd, p)
}

// join writes this instance's entry in the registry, with the segments it
// has, and reads back the registry and Redis's clock. A newcomer waits (an
// errDeferred) while the registry's setup was set by newcomers alone and has
// not settled.
func (c *Cluster) join(ctx context.Context) (round, error) {
	local := segmentNames(c.t.Segments())
	me := c.entry(c.epoch, stateOK)
	if c.pending != nil || c.failing.Load() {
		me.state = stateBehind
	}
	var cmd *redis.Cmd
	localNow := c.t.Now()
	err := c.roundTrip(ctx, func(ctx context.Context, pipe redis.Pipeliner) {
		cmd = c.writeRegistry(ctx, pipe, "join", me, local)
	})
	if err != nil {
		c.lostContact()
		return round{}, c.registryErr(err)
	}
	v, err := cmd.Slice()
	if err != nil {
		return round{}, err
	}
	reg, err := parseRegistry(v, true)
	if err != nil {
		return round{}, err
	}
	rnd := round{reg: reg}
	rnd.offset = c.measured(localNow, c.t.Now(), reg.now)
	if !c.exactOffset() {
		// That reading crossed a tracker second: read again rather than push
		// with an offset that may be a second off.
		if rnd.offset, err = c.readClock(ctx); err != nil {
			return round{}, err
		}
	}
	if by, at, ok := strings.Cut(reg.config, " "); ok && by == "new" && c.epoch == 0 {
		atMs, _, _ := strings.Cut(at, " ")
		set, _ := strconv.ParseInt(atMs, 10, 64)
		if wait := set + c.grace(reg) - reg.now.UnixMilli(); wait > 0 {
			return round{}, errDeferred{time.Duration(wait) * time.Millisecond}
		}
	}
	rnd.departed = c.departed(reg)
	return rnd, nil
}

// plan probes every key and returns the push to make: the failed one
// carried on, if every key is still the one it sent to and still holds this
// instance's last push where it builds on it, or a new one.
func (c *Cluster) plan(ctx context.Context, rnd round) (p *pending, resumed bool, err error) {
	segs := mergeSegments(rnd.reg.segments, segmentNames(c.t.Segments()))
	keys := c.allKeys(segs)
	probes := make([]*redis.Cmd, len(keys))
	err = c.roundTrip(ctx, func(ctx context.Context, pipe redis.Pipeliner) {
		for j, k := range keys {
			probes[j] = probeScript.Eval(ctx, pipe, []string{k}, c.mark, newToken())
		}
	})
	if err != nil {
		c.lostContact()
		return nil, false, err
	}
	inc := make([]incarnation, len(keys))
	intact := make([]bool, len(keys))
	var lost []string
	for j, cmd := range probes {
		v, err := cmd.StringSlice()
		if err != nil || len(v) != 3 {
			return nil, false, fmt.Errorf("unexpected reply probing %s: %v %v", keys[j], v, err)
		}
		inc[j] = incarnation{node: v[0], token: v[1]}
		// A mark newer than the last push completed is this instance's own,
		// from a push whose last round trip failed after marking the keys.
		mark, err := strconv.ParseFloat(v[2], 64)
		intact[j] = c.epoch > 0 && err == nil && mark <= -float64(c.epoch)
		if !intact[j] && c.epoch > 0 {
			lost = append(lost, keys[j])
		}
	}
	if len(lost) > 0 && c.cfg.logger != nil {
		c.cfg.logger.Info("auredis: Redis no longer holds this instance's last push; pushing everything it holds", "instance", c.id, "keys", lost)
	}

	if p := c.pending; p != nil && slices.Equal(p.keys, keys) && slices.Equal(p.inc, inc) {
		carryOn := true
		for j := range keys {
			carryOn = carryOn && (p.all[j] || intact[j])
		}
		if carryOn {
			p.repair = true
			return p, true, nil
		}
	}
	// A new push. The cursor's round reaches back to the last push that
	// completed, and to anything recorded since at an earlier time.
	since, start := c.cursor.Begin()
	p = &pending{start: start, since: since, segs: segs, keys: keys, inc: inc, all: make([]bool, len(keys)), repair: len(lost) > 0}
	everything := c.epoch == 0 || start.Sub(c.lastAll) >= c.cfg.fullEvery
	from := since
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
	c.pending = p
	return p, false, nil
}

// newToken returns a key's token member: a random one, so that a key made
// again never has the token of the one before.
func newToken() string {
	var b [12]byte
	rand.Read(b[:])
	return tokenPrefix + hex.EncodeToString(b[:])
}

// send sends p's accounts from where it stands, in round trips of at most
// batchesPerTrip batches, each batch refused by Redis if its key is no
// longer the one p planned for. Each round trip also writes this instance's
// heartbeat. Progress is kept in p, for the next push to carry on from if
// this one fails.
func (c *Cluster) send(ctx context.Context, rnd round, p *pending) error {
	offSec, nowSec := int64(rnd.offset/time.Second), rnd.reg.now.Unix()
	oldest := nowSec - int64(c.t.Retention()/time.Second)
	since := p.since.Unix()
	zs := make([][]any, len(p.keys))
	me := c.entry(c.epoch, stateOK)
	if p.repair {
		me.state = stateBehind
	}
	for {
		var i, sent int
		err := c.roundTrip(ctx, func(ctx context.Context, pipe redis.Pipeliner) {
			flush := func(j int) {
				if n := len(zs[j]); n > 0 {
					args := append([]any{p.inc[j].node, p.inc[j].token}, zs[j]...)
					sendScript.Eval(ctx, pipe, []string{p.keys[j]}, args...)
					sent += n / 2
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
				zs[j] = append(zs[j], max(score, 1), member(e.Hash))
				if len(zs[j]) == 2*c.cfg.batch {
					flush(j)
					batches++
				}
			}
			for j := range zs {
				flush(j)
			}
			c.writeRegistry(ctx, pipe, "beat", me, nil)
		})
		if err != nil {
			c.lostContact()
			return c.registryErr(err) // p.next is kept: the next push carries on if it can
		}
		p.next, p.sent = i, p.sent+sent
		if i == len(c.buf) {
			return nil
		}
	}
}

// commit marks every key as holding p, each only if it is still the key p
// sent to, and then names the push in the registry, so that a reader never
// finds the registry ahead of a key. It removes the instances gone.
func (c *Cluster) commit(ctx context.Context, rnd round, p *pending) error {
	epoch := max(rnd.reg.now.UnixMilli(), c.epoch+1)
	cut := "(" + strconv.FormatInt(rnd.reg.now.Unix()-int64(c.t.Retention()/time.Second), 10)
	gone := make([]any, len(rnd.departed))
	for i, id := range rnd.departed {
		gone[i] = markPrefix + id
	}
	err := c.roundTrip(ctx, func(ctx context.Context, pipe redis.Pipeliner) {
		for j, k := range p.keys {
			// LT: a newer epoch is a lower score, so a mark only ever moves
			// to a newer push. This round trip may reach Redis again after
			// a later push has marked the keys (a client's retry after a
			// read timeout; a round trip given up on at its deadline and
			// sent late), and must not make the keys look as if they had
			// lost that push.
			args := append([]any{p.inc[j].node, p.inc[j].token, c.mark, -epoch, cut}, gone...)
			markScript.Eval(ctx, pipe, []string{k}, args...)
		}
	})
	if err != nil {
		c.lostContact()
		return err // the next push marks the keys again, if they still hold p
	}
	err = c.roundTrip(ctx, func(ctx context.Context, pipe redis.Pipeliner) {
		me := c.entry(epoch, stateOK)
		c.writeRegistry(ctx, pipe, "commit", me, rnd.departed)
	})
	if err != nil {
		c.lostContact()
		return c.registryErr(err)
	}
	c.epoch, c.pending, c.lastSent = epoch, nil, p.sent
	c.lastStart, c.segs = p.start, p.segs
	c.cursor.Commit()
	c.doneEpoch.Store(epoch)
	if !slices.Contains(p.all, false) {
		c.lastAll = p.start
	}
	return nil
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

// segmentNames names segments as the registry holds them: "dimension=value".
// A dimension is a label name, without "=", so the first "=" splits a name
// back.
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
