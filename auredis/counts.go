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
	// Redis holds now: the registry names it under the server's current
	// run_id, and every key holds its mark. Less than Instances while an
	// instance has not yet pushed since it started or since Redis lost or
	// replaced data (a restart, a restore from an older file, a failover, a
	// key deleted or evicted), or while its pushes fail (this instance's at
	// once; another's once it has missed two pushes): the counts then miss
	// accounts.
	Complete int
	// Settling is true while the registry has been written under its
	// server's run_id for less than the time every live instance takes to
	// write to it again (two of the longest push interval the instances
	// declare, and a timeout): after Redis lost, restored or failed over the
	// registry, an instance may not have said it exists yet, so no figure is
	// complete. A new cluster settles that long after its first push.
	Settling bool
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
// instance's latest push in them: Cluster, not Settling, and every instance
// Complete.
func (r Result) IsComplete() bool { return r.Cluster && !r.Settling && r.Complete == r.Instances }

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
	// Round trip 1: the registry. Round trip 2: each key's counts and marks,
	// in one step per key. A push marks every key before it names the
	// marks' epoch in the registry; read in the other order, any epoch the
	// registry names here is on every key by the time the keys are read.
	var regCmd *redis.Cmd
	if err := c.roundTrip(ctx, func(ctx context.Context, pipe redis.Pipeliner) {
		regCmd = readRegistryScript.Eval(ctx, pipe, []string{c.registry})
	}); err != nil {
		c.lostContact()
		return Result{}, err
	}
	v, err := regCmd.Slice()
	if err != nil {
		return Result{}, err
	}
	reg, err := parseRegistry(v, false)
	if err != nil {
		return Result{}, err
	}
	dims := c.t.Dimensions()
	var segs []string
	for _, s := range reg.segments {
		if slices.Contains(dims, parseSegment(s).Dimension) {
			segs = append(segs, s)
		}
	}
	nowMs := reg.now.UnixMilli()
	peers := make(map[string]peer, len(reg.peers)+1)
	for id, p := range reg.peers {
		if p.state != stateLeft {
			peers[id] = p
		}
	}
	self := false
	select {
	case <-c.stop: // shut down: no longer one of the cluster
		delete(peers, c.id)
	default:
		// This instance knows its own latest push better than the registry.
		self = true
		peers[c.id] = peer{heartbeat: nowMs, epoch: c.doneEpoch.Load(), state: stateOK, node: reg.node}
		if c.failing.Load() {
			peers[c.id] = peer{heartbeat: nowMs, state: stateBehind} // its push is not whole
		}
	}
	keys := c.allKeys(segs)
	bounds := make([]any, len(windows))
	for i, w := range windows {
		bounds[i] = "+inf" // a negative window counts nothing
		if w >= 0 {
			bounds[i] = strconv.FormatInt(max(ref-int64(min(w, ret)/time.Second), 1), 10)
		}
	}
	cmds := make([]*redis.Cmd, len(keys))
	if err := c.roundTrip(ctx, func(ctx context.Context, pipe redis.Pipeliner) {
		for j, k := range keys {
			cmds[j] = countScript.Eval(ctx, pipe, []string{k}, bounds...)
		}
	}); err != nil {
		c.lostContact()
		return Result{}, err
	}
	zcounts := make([][]int, len(keys))
	held := make([]map[string]float64, len(keys))
	for j, cmd := range cmds {
		v, err := cmd.Slice()
		if err != nil || len(v) != len(windows)+1 {
			return Result{}, fmt.Errorf("unexpected reply counting %s: %v %v", keys[j], v, err)
		}
		zcounts[j] = make([]int, len(windows))
		for i := range windows {
			n, _ := v[i].(int64)
			zcounts[j][i] = int(n)
		}
		held[j] = map[string]float64{}
		marks, _ := v[len(windows)].([]any)
		for i := 0; i+1 < len(marks); i += 2 {
			if id, ok := strings.CutPrefix(fmt.Sprint(marks[i]), markPrefix); ok {
				held[j][id], _ = strconv.ParseFloat(fmt.Sprint(marks[i+1]), 64)
			}
		}
	}

	r := Result{Cluster: true, ClockOffset: offset, Settling: !c.settled(reg)}
	sum := func(counts [][]int) []int {
		out := make([]int, len(windows))
		for _, cs := range counts {
			for i, n := range cs {
				out[i] += n
			}
		}
		return out
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
	for id, p := range peers {
		r.Instances++
		// An entry counts only as written under the server's run_id: one
		// restored from an older file, or left behind by a failover, may
		// name a push the keys lost.
		whole := p.epoch > 0 && p.state == stateOK && p.node == reg.node && !c.overdue(p, nowMs)
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
		} else if id == c.id && self && p.epoch > 0 && p.state == stateOK {
			// Redis no longer holds this instance's last push: repair now,
			// not at the next interval.
			select {
			case c.poke <- struct{}{}:
			default:
			}
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
