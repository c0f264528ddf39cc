package activeusers

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// interfacesOf says which optional interfaces w has, as a view's kind.
func interfacesOf(w http.ResponseWriter) int {
	kind := 0
	if _, ok := w.(http.Flusher); ok {
		kind |= canFlush
	}
	if _, ok := w.(http.Hijacker); ok {
		kind |= canHijack
	}
	if _, ok := w.(http.Pusher); ok {
		kind |= canPush
	}
	//lint:ignore SA1019 the middleware keeps it for the handlers that still call it
	if _, ok := w.(http.CloseNotifier); ok {
		kind |= canCloseNotify
	}
	return kind
}

// TestViewsHaveExactlyTheirInterfaces: each of the sixteen views has the
// optional interfaces its kind names, and no other, and always ReadFrom,
// WriteString and Unwrap.
func TestViewsHaveExactlyTheirInterfaces(t *testing.T) {
	rw := &responseWriter{}
	for kind := range 1 << 4 {
		v := newView(rw, kind)
		assert.Equal(t, kind, interfacesOf(v), "kind %04b", kind)
		assert.Implements(t, (*io.ReaderFrom)(nil), v)
		assert.Implements(t, (*io.StringWriter)(nil), v)
		assert.Implements(t, (*interface{ Unwrap() http.ResponseWriter })(nil), v)
		if kind&canFlush != 0 {
			assert.Implements(t, (*interface{ FlushError() error })(nil), v)
		}
	}
}

// TestHandlersSeeTheServersInterfaces: behind the middleware, a handler sees
// exactly the optional interfaces of the writer a real server gives it —
// HTTP/1, HTTP/2 over TLS, a recorder — with and without CountServed.
func TestHandlersSeeTheServersInterfaces(t *testing.T) {
	tr := New()
	defer tr.Close()
	for _, opts := range [][]MiddlewareOption{nil, {CountServed(400)}} {
		var bare, behind int
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/bare" {
				bare = interfacesOf(w)
			} else {
				behind = interfacesOf(w)
			}
		})
		mux := http.NewServeMux()
		mux.Handle("/bare", h)
		mux.Handle("/behind", Middleware(tr, headerID, opts...)(h))

		for _, c := range []struct {
			name string
			want int
			get  func(path string)
		}{
			{"HTTP/1", canFlush | canHijack | canCloseNotify, func(path string) {
				srv := httptest.NewServer(mux)
				defer srv.Close()
				resp, err := srv.Client().Get(srv.URL + path)
				require.NoError(t, err)
				resp.Body.Close()
			}},
			{"HTTP/2", canFlush | canPush | canCloseNotify, func(path string) {
				srv := httptest.NewUnstartedServer(mux)
				srv.EnableHTTP2 = true
				srv.StartTLS()
				defer srv.Close()
				resp, err := srv.Client().Get(srv.URL + path)
				require.NoError(t, err)
				resp.Body.Close()
				require.Equal(t, 2, resp.ProtoMajor)
			}},
			{"recorder", canFlush, func(path string) {
				mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
			}},
		} {
			c.get("/bare")
			c.get("/behind")
			assert.Equal(t, c.want, bare, "%s: the server's writer", c.name)
			assert.Equal(t, bare, behind, "%s, %d options: the handler's", c.name, len(opts))
		}
	}
}

// TestFlushErrorSeesTheClientLeave: an event stream behind CountServed counts
// at its first flushed event, while open, and its loop sees the client
// leave through http.ResponseController, as it would with no middleware.
func TestFlushErrorSeesTheClientLeave(t *testing.T) {
	for _, behind := range []bool{false, true} {
		tr := New()
		events := make(chan int, 1)
		var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			rc := http.NewResponseController(w)
			for i := 1; i <= 2000; i++ {
				fmt.Fprintf(w, "data: %d\n\n", i)
				if err := rc.Flush(); err != nil {
					events <- i
					return
				}
				time.Sleep(time.Millisecond)
			}
			events <- 0
		})
		if behind {
			h = Middleware(tr, headerID, CountServed(400))(h)
		}
		srv := httptest.NewServer(h)
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header.Set("X-Account", "alice")
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, "data: 1\n", line)
		if behind {
			assert.Equal(t, []int{1}, tr.Counts(time.Minute), "counted at its first event, while open")
		}
		resp.Body.Close() // the client leaves
		srv.CloseClientConnections()
		last := <-events
		assert.NotZero(t, last, "behind=%v: the loop saw its client leave", behind)
		assert.Less(t, last, 100, "behind=%v: soon after it left", behind)
		srv.Close()
		tr.Close()
	}
}

// TestEventStreamStaysActive: an event stream keeps its account active for
// as long as it sends, across a fake-clock hour, with and without
// CountServed; an idle one ages out.
func TestEventStreamStaysActive(t *testing.T) {
	for _, opts := range [][]MiddlewareOption{nil, {CountServed(400)}} {
		clk := newMovingClock()
		tr := New(clk.option())
		tick := make(chan bool)
		h := Middleware(tr, headerID, opts...)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, ": open\n\n") // the response's header reaches the client
			w.(http.Flusher).Flush()
			for more := range tick {
				io.WriteString(w, "data: tick\n\n")
				w.(http.Flusher).Flush()
				if !more {
					return
				}
			}
		}))
		srv := httptest.NewServer(h)
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header.Set("X-Account", "alice")
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		body := bufio.NewReader(resp.Body)
		body.ReadString('\n')
		body.ReadString('\n')
		event := func(more bool) {
			tick <- more
			line, err := body.ReadString('\n')
			require.NoError(t, err)
			require.Equal(t, "data: tick\n", line)
			body.ReadString('\n')
		}
		fiveMin := func() int { return tr.Counts(5 * time.Minute)[0] }

		event(true)
		assert.Equal(t, 1, fiveMin(), "%d options: counted while open", len(opts))
		clk.add(time.Hour)
		assert.Equal(t, 0, fiveMin(), "%d options: idle for an hour", len(opts))
		event(true)
		assert.Equal(t, 1, fiveMin(), "%d options: an event an hour later counts again", len(opts))
		clk.add(3 * time.Minute)
		event(false)
		clk.add(4 * time.Minute)
		assert.Equal(t, 1, fiveMin(), "%d options: as of the last event", len(opts))
		resp.Body.Close()
		srv.Close()
	}
}

// TestHijackedConnectionCountsAndStaysActive: a handler that hijacks the
// connection (as a WebSocket upgrade does) counts at once behind
// CountServed, and the connection keeps its account active as it carries
// data either way, across a fake-clock hour; bytes the server had read
// ahead of the hijack reach the handler first.
func TestHijackedConnectionCountsAndStaysActive(t *testing.T) {
	clk := newMovingClock()
	tr := New(clk.option())
	served := make(chan net.Conn, 1)
	h := Middleware(tr, headerID, CountServed(400))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		if _, ok := conn.(interface{ NetConn() net.Conn }); !ok {
			t.Error("the hijacked connection does not give the one beneath")
		}
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		for { // an echo protocol, a line at a time
			line, err := brw.ReadString('\n')
			if err != nil {
				conn.Close()
				served <- conn
				return
			}
			brw.WriteString(line)
			brw.Flush()
		}
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	// The request and a first line in one write: the server may read both.
	_, err = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nX-Account: alice\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nfirst\n")
	require.NoError(t, err)
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	echo := func(s string) {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, s+"\n", line)
	}
	echo("first")
	fiveMin := func() int { return tr.Counts(5 * time.Minute)[0] }
	assert.Equal(t, 1, fiveMin(), "counted at the upgrade, while open")
	clk.add(time.Hour)
	assert.Equal(t, 0, fiveMin(), "idle for an hour")
	io.WriteString(conn, "again\n")
	echo("again")
	assert.Equal(t, 1, fiveMin(), "a message an hour later counts again")
	conn.Close()
	<-served
}

// TestHijackReadAheadIsReadFirst: bytes a server had buffered before the
// hijack are what a read of the connection or of its ReadWriter returns
// first.
func TestHijackReadAheadIsReadFirst(t *testing.T) {
	tr := New()
	defer tr.Close()
	client, server := net.Pipe()
	defer client.Close()
	go io.WriteString(client, "ahead and after\n")
	br := bufio.NewReader(server)
	_, err := br.Peek(5) // the server's read past the request: "ahead"
	require.NoError(t, err)
	var rw responseWriter
	rw.sess.start(tr, 1, nil)
	brw := bufio.NewReadWriter(br, bufio.NewWriter(server))
	c := newActiveConn(server, brw, &rw.sess)
	line, err := brw.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "ahead and after\n", line)
	assert.Empty(t, c.ahead)
}

// TestFileServingAddsNoAllocation: behind CountServed, http.ServeContent and
// io.Copy of a file allocate what they do with no middleware — net/http
// sends the file with sendfile, where a writer without ReadFrom would make
// io.Copy allocate a 32 KiB buffer a response. Measured over a real server,
// in the whole process: mallocs and bytes a request, bare and behind, in
// turns.
func TestFileServingAddsNoAllocation(t *testing.T) {
	if raceEnabled {
		t.Skip("under -race, which allocates and drops sync.Pool items at random: ./test.sh and .ci/run run it without")
	}
	path := filepath.Join(t.TempDir(), "blob")
	require.NoError(t, os.WriteFile(path, make([]byte, 1<<20), 0o644))
	tr := New()
	defer tr.Close()
	serveContent := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(path)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		http.ServeContent(w, r, "blob", time.Time{}, f)
	})
	copyFile := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(path)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		io.Copy(w, f)
	})
	mw := Middleware(tr, headerID, CountServed(400))
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"ServeContent", serveContent}, {"io.Copy", copyFile}} {
		bare, behind := httptest.NewServer(c.h), httptest.NewServer(mw(c.h))
		var mallocs, bytes [2]float64
		for round := range 6 { // alternating, so that drift hits both alike
			for i, srv := range []*httptest.Server{bare, behind} {
				m, b := allocsPerRequest(t, srv, 20)
				if round > 0 { // the first warms the connections up
					mallocs[i] += m / 5
					bytes[i] += b / 5
				}
			}
		}
		t.Logf("%s: %.1f → %.1f allocations, %.0f → %.0f bytes a request", c.name, mallocs[0], mallocs[1], bytes[0], bytes[1])
		assert.Less(t, mallocs[1]-mallocs[0], 1.0, "%s: allocations added a request", c.name)
		assert.Less(t, bytes[1]-bytes[0], 4096.0, "%s: bytes added a request (a copy buffer is 32768)", c.name)
		bare.Close()
		behind.Close()
	}
}

// allocsPerRequest returns the mallocs and bytes the process makes for each
// of n sequential requests to srv, whose bodies the client discards.
func allocsPerRequest(t *testing.T, srv *httptest.Server, n int) (mallocs, bytes float64) {
	t.Helper()
	client := srv.Client()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("X-Account", "alice")
	get := func() {
		resp, err := client.Do(req)
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		get()
	}
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / float64(n), float64(after.TotalAlloc-before.TotalAlloc) / float64(n)
}

// BenchmarkServeFile serves a 1 MiB file over a real server, with no
// middleware and behind CountServed: the allocations a request are the
// same.
func BenchmarkServeFile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "blob")
	require.NoError(b, os.WriteFile(path, make([]byte, 1<<20), 0o644))
	tr := New()
	defer tr.Close()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, path) })
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"handler=bare", h}, {"handler=middleware-served", Middleware(tr, headerID, CountServed(400))(h)}} {
		b.Run(c.name, func(b *testing.B) {
			srv := httptest.NewServer(c.h)
			defer srv.Close()
			client := srv.Client()
			req, _ := http.NewRequest("GET", srv.URL, nil)
			req.Header.Set("X-Account", "alice")
			b.SetBytes(1 << 20)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

// BenchmarkSessionActivity is what keeping a long exchange active costs a
// message: a write through the middleware's writer against the same write
// to the writer beneath, and a Session's Seen alone.
func BenchmarkSessionActivity(b *testing.B) {
	tr := New()
	defer tr.Close()
	msg := []byte("data: tick\n\n")
	b.Run("op=write/writer=bare", func(b *testing.B) {
		var w http.ResponseWriter = discardWriter{}
		b.ReportAllocs()
		for b.Loop() {
			w.Write(msg)
		}
	})
	b.Run("op=write/writer=middleware", func(b *testing.B) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-Account", "alice")
		m := &middleware{t: tr, accountID: headerID}
		rw := &responseWriter{m: m, ResponseWriter: discardWriter{}, r: r} // as Middleware holds it while its handler runs
		m.start(&rw.sess, r)
		w := rw.view()
		b.ReportAllocs()
		for b.Loop() {
			w.Write(msg)
		}
	})
	b.Run("op=session-seen", func(b *testing.B) {
		s := tr.Session("alice")
		b.ReportAllocs()
		for b.Loop() {
			s.Seen()
		}
	})
}

type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (discardWriter) WriteHeader(int)             {}
