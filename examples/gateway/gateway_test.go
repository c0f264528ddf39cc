package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// need returns the path of a program the test needs. In CI (CI=true) its
// absence fails the test, since .ci/run installs it; elsewhere the test is
// skipped with a note on how to install it.
func need(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found: .ci/run should have installed it", name)
		}
		pkg := map[string]string{"redis-server": "redis-server", "redis-cli": "redis-tools", "prometheus": "prometheus", "promtool": "prometheus"}[name]
		t.Skipf("%s not found (apt-get install -y %s)", name, pkg)
	}
	return p
}

// startRedis starts a redis-server on a unix socket in a folder of its own,
// without persistence, stopped when the test ends, and returns the socket.
func startRedis(t *testing.T) string {
	t.Helper()
	redisServer := need(t, "redis-server")
	dir := t.TempDir()
	sock := filepath.Join(dir, "redis.sock")
	rs := exec.Command(redisServer, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700", "--dir", dir, "--save", "", "--appendonly", "no", "--loglevel", "warning")
	require.NoError(t, rs.Start())
	t.Cleanup(func() {
		rs.Process.Signal(syscall.SIGTERM)
		rs.Wait()
	})
	require.Eventually(t, func() bool { _, err := os.Stat(sock); return err == nil }, 10*time.Second, 10*time.Millisecond)
	return sock
}

// startGateway runs the gateway in-process on a loopback port with no
// synthetic traffic, and stops it when the test ends.
func startGateway(t *testing.T, extra ...string) string {
	t.Helper()
	c, err := parse(append([]string{"-addr", "127.0.0.1:0", "-rate", "0"}, extra...), io.Discard)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, c, io.Discard, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("gateway did not start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return addr
}

// drive sends one authenticated request per account, and some anonymous ones.
func driveAccounts(t *testing.T, addr string, accounts []string) {
	t.Helper()
	for i, a := range accounts {
		req, err := http.NewRequest("GET", "http://"+addr+"/api/orders/"+strconv.Itoa(i), nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+a)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	resp, err := http.Get("http://" + addr + "/api/orders/anon")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

func accounts(n int) []string {
	out := make([]string, 0, 2*n)
	for i := range n {
		out = append(out, fmt.Sprintf("acct-%d", i), fmt.Sprintf("acct-%d", i)) // each twice: counted once
	}
	return out
}

// TestEndToEndPrometheus: a real Prometheus scrapes the gateway every second
// until active_users{window="24h"} equals the accounts driven through the API.
func TestEndToEndPrometheus(t *testing.T) {
	prom := need(t, "prometheus")
	addr := startGateway(t)
	const n = 137
	driveAccounts(t, addr, accounts(n))

	query, promLog := startPrometheus(t, prom, addr)
	deadline := time.Now().Add(60 * time.Second)
	var last float64
	for {
		v, ok := query(`active_users{window="24h",plan="",platform=""}`)
		if ok && v == n {
			break
		}
		last = v
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus never saw %d accounts (last %v); its log:\n%s", n, last, promLog())
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Every scrape so far succeeded, and the 7d window agrees.
	v, ok := query(`min_over_time(up{job="gateway"}[1m])`)
	assert.True(t, ok)
	assert.Equal(t, 1.0, v, "no failed scrape")
	v, ok = query(`active_users{window="7d",plan="",platform=""}`)
	assert.True(t, ok)
	assert.Equal(t, float64(n), v)
}

// startPrometheus runs a real Prometheus scraping targets every second, and
// returns a function that runs an instant query whose answer is one sample,
// and one that returns Prometheus's log.
func startPrometheus(t *testing.T, prom string, targets ...string) (query func(string) (float64, bool), log func() string) {
	t.Helper()
	promAddr, log := runPrometheus(t, prom, targets...)
	query = func(q string) (float64, bool) {
		resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return 0, false
		}
		defer resp.Body.Close()
		var r struct {
			Status string
			Data   struct {
				Result []struct {
					Value [2]any
				}
			}
		}
		if json.NewDecoder(resp.Body).Decode(&r) != nil || r.Status != "success" || len(r.Data.Result) != 1 {
			return 0, false
		}
		v, err := strconv.ParseFloat(r.Data.Result[0].Value[1].(string), 64)
		return v, err == nil
	}
	return query, log
}

// runPrometheus runs a real Prometheus scraping targets every second as job
// "gateway", and returns its address and a function that returns its log.
func runPrometheus(t *testing.T, prom string, targets ...string) (addr string, log func() string) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: gateway
    static_configs:
      - targets: ['%s']
`, strings.Join(targets, "', '"))), 0o644))
	promAddr := freePort(t)
	var buf syncBuffer
	cmd := exec.Command(prom, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &buf, &buf
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	return promAddr, buf.String
}

// TestClusterEndToEndPrometheus: two gateways on one real Redis, overlapping
// accounts driven through each, a real Prometheus scraping both. Each reports
// the cluster's union, overall and in every segment, and says it is complete
// and that it knows both.
func TestClusterEndToEndPrometheus(t *testing.T) {
	prom := need(t, "prometheus")
	sock := startRedis(t)

	flags := []string{"-redis", "unix://" + sock, "-push-every", "200ms"}
	a, b := startGateway(t, flags...), startGateway(t, flags...)
	all := accounts(150)
	driveAccounts(t, a, all[:200]) // accounts 0–99
	driveAccounts(t, b, all[100:]) // accounts 50–149
	query, promLog := startPrometheus(t, prom, a, b)
	want := map[string]float64{
		`min(active_users{window="24h",plan="",platform=""})`: 150,
		`max(active_users{window="24h",plan="",platform=""})`: 150,
		`min(active_users_cluster_complete)`:                  1,
		`min(active_users_cluster_instances{state="known"})`:  2,
		`count(active_users_cluster_reachable == 1)`:          2,
	}
	require.Eventually(t, func() bool {
		for q, v := range want {
			if got, ok := query(q); !ok || got != v {
				return false
			}
		}
		return true
	}, 60*time.Second, 250*time.Millisecond, "Prometheus sees the cluster's union from both gateways, complete; its log:\n%s", promLog())
	off, ok := query(`max(abs(active_users_cluster_clock_offset_seconds))`)
	assert.True(t, ok)
	assert.LessOrEqual(t, off, 1.0, "one machine, one clock: offsets within the second of resolution")
}

// TestExpositionParses: what /metrics serves passes promtool's checks.
func TestExpositionParses(t *testing.T) {
	promtool := need(t, "promtool")
	addr := startGateway(t)
	driveAccounts(t, addr, accounts(10))
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Contains(t, string(body), `active_users{plan="",platform="",window="24h"} 10`)
	assert.Contains(t, string(body), `active_users{plan="",platform="",window="5m"} 10`)
	assert.Contains(t, string(body), "go_goroutines")

	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	// promtool exits 1 for lint findings too; only the active_users lines
	// are ours to answer for, and they must have none.
	for _, line := range strings.Split(string(out), "\n") {
		assert.NotContains(t, line, "active_users", "promtool: %s", out)
	}
	if err != nil {
		t.Logf("promtool findings on other metrics: %s", out)
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "promtool ran")
	}
}

// TestRestartKeepsCounts builds the real binary, drives accounts through it,
// stops it with SIGTERM, starts it again on the same snapshot, and compares
// its counts before and after.
func TestRestartKeepsCounts(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "gateway")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	snap := filepath.Join(dir, "active.snap")

	start := func() (*exec.Cmd, string, *syncBuffer) {
		cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-rate", "0", "-snapshot", snap, "-save-every", "1h")
		log := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = log, log
		require.NoError(t, cmd.Start())
		var addr string
		require.Eventually(t, func() bool {
			_, rest, ok := strings.Cut(log.String(), "serving http://")
			addr, _, _ = strings.Cut(rest, "/")
			return ok && addr != ""
		}, 10*time.Second, 10*time.Millisecond, "the gateway starts")
		return cmd, addr, log
	}
	metric := func(addr string) string {
		resp, err := http.Get("http://" + addr + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		var lines []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "active_users{") {
				lines = append(lines, sc.Text())
			}
		}
		return strings.Join(lines, "\n")
	}

	cmd, addr, log := start()
	driveAccounts(t, addr, accounts(250))
	before := metric(addr)
	assert.Contains(t, before, `active_users{plan="",platform="",window="7d"} 250`)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "clean exit on SIGTERM: %s", log)
	assert.Contains(t, log.String(), "saved "+snap+": 250 accounts")

	cmd, addr, log = start()
	defer func() {
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
	}()
	assert.Contains(t, log.String(), "loaded "+snap+": 250 accounts")
	assert.Equal(t, before, metric(addr), "counts after the restart equal counts before it")
}

// syncBuffer is a bytes.Buffer a child process writes to while the test reads.
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

func TestFlagsRejected(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-users", "0"}, "-users 0: need at least 1 account"},
		{[]string{"-rate", "-5"}, "-rate -5: must be 0 (serve only) or more"},
		{[]string{"-save-every", "0s"}, "-save-every 0s: must be positive"},
		{[]string{"-progress", "0s"}, "-progress 0s: must be positive"},
		{[]string{"-duration", "-1s"}, "-duration -1s: must be 0"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"-redis", "localhost:6379"}, `-redis "localhost:6379": redis: invalid URL scheme`},
		{[]string{"-redis", "redis://a", "-redis-cluster", "b,c"}, "give one or the other"},
		{[]string{"-push-every", "0s"}, "-push-every 0s: must be positive"},
		{[]string{"-retention", "0d"}, `-retention "0d": not a whole number of days`},
		{[]string{"-windows", "1d,soon"}, `-windows: "soon": time: invalid duration`},
		{[]string{"-retention", "30d", "-windows", "1d,40d"}, "-windows 1d,40d with -retention 30d:"},
		{[]string{"-nope"}, "flag provided but not defined: -nope"},
	} {
		var stderr bytes.Buffer
		_, err := parse(c.args, &stderr)
		require.Error(t, err, "%v", c.args)
		assert.Contains(t, stderr.String(), c.want, "%v: the reason", c.args)
		assert.Contains(t, stderr.String(), "gateway: a demo API gateway", "%v: and the usage", c.args)
	}
}

// TestBinaryRefusesBadStarts runs the built binary as a user would: bad flags
// exit 2 with the reason and the usage; a snapshot it cannot save exits 1
// saying why, before serving anything.
func TestBinaryRefusesBadStarts(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "gateway")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	short := filepath.Join(dir, "short-secret")
	require.NoError(t, os.WriteFile(short, []byte("short\n"), 0o600))
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-rate", "-5"}, 2, "gateway: -rate -5: must be 0 (serve only) or more"},
		{[]string{"-users", "0"}, 2, "gateway: -users 0"},
		{[]string{"-save-every", "0s"}, 2, "gateway: -save-every 0s"},
		{[]string{"-addr", "127.0.0.1:0", "-snapshot", filepath.Join(dir, "missing", "a.snap")}, 1, "cannot save"},
		{[]string{"-addr", "127.0.0.1:0", "-secret-file", filepath.Join(dir, "missing")}, 1, "-secret-file: open"},
		{[]string{"-addr", "127.0.0.1:0", "-secret-file", short}, 1, "5 bytes, need at least 16"},
	} {
		cmd := exec.Command(bin, c.args...)
		var stderr, stdout bytes.Buffer
		cmd.Stderr, cmd.Stdout = &stderr, &stdout
		err := cmd.Run()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "%v: %s", c.args, stdout.String())
		assert.Equal(t, c.code, exit.ExitCode(), "%v", c.args)
		assert.Contains(t, stderr.String(), c.want, "%v", c.args)
		assert.NotContains(t, stdout.String(), "serving", "%v", c.args)
	}
}

// TestMonthlyActiveUsers: with -retention 30d -windows 1d,7d,30d the demo
// exports DAU, WAU and MAU.
func TestMonthlyActiveUsers(t *testing.T) {
	addr := startGateway(t, "-retention", "30d", "-windows", "1d,7d,30d")
	driveAccounts(t, addr, accounts(12))
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, w := range []string{"24h", "7d", "30d"} { // labels as activeusers.WindowLabel writes them
		assert.Contains(t, string(body), `active_users{plan="",platform="",window="`+w+`"} 12`)
	}
	assert.NotContains(t, string(body), `window="5m"`)
}

var (
	testPlans     = []string{"free", "pro", "enterprise"}
	testPlatforms = []string{"ios", "android", "web"}
)

// driveSegments sends accounts from to to-1 through the API with a plan and
// a platform each; every fourth account comes from a second platform too.
// It returns the accounts it drove in each segment.
func driveSegments(t *testing.T, addr string, from, to int) map[string]map[string]bool {
	t.Helper()
	in := map[string]map[string]bool{}
	add := func(seg, a string) {
		if in[seg] == nil {
			in[seg] = map[string]bool{}
		}
		in[seg][a] = true
	}
	send := func(a, plan, platform string) {
		req, err := http.NewRequest("GET", "http://"+addr+"/api/x", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+a)
		req.Header.Set("X-Plan", plan)
		req.Header.Set("X-Platform", platform)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		add(`plan="`+plan+`"`, a)
		add(`platform="`+platform+`"`, a)
	}
	for i := from; i < to; i++ {
		a := "acct-" + strconv.Itoa(i)
		send(a, testPlans[i%3], testPlatforms[i%3])
		if i%4 == 0 {
			send(a, testPlans[i%3], testPlatforms[(i+1)%3])
		}
	}
	return in
}

// segmentQueries returns, for each segment, the PromQL selecting its 24h
// series and the count it should have, plus the overall series'.
func segmentQueries(agg string, in map[string]map[string]bool, overall int) map[string]float64 {
	want := map[string]float64{agg + `(active_users{window="24h",plan="",platform=""})`: float64(overall)}
	for seg, accts := range in {
		other := `platform=""`
		if strings.HasPrefix(seg, "platform") {
			other = `plan=""`
		}
		want[agg+`(active_users{window="24h",`+seg+`,`+other+`})`] = float64(len(accts))
	}
	return want
}

// TestSegmentsEndToEndPrometheus: the demo counts by plan and platform out
// of the box; a real Prometheus scraping it sees every segment's series equal
// to the accounts driven in it (an account on two platforms in both), the
// overall series with the dimension labels absent, and nothing folded.
func TestSegmentsEndToEndPrometheus(t *testing.T) {
	prom := need(t, "prometheus")
	addr := startGateway(t)
	in := driveSegments(t, addr, 0, 120)
	require.Len(t, in, 6)
	query, promLog := startPrometheus(t, prom, addr)
	want := segmentQueries("sum", in, 120)
	want[`count(active_users{window="24h",plan!=""})`] = 4 // free, pro, enterprise and the overflow value
	want[`sum(active_users_values_folded_total)`] = 0
	want[`count(active_users{window="24h"} unless active_users{plan!=""} unless active_users{platform!=""})`] = 1 // the overall series has neither label
	require.Eventually(t, func() bool {
		for q, v := range want {
			if got, ok := query(q); !ok || got != v {
				return false
			}
		}
		return true
	}, 60*time.Second, 250*time.Millisecond, "Prometheus sees every segment as driven; its log:\n%s", promLog())
	share, ok := query(`active_users{window="24h",plan="pro"} / ignoring(plan) group_left active_users{window="24h",plan="",platform=""}`)
	assert.True(t, ok, "the guide's share-per-plan query runs")
	assert.InDelta(t, 40.0/120, share, 1e-9)
}
