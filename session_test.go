package activeusers

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// movingClock is a fake clock that tests move while servers read it.
type movingClock struct{ sec atomic.Int64 }

func newMovingClock() *movingClock {
	c := new(movingClock)
	c.sec.Store(t0.Unix())
	return c
}

func (c *movingClock) now() time.Time      { return time.Unix(c.sec.Load(), 0) }
func (c *movingClock) add(d time.Duration) { c.sec.Add(int64(d / time.Second)) }
func (c *movingClock) option() Option      { return WithClock(c.now) }

// TestSessionKeepsItsAccountActive, a step a row on a fake clock: a session
// counts when made, ages out while idle, counts again at its next Seen (in
// its segments too), and a clock stepping back loses nothing.
func TestSessionKeepsItsAccountActive(t *testing.T) {
	const fiveMin = 5 * time.Minute
	clk := newMovingClock()
	tr := New(clk.option(), WithDimensions("plan"))
	s := tr.Session("alice", "pro")
	count := func() (overall, pro int) {
		b := tr.CountsBy(fiveMin)
		return b.Overall[0], b.Dimensions[0].Values[0].Counts[0]
	}
	for _, step := range []struct {
		move        time.Duration
		seen        bool
		overall, in int
	}{
		{0, false, 1, 1},               // counted when made
		{time.Hour, false, 0, 0},       // idle for an hour: aged out of 5 minutes
		{0, true, 1, 1},                // a message counts it again, in its plan too
		{4 * time.Minute, true, 1, 1},  // and again
		{5 * time.Minute, false, 1, 1}, // 5 minutes after the last Seen, not the first: still in
		{time.Second, false, 0, 0},
		{-time.Hour, true, 1, 1}, // the clock steps back an hour: what was recorded is later, age 0
		{time.Hour + 5*time.Minute + time.Second, false, 0, 0},
	} {
		clk.add(step.move)
		if step.seen {
			s.Seen()
		}
		overall, pro := count()
		assert.Equal(t, step.overall, overall, "%+v", step)
		assert.Equal(t, step.in, pro, "%+v", step)
	}

	assert.Nil(t, tr.Session(""), "no account, no session")
	var none *Session
	assert.NotPanics(t, none.Seen)
	assert.Equal(t, 1, tr.Len())
}

// TestSessionSeenAllocatesNothing: a Seen costs no allocation, in the same
// second or a new one.
func TestSessionSeenAllocatesNothing(t *testing.T) {
	clk := newMovingClock()
	tr := New(clk.option(), WithDimensions("plan"))
	s := tr.Session("alice", "pro")
	assert.Zero(t, testing.AllocsPerRun(1000, s.Seen), "the same second")
	assert.Zero(t, testing.AllocsPerRun(1000, func() { clk.add(time.Second); s.Seen() }), "a new second each time")
}

// TestSessionConcurrentSeen: many goroutines calling one session's Seen
// while the clock moves record it at the latest second.
func TestSessionConcurrentSeen(t *testing.T) {
	clk := newMovingClock()
	tr := New(clk.option())
	s := tr.Session("alice")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					s.Seen()
				}
			}
		})
	}
	for range 1000 {
		clk.add(time.Second)
	}
	close(stop)
	wg.Wait()
	s.Seen() // the last second, if no goroutine saw it
	require.Equal(t, []int{1, 1}, tr.Counts(0, time.Hour), "recorded at the clock's last second")
}
