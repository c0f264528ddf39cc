package activeusers_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
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

// Middleware counts each authenticated request's account, then serves it. The
// account function reads what the authentication in front put in the request
// (here a bearer token stands for it); "" means unauthenticated, not counted.
func ExampleMiddleware() {
	t := activeusers.New()
	defer t.Close()

	account := func(r *http.Request) string {
		token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		return token
	}
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	h := activeusers.Middleware(t, account)(api)

	for _, token := range []string{"alice", "bob", "alice", ""} {
		req := httptest.NewRequest("GET", "/api/orders", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	fmt.Println(t.Counts(time.Hour))
	// Output: [2]
}

// Persist keeps a snapshot file fresh so that a restart does not reset the
// 7-day gauge to zero: it loads the file at start, saves every interval and
// once more on Close.
func ExamplePersist() {
	dir, _ := os.MkdirTemp("", "activeusers-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "active.snap")

	t := activeusers.New()
	p, err := activeusers.Persist(t, path, time.Minute)
	if err != nil {
		fmt.Println(err) // a folder it cannot save to, a corrupt snapshot
		return
	}
	t.Seen("alice")
	t.Seen("bob")
	p.Close() // the final save
	t.Close()

	// The next start of the process:
	restarted := activeusers.New()
	defer restarted.Close()
	p, err = activeusers.Persist(restarted, path, time.Minute)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	fmt.Println(restarted.Counts(24 * time.Hour))
	// Output: [2]
}

// WriteTo and ReadFrom move a snapshot through any stream; loading merges,
// the later time winning, so several instances' snapshots load as their union.
func ExampleTracker_WriteTo() {
	a, b := activeusers.New(), activeusers.New()
	defer a.Close()
	defer b.Close()
	a.Seen("alice")
	a.Seen("bob")
	b.Seen("bob")
	b.Seen("carol")

	var snap bytes.Buffer
	if _, err := a.WriteTo(&snap); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := b.ReadFrom(&snap); err != nil {
		fmt.Println(err) // wraps ErrBadSnapshot for input that is not a snapshot
		return
	}
	fmt.Println(b.Counts(time.Hour))
	// Output: [3]
}

// A gateway whose accounts are numbers counts them with SeenID, without
// formatting a string per request.
func ExampleTracker_SeenID() {
	t := activeusers.New()
	defer t.Close()
	for _, id := range []uint64{1001, 1002, 1001} {
		t.SeenID(id)
	}
	fmt.Println(t.Counts(time.Hour))
	// Output: [2]
}

// Counting by plan and platform: an account on two platforms counts once on
// each and once overall; a value beyond the bound counts in OverflowValue.
func ExampleTracker_CountsBy() {
	t := activeusers.New(activeusers.WithDimensions("plan", "platform"), activeusers.WithMaxValues(2))
	defer t.Close()

	t.SeenIn("alice", "pro", "ios")
	t.SeenIn("alice", "pro", "web")
	t.SeenIn("bob", "free", "web")
	t.SeenIn("carol", "team", "") // a third plan, and no platform known

	b := t.CountsBy(24 * time.Hour)
	fmt.Println("overall:", b.Overall[0])
	for _, d := range b.Dimensions {
		for _, v := range d.Values {
			fmt.Printf("%s=%s: %d\n", d.Name, v.Value, v.Counts[0])
		}
		fmt.Printf("%s folded: %d\n", d.Name, d.Folded)
	}
	// Output:
	// overall: 3
	// plan=free: 1
	// plan=pro: 1
	// plan=__overflow__: 1
	// plan folded: 1
	// platform=ios: 1
	// platform=web: 2
	// platform=__overflow__: 0
	// platform folded: 0
}

// Reading each request's segment in the middleware: here the platform from a
// header (a plan would come from the verified token).
func ExampleSegmentFrom() {
	t := activeusers.New(activeusers.WithDimensions("platform"))
	defer t.Close()
	account := func(r *http.Request) string { return r.Header.Get("X-Account") }
	platform := activeusers.SegmentFrom("platform", func(r *http.Request) string { return r.Header.Get("X-Platform") })
	h := activeusers.Middleware(t, account, platform)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))

	for _, p := range []string{"ios", "android", "ios"} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-Account", "acct-"+p)
		r.Header.Set("X-Platform", p)
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	for _, v := range t.CountsBy(time.Hour).Dimensions[0].Values {
		fmt.Println(v.Value, v.Counts[0])
	}
	// Output:
	// android 1
	// ios 1
	// __overflow__ 0
}
