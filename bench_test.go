package activeusers

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks users run with go test -bench. Sub-benchmarks vary the initial shard count
// and compare the Tracker with the single-mutex design it replaces (the model
// from tracker_test.go), so that
//
//	go test -run='^$' -bench=. -count=10 | benchstat -col /impl -
//
// puts them side by side. The cross-library comparison (sync.Map, xsync, the
// floor) lives in the benchmarks/ module, which may import them.

var benchShards = []int{1, 4, 16, 64, 256}

var (
	uidOnce sync.Once
	uidPool []string
)

// uids returns a shared pool of distinct uids, built once: their strings stay
// alive for the whole run, so no benchmark pays for making them.
func uids(n int) []string {
	uidOnce.Do(func() {
		uidPool = make([]string, 1<<21)
		for i := range uidPool {
			uidPool[i] = "account-" + strconv.Itoa(i*7919)
		}
	})
	if n > len(uidPool) {
		panic("uid pool too small")
	}
	return uidPool[:n]
}

// seenTracker is what the Seen benchmarks drive.
type seenTracker interface{ Seen(string) }

// modelTracker is the reference model behind a mutex: the design replaced.
type modelTracker struct {
	mu  sync.Mutex
	m   *model
	now time.Time // the model's clock, set under mu by each call
}

func newModelTracker() *modelTracker {
	t := &modelTracker{}
	t.m = newModel(DefaultRetention, &t.now)
	return t
}

func (t *modelTracker) Seen(uid string) {
	now := time.Now()
	t.mu.Lock()
	t.now = now
	t.m.seenAt(uid, now)
	t.mu.Unlock()
}

func (t *modelTracker) Counts(ws ...time.Duration) []int {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.now = now
	return t.m.countsAt(now, ws...)
}

type impl struct {
	name string
	make func() seenTracker
}

func impls() []impl {
	is := []impl{{"impl=model", func() seenTracker { return newModelTracker() }}}
	for _, n := range benchShards {
		is = append(is, impl{fmt.Sprintf("impl=tracker/shards=%d", n), func() seenTracker { return New(WithShards(n)) }})
	}
	return is
}

func closeIt(t any) {
	if c, ok := t.(interface{ Close() error }); ok {
		c.Close()
	}
}

// BenchmarkSeen measures Seen from 16 goroutines per core: of returning users
// picked at random from a million already tracked, and of new users.
func BenchmarkSeen(b *testing.B) {
	const users = 1 << 20
	pool := uids(users)
	b.Run("returning", func(b *testing.B) {
		for _, im := range impls() {
			b.Run(im.name, func(b *testing.B) {
				tr := im.make()
				defer closeIt(tr)
				for _, u := range pool {
					tr.Seen(u)
				}
				var seed atomic.Uint64
				b.ReportAllocs()
				b.SetParallelism(16)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					x := seed.Add(0x9E3779B97F4A7C15) // per-goroutine xorshift state
					for pb.Next() {
						x ^= x << 13
						x ^= x >> 7
						x ^= x << 17
						tr.Seen(pool[x&(users-1)])
					}
				})
			})
		}
	})
	b.Run("new", func(b *testing.B) {
		all := uids(1 << 21)
		for _, im := range impls() {
			b.Run(im.name, func(b *testing.B) {
				// Every op sees a uid its tracker has not seen: op i goes to
				// tracker i/len(all), each fresh.
				trs := make([]seenTracker, b.N/len(all)+1)
				for i := range trs {
					trs[i] = im.make()
				}
				defer func() {
					for _, tr := range trs {
						closeIt(tr)
					}
				}()
				var next atomic.Int64
				b.ReportAllocs()
				b.SetParallelism(16)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := int(next.Add(1) - 1)
						trs[i/len(all)].Seen(all[i%len(all)])
					}
				})
			})
		}
	})
}

// BenchmarkCounts measures one Counts call of three windows over n users.
func BenchmarkCounts(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		pool := uids(n)
		for _, im := range impls() {
			if im.name != "impl=model" && im.name != fmt.Sprintf("impl=tracker/shards=%d", DefaultShards) {
				continue
			}
			for _, cold := range []bool{false, true} {
				name := fmt.Sprintf("users=%d/%s", n, im.name)
				if cold {
					name += "/cache=cold"
				}
				b.Run(name, func(b *testing.B) {
					tr := im.make()
					defer closeIt(tr)
					for _, u := range pool {
						tr.Seen(u)
					}
					c := tr.(interface{ Counts(...time.Duration) []int })
					count := func() { c.Counts(time.Hour, 24*time.Hour, 7*24*time.Hour) }
					if cold {
						coldLoop(b, count)
					} else {
						b.ReportAllocs()
						b.ResetTimer()
						for b.Loop() {
							count()
						}
					}
					runtime.KeepAlive(tr)
				})
			}
		}
	}
}

// coldLoop times call b.N times, writing 64 MiB before each outside the
// timer. Back to back, a count finds what the last one read still in the
// last-level cache if it fits (a million accounts' seconds are 5.7 MB); a
// scrape every few seconds in a busy process finds it gone.
func coldLoop(b *testing.B, call func()) {
	evict := make([]byte, 64<<20)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := 0; j < len(evict); j += 64 {
			evict[j]++
		}
		b.StartTimer()
		call()
	}
}

// BenchmarkSnapshot writes and reads a snapshot of a million users; the
// bytes/user metric is the file size.
func BenchmarkSnapshot(b *testing.B) {
	const n = 1_000_000
	for _, secret := range []bool{false, true} {
		var opts []Option
		if secret {
			opts = append(opts, WithSecret([]byte("a benchmark's 16+ byte secret")))
		}
		b.Run(fmt.Sprintf("secret=%v", secret), func(b *testing.B) { benchmarkSnapshot(b, n, opts) })
	}
}

func benchmarkSnapshot(b *testing.B, n int, opts []Option) {
	tr := New(opts...)
	defer tr.Close()
	for _, u := range uids(n) {
		tr.Seen(u)
	}
	var buf bytes.Buffer
	b.Run("op=WriteTo/users=1M", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			if _, err := tr.WriteTo(&buf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(buf.Len())/float64(n), "bytes/user")
	})
	b.Run("op=AppendEntries/users=1M", func(b *testing.B) {
		var es []Entry
		for b.Loop() {
			es = tr.AppendEntries(es[:0], time.Time{})
		}
	})
	b.Run("op=ReadFrom/users=1M", func(b *testing.B) {
		var snap bytes.Buffer // its own input: -bench may select this alone
		if _, err := tr.WriteTo(&snap); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			dst := New(append([]Option{WithClock(time.Now)}, opts...)...)
			if _, err := dst.ReadFrom(bytes.NewReader(snap.Bytes())); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSeenID: a numeric id, returning, from 16 goroutines per core; 0
// allocs.
func BenchmarkSeenID(b *testing.B) {
	tr := New()
	defer tr.Close()
	const n = 1 << 20
	for i := range uint64(n) {
		tr.SeenID(i)
	}
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var i uint64
		for pb.Next() {
			tr.SeenID(i % n)
			i += 977
		}
	})
}

// segmentValues are what the segment benchmarks send: ten plans, and two
// platforms a user may be on.
var (
	benchPlans     = []string{"free", "pro", "team", "enterprise", "edu", "trial", "startup", "nonprofit", "partner", "internal"}
	benchPlatforms = []string{"ios", "android", "web"}
)

// BenchmarkSegments compares SeenIn with one or two dimensions against Seen
// on the same tracker shape (returning and new users, 16 goroutines a core),
// and CountsBy over a million accounts in ten segments against Counts over a
// million plain accounts:
//
//	go test -run='^$' -bench=Segments -count=6 . | benchstat -col /call -
func BenchmarkSegments(b *testing.B) {
	const users = 1 << 20
	pool := uids(users)
	calls := []struct {
		name string
		opts []Option
		seen func(t *Tracker, uid string, i uint64)
	}{
		{"call=Seen", nil, func(t *Tracker, uid string, _ uint64) { t.Seen(uid) }},
		{"call=SeenIn/dims=1", []Option{WithDimensions("plan")}, func(t *Tracker, uid string, i uint64) {
			t.SeenIn(uid, benchPlans[i%10])
		}},
		{"call=SeenIn/dims=2", []Option{WithDimensions("plan", "platform")}, func(t *Tracker, uid string, i uint64) {
			t.SeenIn(uid, benchPlans[i%10], benchPlatforms[i%3])
		}},
	}
	for _, c := range calls {
		b.Run("users=returning/"+c.name, func(b *testing.B) {
			tr := New(c.opts...)
			defer tr.Close()
			for i, u := range pool {
				c.seen(tr, u, uint64(i))
			}
			var seed atomic.Uint64
			b.ReportAllocs()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				x := seed.Add(0x9E3779B97F4A7C15)
				for pb.Next() {
					x ^= x << 13
					x ^= x >> 7
					x ^= x << 17
					i := x & (users - 1)
					c.seen(tr, pool[i], i) // the same values as before: a returning pair
				}
			})
		})
		b.Run("users=new/"+c.name, func(b *testing.B) {
			all := uids(1 << 21)
			trs := make([]*Tracker, b.N/len(all)+1)
			for i := range trs {
				trs[i] = New(c.opts...)
				defer trs[i].Close()
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(next.Add(1) - 1)
					c.seen(trs[i/len(all)], all[i%len(all)], uint64(i))
				}
			})
		})
	}
	windows := []time.Duration{time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}
	b.Run("users=1M/call=Counts", func(b *testing.B) {
		tr := New()
		defer tr.Close()
		for _, u := range uids(1_000_000) {
			tr.Seen(u)
		}
		b.ReportAllocs()
		for b.Loop() {
			tr.Counts(windows...)
		}
	})
	b.Run("users=1M/call=CountsBy/segments=10", func(b *testing.B) {
		tr := New(WithDimensions("plan"))
		defer tr.Close()
		for i, u := range uids(1_000_000) {
			tr.SeenIn(u, benchPlans[i%10])
		}
		b.ReportAllocs()
		for b.Loop() {
			tr.CountsBy(windows...)
		}
	})
	b.Run("users=1M/call=Counts/cache=cold", func(b *testing.B) {
		tr := New()
		defer tr.Close()
		for _, u := range uids(1_000_000) {
			tr.Seen(u)
		}
		coldLoop(b, func() { tr.Counts(windows...) })
	})
	b.Run("users=1M/call=CountsBy/segments=10/cache=cold", func(b *testing.B) {
		tr := New(WithDimensions("plan"))
		defer tr.Close()
		for i, u := range uids(1_000_000) {
			tr.SeenIn(u, benchPlans[i%10])
		}
		coldLoop(b, func() { tr.CountsBy(windows...) })
	})
}
