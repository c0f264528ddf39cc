// Command gateway is a small API gateway that counts its active accounts with
// activeusers and exposes them, with the Go runtime's metrics, on /metrics:
//
//	go run ./examples/gateway                  # drives itself with synthetic traffic
//	curl -s localhost:8080/metrics | grep active_users
//
// Requests to /api/ carry "Authorization: Bearer <account>" (a real gateway
// would verify a token; here the token is the account id). Unauthenticated
// requests get 401 and are not counted. With -snapshot the counts survive
// restarts: the file is loaded at start, saved every -save-every and on
// SIGINT/SIGTERM. With -redis (or -redis-cluster) several gateways report the
// cluster's counts, with gauges saying whether the figure is complete.
//
// Accounts are also counted by plan and platform (-dimensions), read from the
// X-Plan and X-Platform headers (a real gateway would read the plan from the
// verified token); the synthetic traffic sends them, so /metrics shows the
// breakdown:
//
//	active_users{plan="pro",window="24h"} 1249
//	active_users{platform="ios",window="24h"} 1710
//
// Several gateways on one Redis:
//
//	go run ./examples/gateway -redis redis://127.0.0.1:6379 -addr :8080
//	go run ./examples/gateway -redis redis://127.0.0.1:6379 -addr :8081
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/activeusers/activeusers"
	"github.com/activeusers/activeusers/auprom"
	"github.com/activeusers/activeusers/auredis"
)

type config struct {
	addr      string
	users     int
	rate      int
	duration  time.Duration
	progress  time.Duration
	snapshot  string
	saveEvery time.Duration
	redis     string
	cluster   string
	pushEvery time.Duration
	secret    string
	retention time.Duration
	windows   []time.Duration
	dims      []string
}

func parse(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `gateway: a demo API gateway that counts its active accounts with activeusers.

It serves /api/ (a request's account is its "Authorization: Bearer <account>"
token; anonymous requests get 401) and /metrics (active_users{window=...} per
window, by plan and platform, and Go's runtime metrics), and drives itself
with synthetic traffic unless -rate 0. With -snapshot the counts survive
restarts; with -redis several gateways report the cluster's counts.

  go run ./examples/gateway
  curl -s localhost:8080/metrics | grep active_users

Flags:
`)
		fs.PrintDefaults()
	}
	var c config
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to serve the API and /metrics on")
	fs.IntVar(&c.users, "users", 5000, "simulated accounts the synthetic traffic picks from")
	fs.IntVar(&c.rate, "rate", 1000, "synthetic requests per second (0: none, serve only)")
	fs.DurationVar(&c.duration, "duration", 0, "stop after this long (0: run until interrupted)")
	fs.DurationVar(&c.progress, "progress", 2*time.Second, "how often to print progress")
	fs.StringVar(&c.snapshot, "snapshot", "", "snapshot file: loaded at start, saved periodically and on SIGINT/SIGTERM")
	fs.DurationVar(&c.saveEvery, "save-every", time.Minute, "how often to save the snapshot")
	fs.StringVar(&c.redis, "redis", "", "Redis URL (redis://host:port/db, unix:///path/redis.sock) for cluster-wide counts")
	fs.StringVar(&c.cluster, "redis-cluster", "", "comma-separated addresses of a Redis Cluster's nodes, for cluster-wide counts")
	fs.DurationVar(&c.pushEvery, "push-every", 10*time.Second, "with -redis or -redis-cluster: how often to push to Redis")
	fs.StringVar(&c.secret, "secret-file", "", "file holding the secret (16+ bytes) under which account hashes leave the process (WithSecret)")
	retention := fs.String("retention", "7d", "how long an account is kept after its last request (30d for monthly active users)")
	windows := fs.String("windows", "5m,1h,24h,7d", "comma-separated windows exported on /metrics, each at most the retention (1d,7d,30d for DAU/WAU/MAU)")
	dims := fs.String("dimensions", "plan,platform", "comma-separated dimensions to count accounts by, each read from the header X-<Dimension> (\"\": overall only)")
	if err := fs.Parse(args); err != nil {
		return c, err // the flag package has printed the reason and the usage
	}
	var bad []string
	var err error
	if c.retention, err = parseDays(*retention); err != nil {
		bad = append(bad, fmt.Sprintf("-retention %q: %v", *retention, err))
	} else if c.retention < time.Second || c.retention > activeusers.MaxRetention {
		bad = append(bad, fmt.Sprintf("-retention %s: must be from 1s to %v", *retention, activeusers.MaxRetention))
	}
	for _, w := range strings.Split(*windows, ",") {
		d, err := parseDays(strings.TrimSpace(w))
		if err != nil {
			bad = append(bad, fmt.Sprintf("-windows: %q: %v", w, err))
			continue
		}
		c.windows = append(c.windows, d)
	}
	if *dims != "" {
		for _, d := range strings.Split(*dims, ",") {
			c.dims = append(c.dims, strings.TrimSpace(d))
		}
		func() {
			defer func() {
				if r := recover(); r != nil { // New names the bad dimension
					bad = append(bad, fmt.Sprintf("-dimensions %q: %v", *dims, r))
				}
			}()
			activeusers.New(activeusers.WithDimensions(c.dims...), activeusers.WithClock(time.Now))
		}()
	}
	if len(bad) == 0 {
		probe := activeusers.New(activeusers.WithRetention(c.retention), activeusers.WithClock(time.Now))
		if err := probe.CheckWindows(c.windows...); err != nil {
			bad = append(bad, fmt.Sprintf("-windows %s with -retention %s: %v", *windows, *retention, err))
		}
	}
	if fs.NArg() > 0 {
		bad = append(bad, fmt.Sprintf("unexpected argument %q (all settings are flags)", fs.Arg(0)))
	}
	if c.users < 1 {
		bad = append(bad, fmt.Sprintf("-users %d: need at least 1 account", c.users))
	}
	if c.rate < 0 {
		bad = append(bad, fmt.Sprintf("-rate %d: must be 0 (serve only) or more", c.rate))
	}
	if c.duration < 0 {
		bad = append(bad, fmt.Sprintf("-duration %v: must be 0 (until interrupted) or more", c.duration))
	}
	if c.progress <= 0 {
		bad = append(bad, fmt.Sprintf("-progress %v: must be positive", c.progress))
	}
	if c.saveEvery <= 0 {
		bad = append(bad, fmt.Sprintf("-save-every %v: must be positive", c.saveEvery))
	}
	if c.redis != "" && c.cluster != "" {
		bad = append(bad, "-redis and -redis-cluster: give one or the other")
	}
	if c.redis != "" {
		if _, err := redis.ParseURL(c.redis); err != nil {
			bad = append(bad, fmt.Sprintf("-redis %q: %v", c.redis, err))
		}
	}
	if c.pushEvery <= 0 {
		bad = append(bad, fmt.Sprintf("-push-every %v: must be positive", c.pushEvery))
	}
	if len(bad) > 0 {
		err := errors.New(strings.Join(bad, "; "))
		fmt.Fprintln(stderr, "gateway:", err)
		fs.Usage()
		return c, err
	}
	return c, nil
}

// parseDays is time.ParseDuration that also takes whole days ("30d").
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 1 {
			return 0, fmt.Errorf("not a whole number of days")
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

func main() {
	c, err := parse(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0) // asked for the usage, which is printed
	}
	if err != nil {
		os.Exit(2) // parse printed the reason and the usage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

// bearer is the account of an authenticated request, "" otherwise.
func bearer(r *http.Request) string {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return token
}

// newHandler is the gateway: the API behind the middleware, and /metrics
// (the cluster's counts if cluster is not nil).
func newHandler(t *activeusers.Tracker, windows []time.Duration, cluster *auredis.Cluster, served *atomic.Int64) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	opts := []auprom.Option{auprom.WithWindows(windows...)}
	if cluster != nil {
		opts = append(opts, auprom.WithCluster(func(ctx context.Context, ws ...time.Duration) (auprom.ClusterCounts, error) {
			r, err := cluster.CountsOrLocal(ctx, ws...)
			return auprom.ClusterCounts(r), err
		}, 2*time.Second))
	}
	col, err := auprom.NewCollector(t, opts...)
	if err != nil {
		return nil, err
	}
	reg.MustRegister(col, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		account := bearer(r)
		if account == "" {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, "unauthenticated", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"account": account, "path": r.URL.Path})
	})
	mux := http.NewServeMux()
	var mopts []activeusers.MiddlewareOption
	for _, d := range t.Dimensions() {
		header := http.CanonicalHeaderKey("X-" + d)
		mopts = append(mopts, activeusers.SegmentFrom(d, func(r *http.Request) string { return r.Header.Get(header) }))
	}
	mux.Handle("/api/", activeusers.Middleware(t, bearer, mopts...)(api))
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux, nil
}

// run serves until ctx is done (or -duration passes). If ready is not nil, it
// receives the address being served once the listener is up.
func run(ctx context.Context, c config, out io.Writer, ready chan<- string) (err error) {
	var topts []activeusers.Option
	if c.secret != "" {
		secret, err := os.ReadFile(c.secret)
		if err != nil {
			return fmt.Errorf("-secret-file: %w", err)
		}
		secret = bytes.TrimSpace(secret)
		if len(secret) < activeusers.MinSecretLen {
			return fmt.Errorf("-secret-file %s: %d bytes, need at least %d", c.secret, len(secret), activeusers.MinSecretLen)
		}
		topts = append(topts, activeusers.WithSecret(secret))
	}
	if len(c.dims) > 0 {
		topts = append(topts, activeusers.WithDimensions(c.dims...))
	}
	t := activeusers.New(append(topts, activeusers.WithRetention(c.retention))...)
	defer t.Close()
	var cluster *auredis.Cluster
	if c.redis != "" || c.cluster != "" {
		logger := slog.New(slog.NewTextHandler(out, nil))
		redis.SetLogger(auredis.GoRedisLogger(logger))
		var rdb redis.UniversalClient
		if c.redis != "" {
			o, _ := redis.ParseURL(c.redis) // checked by parse
			rdb = redis.NewClient(o)
		} else {
			rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(c.cluster, ",")})
		}
		defer rdb.Close()
		if cluster, err = auredis.New(t, rdb, auredis.WithInterval(c.pushEvery), auredis.WithLogger(logger)); err != nil {
			return err
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err = errors.Join(err, cluster.Shutdown(ctx))
		}()
	}
	var persist *activeusers.Persister
	if c.snapshot != "" {
		var err error
		if persist, err = activeusers.Persist(t, c.snapshot, c.saveEvery); err != nil {
			return fmt.Errorf("-snapshot %s: %w", c.snapshot, err)
		}
		fmt.Fprintf(out, "loaded %s: %d accounts\n", c.snapshot, t.Len())
	}
	var served atomic.Int64
	h, err := newHandler(t, c.windows, cluster, &served)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	fmt.Fprintf(out, "serving http://%s/api/ and http://%s/metrics\n", addr, addr)
	if ready != nil {
		ready <- addr
	}

	if c.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.duration)
		defer cancel()
	}
	if c.rate > 0 {
		go drive(ctx, "http://"+addr+"/api/hello", c.users, c.rate, c.dims)
	}
	tick := time.NewTicker(c.progress)
	defer tick.Stop()
	start := time.Now()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			return err
		case <-tick.C:
			n := t.Counts(5*time.Minute, 24*time.Hour)
			fmt.Fprintf(out, "%6s  requests %d  active_users{window=\"5m\"} %d  {window=\"24h\"} %d\n",
				time.Since(start).Round(time.Second), served.Load(), n[0], n[1])
		}
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdown)
	if persist != nil {
		if perr := persist.Close(); perr != nil {
			return errors.Join(err, perr)
		}
		fmt.Fprintf(out, "saved %s: %d accounts\n", c.snapshot, t.Len())
	}
	return err
}

// drive sends rate requests a second, each from an account picked at random
// among users, until ctx is done. One request in twenty is unauthenticated.
// Each account has a plan (most free, some pro, a few enterprise) and mostly
// one platform, sometimes another; they go in the headers of the dimensions
// the gateway counts by.
func drive(ctx context.Context, url string, users, rate int, dims []string) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	sem := make(chan struct{}, 64)
	start := time.Now()
	for sent := 0; ; {
		due := int(time.Since(start).Seconds() * float64(rate))
		for ; sent < due; sent++ {
			select {
			case <-ctx.Done():
				return
			case sem <- struct{}{}:
			}
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			if rand.IntN(20) != 0 {
				a := rand.IntN(users)
				req.Header.Set("Authorization", "Bearer acct-"+strconv.Itoa(a))
				for _, d := range dims {
					switch d {
					case "plan":
						req.Header.Set("X-Plan", []string{"free", "free", "free", "free", "free", "free", "pro", "pro", "pro", "enterprise"}[a%10])
					case "platform":
						req.Header.Set("X-Platform", []string{"ios", "android", "web"}[(a/10+rand.IntN(8)/7)%3])
					}
				}
			}
			go func() {
				defer func() { <-sem }()
				if resp, err := client.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}
