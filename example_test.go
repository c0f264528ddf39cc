package activeusers_test

import (
	"fmt"
	"time"

	"github.com/activeusers/activeusers"
)

func Example() {
	t := activeusers.New()
	defer t.Close()

	// On every authenticated request:
	t.Seen("alice")
	t.Seen("bob")
	t.Seen("alice")

	// On every metrics scrape:
	counts := t.Counts(5*time.Minute, 24*time.Hour)
	fmt.Println("last 5m:", counts[0], "last 24h:", counts[1])
	// Output: last 5m: 2 last 24h: 2
}

// The …At twins take the time as an argument, for replaying logs and for tests
// that must not sleep.
func ExampleTracker_CountsAt() {
	t0 := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	t := activeusers.New(activeusers.WithRetention(7 * 24 * time.Hour))
	defer t.Close()

	t.SeenAt("alice", t0)
	t.SeenAt("bob", t0.Add(2*time.Hour))
	t.SeenAt("carol", t0.Add(-3*24*time.Hour))

	now := t0.Add(3 * time.Hour)
	fmt.Println(t.CountsAt(now, time.Hour, 3*time.Hour, 7*24*time.Hour, 30*24*time.Hour))
	// Output: [1 2 3 3]
}

// WithClock replaces the built-in clock, here by a fake one a test can move.
func ExampleWithClock() {
	now := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	t := activeusers.New(activeusers.WithClock(func() time.Time { return now }))

	t.Seen("alice")
	now = now.Add(10 * time.Minute)
	t.Seen("bob")
	fmt.Println(t.Counts(5*time.Minute, time.Hour))
	// Output: [1 2]
}
