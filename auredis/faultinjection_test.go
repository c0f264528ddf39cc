package auredis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/activeusers/activeusers"
)

// The fault kinds the injection test draws from, each at least
// faultsPerKind times.
var faultKinds = []string{"kill", "restore", "sigstop", "debug-sleep", "flushall", "del", "evict", "oom"}

const faultsPerKind = 5

// TestFaultInjection runs a cluster of four instances, each recording
// accounts all along and pushing every 300ms, against a real Redis into
// which faults of every kind are injected at random (seeded: set
// AUREDIS_FAULT_SEED to replay one run), while an observer reads the
// figure every 50ms. Every figure marked complete is checked against what
// Redis holds and what the instances saw: it must hold, for every instance,
// every account that instance had recorded before its latest acknowledged
// push began (in each segment too), and nothing no instance saw. After each
// fault is repaired, the figure must become complete again; the time it
// takes is reported per fault kind.
func TestFaultInjection(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("AUREDIS_FAULT_SEED"); v != "" {
		var err error
		seed, err = strconv.ParseUint(v, 10, 64)
		require.NoError(t, err)
	}
	rng := rand.New(rand.NewPCG(seed, 28))
	keys, batch := 1, DefaultBatch
	if rng.IntN(2) == 1 {
		keys, batch = 4, 50
	}
	t.Logf("seed %d (AUREDIS_FAULT_SEED=%d replays it): WithKeys(%d), WithBatch(%d)", seed, seed, keys, batch)

	s := startServer(t)
	admin := redis.NewClient(&redis.Options{Network: "unix", Addr: s.sock, MaxRetries: -1, DialTimeout: 200 * time.Millisecond, ReadTimeout: 2 * time.Second})
	defer admin.Close()
	ctx := context.Background()
	now := newClock()
	const instances = 4
	// The defaults' proportions (a 10s interval, a 5s timeout), scaled down:
	// a new registry settles within 1.1 intervals and a timeout, under the
	// two intervals a fault may take to repair.
	opts := []Option{
		WithInterval(300 * time.Millisecond), WithTimeout(150 * time.Millisecond),
		WithBackoff(10*time.Millisecond, 100*time.Millisecond), WithInstanceTTL(time.Minute),
		WithKeys(keys), WithBatch(batch), realGrace(),
	}
	var oracles []*oracle
	var cs []*Cluster
	for i := range instances {
		tr := activeusers.New(activeusers.WithClock(now.Now), activeusers.WithRetention(24*time.Hour), activeusers.WithDimensions("plan"))
		rdb := client(s)
		c, err := New(tr, rdb, opts...)
		require.NoError(t, err)
		cs = append(cs, c)
		oracles = append(oracles, &oracle{tr: tr, c: c, now: now, first: map[string]int64{}, pool: poolOf(i)})
		defer rdb.Close()
		defer c.Close()
	}
	all := map[string]string{} // member → uid, for every uid any instance may see
	for _, o := range oracles {
		for _, u := range o.pool {
			all[member(xxhash.Sum64String(u))] = u
		}
	}

	// The instances record accounts all along.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, o := range oracles {
		wg.Go(func() { o.work(rand.New(rand.NewPCG(seed, uint64(i))), stop) })
	}

	// The observer: a figure every 50ms, checked whenever it says complete.
	// Faults are injected only between two observations (inject holds mu),
	// so that what Redis holds is read in the state the figure was read in.
	var mu sync.RWMutex
	var stats faultStats
	completeAt := make(chan time.Time, 1000)
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			mu.RLock()
			ok, err := observe(ctx, admin, cs, oracles, all, &stats)
			mu.RUnlock()
			if err != nil {
				t.Error(err)
			}
			if ok {
				select {
				case completeAt <- time.Now():
				default:
				}
			}
		}
	})
	inject := func(f func()) {
		mu.Lock()
		defer mu.Unlock()
		f()
	}
	hold := func() time.Duration { return time.Duration(200+rng.IntN(600)) * time.Millisecond }

	// The cluster starts: a new cluster settles, then counts whole.
	waitComplete := func() (time.Time, bool) {
		deadline := time.After(30 * time.Second)
		for {
			select {
			case at := <-completeAt:
				return at, true
			case <-deadline:
				return time.Time{}, false
			}
		}
	}
	_, ok := waitComplete()
	require.True(t, ok, "the new cluster becomes complete")

	var schedule []string
	for _, k := range faultKinds {
		for range faultsPerKind {
			schedule = append(schedule, k)
		}
	}
	rng.Shuffle(len(schedule), func(i, j int) { schedule[i], schedule[j] = schedule[j], schedule[i] })
	recovery := map[string][]time.Duration{}
	for n, kind := range schedule {
		var saved []byte
		if kind == "restore" { // a file from a moment ago, pushes behind it
			require.NoError(t, admin.Save(ctx).Err())
			saved = readDump(t, s)
			time.Sleep(hold())
		}
		var repaired time.Time
		switch kind {
		case "kill", "restore":
			inject(func() {
				s.cmd.Process.Kill() // kill -9: nothing saved
				s.cmd.Wait()
				s.cmd = nil
				s.restartFrom(saved)
			})
			repaired = time.Now()
		case "sigstop":
			inject(func() { require.NoError(t, s.cmd.Process.Signal(syscall.SIGSTOP)) })
			time.Sleep(hold())
			inject(func() { require.NoError(t, s.cmd.Process.Signal(syscall.SIGCONT)) })
			repaired = time.Now()
		case "debug-sleep":
			d := hold()
			done := make(chan struct{})
			inject(func() {
				go func() {
					defer close(done)
					sleeper := redis.NewClient(&redis.Options{Network: "unix", Addr: s.sock, ReadTimeout: 5 * time.Second})
					defer sleeper.Close()
					sleeper.Do(ctx, "DEBUG", "SLEEP", fmt.Sprintf("%.3f", d.Seconds()))
				}()
				time.Sleep(20 * time.Millisecond) // the sleep has begun
			})
			<-done
			repaired = time.Now()
		case "flushall":
			inject(func() { require.NoError(t, admin.FlushAll(ctx).Err()) })
			repaired = time.Now()
		case "del":
			victims := append(slices.Clone(cs[0].keys), cs[0].registry)
			k := victims[rng.IntN(len(victims))]
			inject(func() { require.NoError(t, admin.Del(ctx, k).Err()) })
			repaired = time.Now()
		case "evict":
			inject(func() {
				used := usedMemory(t, admin)
				require.NoError(t, admin.ConfigSet(ctx, "maxmemory-policy", "allkeys-random").Err())
				require.NoError(t, admin.ConfigSet(ctx, "maxmemory", strconv.Itoa(used*2/3)).Err())
				admin.Set(ctx, "{evict}:trigger", strings.Repeat("x", 1024), 0) // a write: Redis evicts
			})
			time.Sleep(hold()) // the instances' writes evict more
			inject(func() {
				require.NoError(t, admin.ConfigSet(ctx, "maxmemory", "0").Err())
				require.NoError(t, admin.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err())
			})
			repaired = time.Now()
		case "oom":
			inject(func() {
				require.NoError(t, admin.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err())
				require.NoError(t, admin.ConfigSet(ctx, "maxmemory", strconv.Itoa(usedMemory(t, admin)+64<<10)).Err())
			})
			time.Sleep(hold())
			inject(func() { require.NoError(t, admin.ConfigSet(ctx, "maxmemory", "0").Err()) })
			repaired = time.Now()
		}
		// Drop figures from before the repair, then wait for a complete one.
		for len(completeAt) > 0 {
			<-completeAt
		}
		at, ok := waitComplete()
		if !ok {
			t.Errorf("fault %d (%s): no complete figure within 30s of the repair", n, kind)
			continue
		}
		recovery[kind] = append(recovery[kind], max(at.Sub(repaired), 0))
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	t.Logf("figures read %d: complete and exact %d, incomplete %d (settling %d), errors %d; complete but wrong %d",
		stats.read, stats.exact, stats.incomplete, stats.settling, stats.errors, stats.wrong)
	kinds := slices.Sorted(func(yield func(string) bool) {
		for k := range recovery {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range kinds {
		ds := recovery[k]
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		t.Logf("%-12s %d faults: repair to complete and exact: median %v, max %v (%v)", k, len(ds), ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond), roundAll(ds))
		assert.GreaterOrEqual(t, len(ds), faultsPerKind, k)
	}
	assert.Zero(t, stats.wrong, "figures marked complete that lack an instance's latest acknowledged push, or hold what no instance saw")
	assert.Positive(t, stats.exact)
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

type faultStats struct {
	read, exact, incomplete, settling, errors, wrong int
}

// poolOf is the accounts instance i sees: 1500 of its own, and 1500 it
// shares with the next instance.
func poolOf(i int) []string {
	var pool []string
	for u := i * 1500; u < i*1500+3000; u++ {
		pool = append(pool, "acct-"+strconv.Itoa(u%6000))
	}
	return pool
}

// planOf is an account's plan, the value of the dimension every instance
// records it in.
func planOf(uid string) string {
	n, _ := strconv.Atoi(strings.TrimPrefix(uid, "acct-"))
	return "p" + strconv.Itoa(n%3)
}

// oracle is one instance and what it has seen: for each account, the
// tracker's second just after its first recording returned.
type oracle struct {
	tr    *activeusers.Tracker
	c     *Cluster
	now   *clock
	pool  []string
	mu    sync.Mutex
	first map[string]int64
}

// work records accounts of the pool, about 2,000 a second, until stop.
func (o *oracle) work(rng *rand.Rand, stop chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(10 * time.Millisecond):
		}
		for range 20 {
			u := o.pool[rng.IntN(len(o.pool))]
			o.tr.SeenInAt(u, o.now.Now(), planOf(u))
			after := o.now.Now().Unix()
			o.mu.Lock()
			if _, ok := o.first[u]; !ok {
				o.first[u] = after
			}
			o.mu.Unlock()
		}
	}
}

// acknowledged returns the accounts the instance's latest acknowledged push
// holds for sure: those whose recording returned in a second before the
// push began (its cursor's round began in the push's start second, after
// them).
func (o *oracle) acknowledged() []string {
	st := o.c.Stats()
	if st.Pushes == 0 {
		return nil
	}
	start := st.LastPush.Unix()
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for u, at := range o.first {
		if at < start {
			out = append(out, u)
		}
	}
	return out
}

// observe reads the figure from instance 0 and, if it says complete, checks
// it against Redis and the oracles. It returns whether it was complete; an
// error only for a check that could not be made.
func observe(ctx context.Context, admin *redis.Client, cs []*Cluster, oracles []*oracle, all map[string]string, st *faultStats) (bool, error) {
	acked := make([][]string, len(oracles)) // before the figure: pushes acknowledged by then
	for i, o := range oracles {
		acked[i] = o.acknowledged()
	}
	ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	r, err := cs[0].Counts(ctx, 24*time.Hour)
	st.read++
	switch {
	case err != nil:
		st.errors++
		return false, nil
	case !r.IsComplete():
		st.incomplete++
		if r.Settling {
			st.settling++
		}
		return false, nil
	}
	// What Redis holds now, in the state the figure was read in: each
	// set's members (the accounts' keys, then each plan's).
	c := cs[0]
	sets := map[string][]string{"": c.keys}
	for _, p := range []string{"p0", "p1", "p2"} {
		sets[p] = c.allKeys([]string{"plan=" + p})[len(c.keys):]
	}
	held := map[string]map[string]bool{}
	for name, keys := range sets {
		held[name] = map[string]bool{}
		for _, k := range keys {
			ms, err := admin.ZRangeArgs(context.Background(), redis.ZRangeArgs{Key: k, Start: "1", Stop: "+inf", ByScore: true}).Result()
			if err != nil {
				return true, fmt.Errorf("reading %s after a complete figure: %w", k, err)
			}
			for _, m := range ms {
				held[name][m] = true
			}
		}
	}
	// Pushes may have added accounts since the figure (faults cannot have
	// taken any: none is injected meanwhile), so Redis holds at least what
	// the figure counted, and the figure counts at least the acknowledged.
	wrong := false
	for m := range held[""] {
		if _, ok := all[m]; !ok {
			wrong = true // an account no instance saw
		}
	}
	var missing []string
	want := map[string]map[string]bool{"": {}, "p0": {}, "p1": {}, "p2": {}}
	for i, us := range acked {
		for _, u := range us {
			m := member(xxhash.Sum64String(u))
			want[""][m], want[planOf(u)][m] = true, true
			if !held[""][m] || !held[planOf(u)][m] {
				missing = append(missing, fmt.Sprintf("instance %d: %s", i, u))
			}
		}
	}
	if r.Counts[0] < len(want[""]) {
		wrong = true
	}
	for _, v := range r.Dimensions[0].Values {
		if v.Value != activeusers.OverflowValue && v.Counts[0] < len(want[v.Value]) {
			wrong = true
		}
	}
	if wrong || len(missing) > 0 {
		st.wrong++
		return true, fmt.Errorf("a figure marked complete is wrong: %+v; %d accounts acknowledged; Redis holds %d; missing %d, e.g. %v",
			r, len(want[""]), len(held[""]), len(missing), missing[:min(len(missing), 3)])
	}
	st.exact++
	return true, nil
}

// readDump returns the file Redis last saved.
func readDump(t testing.TB, s *server) []byte {
	b, err := os.ReadFile(filepath.Join(s.dir, "dump.rdb"))
	require.NoError(t, err)
	return b
}

// usedMemory is what Redis says it uses (INFO memory).
func usedMemory(t testing.TB, rdb *redis.Client) int {
	info, err := rdb.Info(context.Background(), "memory").Result()
	require.NoError(t, err)
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.Atoi(v)
			require.NoError(t, err)
			return n
		}
	}
	t.Fatal("no used_memory in INFO")
	return 0
}
