package auredis

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/activeusers/activeusers"
)

// The reproductions of issue 28, each a deterministic test: a fault in the
// middle of a push, or just before a reader starts, that once left a figure
// marked complete while whole pushes were missing. Each checks that no
// figure is complete unless exact, and that the cluster is complete and
// exact again after the next push.

// honest asks c for the figure and fails the test if it is marked complete
// without being exact (want accounts in 24h); it returns the figure.
func honest(t *testing.T, c *Cluster, want int) Result {
	t.Helper()
	r, err := c.Counts(context.Background(), 24*time.Hour)
	require.NoError(t, err)
	if r.IsComplete() {
		require.Equal(t, want, r.Counts[0], "a figure marked complete is exact: %+v", r)
	}
	return r
}

// limitMemory sets Redis to refuse writes (noeviction) once it holds extra
// bytes more than now.
func limitMemory(t *testing.T, rdb *redis.Client, extra int) {
	t.Helper()
	ctx := context.Background()
	used := usedMemory(t, rdb)
	require.NoError(t, rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err())
	require.NoError(t, rdb.ConfigSet(ctx, "maxmemory", strconv.Itoa(used+extra)).Err())
}

// saveFile makes Redis write its data to disk and returns the file.
func saveFile(t *testing.T, s *server, rdb *redis.Client) []byte {
	t.Helper()
	require.NoError(t, rdb.Save(context.Background()).Err())
	return readDump(t, s)
}

// restartFrom restarts Redis from file, or empty if file is nil.
func (s *server) restartFrom(file []byte) {
	s.stop()
	path := filepath.Join(s.dir, "dump.rdb")
	os.Remove(path)
	if file != nil {
		require.NoError(s.t, os.WriteFile(path, file, 0o600))
	}
	s.start()
}

// Reproduction 1: the first (full) push fails halfway at maxmemory, Redis
// then restarts empty, and the next push must not carry on as if Redis still
// held the first half.
func TestResumeAfterAnEmptyRestartStartsAgain(t *testing.T) {
	s := startServer(t)
	now := newClock()
	tr, c, rdb := instance(t, s, now, WithBatch(100), noLoop())
	for u := range 50_000 {
		tr.Seen("acct-" + strconv.Itoa(u))
	}
	limitMemory(t, rdb, 2<<20)
	require.ErrorContains(t, c.Push(context.Background()), "OOM")
	honest(t, c, 50_000)

	s.restartFrom(nil)
	require.Eventually(t, func() bool { return c.Push(context.Background()) == nil }, 10*time.Second, 10*time.Millisecond)
	r := honest(t, c, 50_000)
	assert.True(t, r.IsComplete(), "%+v", r)
	assert.Zero(t, c.Stats().Resumed, "nothing to carry on from: Redis lost it")
}

// Reproduction 2: a whole push, a save, an incremental push that fails
// halfway at maxmemory, and a restore from the save: the keys hold the
// instance's last whole push, but not the half of the failed one.
func TestResumeAfterARestoreStartsAgain(t *testing.T) {
	s := startServer(t)
	now := newClock()
	tr, c, rdb := instance(t, s, now, WithBatch(100), WithFullPushEvery(time.Hour), noLoop())
	ctx := context.Background()
	for u := range 1000 {
		tr.Seen("old-" + strconv.Itoa(u))
	}
	require.NoError(t, c.Push(ctx))
	file := saveFile(t, s, rdb)
	now.Add(time.Minute)
	for u := range 50_000 {
		tr.Seen("new-" + strconv.Itoa(u))
	}
	limitMemory(t, rdb, 2<<20)
	require.ErrorContains(t, c.Push(ctx), "OOM")

	s.restartFrom(file)
	honest(t, c, 51_000)
	require.Eventually(t, func() bool { return c.Push(ctx) == nil }, 10*time.Second, 10*time.Millisecond)
	r := honest(t, c, 51_000)
	assert.True(t, r.IsComplete(), "%+v", r)
}

// pipelineHook runs after, once, after the first pipeline the client sends
// for which match is true.
type pipelineHook struct {
	match func([]redis.Cmder) bool
	after func()
	done  atomic.Bool
}

func (h *pipelineHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *pipelineHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *pipelineHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !h.done.Load() && h.match(cmds) {
			h.done.Store(true)
			err := next(ctx, cmds)
			h.after()
			return err
		}
		return next(ctx, cmds)
	}
}

// carriesAccounts says whether a pipeline sends accounts: a script or a
// ZADD with an argument of 8 bytes, an account's member.
func carriesAccounts(cmds []redis.Cmder) bool {
	for _, cmd := range cmds {
		if cmd.Name() != "eval" && cmd.Name() != "zadd" {
			continue
		}
		for _, a := range cmd.Args() {
			if s, ok := a.(string); ok && len(s) == 8 {
				return true
			}
		}
	}
	return false
}

// readsMarks says whether a pipeline reads this instance's marks: the
// push's plan.
func readsMarks(mark string) func([]redis.Cmder) bool {
	return func(cmds []redis.Cmder) bool {
		for _, cmd := range cmds {
			for _, a := range cmd.Args() {
				if a == mark {
					return !carriesAccounts(cmds)
				}
			}
		}
		return false
	}
}

// Reproduction 3: a key deleted (or evicted) while a push is in flight. The
// rest of the push must not land in a new, empty key and mark it whole.
func TestKeyLostDuringAPushIsSentAgain(t *testing.T) {
	s := startServer(t)
	now := newClock()
	tr, c, _ := instance(t, s, now, WithBatch(100), noLoop())
	admin := client(s)
	defer admin.Close()
	for u := range 35_000 {
		tr.Seen("acct-" + strconv.Itoa(u))
	}
	c.rdb.(*redis.Client).AddHook(&pipelineHook{match: carriesAccounts, after: func() {
		require.NoError(t, admin.Del(context.Background(), c.keys[0]).Err())
	}})
	require.ErrorContains(t, c.Push(context.Background()), "LOST the key was deleted or evicted")
	honest(t, c, 35_000)
	require.NoError(t, c.Push(context.Background()))
	r := honest(t, c, 35_000)
	assert.True(t, r.IsComplete(), "%+v", r)
}

// Reproduction 4: Redis restarts — empty, or from an older file — between
// the push's plan and its data. go-redis resends the data to the new server
// (it retries on a broken connection); the push must find that the server
// is not the one it planned for.
func TestRestartBetweenPlanAndDataIsCaught(t *testing.T) {
	for _, fromFile := range []bool{false, true} {
		t.Run("from-file="+strconv.FormatBool(fromFile), func(t *testing.T) {
			s := startServer(t)
			now := newClock()
			tr := newTracker(now)
			rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: s.sock}) // default retries
			defer rdb.Close()
			c, err := New(tr, rdb, WithInterval(time.Hour), WithFullPushEvery(time.Hour), settledAfter(0), noLoop())
			require.NoError(t, err)
			defer c.Close()
			ctx := context.Background()
			for u := range 5000 {
				tr.Seen("old-" + strconv.Itoa(u))
			}
			require.NoError(t, c.Push(ctx))
			var file []byte
			if fromFile {
				file = saveFile(t, s, rdb)
			}
			now.Add(time.Minute)
			for u := range 200 {
				tr.Seen("new-" + strconv.Itoa(u))
			}
			rdb.AddHook(&pipelineHook{match: readsMarks(c.mark), after: func() { s.restartFrom(file) }})
			require.ErrorContains(t, c.Push(ctx), "LOST the server restarted or failed over")
			honest(t, c, 5200)
			require.Eventually(t, func() bool { return c.Push(ctx) == nil }, 10*time.Second, 10*time.Millisecond)
			r := honest(t, c, 5200)
			assert.True(t, r.IsComplete(), "%+v", r)
		})
	}
}

// Reproduction 5: an instance that starts just after Redis lost data has
// no memory of what was there: it must learn from Redis that the figure is
// not whole. After a restore from an older file, the registry names pushes
// under the old server; after an empty restart, the registry is new, and
// other instances may not have said they exist yet.
func TestNewInstanceAfterALossIsNotFooled(t *testing.T) {
	t.Run("restore", func(t *testing.T) {
		s := startServer(t)
		f := newFleet(t, s, 2, noLoop())
		ctx := context.Background()
		f.see(0, "a-", 500)
		f.see(1, "b-", 500)
		f.pushAll()
		rdb := client(s)
		defer rdb.Close()
		file := saveFile(t, s, rdb)
		f.see(0, "a2-", 500)
		f.pushAll()
		s.restartFrom(file) // registry and marks agree, 1000 of 1500

		_, fresh, _ := instance(t, s, f.now, noLoop())
		require.NoError(t, fresh.Push(ctx))
		r := honest(t, fresh, 1500)
		assert.False(t, r.IsComplete(), "%+v", r)
		f.pushAll()
		require.NoError(t, fresh.Push(ctx))
		assert.True(t, honest(t, fresh, 1500).IsComplete())
	})
	t.Run("empty", func(t *testing.T) {
		s := startServer(t)
		now := newClock()
		// The registry's grace as in production: 2 × 100ms + 300ms.
		opts := []Option{WithInterval(100 * time.Millisecond), WithTimeout(300 * time.Millisecond), realGrace(), noLoop()}
		tr, old, _ := instance(t, s, now, opts...)
		for u := range 1000 {
			tr.Seen("acct-" + strconv.Itoa(u))
		}
		ctx := context.Background()
		require.Eventually(t, func() bool { return old.Push(ctx) == nil }, 10*time.Second, 10*time.Millisecond, "a new cluster's setup settles")
		s.restartFrom(nil)

		_, fresh, _ := instance(t, s, now, opts...)
		require.NoError(t, ignoreDeferred(fresh.Push(ctx)))
		r := honest(t, fresh, 1000)
		assert.True(t, r.Settling, "%+v", r)
		assert.False(t, r.IsComplete(), "the other instance has not said it exists yet: %+v", r)
		require.Eventually(t, func() bool { return old.Push(ctx) == nil }, 10*time.Second, 10*time.Millisecond)
		var r2 Result
		require.Eventually(t, func() bool { // both pushing, as their loops would
			old.Push(ctx)
			fresh.Push(ctx)
			r2 = honest(t, fresh, 1000)
			return r2.IsComplete()
		}, 10*time.Second, 10*time.Millisecond, "complete once the registry settles: %+v, %v", &r2, fresh.Stats().LastErr)
	})
}

// ignoreDeferred is err unless it is a newcomer's wait for the setup to
// settle.
func ignoreDeferred(err error) error {
	if err != nil && strings.Contains(err.Error(), "deferred") {
		return nil
	}
	return err
}

// Reproduction 6: a Seen that reads the clock before a push begins and
// stores after the push has read the tracker. The next (incremental) push
// must carry it.
func TestSeenRacingAPushIsCarriedByTheNext(t *testing.T) {
	s := startServer(t)
	now := newClock()
	var stall atomic.Bool
	stalled, release := make(chan struct{}), make(chan struct{})
	tr := activeusers.New(activeusers.WithRetention(24*time.Hour), activeusers.WithClock(func() time.Time {
		t := now.Now()
		if stall.CompareAndSwap(true, false) {
			stalled <- struct{}{}
			<-release
		}
		return t
	}))
	c, _ := attach(t, s, tr, WithFullPushEvery(time.Hour), noLoop())
	ctx := context.Background()
	for u := range 100 {
		tr.Seen("acct-" + strconv.Itoa(u))
	}
	require.NoError(t, c.Push(ctx))

	stall.Store(true)
	var wg sync.WaitGroup
	wg.Go(func() { tr.Seen("racer") })
	<-stalled // it has read the clock, and not stored
	now.Add(2 * time.Second)
	require.NoError(t, c.Push(ctx))
	close(release)
	wg.Wait()
	require.NoError(t, c.Push(ctx))
	r := honest(t, c, 101)
	assert.True(t, r.IsComplete(), "%+v", r)
}

// Reproduction 7: Push's context bounds its wait for a push under way, here
// one stuck on a server that hangs (SIGSTOP).
func TestPushHonoursItsContextWhileAnotherRuns(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	s := startServer(t)
	now := newClock()
	tr := newTracker(now)
	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: s.sock}) // read timeout 3s, retries
	defer rdb.Close()
	c, err := New(tr, rdb, WithInterval(time.Hour), settledAfter(0), noLoop())
	require.NoError(t, err)
	tr.Seen("a")
	require.NoError(t, c.Push(context.Background()))

	require.NoError(t, s.cmd.Process.Signal(syscall.SIGSTOP))
	stuck := make(chan error, 1)
	go func() { stuck <- c.Push(context.Background()) }()
	time.Sleep(100 * time.Millisecond) // it holds the push and waits for Redis

	const deadline = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	start := time.Now()
	err = c.Push(ctx)
	took := time.Since(start)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "waiting for the push under way")
	assert.Less(t, took, deadline+200*time.Millisecond)
	t.Logf("Push with a %v deadline while another push hangs: returned after %v", deadline, took)

	s.cmd.Process.Signal(syscall.SIGCONT)
	<-stuck
	c.Shutdown(ctxWithTimeout(t, 10*time.Second))
	c.abandoned.Wait()
}

// Reproduction 8: an instance refused for another setup never joins the
// registry, so the others do not wait for it; and after the registry is
// lost, one with a wrong secret that registers first cannot lock out the
// instances that were using it.
func TestRefusedInstancesNeitherLingerNorLockOut(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		s := startServer(t)
		f := newFleet(t, s, 2, noLoop())
		f.see(0, "a-", 10)
		f.see(1, "b-", 10)
		f.pushAll()
		for _, o := range []Option{WithKeys(4), nil} {
			tr := newTracker(f.now)
			if o == nil {
				tr = activeusers.New(activeusers.WithClock(f.now.Now), activeusers.WithSecret([]byte("another secret, 16+ bytes")))
			}
			opts := []Option{noLoop()}
			if o != nil {
				opts = append(opts, o)
			}
			other, _ := attach(t, s, tr, opts...)
			require.ErrorContains(t, other.Push(context.Background()), "every instance needs the same WithKeys and secret")
		}
		r := honest(t, f.cs[0], 20)
		assert.Equal(t, 2, r.Instances, "the refused instances are not in the registry")
		assert.True(t, r.IsComplete(), "%+v", r)
	})
	t.Run("lock-out", func(t *testing.T) {
		s := startServer(t)
		const settle = time.Second
		f := newFleet(t, s, 2, noLoop(), settledAfter(settle))
		ctx := context.Background()
		f.see(0, "a-", 10)
		f.see(1, "b-", 10)
		require.Eventually(t, func() bool { // both veterans: each has pushed
			for _, c := range f.cs {
				if c.Stats().Pushes == 0 && ignoreDeferred(c.Push(ctx)) != nil {
					return false
				}
			}
			return f.cs[0].Stats().Pushes > 0 && f.cs[1].Stats().Pushes > 0
		}, 10*time.Second, 10*time.Millisecond, "a new cluster's setup settles")
		rdb := client(s)
		defer rdb.Close()
		require.NoError(t, rdb.FlushAll(ctx).Err())

		wrong := activeusers.New(activeusers.WithClock(f.now.Now), activeusers.WithSecret([]byte("the wrong secret, 16+ bytes")))
		wrong.Seen("mallory")
		w, _ := attach(t, s, wrong, noLoop(), settledAfter(settle))
		assert.ErrorContains(t, w.Push(ctx), "deferred", "a newcomer waits while its setup is unsettled")
		f.pushAll() // the veterans' setup replaces the newcomer's
		assert.ErrorContains(t, w.Push(ctx), "every instance needs the same WithKeys and secret")
		require.Eventually(t, func() bool {
			f.pushAll()
			return honest(t, f.cs[0], 20).IsComplete()
		}, 10*time.Second, 10*time.Millisecond, "complete once the registry settles")
		assert.Equal(t, 2, honest(t, f.cs[0], 20).Instances)
	})
}
