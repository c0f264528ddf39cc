package auredis

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/activeusers/activeusers"
)

// Result is a cluster-wide count and how far to trust it.
type Result struct {
	// Counts holds one count per window asked for.
	Counts []int
	// Cluster is true if Counts are the whole cluster's, false if they are
	// this instance's own (CountsOrLocal's fallback while Redis cannot
	// answer).
	Cluster bool
	// Instances is how many instances the cluster knows to be live: those
	// that reached Redis within the instance TTL and have not shut down,
	// this one included.
	Instances int
	// Complete is how many of them have their latest push whole in what
	// Redis holds now. Less than Instances while an instance has not yet
	// pushed since it started or since Redis lost data (a restart without
	// persistence, a restore from an older file, a failover to a lagging
	// replica, a key deleted or evicted), or while its pushes fail (this
	// instance's at once; another's once it has missed two pushes): the
	// counts then miss accounts.
	Complete int
	// ClockOffset is the Redis server's clock minus this instance's tracker
	// clock, as measured at its latest push.
	ClockOffset time.Duration
	// Dimensions has, for each of the tracker's dimensions, the cluster's
	// count of every value any instance has pushed (sorted, then
	// OverflowValue), with the same guarantees as Counts: Complete covers
	// the segments' keys too. Folded is this instance's own. Nil for a
	// tracker without dimensions.
	Dimensions []activeusers.DimensionCounts
}

// IsComplete says whether the counts are the whole cluster's with every live
// instance's latest push in them.
func (r Result) IsComplete() bool { return r.Cluster && r.Complete == r.Instances }

// Counts returns, for each window, the accounts the whole cluster saw within
// it, as pushed so far (up to one interval behind each instance), measured on
// the Redis server's clock, and how complete that figure is. A window longer
// than the tracker's retention counts as the retention. It makes two
// pipelined round trips (the registry, then the keys) and returns an error if Redis cannot answer by ctx's
// deadline (and the WithTimeout one) — use CountsOrLocal to fall back to this
// instance's counts.
func (c *Cluster) Counts(ctx context.Context, windows ...time.Duration) (Result, error) {
	return c.CountsAt(ctx, c.t.Now(), windows...)
}

// CountsAt is Counts as of the instant at, by the tracker's clock. It returns
// by ctx's deadline (with ctx.Err() wrapped) whatever the client's options,
// even if Redis hangs.
func (c *Cluster) CountsAt(ctx context.Context, at time.Time, windows ...time.Duration) (Result, error) {
	r, err := c.countsAt(ctx, at, windows)
	if err != nil {
		return r, fmt.Errorf("auredis: counts from %s: %w", c.keys[0], err)
	}
	return r, nil
}

func (c *Cluster) countsAt(ctx context.Context, at time.Time, windows []time.Duration) (Result, error) {
	c.mu.Lock()
	offset, synced := c.offset, c.synced
	c.mu.Unlock()
	if !synced { // no push yet: read Redis's clock first
		var err error
		if offset, err = c.readClock(ctx); err != nil {
			return Result{}, err
		}
	}
	ret := c.t.Retention()
	ref := at.Add(offset).Unix()
	// Round trip 1: the registry, and the segments of the tracker's
	// dimensions that any instance pushed. Round trip 2, below: the counts
	// and every instance's marks. A push marks every key before it names the
	// marks' epoch in the registry; read in the other order, any epoch the
	// registry names here is on every key by the time the keys are read
	// (in one round trip with a cluster of nodes, a key could be read before
	// the registry's node and the registry after: a push in flight between
	// them made a whole instance look incomplete).
	dims := c.t.Dimensions()
	var segs []string
	var members *redis.StringSliceCmd
	var reg *redis.MapStringStringCmd
	if err := c.roundTrip(ctx, func(ctx context.Context, pipe redis.Pipeliner) {
		if len(dims) > 0 {
			members = pipe.SMembers(ctx, c.segments)
		}
		reg = pipe.HGetAll(ctx, c.registry)
	}); err != nil {
		c.lostContact()
		return Result{}, err
	}
	if len(dims) > 0 {
		for _, s := range mergeSegments(members.Val(), nil) {
			if slices.Contains(dims, parseSegment(s).Dimension) {
				segs = append(segs, s)
			}
		}
	}
	nowMs := c.redisNowMs()
	c.learn(reg.Val(), nowMs)
	c.mu.Lock()
	peers := make(map[string]peer, len(c.known)+1)
	for id, p := range c.known {
		if !p.left {
			peers[id] = p
		}
	}
	c.mu.Unlock()
	select {
	case <-c.stop: // shut down: no longer one of the cluster
	default:
		peers[c.id] = peer{heartbeat: nowMs, epoch: c.doneEpoch.Load()}
		if c.failing.Load() {
			peers[c.id] = peer{heartbeat: nowMs} // its push is not whole
		}
	}
	keys := c.allKeys(segs)
	zcounts := make([][]*redis.IntCmd, len(keys))
	marks := make([]*redis.ZSliceCmd, len(keys))
	err := c.roundTrip(ctx, func(ctx context.Context, pipe redis.Pipeliner) {
		for j, k := range keys {
			zcounts[j] = make([]*redis.IntCmd, len(windows))
			for i, w := range windows {
				if w < 0 {
					continue
				}
				lo := max(ref-int64(min(w, ret)/time.Second), 1)
				zcounts[j][i] = pipe.ZCount(ctx, k, strconv.FormatInt(lo, 10), "+inf")
			}
			marks[j] = pipe.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{Key: k, Start: "-inf", Stop: "(0", ByScore: true})
		}
	})
	if err != nil {
		c.lostContact()
		return Result{}, err
	}
	r := Result{Counts: make([]int, len(windows)), Cluster: true, ClockOffset: offset}
	sum := func(cmds [][]*redis.IntCmd) []int {
		counts := make([]int, len(windows))
		for _, cmds := range cmds {
			for i, cmd := range cmds {
				if cmd != nil {
					counts[i] += int(cmd.Val())
				}
			}
		}
		return counts
	}
	k := len(c.keys)
	r.Counts = sum(zcounts[:k])
	if len(dims) > 0 {
		folded := c.t.Folded()
		r.Dimensions = make([]activeusers.DimensionCounts, len(dims))
		for i, d := range dims {
			r.Dimensions[i] = activeusers.DimensionCounts{Name: d, Folded: folded[i]}
		}
		overflow := make([][]int, len(dims))
		for s, name := range segs {
			seg := parseSegment(name)
			i := slices.Index(dims, seg.Dimension)
			counts := sum(zcounts[(1+s)*k : (2+s)*k])
			if seg.Value == activeusers.OverflowValue {
				overflow[i] = counts
				continue
			}
			r.Dimensions[i].Values = append(r.Dimensions[i].Values, activeusers.ValueCounts{Value: seg.Value, Counts: counts})
		}
		for i := range dims { // sorted already (segs is); the overflow value last, always
			if overflow[i] == nil {
				overflow[i] = make([]int, len(windows))
			}
			r.Dimensions[i].Values = append(r.Dimensions[i].Values, activeusers.ValueCounts{Value: activeusers.OverflowValue, Counts: overflow[i]})
		}
	}
	held := make([]map[string]float64, len(keys))
	for j, cmd := range marks {
		held[j] = map[string]float64{}
		for _, z := range cmd.Val() {
			if id, ok := strings.CutPrefix(fmt.Sprint(z.Member), markPrefix); ok {
				held[j][id] = z.Score
			}
		}
	}
	for id, p := range peers {
		r.Instances++
		whole := p.epoch > 0 && !p.behind && !c.overdue(p, nowMs)
		// Each key must hold the push the registry named, or a later one: a
		// push that marked some keys after the registry was read here has
		// moved their marks on. Either way the key holds a whole push of the
		// instance.
		for j := range held {
			mark, ok := held[j][id]
			whole = whole && ok && mark <= -float64(p.epoch)
		}
		if whole {
			r.Complete++
		}
	}
	return r, nil
}

// CountsOrLocal returns the cluster's counts, or, if Redis cannot answer, this
// instance's own with Cluster false and the error — so that an exporter can
// keep reporting and say clearly which it reports.
func (c *Cluster) CountsOrLocal(ctx context.Context, windows ...time.Duration) (Result, error) {
	r, err := c.Counts(ctx, windows...)
	if err == nil {
		return r, nil
	}
	c.mu.Lock()
	offset := c.offset
	c.mu.Unlock()
	b := c.t.CountsBy(windows...)
	return Result{Counts: b.Overall, Dimensions: b.Dimensions, Instances: 1, Complete: 1, ClockOffset: offset}, err
}

// MemoryUsage returns the bytes Redis uses for the accounts' sorted sets
// (MEMORY USAGE, all members sampled), summed over the K keys, and the
// accounts they hold. The segments' keys, with a tracker with dimensions,
// are not included: each costs about what the accounts' keys cost per member.
func (c *Cluster) MemoryUsage(ctx context.Context) (bytes, accounts int64, err error) {
	mem := make([]*redis.IntCmd, len(c.keys))
	card := make([]*redis.IntCmd, len(c.keys))
	err = c.roundTrip(ctx, func(ctx context.Context, pipe redis.Pipeliner) {
		for j, k := range c.keys {
			mem[j] = pipe.MemoryUsage(ctx, k, 0)
			card[j] = pipe.ZCount(ctx, k, "0", "+inf")
		}
	})
	if err != nil {
		return 0, 0, fmt.Errorf("auredis: memory usage of %s: %w", c.keys[0], err)
	}
	for j := range c.keys {
		bytes += mem[j].Val()
		accounts += card[j].Val()
	}
	return bytes, accounts, nil
}
