package auredis

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// An Option configures a Cluster.
type Option func(*config)

type config struct {
	name                   string
	keys                   int
	interval, fullEvery    time.Duration
	batch                  int
	minBackoff, maxBackoff time.Duration
	timeout                time.Duration
	instanceTTL            time.Duration
	logger                 *slog.Logger
	errs                   []string

	// For tests of other things than what they change: no push loop (pushes
	// only by Push), and the registry's grace (registry.go) instead of its
	// bound from the intervals.
	manual bool
	settle time.Duration
}

// Defaults of the options below.
const (
	DefaultName      = "activeusers"
	DefaultInterval  = 10 * time.Second
	DefaultFullEvery = 15 * time.Minute
	DefaultBatch     = 2000
	// DefaultTimeout bounds one round trip to Redis: a pipeline of at most
	// 16 batches (32k accounts by default), which a Redis 7.0 on this
	// project's 2-core test machine applies in about 0.1 s alone, and in well
	// under the timeout with eight instances pushing at once.
	DefaultTimeout = 5 * time.Second
	// DefaultClusterKeys is the key count for a *redis.ClusterClient: every
	// master of a cluster of up to 16 (with equal, consecutive slot ranges, as
	// redis-cli --cluster create makes them) holds a share. Any other client
	// gets one key.
	DefaultClusterKeys = 16
)

func defaultConfig() config {
	return config{
		name: DefaultName, interval: DefaultInterval, fullEvery: DefaultFullEvery, batch: DefaultBatch,
		minBackoff: 100 * time.Millisecond, timeout: DefaultTimeout, // maxBackoff: from the interval, in New
	}
}

// WithLogger reports the push loop's failures (at Warn, with the error and the
// next wait), its first success after them and every push of all it holds
// because Redis lost data (at Info) to logger. Default: nothing is logged;
// Stats carries the last error. go-redis logs its own connection errors
// ("failed to dial") to the process's standard error through a logger of its
// own that only redis.SetLogger replaces, for the whole process: to send those
// to slog too, call redis.SetLogger(auredis.GoRedisLogger(logger)) once in
// main.
func WithLogger(logger *slog.Logger) Option {
	return func(c *config) {
		if logger == nil {
			c.errs = append(c.errs, "WithLogger(nil): the logger must not be nil")
		}
		c.logger = logger
	}
}

// GoRedisLogger adapts logger to go-redis's logging interface, for
// redis.SetLogger: each line go-redis would print goes to logger at Warn, with
// attribute source=go-redis.
func GoRedisLogger(logger *slog.Logger) interface {
	Printf(ctx context.Context, format string, v ...any)
} {
	return goRedisLogger{logger}
}

type goRedisLogger struct{ l *slog.Logger }

func (g goRedisLogger) Printf(ctx context.Context, format string, v ...any) {
	g.l.WarnContext(ctx, fmt.Sprintf(format, v...), "source", "go-redis")
}

// WithName sets the name the cluster's Redis keys derive from: K sorted sets
// "{name:j.n}" (each with a hash tag of its own) and a hash
// "{name}:instances", the registry of instances, whose node's clock is the
// cluster's time reference. Every instance of one cluster must
// use the same name; different names are independent clusters on one Redis.
// Default: DefaultName ("activeusers").
func WithName(name string) Option {
	return func(c *config) {
		if name == "" {
			c.errs = append(c.errs, "WithName(\"\"): the name must not be empty")
		}
		c.name = name
	}
}

// WithKeys spreads the accounts over k sorted sets, each account in one chosen
// by its hash, so that the sum of the k ZCOUNTs is exact. Their hash tags fall
// in k equal ranges of Redis Cluster's slots, so on a cluster every master
// holding one of those ranges holds a share of the memory and of the ZADD
// work. Every instance of a cluster must use the same k: a push refuses to
// run against a cluster registered with another. It must be between 1 and
// MaxKeys. Default: DefaultClusterKeys (16) for a *redis.ClusterClient, 1
// otherwise.
func WithKeys(k int) Option {
	return func(c *config) {
		if k < 1 || k > MaxKeys {
			c.errs = append(c.errs, fmt.Sprintf("WithKeys(%d): the key count must be between 1 and %d", k, MaxKeys))
		}
		c.keys = k
	}
}

// WithInterval sets how often the accounts seen since the last push are
// pushed (each wait varies by ±10% at random, so that instances started
// together do not push together). Counts lag the instances by up to one
// interval. Default: DefaultInterval (10s).
func WithInterval(d time.Duration) Option {
	return func(c *config) { c.interval = c.positive("WithInterval", "interval", d) }
}

// WithFullPushEvery sets how often a push sends every account held rather than
// only those recorded since the previous push (which include activity recorded
// at an earlier time, by SeenAt or a snapshot loaded: see activeusers.Cursor).
// A push is full anyway, key by key, whenever Redis no longer holds this
// instance's last push; the periodic one repairs what no check can see, such
// as members removed by hand. Default: DefaultFullEvery (15m).
func WithFullPushEvery(d time.Duration) Option {
	return func(c *config) { c.fullEvery = c.positive("WithFullPushEvery", "interval", d) }
}

// WithBatch sets how many members one ZADD carries. Default: DefaultBatch
// (2000).
func WithBatch(n int) Option {
	return func(c *config) {
		if n < 1 || n > 1_000_000 {
			c.errs = append(c.errs, fmt.Sprintf("WithBatch(%d): the batch must be between 1 and 1000000", n))
		}
		c.batch = n
	}
}

// WithBackoff sets the wait after a failed push: a random wait between half of
// and the whole of a bound that starts at min and doubles on each failure up
// to max, back to the interval after a success. The randomness keeps
// instances that failed together from retrying together. The longer of max
// and the interval (plus a timeout) is how long the others wait for this
// instance to write to a registry Redis lost before they call a figure
// complete (Result.Settling). Default: 100ms, and the interval up to 30s.
func WithBackoff(min, max time.Duration) Option {
	return func(c *config) {
		if min <= 0 || max < min {
			c.errs = append(c.errs, fmt.Sprintf("WithBackoff(%v, %v): need 0 < min ≤ max", min, max))
		}
		c.minBackoff, c.maxBackoff = min, max
	}
}

// WithTimeout bounds each round trip of a push to Redis. A push is as many
// round trips as its size needs (one per 16 batches), each with this deadline,
// and keeps its progress across failures, so a large push is never cut off as
// a whole. Default: DefaultTimeout (5s).
func WithTimeout(d time.Duration) Option {
	return func(c *config) { c.timeout = c.positive("WithTimeout", "timeout", d) }
}

// WithInstanceTTL sets how long an instance that has stopped reaching Redis
// is still expected by the others: until then a figure without its latest
// push is reported incomplete; after, the instance counts as gone (its
// accounts stay until they expire). An instance that shuts down cleanly
// leaves at once. Default: three times the longer of the interval and the
// maximum backoff (30s with the defaults).
func WithInstanceTTL(d time.Duration) Option {
	return func(c *config) { c.instanceTTL = c.positive("WithInstanceTTL", "TTL", d) }
}

// positive returns d, noting an error in the option's name if it is not
// positive.
func (c *config) positive(option, what string, d time.Duration) time.Duration {
	if d <= 0 {
		c.errs = append(c.errs, fmt.Sprintf("%s(%v): the %s must be positive", option, d, what))
	}
	return d
}
