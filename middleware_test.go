package activeusers

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func headerID(r *http.Request) string { return r.Header.Get("X-Account") }

func TestMiddlewareCountsIdentifiedRequests(t *testing.T) {
	now := t0
	tr := New(fixed(&now))
	served := 0
	h := Middleware(tr, headerID)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served++
		w.WriteHeader(http.StatusTeapot)
	}))
	for _, id := range []string{"alice", "bob", "alice", ""} {
		r := httptest.NewRequest("GET", "/v1/things", nil)
		if id != "" {
			r.Header.Set("X-Account", id)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		assert.Equal(t, http.StatusTeapot, w.Code)
	}
	assert.Equal(t, 4, served, "every request is served, counted or not")
	assert.Equal(t, []int{2}, tr.Counts(time.Hour), "the anonymous request is not counted")

	assert.PanicsWithValue(t, "activeusers.Middleware: nil *Tracker", func() { Middleware(nil, headerID) })
	assert.PanicsWithValue(t, "activeusers.Middleware: nil accountID function", func() { Middleware(tr, nil) })
}

func TestMiddlewareAddsNoAllocationPerRequest(t *testing.T) {
	tr := New()
	defer tr.Close()
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	assertAddsNoAllocation(t, next, Middleware(tr, headerID)(next), "the middleware adds no allocation")
}

// assertAddsNoAllocation checks that h, next behind middleware, allocates
// what next alone does, for one authenticated request.
func assertAddsNoAllocation(t *testing.T, next, h http.Handler, msg string) {
	t.Helper()
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Account", "alice")
	var w http.ResponseWriter = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	bare := testing.AllocsPerRun(1000, func() { next.ServeHTTP(w, r) })
	wrapped := testing.AllocsPerRun(1000, func() { h.ServeHTTP(w, r) })
	assert.Equal(t, bare, wrapped, msg)
}

// BenchmarkMiddleware compares a bare handler with the same handler behind the
// middleware, from 16 goroutines per core.
func BenchmarkMiddleware(b *testing.B) {
	tr := New()
	defer tr.Close()
	pool := uids(1 << 16)
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, c := range []struct {
		name string
		h    http.Handler
	}{
		{"handler=bare", next},
		{"handler=middleware", Middleware(tr, headerID)(next)},
		{"handler=middleware-served", Middleware(tr, headerID, CountServed(400))(next)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				reqs := make([]*http.Request, 64)
				for i := range reqs {
					reqs[i] = httptest.NewRequest("GET", "/", nil)
					reqs[i].Header.Set("X-Account", pool[(i*977)%len(pool)])
				}
				w := httptest.NewRecorder()
				i := 0
				for pb.Next() {
					c.h.ServeHTTP(w, reqs[i%len(reqs)])
					i++
				}
			})
		})
	}
}

// TestCountServedCountsOnlyServedRequests: with CountServed(400), a request
// refused or failed does not make its account active; every status path a
// handler can take is seen.
func TestCountServedCountsOnlyServedRequests(t *testing.T) {
	for _, c := range []struct {
		name    string
		handler http.HandlerFunc
		counted bool
	}{
		{"writes nothing (200)", func(http.ResponseWriter, *http.Request) {}, true},
		{"writes a body (200)", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }, true},
		{"201", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusCreated) }, true},
		{"304", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotModified) }, true},
		{"103 then 200", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusOK)
		}, true},
		{"103 then 403", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusForbidden)
		}, false},
		{"401", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusUnauthorized) }, false},
		{"403", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) }, false},
		{"429", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTooManyRequests) }, false},
		{"500", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }, false},
		{"200 then a second WriteHeader", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200); w.WriteHeader(500) }, true},
		{"flushes (200)", func(w http.ResponseWriter, _ *http.Request) { w.(http.Flusher).Flush() }, true},
		{"panics", func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }, false},
		{"ResponseController reaches the recorder", func(w http.ResponseWriter, _ *http.Request) {
			if err := http.NewResponseController(w).Flush(); err != nil {
				w.WriteHeader(http.StatusInternalServerError)
			}
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			now := t0
			tr := New(fixed(&now))
			h := Middleware(tr, headerID, CountServed(400))(c.handler)
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("X-Account", "alice")
			func() {
				defer func() { recover() }() // as net/http does
				h.ServeHTTP(httptest.NewRecorder(), r)
			}()
			want := 0
			if c.counted {
				want = 1
			}
			assert.Equal(t, []int{want}, tr.Counts(time.Hour))
		})
	}
	assert.PanicsWithValue(t, "activeusers.Middleware: CountServed(40): the bound must be an HTTP status, 100 to 999",
		func() { Middleware(New(), headerID, CountServed(40)) })
}

func TestCountServedAddsNoAllocation(t *testing.T) {
	tr := New()
	defer tr.Close()
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	assertAddsNoAllocation(t, next, Middleware(tr, headerID, CountServed(400))(next), "CountServed adds no allocation")
}

// TestSegmentFromRecordsEachRequestsSegments: the middleware records each
// request's account in the segments its functions read from the request, with
// and without CountServed, adding no allocation; wiring mistakes panic at
// once.
func TestSegmentFromRecordsEachRequestsSegments(t *testing.T) {
	now := t0
	tr := New(fixed(&now), WithDimensions("plan", "platform"))
	plan := SegmentFrom("plan", func(r *http.Request) string { return r.Header.Get("X-Plan") })
	platform := SegmentFrom("platform", func(r *http.Request) string { return r.Header.Get("X-Platform") })
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Deny") != "" {
			w.WriteHeader(http.StatusForbidden)
		}
	})
	for _, h := range []http.Handler{Middleware(tr, headerID, plan, platform)(ok), Middleware(tr, headerID, platform, plan, CountServed(400))(ok)} {
		for _, req := range []struct{ id, plan, platform, deny string }{
			{"alice", "pro", "ios", ""}, {"alice", "pro", "web", ""}, {"bob", "free", "", ""},
			{"carol", "team", "android", "yes"}, {"", "pro", "ios", ""},
		} {
			r := httptest.NewRequest("GET", "/", nil)
			for k, v := range map[string]string{"X-Account": req.id, "X-Plan": req.plan, "X-Platform": req.platform, "X-Deny": req.deny} {
				if v != "" {
					r.Header.Set(k, v)
				}
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
		}
	}
	b := tr.CountsBy(time.Hour)
	assert.Equal(t, []int{3}, b.Overall, "alice, bob, and carol (counted by the middleware without CountServed)")
	assert.Equal(t, []ValueCounts{{"free", []int{1}}, {"pro", []int{1}}, {"team", []int{1}}, {OverflowValue, []int{0}}}, b.Dimensions[0].Values)
	assert.Equal(t, []ValueCounts{{"android", []int{1}}, {"ios", []int{1}}, {"web", []int{1}}, {OverflowValue, []int{0}}}, b.Dimensions[1].Values)

	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	assertAddsNoAllocation(t, next, Middleware(tr, headerID, plan, platform)(next), "SegmentFrom adds no allocation")
	assertAddsNoAllocation(t, next, Middleware(tr, headerID, plan, CountServed(400))(next), "nor with CountServed")

	assert.PanicsWithValue(t, `activeusers.Middleware: SegmentFrom("region"): the tracker has no such dimension (WithDimensions)`,
		func() { Middleware(tr, headerID, SegmentFrom("region", headerID)) })
	assert.PanicsWithValue(t, `activeusers.Middleware: SegmentFrom("plan") given twice`, func() { Middleware(tr, headerID, plan, plan) })
	assert.PanicsWithValue(t, `activeusers.Middleware: SegmentFrom("plan"): nil value function`, func() { Middleware(tr, headerID, SegmentFrom("plan", nil)) })
}
