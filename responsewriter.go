package activeusers

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
)

// responseWriter is the ResponseWriter Middleware hands its handler: it sees
// the status sent, counts the account when the status is final (with
// CountServed) and keeps it active as the response goes on. It is pooled, so
// a request costs no allocation.
//
// The handler never gets a *responseWriter itself but one of its views: the
// same writer with exactly the optional interfaces (Flusher, Hijacker,
// Pusher, CloseNotifier) the writer beneath has, as a handler that
// type-asserts one — gorilla/websocket asserts http.Hijacker, gin calls
// CloseNotify — needs, and as one that checks for one to choose a path
// expects. io.ReaderFrom and io.StringWriter are always there: without them
// beneath, they do what io.Copy and io.WriteString would.
type responseWriter struct {
	http.ResponseWriter
	m      *middleware
	r      *http.Request
	status int     // 0 until the handler sends a final status (or hijacks)
	sess   Session // started when the account counts; Seen is a no-op before
	views  [1 << 4]http.ResponseWriter
}

var responseWriters = sync.Pool{New: func() any { return new(responseWriter) }}

// release returns rw to the pool once its handler has returned.
func (rw *responseWriter) release() {
	rw.ResponseWriter, rw.r, rw.sess.t = nil, nil, nil
	responseWriters.Put(rw)
}

// commit notes the response's status once it is final and, with
// CountServed, counts the account if the status is below the bound.
func (rw *responseWriter) commit(code int) {
	if rw.status != 0 {
		return
	}
	rw.status = code
	if rw.m.below != 0 && code < rw.m.below {
		rw.m.start(&rw.sess, rw.r)
	}
}

func (rw *responseWriter) WriteHeader(code int) {
	// Informational statuses (1xx) come before the final one, except 101
	// Switching Protocols, which net/http treats as final too.
	if code >= 200 || code == http.StatusSwitchingProtocols {
		rw.commit(code)
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *responseWriter) Write(b []byte) (int, error) {
	rw.commit(http.StatusOK)
	n, err := rw.ResponseWriter.Write(b)
	if n > 0 {
		rw.sess.Seen()
	}
	return n, err
}

// WriteString passes on to the writer beneath's, which copies nothing.
func (rw *responseWriter) WriteString(s string) (int, error) {
	rw.commit(http.StatusOK)
	n, err := io.WriteString(rw.ResponseWriter, s)
	if n > 0 {
		rw.sess.Seen()
	}
	return n, err
}

// ReadFrom passes on to the writer beneath's, if it has one: net/http's
// sends a file with sendfile(2) and allocates no buffer.
func (rw *responseWriter) ReadFrom(src io.Reader) (n int64, err error) {
	rw.commit(http.StatusOK)
	if rf, ok := rw.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(writerOnly{rw.ResponseWriter}, src)
	}
	if n > 0 {
		rw.sess.Seen()
	}
	return n, err
}

// writerOnly hides a writer's ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }

// Unwrap lets http.ResponseController reach the writer beneath, for the
// deadlines and full duplex.
func (rw *responseWriter) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// The optional interfaces a view may have, each a bit of its index.
const (
	canFlush = 1 << iota
	canHijack
	canPush
	canCloseNotify
)

// view returns rw with the optional interfaces of the writer beneath. Each
// pooled writer makes a view of each kind once, when it first needs it.
func (rw *responseWriter) view() http.ResponseWriter {
	kind := 0
	if _, ok := rw.ResponseWriter.(http.Flusher); ok {
		kind |= canFlush
	}
	if _, ok := rw.ResponseWriter.(http.Hijacker); ok {
		kind |= canHijack
	}
	if _, ok := rw.ResponseWriter.(http.Pusher); ok {
		kind |= canPush
	}
	//lint:ignore SA1019 a handler may still call CloseNotify (gin's streams do); hiding it would make them panic
	if _, ok := rw.ResponseWriter.(http.CloseNotifier); ok {
		kind |= canCloseNotify
	}
	if rw.views[kind] == nil {
		rw.views[kind] = newView(rw, kind)
	}
	return rw.views[kind]
}

// newView returns rw with the optional interfaces kind names.
func newView(rw *responseWriter, kind int) http.ResponseWriter {
	f, h, p, c := flusher{rw}, hijacker{rw}, pusher{rw}, closeNotifier{rw}
	switch kind {
	case canFlush:
		return &struct {
			*responseWriter
			flusher
		}{rw, f}
	case canHijack:
		return &struct {
			*responseWriter
			hijacker
		}{rw, h}
	case canFlush | canHijack:
		return &struct {
			*responseWriter
			flusher
			hijacker
		}{rw, f, h}
	case canPush:
		return &struct {
			*responseWriter
			pusher
		}{rw, p}
	case canFlush | canPush:
		return &struct {
			*responseWriter
			flusher
			pusher
		}{rw, f, p}
	case canHijack | canPush:
		return &struct {
			*responseWriter
			hijacker
			pusher
		}{rw, h, p}
	case canFlush | canHijack | canPush:
		return &struct {
			*responseWriter
			flusher
			hijacker
			pusher
		}{rw, f, h, p}
	case canCloseNotify:
		return &struct {
			*responseWriter
			closeNotifier
		}{rw, c}
	case canFlush | canCloseNotify:
		return &struct {
			*responseWriter
			flusher
			closeNotifier
		}{rw, f, c}
	case canHijack | canCloseNotify:
		return &struct {
			*responseWriter
			hijacker
			closeNotifier
		}{rw, h, c}
	case canFlush | canHijack | canCloseNotify: // HTTP/1
		return &struct {
			*responseWriter
			flusher
			hijacker
			closeNotifier
		}{rw, f, h, c}
	case canPush | canCloseNotify:
		return &struct {
			*responseWriter
			pusher
			closeNotifier
		}{rw, p, c}
	case canFlush | canPush | canCloseNotify: // HTTP/2
		return &struct {
			*responseWriter
			flusher
			pusher
			closeNotifier
		}{rw, f, p, c}
	case canHijack | canPush | canCloseNotify:
		return &struct {
			*responseWriter
			hijacker
			pusher
			closeNotifier
		}{rw, h, p, c}
	case canFlush | canHijack | canPush | canCloseNotify:
		return &struct {
			*responseWriter
			flusher
			hijacker
			pusher
			closeNotifier
		}{rw, f, h, p, c}
	}
	return rw
}

// flusher is a view's http.Flusher, with the FlushError that
// http.ResponseController calls first, so that a handler learns that its
// client has gone.
type flusher struct{ rw *responseWriter }

func (f flusher) Flush() { f.FlushError() }

func (f flusher) FlushError() error {
	rw := f.rw
	rw.commit(http.StatusOK)
	var err error
	if fe, ok := rw.ResponseWriter.(interface{ FlushError() error }); ok {
		err = fe.FlushError()
	} else {
		rw.ResponseWriter.(http.Flusher).Flush()
	}
	if err == nil {
		rw.sess.Seen()
	}
	return err
}

// hijacker is a view's http.Hijacker. A hijacked connection counts as served
// (a WebSocket's 101 Switching Protocols is written on it, past the
// writer), and keeps its account active while it carries data.
type hijacker struct{ rw *responseWriter }

func (h hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	rw := h.rw
	conn, brw, err := rw.ResponseWriter.(http.Hijacker).Hijack()
	if err != nil {
		return conn, brw, err
	}
	rw.commit(http.StatusSwitchingProtocols)
	if rw.sess.t == nil {
		return conn, brw, nil // not counted: nothing to keep active
	}
	return newActiveConn(conn, brw, &rw.sess), brw, nil
}

type pusher struct{ rw *responseWriter }

func (p pusher) Push(target string, opts *http.PushOptions) error {
	return p.rw.ResponseWriter.(http.Pusher).Push(target, opts)
}

type closeNotifier struct{ rw *responseWriter }

func (c closeNotifier) CloseNotify() <-chan bool {
	//lint:ignore SA1019 passed on for the handlers that still call it
	return c.rw.ResponseWriter.(http.CloseNotifier).CloseNotify()
}

// activeConn is a hijacked connection that records its account, at most
// once a second, as it reads or writes data.
type activeConn struct {
	net.Conn
	sess  Session
	ahead []byte // what the server had read past the request, read first
}

// newActiveConn wraps conn, hijacked from the writer that held sess, and
// points brw at it: net/http's ReadWriter reads and writes conn itself, and
// WebSocket libraries use it for their frames.
func newActiveConn(conn net.Conn, brw *bufio.ReadWriter, sess *Session) *activeConn {
	c := &activeConn{Conn: conn}
	c.sess.startFrom(sess)
	if brw != nil {
		if n := brw.Reader.Buffered(); n > 0 {
			b, _ := brw.Reader.Peek(n)
			c.ahead = append([]byte(nil), b...)
		}
		brw.Reader.Reset(c)
		if brw.Writer.Buffered() == 0 {
			brw.Writer.Reset(c)
		}
	}
	return c
}

func (c *activeConn) Read(p []byte) (int, error) {
	if len(c.ahead) > 0 {
		n := copy(p, c.ahead)
		c.ahead = c.ahead[n:]
		return n, nil
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.sess.Seen()
	}
	return n, err
}

func (c *activeConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.sess.Seen()
	}
	return n, err
}

// NetConn returns the hijacked connection beneath, as tls.Conn's does.
func (c *activeConn) NetConn() net.Conn { return c.Conn }
