package auredis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/activeusers/activeusers"
)

// startRedisCluster starts three redis-server masters with cluster mode on,
// on loopback ports, and joins them with redis-cli --cluster create, which
// gives each a third of the slots. It returns their addresses.
func startRedisCluster(t *testing.T) []string {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not found: .ci/run should have installed it", bin)
			}
			t.Skipf("%s not found (apt-get install -y redis-server)", bin)
		}
	}
	var lastErr error
	for range 5 { // a port found free can be taken before the server binds it: try others
		addrs, err := tryRedisCluster(t)
		if err == nil {
			return addrs
		}
		lastErr = err
	}
	t.Fatalf("starting a Redis Cluster: %v", lastErr)
	return nil
}

func tryRedisCluster(t *testing.T) ([]string, error) {
	var addrs []string
	var cmds []*exec.Cmd
	stopAll := func() {
		for _, cmd := range cmds {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	}
	for range 3 {
		port := freePortPair()
		dir := t.TempDir()
		cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
		if err := cmd.Start(); err != nil {
			stopAll()
			return nil, err
		}
		cmds = append(cmds, cmd)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		addrs = append(addrs, addr)
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		up := false
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if rdb.Ping(context.Background()).Err() == nil {
				up = true
				break
			}
		}
		rdb.Close()
		if !up {
			stopAll()
			return nil, fmt.Errorf("redis-server on %s did not start", addr)
		}
	}
	out, err := exec.Command("redis-cli", append([]string{"--cluster", "create"}, append(addrs, "--cluster-replicas", "0", "--cluster-yes")...)...).CombinedOutput()
	if err != nil {
		stopAll()
		return nil, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	t.Cleanup(stopAll)
	for _, addr := range addrs {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		ok := false
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			info, err := rdb.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				ok = true
				break
			}
		}
		rdb.Close()
		if !ok {
			return nil, fmt.Errorf("node %s never reported cluster_state:ok", addr)
		}
	}
	return addrs, nil
}

// freePortPair returns a port that, with the cluster bus port 10000 above
// it, was free a moment ago.
func freePortPair() int {
	for {
		port := 20000 + rand.IntN(20000)
		a, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		b, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		return port
	}
}

// TestRedisClusterSpreadsTheKeys: three instances on a real 3-master Redis
// Cluster, with the default key count for a cluster client. Counts are the
// exact union, and every master holds a share of the accounts and did a
// share of the ZADDs.
func TestRedisClusterSpreadsTheKeys(t *testing.T) {
	addrs := startRedisCluster(t)
	ctx := context.Background()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer rdb.Close()
	now := newClock()
	last := map[string]time.Time{}
	perInstance := 20_000
	if v := os.Getenv("AUREDIS_CLUSTER_USERS"); v != "" { // for docs/benchmarks.md's per-node figures
		var err error
		perInstance, err = strconv.Atoi(v)
		require.NoError(t, err)
	}
	var cs []*Cluster
	for i := range 3 {
		tr := newTracker(now)
		for u := i * perInstance / 2; u < i*perInstance/2+perInstance; u++ { // half shared with the next
			id := "acct-" + strconv.Itoa(u)
			at := now.Now().Add(-time.Duration(u%7200) * time.Second)
			tr.SeenAt(id, at)
			if at.After(last[id]) {
				last[id] = at
			}
		}
		c, err := New(tr, rdb, WithInterval(time.Hour), settledAfter(0))
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		require.Len(t, c.keys, DefaultClusterKeys, "a cluster client gets the cluster default")
		start := time.Now()
		require.NoError(t, c.Push(ctx))
		took := time.Since(start)
		t.Logf("instance %d: first push of %d accounts in %v (%.0f accounts/s)", i, perInstance, took.Round(time.Millisecond), float64(perInstance)/took.Seconds())
		cs = append(cs, c)
	}
	at := now.Now()
	for _, c := range cs {
		r, err := c.CountsAt(ctx, at, windows...)
		require.NoError(t, err)
		assert.Equal(t, union(at, last), r.Counts, "the exact union from the sum of the keys' ZCOUNTs")
		assert.True(t, r.IsComplete(), "%+v", r)
		assert.Equal(t, 3, r.Instances)
	}

	total := int64(0)
	var shares []string
	var mu sync.Mutex // ForEachMaster calls in parallel
	err := rdb.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		var accounts, bytes int64
		for _, k := range cs[0].keys {
			n, err := node.ZCount(ctx, k, "0", "+inf").Result()
			if err != nil { // MOVED: another master's key
				continue
			}
			accounts += n
			m, _ := node.MemoryUsage(ctx, k, 0).Result()
			bytes += m
		}
		stats, err := node.Info(ctx, "commandstats").Result()
		if err != nil {
			return err
		}
		zadds := 0
		for _, line := range strings.Split(stats, "\r\n") {
			if rest, ok := strings.CutPrefix(line, "cmdstat_zadd:calls="); ok {
				zadds, _ = strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
			}
		}
		mu.Lock()
		defer mu.Unlock()
		assert.Positive(t, accounts, "master %s holds a share of the accounts", node.Options().Addr)
		assert.Positive(t, zadds, "master %s did a share of the ZADDs", node.Options().Addr)
		total += accounts
		shares = append(shares, fmt.Sprintf("%s: %d accounts, %.1f MB (%.1f bytes an account), %d ZADDs", node.Options().Addr, accounts, float64(bytes)/1e6, float64(bytes)/float64(max(accounts, 1)), zadds))
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, int64(union(at, last)[3]), total, "every account in one key")
	for _, s := range shares {
		t.Log(s)
	}
}

// TestEightInstancesBecomeExact: eight instances, each holding users
// accounts (a quarter shared with the next), start pushing to an empty Redis
// at once with a 1s interval. The test reports how long until the cluster's
// figure is complete and exact. AUREDIS_EIGHT_USERS sets users (default
// 20000; docs/benchmarks.md's figure is for 1000000).
func TestEightInstancesBecomeExact(t *testing.T) {
	users := 20_000
	if v := os.Getenv("AUREDIS_EIGHT_USERS"); v != "" {
		var err error
		users, err = strconv.Atoi(v)
		require.NoError(t, err)
	}
	s := startServer(t)
	now := newClock()
	last := map[string]time.Time{}
	var trs []*activeusers.Tracker
	for i := range 8 {
		tr := newTracker(now)
		base := i * users * 3 / 4
		for u := base; u < base+users; u++ {
			id := "acct-" + strconv.Itoa(u)
			// Ages from 2 to 52 minutes: no account within seconds of a
			// window's edge, whichever second the figure is read in (the
			// instances' offsets from Redis's clock are measured under the
			// load of eight first pushes, to a second or two).
			at := now.Now().Add(-time.Duration(120+u%3000) * time.Second)
			tr.SeenAt(id, at)
			last[id] = at // the same time on every instance that sees it
		}
		trs = append(trs, tr)
	}
	start := time.Now()
	var cs []*Cluster
	for _, tr := range trs {
		rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: s.sock})
		c, err := New(tr, rdb, WithInterval(time.Second), WithBackoff(10*time.Millisecond, time.Second))
		require.NoError(t, err)
		t.Cleanup(func() { c.Close(); rdb.Close() })
		cs = append(cs, c)
	}
	var r Result
	require.Eventually(t, func() bool {
		var err error
		at := now.Now()
		r, err = cs[0].CountsAt(context.Background(), at, windows...)
		if err != nil || !r.IsComplete() {
			return false
		}
		require.Equal(t, union(at, last), r.Counts, "complete means exact: %+v", r)
		return true
	}, 10*time.Minute, 50*time.Millisecond)
	took := time.Since(start)
	failures := 0
	for _, c := range cs {
		st := c.Stats()
		failures += st.Failures
		if st.Failures > 0 {
			t.Logf("instance %s: %d failed pushes, %d resumed; last error %v", st.Instance, st.Failures, st.Resumed, st.LastErr)
		}
	}
	t.Logf("8 instances × %d accounts (%d distinct) exact and complete from an empty Redis after %v (%d failed pushes)",
		users, r.Counts[3], took.Round(10*time.Millisecond), failures)
}
