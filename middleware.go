package activeusers

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Middleware returns net/http middleware that records each request's account
// as seen, and keeps it active while the response goes on. accountID
// extracts the account from the request — typically from a token or session
// the authentication middleware before it put in the context — and returns ""
// for requests that are not authenticated, which are not counted.
//
// By default every authenticated request counts when it arrives, whatever
// its response; with CountServed, only those whose response status is below
// a bound, so that a request rejected with 403 or 429 does not make its
// account active.
//
// A long exchange counts while it shows activity, not only when it opens: a
// response that writes or flushes keeps its account active (see Session),
// and so does a connection the handler hijacks — a WebSocket — as it reads
// or writes. An idle WebSocket, or a stream that sends nothing, ages out of
// the windows like any account.
//
// With SegmentFrom options it records the account by SeenIn, in the segment
// each option's function reads from the request.
//
// The handler's ResponseWriter has exactly the optional interfaces of the
// one beneath — http.Flusher (with the FlushError http.ResponseController
// calls), http.Hijacker, http.Pusher, http.CloseNotifier — and always
// io.ReaderFrom and io.StringWriter, which pass on to the writer beneath's
// (so a file is still sent with sendfile) or do what io.Copy and
// io.WriteString do without them; its Unwrap gives http.ResponseController
// the writer beneath.
//
// Wire it where it sees each request: inside h2c.NewHandler, which serves
// HTTP/2 streams past any handler around it, not outside. A gRPC server
// served by its ServeHTTP answers a refused call with HTTP status 200, so
// CountServed counts it: use the augrpc interceptors there.
//
// The middleware adds no allocation to a request beyond what accountID (and
// the SegmentFrom functions) do; a connection hijacked from it costs one.
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
	m := &middleware{t: t, accountID: accountID, below: c.below}
	// m.values[i] reads dimension i's value, or is nil.
	dims := t.Dimensions()
	m.values = make([]func(*http.Request) string, len(dims))
	for _, s := range c.segments {
		i := slices.Index(dims, s.dimension)
		switch {
		case s.value == nil:
			panic("activeusers.Middleware: SegmentFrom(" + strconv.Quote(s.dimension) + "): nil value function")
		case i < 0:
			panic("activeusers.Middleware: SegmentFrom(" + strconv.Quote(s.dimension) + "): the tracker has no such dimension (WithDimensions)")
		case m.values[i] != nil:
			panic("activeusers.Middleware: SegmentFrom(" + strconv.Quote(s.dimension) + ") given twice")
		}
		m.values[i] = s.value
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rw := responseWriters.Get().(*responseWriter)
			rw.m, rw.ResponseWriter, rw.r, rw.status = m, w, r, 0
			if m.below == 0 {
				m.start(&rw.sess, r)
			}
			next.ServeHTTP(rw.view(), r) // if it panics, rw is left to the GC
			rw.commit(http.StatusOK)     // what net/http sends for a handler that writes nothing
			rw.release()
		})
	}
}

// middleware is what a Middleware's requests share.
type middleware struct {
	t         *Tracker
	accountID func(*http.Request) string
	values    []func(*http.Request) string // by dimension: its SegmentFrom function, or nil
	below     int                          // CountServed's bound, or 0
}

// start starts s for r's account, if it has one, recording it now.
func (m *middleware) start(s *Session, r *http.Request) {
	uid := m.accountID(r)
	if uid == "" {
		return
	}
	var vals [MaxDimensions]string // on the stack: a session keeps none of it
	for i, v := range m.values {
		if v != nil {
			vals[i] = v(r)
		}
	}
	s.start(m.t, xxhash.Sum64String(uid), vals[:len(m.values)])
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

// CountServed makes the middleware record the account when the handler
// sends its response's status, and only if that status is below below:
// CountServed(400) counts requests that succeeded or were redirected, not
// those refused with 401, 403 or 429, nor failures. The status is the first
// final one the handler writes (101 Switching Protocols included), 200 at
// its first write or flush, 101 if it hijacks the connection, and 200 if it
// returns having written nothing; a handler that panics before any of these
// is not counted. Default: every request counts, when it arrives.
func CountServed(below int) MiddlewareOption {
	return func(c *middlewareConfig) { c.below = below }
}
