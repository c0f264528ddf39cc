package main

import (
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Workloads shared by the program and by go test -bench (bench_test.go).

// Windows every Counts in these workloads asks for, the last the retention
// activeusers is made with; -retention changes both (setRetention).
var (
	retention = 7 * 24 * time.Hour
	windows   = []time.Duration{5 * time.Minute, 24 * time.Hour, retention}
)

// setRetention makes activeusers keep d and every Counts ask for 5m, 24h and
// d (MAU: 720h).
func setRetention(d time.Duration) {
	retention = d
	windows = []time.Duration{5 * time.Minute, 24 * time.Hour, d}
}

// uid is the id of account i: short, like a real account id.
func uid(i int) string { return "acct-" + strconv.Itoa(i) }

var (
	poolMu sync.Mutex
	pool   []string
)

// uidPool returns n distinct uids that stay alive for the whole run, so that
// no measurement pays for making them and every contender gets the same ones.
func uidPool(n int) []string {
	poolMu.Lock()
	defer poolMu.Unlock()
	for len(pool) < n {
		pool = append(pool, uid(len(pool)))
	}
	return pool[:n]
}

// dropPool lets the shared uids go, so that measurements of the heap see only
// what a contender keeps.
func dropPool() {
	poolMu.Lock()
	pool = nil
	poolMu.Unlock()
}

// fill makes a contender hold n uids.
func fill(tr Tracker, uids []string) {
	for _, u := range uids {
		tr.Seen(u)
	}
}

// filled returns a new tracker of contender c holding users uids.
func filled(c Contender, users int) Tracker {
	tr := c.New()
	fill(tr, uidPool(users))
	return tr
}

// SeenReturning runs Seen of returning users, picked at random from the users
// tr already holds, from par goroutines per GOMAXPROCS.
func SeenReturning(b *testing.B, tr Tracker, users, par int) {
	uids := uidPool(users)
	var seed atomic.Uint64
	b.ReportAllocs()
	b.SetParallelism(par)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(seed.Add(1), 7))
		for pb.Next() {
			tr.Seen(uids[r.IntN(len(uids))])
		}
	})
}

// newUsersPer is how many new uids one tracker takes in SeenNew before the
// next op goes to a fresh one, so that every op inserts.
const newUsersPer = 1 << 21

// SeenNew runs Seen of users the tracker has never seen (insert-heavy), from 16
// goroutines per GOMAXPROCS.
func SeenNew(b *testing.B, c Contender) {
	uids := uidPool(newUsersPer)
	trs := make([]Tracker, b.N/newUsersPer+1)
	for i := range trs {
		trs[i] = c.New()
	}
	defer func() {
		for _, tr := range trs {
			tr.Close()
		}
	}()
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1) - 1)
			trs[i/newUsersPer].Seen(uids[i%newUsersPer])
		}
	})
}

// CountsOver runs Counts of three windows over tr, which holds users uids.
func CountsOver(b *testing.B, tr Tracker, users int) {
	b.ReportAllocs()
	for b.Loop() {
		if got := tr.Counts(windows...); got != nil && got[0] != users {
			b.Fatalf("counted %d of %d", got[0], users)
		}
	}
}

// coldCalls is how many calls CountsOverCold times: a fixed count, because
// the 64 MiB written before each call takes about 10 ms outside the timer,
// and a time-driven count would repeat a fast contender's call thousands of
// times.
const coldCalls = 50

// CountsOverCold is CountsOver with 64 MiB written before each call, outside
// the timer. Back to back, a count finds what the last one read still in the
// last-level cache if it fits (a million accounts' seconds are 5.4 MB); a
// scrape every few seconds in a busy process finds it gone.
func CountsOverCold(b *testing.B, tr Tracker, users int) {
	evict := make([]byte, 64<<20)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for j := 0; j < len(evict); j += 64 {
			evict[j]++
		}
		b.StartTimer()
		if got := tr.Counts(windows...); got != nil && got[0] != users {
			b.Fatalf("counted %d of %d", got[0], users)
		}
	}
}

// Heap is what a contender costs the heap and the GC once it holds n users.
type Heap struct {
	BytesPerUser     float64       // live heap, after the callers' uid strings are gone
	ScanBytesPerUser float64       // heap the GC must scan each cycle (/gc/scan/heap:bytes)
	FullGC           time.Duration // one runtime.GC with the tracker live
}

func heapNow() (live, scan uint64) {
	runtime.GC()
	runtime.GC() // the second cycle frees what the first one's finalisers released
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := []metrics.Sample{{Name: "/gc/scan/heap:bytes"}}
	metrics.Read(s)
	return ms.HeapAlloc, s[0].Value.Uint64()
}

// MeasureHeap builds a contender with n users whose uid strings are made for
// the call and dropped, as a gateway's request strings are, and measures what
// it keeps.
func MeasureHeap(c Contender, n int) Heap {
	live0, scan0 := heapNow()
	tr := c.New()
	for i := range n {
		tr.Seen(uid(i))
	}
	live1, scan1 := heapNow()
	start := time.Now()
	runtime.GC()
	gc := time.Since(start)
	runtime.KeepAlive(tr)
	tr.Close()
	return Heap{
		BytesPerUser:     (float64(live1) - float64(live0)) / float64(n),
		ScanBytesPerUser: (float64(scan1) - float64(scan0)) / float64(n),
		FullGC:           gc,
	}
}

// Latency is the distribution of single Seen call times under a scrape.
type Latency struct {
	P50, P90, P99, P999, P9999, Max time.Duration
	Calls                           int
}

// MeasureLatency holds users in a contender, runs Counts every scrapeEvery,
// and meanwhile starts rate requests per millisecond on a fixed schedule, each
// in its own goroutine timing its own Seen of a returning user. A request held
// up by a scrape counts as slow, however many are held up together.
func MeasureLatency(c Contender, users, perMilli int, scrapeEvery, d time.Duration) Latency {
	uids := uidPool(users)
	tr := filled(c, users)
	defer tr.Close()
	runtime.GC()

	stop := make(chan struct{})
	var scraper sync.WaitGroup
	scraper.Go(func() {
		t := time.NewTicker(scrapeEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				tr.Counts(windows...)
			}
		}
	})

	total := int(d/time.Millisecond) * perMilli
	samples := make([]time.Duration, total)
	var reqs sync.WaitGroup
	start := time.Now()
	r := rand.New(rand.NewPCG(1, 2))
	for sent := 0; sent < total; {
		// Start every request that is due by now, then wait a little.
		due := min(int(time.Since(start).Microseconds())*perMilli/1000, total)
		for ; sent < due; sent++ {
			u, i := uids[r.IntN(len(uids))], sent
			reqs.Go(func() {
				t0 := time.Now()
				tr.Seen(u)
				samples[i] = time.Since(t0)
			})
		}
		time.Sleep(200 * time.Microsecond)
	}
	reqs.Wait()
	close(stop)
	scraper.Wait()
	slices.Sort(samples)
	q := func(p float64) time.Duration { return samples[min(int(p*float64(len(samples))), len(samples)-1)] }
	return Latency{P50: q(0.5), P90: q(0.9), P99: q(0.99), P999: q(0.999), P9999: q(0.9999), Max: samples[len(samples)-1], Calls: total}
}

// Tail is the distribution of single Seen call times in a closed loop.
type Tail struct {
	P50, P999, P9999, Max time.Duration
	Calls                 int
}

// MeasureTail runs Seen in a closed loop from par goroutines per GOMAXPROCS,
// each timing every one of its own calls, and returns the distribution of all
// of them. With grow false, tr first holds users uids and calls calls Seens of
// them picked at random; with grow true, tr starts empty and the goroutines
// share out users new uids, each seen once, so the tracker grows from 0 to
// users while it is measured. Once goroutines outnumber cores, as in every busy
// server, a call that has to wait for another goroutine waits its turn behind
// the runnable ones: this is what shows it.
func MeasureTail(c Contender, users, calls, par int, grow bool) Tail {
	uids := uidPool(users)
	tr := c.New()
	defer tr.Close()
	if !grow {
		fill(tr, uids)
	} else {
		calls = users
	}
	runtime.GC()
	g := par * runtime.GOMAXPROCS(0)
	per := calls / g
	samples := make([][]time.Duration, g)
	var next atomic.Int64
	var wg sync.WaitGroup
	for k := range g {
		samples[k] = make([]time.Duration, 0, per+per/4)
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(k), 11))
			s := samples[k]
			for {
				var u string
				if grow {
					i := int(next.Add(1) - 1)
					if i >= users {
						break
					}
					u = uids[i]
				} else {
					if len(s) == per {
						break
					}
					u = uids[r.IntN(len(uids))]
				}
				t0 := time.Now()
				tr.Seen(u)
				s = append(s, time.Since(t0))
			}
			samples[k] = s
		})
	}
	wg.Wait()
	all := slices.Concat(samples...)
	slices.Sort(all)
	q := func(p float64) time.Duration { return all[min(int(p*float64(len(all))), len(all)-1)] }
	return Tail{P50: q(0.5), P999: q(0.999), P9999: q(0.9999), Max: all[len(all)-1], Calls: len(all)}
}
