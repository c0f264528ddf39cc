package activeusers

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func headerID(r *http.Request) string { return r.Header.Get("X-Account") }

func TestMiddleware(t *testing.T) {
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

func TestMiddlewareAllocs(t *testing.T) {
	tr := New()
	defer tr.Close()
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	h := Middleware(tr, headerID)(next)
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Account", "alice")
	var w http.ResponseWriter = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	bare := testing.AllocsPerRun(1000, func() { next.ServeHTTP(w, r) })
	wrapped := testing.AllocsPerRun(1000, func() { h.ServeHTTP(w, r) })
	assert.Equal(t, bare, wrapped, "the middleware adds no allocation")
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
	}{{"handler=bare", next}, {"handler=middleware", Middleware(tr, headerID)(next)}} {
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
