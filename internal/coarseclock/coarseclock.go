// Package coarseclock is a wall clock of one-second resolution that costs one
// atomic load to read.
//
// time.Now costs as much as the rest of a Seen call (it reads the vDSO's
// clock, and the monotonic one too). The tracker only needs whole seconds, so one
// goroutine reads the real clock just after each second boundary and publishes
// it; readers never make a system call.
package coarseclock

import (
	"sync"
	"sync/atomic"
	"time"
)

// Clock publishes the current Unix second. Its zero value is not usable; call
// Start.
type Clock struct {
	sec  atomic.Int64 // -1 once stopped: readers then fall back to time.Now
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Start returns a running Clock. Stop it to end its goroutine.
func Start() *Clock {
	c := &Clock{stop: make(chan struct{}), done: make(chan struct{})}
	now := time.Now()
	c.sec.Store(now.Unix())
	go c.run(now)
	return c
}

// Now returns the current Unix second. It is never more than one tick behind
// the real clock (the tick fires just after each second boundary), and after
// Stop it reads the real clock directly.
func (c *Clock) Now() int64 {
	if s := c.sec.Load(); s >= 0 {
		return s
	}
	return time.Now().Unix()
}

// nextTick is how long to wait after now for the next second boundary, plus a
// little so the timer never fires just before it and publishes the old second.
func nextTick(now time.Time) time.Duration {
	const margin = 200 * time.Microsecond
	return time.Second - time.Duration(now.Nanosecond()) + margin
}

func (c *Clock) run(now time.Time) {
	defer close(c.done)
	t := time.NewTimer(nextTick(now))
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			now := time.Now()
			c.sec.Store(now.Unix())
			t.Reset(nextTick(now))
		}
	}
}

// Stop ends the clock's goroutine and waits for it to exit. Later reads go to
// the real clock. Stop may be called more than once.
func (c *Clock) Stop() {
	c.once.Do(func() {
		close(c.stop)
		<-c.done
		c.sec.Store(-1)
	})
}
