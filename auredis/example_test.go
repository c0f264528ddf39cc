package auredis_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/activeusers/activeusers"
	"github.com/activeusers/activeusers/auredis"
)

// Two gateway instances — here in one process, each with its own tracker —
// push to one Redis, and either reads the cluster's distinct count: bob, seen
// by both, counts once. A figure is complete once every live instance's
// latest push is in it and a new cluster has settled (two push intervals and
// a timeout after its first push); until then IsComplete is false and the
// counts may miss accounts.
func Example() {
	opt, err := redis.ParseURL(os.Getenv("REDIS_URL")) // as redis://redis:6379/0
	if err != nil {
		fmt.Println(err)
		return
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()

	var instances []*auredis.Cluster
	for _, accounts := range [][]string{{"alice", "bob"}, {"bob", "carol"}} {
		t := activeusers.New()
		defer t.Close()
		for _, a := range accounts {
			t.Seen(a)
		}
		c, err := auredis.New(t, rdb, auredis.WithInterval(100*time.Millisecond), auredis.WithTimeout(time.Second))
		if err != nil {
			fmt.Println(err)
			return
		}
		defer c.Close() // a last push, then it leaves the cluster
		instances = append(instances, c)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		r, err := instances[0].Counts(ctx, 5*time.Minute, 24*time.Hour)
		if err == nil && r.IsComplete() {
			fmt.Printf("5m: %d, 24h: %d, from %d instances\n", r.Counts[0], r.Counts[1], r.Instances)
			return
		}
		if ctx.Err() != nil {
			fmt.Println("no complete figure:", err, r.Complete, "of", r.Instances, "settling", r.Settling)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Output: 5m: 3, 24h: 3, from 2 instances
}

// noRedis is why the examples cannot run here, or "".
var noRedis string

// TestMain starts a redis-server of the examples' own and points REDIS_URL at
// it (a Unix socket, so that nothing else can take its address; never a
// REDIS_URL the environment had, which may be a real one), or, without
// redis-server, skips the examples and says so through TestExamplesHaveRedis.
func TestMain(m *testing.M) {
	flag.Parse()
	os.Unsetenv("REDIS_URL")
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		noRedis = "redis-server not found (apt-get install -y redis-server): Example did not run"
		skip := "^Example"
		if s := flag.Lookup("test.skip").Value.String(); s != "" {
			skip = s + "|" + skip
		}
		flag.Set("test.skip", skip)
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "auredis-example")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sock := filepath.Join(dir, "redis.sock")
	cmd := exec.Command(bin, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700", "--dir", dir,
		"--save", "", "--appendonly", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("REDIS_URL", "unix://"+sock)
	if err := ping(10 * time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "the examples' redis-server did not start:", err)
		cmd.Process.Kill()
		os.Exit(1)
	}
	code := m.Run()
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestExamplesHaveRedis checks that the server the examples use answers, so
// that a failing example means the example; without a server it is the loud
// skip that stands for the examples.
func TestExamplesHaveRedis(t *testing.T) {
	if noRedis != "" {
		if os.Getenv("CI") != "" {
			t.Fatal(noRedis + ": .ci/run should have installed it")
		}
		t.Skip(noRedis)
	}
	if err := ping(time.Second); err != nil {
		t.Fatalf("the examples' Redis at %s: %v", os.Getenv("REDIS_URL"), err)
	}
}

// ping waits up to d for the Redis at REDIS_URL to answer.
func ping(d time.Duration) error {
	opt, err := redis.ParseURL(os.Getenv("REDIS_URL"))
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	deadline := time.Now().Add(d)
	for {
		err := rdb.Ping(context.Background()).Err()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
