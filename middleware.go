package activeusers

import (
	"net/http"
	"slices"
	"strconv"
	"sync"
)

// Middleware returns net/http middleware that records each request's account
// as seen, then serves it. accountID extracts the account from the request —
// typically from a token or session the authentication middleware before it
// put in the context — and returns "" for requests that are not authenticated,
// which are not counted.
//
// By default every authenticated request counts, whatever its response; with
// CountServed, only those whose response status is below a bound, so that a
// request rejected with 403 or 429 does not make its account active.
//
// With SegmentFrom options it records the account by SeenIn, in the segment
// each option's function reads from the request.
//
// The middleware adds no allocation to a request beyond what accountID (and
// the SegmentFrom functions) do.
// It panics if t or accountID is nil, or an option is out of range, at wiring
// time rather than on the first request.
func Middleware(t *Tracker, accountID func(*http.Request) string, opts ...MiddlewareOption) func(http.Handler) http.Handler {
	if t == nil {
		panic("activeusers.Middleware: nil *Tracker")
	}
	if accountID == nil {
		panic("activeusers.Middleware: nil accountID function")
	}
	var c middlewareConfig
	for _, o := range opts {
		o(&c)
	}
	if c.below != 0 && (c.below < 100 || c.below > 999) {
		panic("activeusers.Middleware: CountServed(" + strconv.Itoa(c.below) + "): the bound must be an HTTP status, 100 to 999")
	}
	// values[i] reads dimension i's value, or is nil.
	dims := t.Dimensions()
	values := make([]func(*http.Request) string, len(dims))
	for _, s := range c.segments {
		i := slices.Index(dims, s.dimension)
		switch {
		case s.value == nil:
			panic("activeusers.Middleware: SegmentFrom(" + strconv.Quote(s.dimension) + "): nil value function")
		case i < 0:
			panic("activeusers.Middleware: SegmentFrom(" + strconv.Quote(s.dimension) + "): the tracker has no such dimension (WithDimensions)")
		case values[i] != nil:
			panic("activeusers.Middleware: SegmentFrom(" + strconv.Quote(s.dimension) + ") given twice")
		}
		values[i] = s.value
	}
	seen := func(r *http.Request) { t.Seen(accountID(r)) }
	if len(c.segments) > 0 {
		seen = func(r *http.Request) {
			uid := accountID(r)
			if uid == "" {
				return
			}
			var vals [MaxDimensions]string // on the stack: SeenIn keeps none of it
			for i, v := range values {
				if v != nil {
					vals[i] = v(r)
				}
			}
			t.SeenIn(uid, vals[:len(values)]...)
		}
	}
	if c.below == 0 {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen(r)
				next.ServeHTTP(w, r)
			})
		}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sw := statusWriters.Get().(*statusWriter)
			sw.ResponseWriter, sw.status = w, 0
			next.ServeHTTP(sw, r) // if it panics, nothing is counted and sw is left to the GC
			status := sw.status
			sw.ResponseWriter = nil
			statusWriters.Put(sw)
			if status == 0 {
				status = http.StatusOK // what net/http sends for a handler that writes nothing
			}
			if status < c.below {
				seen(r)
			}
		})
	}
}

// A MiddlewareOption configures Middleware.
type MiddlewareOption func(*middlewareConfig)

type middlewareConfig struct {
	below    int
	segments []segmentOption
}

type segmentOption struct {
	dimension string
	value     func(*http.Request) string
}

// SegmentFrom makes the middleware record each request's account in the segment
// of dimension (one of the tracker's WithDimensions) that value returns for
// the request — a plan from the session, a platform from a header:
//
//	activeusers.SegmentFrom("platform", func(r *http.Request) string { return r.Header.Get("X-Platform") })
//
// An empty value leaves the dimension out for that request. Values are
// untrusted input: the tracker bounds how many it keeps (WithMaxValues) and
// folds the rest into OverflowValue. Give one SegmentFrom per dimension; the
// middleware panics at wiring time for a dimension the tracker does not have.
// Default: none, the account is recorded overall only.
func SegmentFrom(dimension string, value func(*http.Request) string) MiddlewareOption {
	return func(c *middlewareConfig) { c.segments = append(c.segments, segmentOption{dimension, value}) }
}

// CountServed makes the middleware record the account after the handler, and
// only if the response's status is below below: CountServed(400) counts
// requests that succeeded or were redirected, not those refused with 401, 403
// or 429, nor failures. It wraps the ResponseWriter to see the status (from a
// pool, so adding no allocation); the wrapper passes Flush on, and Unwrap
// gives http.ResponseController the original writer. A handler must not use
// its ResponseWriter after it returns, as net/http already requires. Default:
// every request counts, before the handler.
func CountServed(below int) MiddlewareOption {
	return func(c *middlewareConfig) { c.below = below }
}

// statusWriter records the final status a handler sends.
type statusWriter struct {
	http.ResponseWriter
	status int // 0 until the handler sends a final (non-1xx) status
}

var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush passes a flush on, for handlers that stream.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the writer beneath.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
