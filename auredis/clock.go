package auredis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The cluster's clock is the Redis server's that holds the registry: every
// score and trim is on it, and each instance measures its own clock's offset
// from it at every push and shifts what it sends.

// timeScript reads the Redis server's clock on the node holding its key (the
// registry), so that every instance reads one clock, in a cluster too (a
// TIME command without a key goes to any node).
const timeScript = "return redis.call('TIME')"

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
// trip, and returns the offset to use: whole seconds to
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
func (c *Cluster) measured(localSend, localRecv, redisNow time.Time) time.Duration {
	d := redisNow.Sub(localSend)
	k := d.Truncate(time.Second)
	if k > d {
		k -= time.Second // floor, for negative offsets too
	}
	exact := localRecv.Equal(localSend)
	c.mu.Lock()
	defer c.mu.Unlock()
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
		local := c.t.Now()
		if err := c.roundTrip(ctx, func(ctx context.Context, pipe redis.Pipeliner) {
			timeCmd = pipe.Eval(ctx, timeScript, []string{c.registry})
		}); err != nil {
			return 0, err
		}
		redisNow, err := parseTime(timeCmd)
		if err != nil {
			return 0, err
		}
		if offset = c.measured(local, c.t.Now(), redisNow); c.exactOffset() {
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

// lostContact notes a failed round trip: the others' heartbeats are not
// aging for them alone until this instance reaches Redis again.
func (c *Cluster) lostContact() {
	c.mu.Lock()
	c.contact = 0
	c.mu.Unlock()
}
