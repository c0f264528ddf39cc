package auredis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The registry, a hash "{name}:instances" on one node, says which instances
// the cluster has and which of their pushes each key must hold:
//
//	config        "by at setup": the setup every instance must share, who set
//	              it (a "veteran" that had pushed before, or a "new" instance)
//	              and when (Redis ms)
//	node          "run_id since": the server holding the registry, and its
//	              first write under that run_id (Redis ms)
//	<id>          an instance: "heartbeat epoch interval gap state run_id"
//	segment:<s>   a segment ("dimension=value") some instance has pushed
//
// An instance's epoch is the Redis time (ms) of its latest completed push;
// every key holds its mark scored -epoch or lower (a newer push). The entry
// counts only under the run_id it names: a registry restored from an older
// file, or one a failover left behind, names pushes the keys may not hold,
// and so counts for nothing until each instance writes its entry again.

// entry states.
const (
	stateOK     = "ok"     // its latest push is whole
	stateBehind = "behind" // it is pushing what Redis lost or a failed push left out
	stateLeft   = "left"   // shut down cleanly
)

// peer is one instance's entry in the registry.
type peer struct {
	heartbeat int64  // Redis time (ms) of its latest write to the registry
	epoch     int64  // Redis time (ms) of its latest completed push; 0 before its first
	interval  int64  // its push interval (ms): a heartbeat much older than this means its pushes fail
	gap       int64  // the longest (ms) it goes between two writes while it runs (see Cluster.gap)
	state     string // stateOK, stateBehind or stateLeft
	node      string // the run_id it was written under
}

// tail is the entry as the registry script takes it, without the heartbeat
// and run_id it adds.
func (p peer) tail() string {
	return strconv.FormatInt(p.epoch, 10) + " " + strconv.FormatInt(p.interval, 10) + " " + strconv.FormatInt(p.gap, 10) + " " + p.state
}

func parsePeer(v string) (peer, bool) {
	f := strings.Fields(v)
	if len(f) != 6 {
		return peer{}, false
	}
	var p peer
	var errs [4]error
	p.heartbeat, errs[0] = strconv.ParseInt(f[0], 10, 64)
	p.epoch, errs[1] = strconv.ParseInt(f[1], 10, 64)
	p.interval, errs[2] = strconv.ParseInt(f[2], 10, 64)
	p.gap, errs[3] = strconv.ParseInt(f[3], 10, 64)
	p.state, p.node = f[4], f[5]
	ok := errors.Join(errs[:]...) == nil && (p.state == stateOK || p.state == stateBehind || p.state == stateLeft)
	return p, ok
}

// registry is what the registry says, as read by a push's join or by
// Counts.
type registry struct {
	now      time.Time       // the server's clock when it was read
	node     string          // the server's run_id
	since    int64           // Redis ms since the registry has been written under node
	config   string          // "by at setup"
	peers    map[string]peer // every instance's entry, by id
	segments []string        // the segments any instance has pushed, sorted
}

// parseRegistry reads what the registry scripts return: TIME, run_id, then
// (join) the node and setup fields and the whole hash, or (Counts) the whole
// hash.
func parseRegistry(v []any, withFields bool) (registry, error) {
	var r registry
	if len(v) < 3 {
		return r, fmt.Errorf("unexpected reply from the registry: %v", v)
	}
	secs, err1 := strconv.ParseInt(fmt.Sprint(v[0]), 10, 64)
	us, err2 := strconv.ParseInt(fmt.Sprint(v[1]), 10, 64)
	if err1 != nil || err2 != nil {
		return r, fmt.Errorf("unexpected TIME from the registry's server: %v", v[:2])
	}
	r.now, r.node = time.Unix(secs, us*1000), fmt.Sprint(v[2])
	hash := v[3:]
	if withFields {
		if len(v) < 6 {
			return r, fmt.Errorf("unexpected reply from the registry: %v", v)
		}
		hash = v[5:]
	}
	r.peers = map[string]peer{}
	var nodeField string
	if len(hash) == 1 {
		flat, _ := hash[0].([]any)
		for i := 0; i+1 < len(flat); i += 2 {
			k, val := fmt.Sprint(flat[i]), fmt.Sprint(flat[i+1])
			switch {
			case k == "config":
				r.config = val
			case k == "node":
				nodeField = val
			case strings.HasPrefix(k, "segment:"):
				r.segments = append(r.segments, strings.TrimPrefix(k, "segment:"))
			default:
				if p, ok := parsePeer(val); ok {
					r.peers[k] = p
				}
			}
		}
	}
	if withFields {
		nodeField, r.config = fmt.Sprint(v[3]), fmt.Sprint(v[4])
	}
	if id, since, ok := strings.Cut(nodeField, " "); ok && id == r.node {
		r.since, _ = strconv.ParseInt(since, 10, 64)
	} else {
		r.since = r.now.UnixMilli() // never written under this run_id: it settles from now
	}
	slices.Sort(r.segments)
	return r, nil
}

// settled says whether the registry has been written under its server long
// enough that every live instance has written to it since — the longest gap
// any instance it names declares, or this one's — so that an instance it
// does not name is not one of the cluster.
func (c *Cluster) settled(r registry) bool {
	return r.now.UnixMilli()-r.since >= c.grace(r)
}

// grace is the longest gap between two writes to the registry of any
// instance r names and of this one.
func (c *Cluster) grace(r registry) int64 {
	if c.cfg.settle > 0 { // tests of other things
		return c.cfg.settle.Milliseconds()
	}
	longest := c.gap()
	for _, p := range r.peers {
		longest = max(longest, p.gap)
	}
	return longest
}

// gap is the longest this instance goes between two writes to the registry
// while it runs: a push's join every interval (up to 10% more), or a retry
// at the longest backoff, each landing within a round trip's timeout.
func (c *Cluster) gap() int64 {
	return max(c.cfg.interval*11/10, c.cfg.maxBackoff).Milliseconds() + c.cfg.timeout.Milliseconds()
}

// entry is this instance's entry, with epoch and state.
func (c *Cluster) entry(epoch int64, state string) peer {
	return peer{epoch: epoch, interval: c.cfg.interval.Milliseconds(), gap: c.gap(), state: state}
}

// errRefused is a registry's refusal of this instance's setup.
var errRefused = errors.New("refused")

// writeRegistry queues a write of this instance's entry, in mode, on pipe.
func (c *Cluster) writeRegistry(ctx context.Context, pipe redis.Pipeliner, mode string, me peer, extra []string) *redis.Cmd {
	vet := "0"
	if c.epoch > 0 {
		vet = "1"
	}
	args := append([]any{mode, c.id, me.tail(), c.setup, vet, c.grace(registry{})}, toAny(extra)...)
	return registryScript.Eval(ctx, pipe, []string{c.registry}, args...)
}

// registryErr turns the registry script's refusal into an error a user can
// act on.
func (c *Cluster) registryErr(err error) error {
	if err == nil {
		return nil
	}
	if setup, ok := strings.CutPrefix(err.Error(), "REFUSED "); ok {
		return fmt.Errorf("%w: the cluster registered in %s has %q, this instance %q: every instance needs the same WithKeys and secret", errRefused, c.registry, setup, c.setup)
	}
	return err
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// overdue says whether p has missed two pushes: it has not reached Redis for
// twice its interval and one round trip's timeout, so it holds accounts
// Redis has not got.
func (c *Cluster) overdue(p peer, nowMs int64) bool {
	return p.heartbeat < nowMs-2*p.interval-c.cfg.timeout.Milliseconds()
}

// departed returns the instances the registry names that have not reached
// Redis for the TTL while this one could (after an outage, every instance
// gets the TTL from the moment this one reached Redis again), for the push
// to remove.
func (c *Cluster) departed(r registry) []string {
	nowMs := r.now.UnixMilli()
	c.mu.Lock()
	if c.contact == 0 {
		c.contact = nowMs
	}
	contact := c.contact
	c.mu.Unlock()
	ttl := c.cfg.instanceTTL.Milliseconds()
	var gone []string
	for id, p := range r.peers {
		if id != c.id && p.heartbeat < nowMs-ttl && contact < nowMs-ttl {
			gone = append(gone, id)
		}
	}
	slices.Sort(gone)
	return gone
}
