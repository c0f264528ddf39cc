package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/puzpuzpuz/xsync/v4"

	"github.com/activeusers/activeusers"
	"github.com/activeusers/activeusers/internal/coarseclock"
)

// Tracker is what every contender implements: the API a gateway needs.
type Tracker interface {
	Seen(uid string)
	// Counts returns, per window, the distinct uids last seen at most that
	// long ago; nil if the contender cannot count (the floor).
	Counts(windows ...time.Duration) []int
	Close() error
}

// Contender names a way to build a Tracker.
type Contender struct {
	Name string
	New  func() Tracker
}

// contenders lists every contender, activeusers with its defaults first.
func contenders() []Contender {
	return []Contender{
		{"activeusers", func() Tracker { return activeusers.New(activeusers.WithRetention(retention)) }},
		{"activeusers+plan", func() Tracker { return newSegmented("plan") }},
		{"activeusers+plan+platform", func() Tracker { return newSegmented("plan", "platform") }},
		{"mutexmap", func() Tracker { return NewMutexMap() }},
		{"syncmap", func() Tracker { return &SyncMap{} }},
		{"xsync", func() Tracker { return NewXsyncMap() }},
		{"floor", func() Tracker { return NewFloor() }},
	}
}

// withShards is activeusers with n shards, named for it.
func withShards(n int) Contender {
	return Contender{fmt.Sprintf("activeusers/shards=%d", n), func() Tracker {
		return activeusers.New(activeusers.WithShards(n), activeusers.WithRetention(retention))
	}}
}

// Segmented is activeusers counting every account by plan (ten values) and,
// with two dimensions, platform (three), each a function of the uid, so
// that a returning user is a returning pair. Counts is CountsBy: the overall
// counts and every segment's, as a scrape of it would ask.
type Segmented struct {
	*activeusers.Tracker
	two bool
}

var (
	plans     = []string{"free", "pro", "team", "enterprise", "edu", "trial", "startup", "nonprofit", "partner", "internal"}
	platforms = []string{"ios", "android", "web"}
)

func newSegmented(dims ...string) *Segmented {
	return &Segmented{activeusers.New(activeusers.WithRetention(retention), activeusers.WithDimensions(dims...)), len(dims) == 2}
}

// Seen picks the values from the uid's last two bytes: no hashing or
// allocation of its own to weigh on the measurement.
func (s *Segmented) Seen(uid string) {
	n := len(uid)
	if s.two {
		s.SeenIn(uid, plans[int(uid[n-1])%10], platforms[int(uid[n-2])%3])
		return
	}
	s.SeenIn(uid, plans[int(uid[n-1])%10])
}

func (s *Segmented) Counts(windows ...time.Duration) []int { return s.CountsBy(windows...).Overall }

// MutexMap is the design activeusers replaces, the baseline: one mutex over a
// map from uid to the time it was last seen. Counts walks the whole map under
// the lock, counting by age and deleting entries older than the longest window
// asked for.
type MutexMap struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func NewMutexMap() *MutexMap { return &MutexMap{last: map[string]time.Time{}} }

func (m *MutexMap) Seen(uid string) {
	now := time.Now()
	m.mu.Lock()
	m.last[uid] = now
	m.mu.Unlock()
}

func (m *MutexMap) Counts(windows ...time.Duration) []int {
	counts := make([]int, len(windows))
	longest := maxOf(windows)
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	for uid, t := range m.last {
		age := now.Sub(t)
		if age > longest {
			delete(m.last, uid)
			continue
		}
		for i, w := range windows {
			if age <= w {
				counts[i]++
			}
		}
	}
	return counts
}

func (m *MutexMap) Close() error { return nil }

// SyncMap is the same tracker on sync.Map, which the standard library offers
// for keys written once and read many times (not this workload).
type SyncMap struct{ m sync.Map }

func (s *SyncMap) Seen(uid string) { s.m.Store(uid, time.Now().UnixNano()) }

func (s *SyncMap) Counts(windows ...time.Duration) []int {
	counts := make([]int, len(windows))
	longest := maxOf(windows)
	now := time.Now().UnixNano()
	s.m.Range(func(k, v any) bool {
		age := time.Duration(now - v.(int64))
		if age > longest {
			s.m.Delete(k)
			return true
		}
		for i, w := range windows {
			if age <= w {
				counts[i]++
			}
		}
		return true
	})
	return counts
}

func (s *SyncMap) Close() error { return nil }

// XsyncMap is the same tracker on xsync's concurrent map, the strongest thing a
// Go engineer would otherwise write: lock-striped buckets, lock-free reads.
type XsyncMap struct{ m *xsync.Map[string, int64] }

func NewXsyncMap() *XsyncMap { return &XsyncMap{m: xsync.NewMap[string, int64]()} }

func (x *XsyncMap) Seen(uid string) { x.m.Store(uid, time.Now().UnixNano()) }

func (x *XsyncMap) Counts(windows ...time.Duration) []int {
	counts := make([]int, len(windows))
	longest := maxOf(windows)
	now := time.Now().UnixNano()
	x.m.DeleteMatching(func(_ string, v int64) (del, stop bool) {
		age := time.Duration(now - v)
		if age > longest {
			return true, false
		}
		for i, w := range windows {
			if age <= w {
				counts[i]++
			}
		}
		return false, false
	})
	return counts
}

func (x *XsyncMap) Close() error { return nil }

// Floor is the least any Seen can cost: the uid's xxhash and one atomic store
// of the current second (from the same coarse clock activeusers uses) into a
// fixed array. It cannot count; it is here to show how much of a Seen is the
// hash and the memory access every design pays.
type Floor struct {
	slots [1 << 22]atomic.Uint32
	clock *coarseclock.Clock
}

func NewFloor() *Floor { return &Floor{clock: coarseclock.Start()} }

func (f *Floor) Seen(uid string) {
	f.slots[xxhash.Sum64String(uid)&(1<<22-1)].Store(uint32(f.clock.Now()))
}

func (f *Floor) Counts(...time.Duration) []int { return nil }

func (f *Floor) Close() error { f.clock.Stop(); return nil }

func maxOf(ws []time.Duration) time.Duration {
	var m time.Duration
	for _, w := range ws {
		m = max(m, w)
	}
	return m
}
