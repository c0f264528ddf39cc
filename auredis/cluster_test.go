package auredis

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
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

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// clock is the trackers' clock in these tests: the real time shifted by whole
// seconds to start at t0, so that it ticks as Redis's clock does and their
// offset stays put. Add moves it, as a clock stepping would: the instances
// measure the new offset at their next push.
type clock struct{ shift atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.shift.Store(int64(t0.Sub(time.Now().Truncate(time.Second))))
	return c
}
func (c *clock) Now() time.Time      { return time.Now().Add(time.Duration(c.shift.Load())) }
func (c *clock) Add(d time.Duration) { c.shift.Add(int64(d)) }

// server is a real redis-server listening on a Unix socket in a folder of the
// test's own, with no persistence: a restart loses everything, the hardest
// case for recovery. A socket path, unlike a TCP port picked by listening on
// :0 and closing it, cannot be taken by anything else on the machine between
// the pick and the start, nor between a stop and a restart.
type server struct {
	t    testing.TB
	bin  string
	sock string
	dir  string
	cmd  *exec.Cmd
}

func startServer(t testing.TB) *server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not found: .ci/run should have installed it")
		}
		t.Skip("redis-server not found (apt-get install -y redis-server)")
	}
	dir := t.TempDir()
	s := &server{t: t, bin: bin, sock: filepath.Join(dir, "redis.sock"), dir: dir}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) start() {
	s.cmd = exec.Command(s.bin, "--port", "0", "--unixsocket", s.sock, "--unixsocketperm", "700", "--dir", s.dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
	require.NoError(s.t, s.cmd.Start())
	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: s.sock})
	defer rdb.Close()
	require.Eventually(s.t, func() bool { return rdb.Ping(context.Background()).Err() == nil }, 10*time.Second, 10*time.Millisecond, "redis-server starts")
}

func (s *server) stop() {
	if s.cmd != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		s.cmd.Wait()
		s.cmd = nil
	}
}

func client(s *server) *redis.Client {
	return redis.NewClient(&redis.Options{Network: "unix", Addr: s.sock, MaxRetries: -1, DialTimeout: 200 * time.Millisecond, ReadTimeout: time.Second})
}

// instance is one simulated gateway: a tracker on a shared fake clock and its
// Cluster.
func instance(t *testing.T, s *server, now *clock, opts ...Option) (*activeusers.Tracker, *Cluster, *redis.Client) {
	t.Helper()
	tr := newTracker(now)
	c, rdb := attach(t, s, tr, opts...)
	return tr, c, rdb
}

func newTracker(now *clock) *activeusers.Tracker {
	return activeusers.New(activeusers.WithClock(now.Now), activeusers.WithRetention(24*time.Hour))
}

func attach(t *testing.T, s *server, tr *activeusers.Tracker, opts ...Option) (*Cluster, *redis.Client) {
	t.Helper()
	rdb := client(s)
	c, err := New(tr, rdb, append([]Option{WithInterval(time.Hour), WithBackoff(10*time.Millisecond, 50*time.Millisecond), WithInstanceTTL(time.Minute), settledAfter(0)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close(); rdb.Close() })
	return c, rdb
}

// noLoop makes a cluster push only when the test calls Push.
func noLoop() Option { return func(c *config) { c.manual = true } }

// realGrace undoes settledAfter: the grace comes from the intervals, as in
// production.
func realGrace() Option { return func(c *config) { c.settle = 0 } }

// settledAfter sets the registry's grace (Result.Settling) to d, for the
// tests of other things than settling: the grace that comes from their
// intervals of an hour would keep every figure incomplete.
func settledAfter(d time.Duration) Option {
	return func(c *config) { c.settle = max(d, time.Nanosecond) }
}

var windows = []time.Duration{0, time.Minute, time.Hour, 24 * time.Hour, 48 * time.Hour}

// union counts, per window, the distinct uids across instances at now.
func union(now time.Time, last map[string]time.Time) []int {
	out := make([]int, len(windows))
	for _, at := range last {
		for i, w := range windows {
			// Trackers and Redis hold whole seconds.
			if now.Unix()-at.Unix() <= int64(min(w, 24*time.Hour)/time.Second) {
				out[i]++
			}
		}
	}
	return out
}

func TestClusterCountsAreTheUnion(t *testing.T) {
	before := goleak.IgnoreCurrent()                   // the goroutines of other tests, taken now
	t.Cleanup(func() { goleak.VerifyNone(t, before) }) // after the clusters close
	s := startServer(t)
	now := newClock()
	last := map[string]time.Time{}
	var trs []*activeusers.Tracker
	for range 3 {
		trs = append(trs, newTracker(now))
	}
	ctx := context.Background()
	see := func(inst, uid int, at time.Time) {
		u := "acct-" + strconv.Itoa(uid)
		trs[inst].SeenAt(u, at)
		if at.After(last[u]) {
			last[u] = at
		}
	}
	// Overlapping accounts: instance i sees uids i*300 .. i*300+499, at
	// various ages, some past retention.
	for inst := range 3 {
		for uid := inst * 300; uid < inst*300+500; uid++ {
			see(inst, uid, now.Now().Add(-time.Duration((uid*37+inst*11)%(30*3600))*time.Second))
		}
	}
	// The instances start pushing now, each first push a full one.
	var cs []*Cluster
	for _, tr := range trs {
		c, _ := attach(t, s, tr, WithFullPushEvery(48*time.Hour))
		require.NoError(t, c.Push(ctx))
		cs = append(cs, c)
	}
	at := now.Now()
	got, err := cs[0].CountsAt(ctx, at, windows...)
	require.NoError(t, err)
	assert.Equal(t, union(at, last), got.Counts, "window by window, the exact union")
	assert.True(t, got.IsComplete(), "every instance has pushed: %+v", got)
	assert.Equal(t, 3, got.Instances)

	// More activity; only what changed is pushed.
	for uid := 0; uid < 100; uid++ {
		see(uid%3, uid*5, now.Now())
	}
	for _, c := range cs {
		require.NoError(t, c.Push(ctx))
		assert.LessOrEqual(t, c.Stats().Pushed, 100, "the second push carries only the accounts seen since the first")
	}
	at = now.Now()
	for _, c := range cs {
		got, err := c.CountsAt(ctx, at, windows...)
		require.NoError(t, err)
		assert.Equal(t, union(at, last), got.Counts, "every instance gives the same answer")
		assert.True(t, got.IsComplete())
	}
	bytes, members, err := cs[1].MemoryUsage(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(union(at, last)[3]), members, "the set holds only accounts within retention")
	assert.Positive(t, bytes)
}

// TestTrimsPastRetention: accounts leave Redis once past retention by Redis's
// clock (a 2-second retention, so the test waits for real).
func TestTrimsPastRetention(t *testing.T) {
	s := startServer(t)
	now := newClock()
	tr := activeusers.New(activeusers.WithClock(now.Now), activeusers.WithRetention(2*time.Second))
	c, _ := attach(t, s, tr)
	ctx := context.Background()
	for i := range 10 {
		tr.Seen("old-" + strconv.Itoa(i))
	}
	require.NoError(t, c.Push(ctx))
	time.Sleep(3100 * time.Millisecond)
	for i := range 5 {
		tr.Seen("new-" + strconv.Itoa(i))
	}
	require.NoError(t, c.Push(ctx))
	_, members, err := c.MemoryUsage(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(5), members, "the push trimmed what is past retention")
	got, err := c.Counts(ctx, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, []int{5}, got.Counts)
}

func TestRedisGoesAwayAndComesBack(t *testing.T) {
	before := goleak.IgnoreCurrent()                   // the goroutines of other tests, taken now
	t.Cleanup(func() { goleak.VerifyNone(t, before) }) // after the clusters close
	s := startServer(t)
	now := newClock()
	last := map[string]time.Time{}
	// Pushing every 50ms, as an instance pushes every 10s by default: each
	// notices within an interval that Redis came back empty.
	// The registry's grace as in production (two intervals and a timeout):
	// Redis comes back empty, and until both have said they exist again no
	// figure is complete.
	opts := []Option{WithInterval(50 * time.Millisecond), WithTimeout(500 * time.Millisecond), realGrace()}
	tr1, c1, _ := instance(t, s, now, opts...)
	tr2, c2, _ := instance(t, s, now, opts...)
	see := func(tr *activeusers.Tracker, uid int) {
		u, at := "acct-"+strconv.Itoa(uid), now.Now() // one reading for both
		tr.SeenAt(u, at)
		last[u] = at
	}
	for uid := range 400 {
		see([]*activeusers.Tracker{tr1, tr2}[uid%2], uid)
	}
	ctx := context.Background()
	// A new cluster: the instances wait for its setup to settle (nobody has
	// pushed under it), push, and then the figure is complete.
	require.Eventually(t, func() bool {
		r, err := c2.Counts(ctx, windows...)
		return err == nil && r.IsComplete() && r.Counts[3] == 400
	}, 10*time.Second, 10*time.Millisecond, "the new cluster settles and counts both instances")

	s.stop() // Redis goes away, losing everything (no persistence)
	now.Add(time.Minute)
	for uid := 300; uid < 600; uid++ {
		see(tr1, uid) // Seen is unaffected
	}
	pushErr := c1.Push(ctx)
	assert.Error(t, pushErr, "a push fails while Redis is down")
	// The loop's pushes fail alongside, and one may have replaced it since.
	assert.ErrorContains(t, c1.Stats().LastErr, "auredis: push to", "Stats carries the last push's error")
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := c1.Counts(short, windows...)
	cancel()
	assert.Error(t, err, "Counts says Redis is unreachable")
	local, err := c1.CountsOrLocal(ctx, windows...)
	assert.Error(t, err)
	assert.False(t, local.Cluster, "the fallback says it is local")
	assert.False(t, local.IsComplete())
	assert.Equal(t, tr1.Counts(windows...), local.Counts)

	s.start() // back, empty
	// The push loops retry (c1 with backoff after its failures) and, finding
	// their marks gone, push everything they hold: nothing within retention
	// is lost. Until both have, every figure says it is incomplete.
	partial := 0
	require.Eventually(t, func() bool {
		at := now.Now()
		want := union(at, last)
		got, err := c2.CountsAt(ctx, at, windows...)
		if err != nil {
			return false
		}
		if !got.IsComplete() {
			partial++
			return false
		}
		require.Equal(t, want, got.Counts, "a figure that says it is complete is exact: %+v", got)
		require.Equal(t, 2, got.Instances)
		return true
	}, 10*time.Second, time.Millisecond, "counts exact and complete again after recovery")
	t.Logf("%d figures said incomplete during the recovery", partial)
	// Other clients see a push's data as soon as Redis applies it, a moment
	// before the push returns and its Stats are updated: wait for those too.
	require.Eventually(t, func() bool { return c1.Stats().LastErr == nil }, 10*time.Second, 10*time.Millisecond,
		"c1's loop records its successful push")
	assert.Positive(t, c1.Stats().Failures)
}

// TestLateArrivalsReachRedisWithTheNextPush: SeenAt at an earlier time than
// the previous push (a replayed log, a late arrival) is carried by the next
// incremental push, which sends it alone.
func TestLateArrivalsReachRedisWithTheNextPush(t *testing.T) {
	before := goleak.IgnoreCurrent() // the goroutines of other tests, taken now
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	s := startServer(t)
	now := newClock()
	tr, c, _ := instance(t, s, now, WithFullPushEvery(time.Hour), noLoop())
	ctx := context.Background()
	tr.Seen("a")
	require.NoError(t, c.Push(ctx))
	now.Add(time.Minute)
	tr.SeenAt("late", now.Now().Add(-10*time.Minute))
	require.NoError(t, c.Push(ctx))
	assert.Equal(t, 2, c.Stats().Pushed, "the incremental push reached back to the late arrival (and took what was seen since)")
	assert.Equal(t, 1, c.Stats().FullPushes, "the first push only")
	got, err := c.Counts(ctx, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, []int{2}, got.Counts)
	assert.True(t, got.IsComplete())
}

func TestCloseMakesAFinalPush(t *testing.T) {
	before := goleak.IgnoreCurrent()                   // the goroutines of other tests, taken now
	t.Cleanup(func() { goleak.VerifyNone(t, before) }) // after the clusters close
	s := startServer(t)
	now := newClock()
	tr, c, rdb := instance(t, s, now)
	other, err := New(tr, rdb, WithInterval(time.Hour), settledAfter(0))
	require.NoError(t, err)
	require.NoError(t, other.Close())
	tr.Seen("late")
	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "idempotent")
	_, n, err := c.MemoryUsage(context.Background())
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
}

func TestBadOptions(t *testing.T) {
	tr := activeusers.New(activeusers.WithClock(time.Now))
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	for _, c := range []struct {
		tr   *activeusers.Tracker
		rdb  redis.UniversalClient
		opts []Option
		want string
	}{
		{nil, rdb, nil, "nil *activeusers.Tracker"},
		{tr, nil, nil, "nil Redis client"},
		{tr, rdb, []Option{WithName("")}, "name must not be empty"},
		{tr, rdb, []Option{WithKeys(0)}, "WithKeys(0): the key count must be between 1 and 256"},
		{tr, rdb, []Option{WithKeys(257)}, "WithKeys(257)"},
		{tr, rdb, []Option{WithTimeout(0)}, "WithTimeout(0s)"},
		{tr, rdb, []Option{WithInstanceTTL(-1)}, "WithInstanceTTL(-1ns)"},
		{tr, rdb, []Option{WithInterval(0)}, "interval must be positive"},
		{tr, rdb, []Option{WithBatch(0)}, "batch must be between"},
		{tr, rdb, []Option{WithFullPushEvery(-time.Second)}, "WithFullPushEvery(-1s)"},
		{tr, rdb, []Option{WithBackoff(time.Second, time.Millisecond)}, "need 0 < min ≤ max"},
	} {
		_, err := New(c.tr, c.rdb, c.opts...)
		assert.ErrorContains(t, err, c.want)
	}
}

// BenchmarkPush1M pushes a million accounts seen in one interval to a real
// Redis and reports the time and Redis's memory per account (MEMORY USAGE of
// the keys, and the growth of used_memory), with and without
// WithSecret (whose cost is on the push: each entry's pseudonym).
func BenchmarkPush1M(b *testing.B) {
	s := startServer(b)
	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: s.sock})
	defer rdb.Close()

	const users = 1_000_000
	ctx := context.Background()
	for _, secret := range []bool{false, true} {
		b.Run("secret="+strconv.FormatBool(secret), func(b *testing.B) {
			var opts []activeusers.Option
			if secret {
				opts = append(opts, activeusers.WithSecret([]byte("a benchmark's 16+ byte secret")))
			}
			for b.Loop() {
				b.StopTimer()
				rdb.FlushAll(ctx)
				tr := activeusers.New(opts...)
				for i := range users {
					tr.Seen("acct-" + strconv.Itoa(i))
				}
				cfg := defaultConfig()
				cfg.keys, cfg.settle = 1, time.Nanosecond // the push, not a new cluster's wait
				c := newCluster(tr, rdb, cfg)
				before := usedMemory(b, rdb)
				b.StartTimer()
				require.NoError(b, c.Push(ctx))
				b.StopTimer()
				bytes, members, err := c.MemoryUsage(ctx)
				require.NoError(b, err)
				require.Equal(b, int64(users), members)
				// MEMORY USAGE of the keys, and what the server's
				// used_memory grew by: the allocator's rounding and the
				// server's own structures, what a capacity plan needs.
				b.ReportMetric(float64(bytes)/users, "redis-bytes/user")
				b.ReportMetric(float64(usedMemory(b, rdb)-before)/users, "redis-used-bytes/user")
				tr.Close()
				b.StartTimer()
			}
		})
	}
}

// TestDeadlinesWhenRedisHangs: a server that hangs (SIGSTOP) rather than dies,
// and a client with go-redis's default options, which ignore a context's
// deadline. Counts and Shutdown still return by their deadlines; the calls
// they gave up on end once the server answers, leaving no goroutine behind.
func TestDeadlinesWhenRedisHangs(t *testing.T) {
	before := goleak.IgnoreCurrent() // the goroutines of other tests, taken now
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	s := startServer(t)
	now := newClock()
	tr := newTracker(now)
	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: s.sock}) // defaults: ContextTimeoutEnabled false, ReadTimeout 3s
	defer rdb.Close()
	c, err := New(tr, rdb, WithInterval(time.Hour), settledAfter(0))
	require.NoError(t, err)
	tr.Seen("a")
	require.NoError(t, c.Push(context.Background()))

	require.NoError(t, s.cmd.Process.Signal(syscall.SIGSTOP))
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			s.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	defer resume()

	const deadline, margin = 300 * time.Millisecond, 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	start := time.Now()
	_, err = c.Counts(ctx, time.Hour)
	took := time.Since(start)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, took, deadline+margin, "Counts returns by its deadline")
	t.Logf("Counts against a hung server, %v deadline: returned after %v", deadline, took)
	local, err := c.CountsOrLocal(ctxWithTimeout(t, deadline), time.Hour)
	require.Error(t, err)
	assert.False(t, local.Cluster)
	assert.Equal(t, []int{1}, local.Counts, "the fallback answers by the deadline too")

	ctx, cancel = context.WithTimeout(context.Background(), deadline)
	start = time.Now()
	err = c.Shutdown(ctx)
	took = time.Since(start)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, took, deadline+margin, "Shutdown returns by its deadline")
	t.Logf("Shutdown against a hung server, %v deadline: returned after %v", deadline, took)
	require.NoError(t, c.Close(), "Close after Shutdown does nothing")

	resume()
	<-c.done           // the loop ends, its last push cancelled by Shutdown
	c.abandoned.Wait() // the given-up calls end once the server answers
}

// ctxWithTimeout is a context that ends after d, cancelled when the test ends.
func ctxWithTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestLogsReachSlog: with a Redis that is not there, the push loop's failures
// reach the logger given with WithLogger, and go-redis's own "failed to dial"
// lines reach it through GoRedisLogger, not standard error.
func TestLogsReachSlog(t *testing.T) {
	before := goleak.IgnoreCurrent() // the goroutines of other tests, taken now
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	var buf syncBuffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	redis.SetLogger(GoRedisLogger(logger))
	// go-redis's logger is the process's: put back one that writes to
	// standard error, as its default does.
	t.Cleanup(func() { redis.SetLogger(GoRedisLogger(slog.New(slog.NewTextHandler(os.Stderr, nil)))) })

	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: filepath.Join(t.TempDir(), "nobody.sock"), MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer rdb.Close()
	tr := newTracker(newClock())
	tr.Seen("a")
	c, err := New(tr, rdb, WithInterval(time.Hour), WithBackoff(10*time.Millisecond, 20*time.Millisecond), WithLogger(logger))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		s := buf.String()
		return strings.Contains(s, "auredis: push failed") && strings.Contains(s, "failed to dial") && strings.Contains(s, "source=go-redis")
	}, 10*time.Second, 10*time.Millisecond, "both reach the logger: %s", buf.String())
	require.Error(t, c.Shutdown(ctxWithTimeout(t, time.Second)))

	_, err = New(tr, rdb, WithLogger(nil))
	assert.ErrorContains(t, err, "WithLogger(nil)")
}

// syncBuffer is a bytes.Buffer written by the push loop while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
