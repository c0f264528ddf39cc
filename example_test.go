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
// that must not sleep. Retention is the clock's business, here a fixed one:
// times ahead of it are recorded as its now, and CountsAt measures ages from
// any instant without deleting what the clock still retains.
func ExampleTracker_CountsAt() {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	t := activeusers.New(activeusers.WithClock(func() time.Time { return now }))

	t.SeenAt("alice", now.Add(-3*time.Hour))    // replayed from a log
	t.SeenAt("bob", now.Add(-time.Hour))        //
	t.SeenAt("carol", now.Add(-3*24*time.Hour)) //
	t.SeenAt("dave", now.Add(-8*24*time.Hour))  // past the 7-day retention: ignored

	fmt.Println(t.CountsAt(now, time.Hour, 3*time.Hour, 7*24*time.Hour, 30*24*time.Hour))
	fmt.Println(t.CountsAt(now.Add(-2*time.Hour), time.Hour)) // as of two hours ago: alice, and bob "in the future"
	// Output:
	// [1 2 3 3]
	// [2]
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
