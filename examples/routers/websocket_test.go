package routers

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/go-chi/chi/v5"
	gorilla "github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/activeusers/activeusers"
)

// clock is a fake clock that the test moves while servers read it.
type clock struct{ sec atomic.Int64 }

func (c *clock) now() time.Time      { return time.Unix(c.sec.Load(), 0) }
func (c *clock) add(d time.Duration) { c.sec.Add(int64(d / time.Second)) }

// wsEcho is a WebSocket library's side of the test: a handler that upgrades
// and echoes each message, and a client that dials with a bearer token and
// sends a message and reads its echo.
type wsEcho struct {
	handler http.HandlerFunc
	dial    func(t *testing.T, url, token string) (roundTrip func(msg string) string, close func())
}

var gorillaEcho = wsEcho{
	handler: func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&gorilla.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade has answered with an error status
		}
		defer conn.Close()
		for {
			kind, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if conn.WriteMessage(kind, msg) != nil {
				return
			}
		}
	},
	dial: func(t *testing.T, url, token string) (func(string) string, func()) {
		conn, resp, err := gorilla.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http"), http.Header{"Authorization": {"Bearer " + token}})
		require.NoError(t, err)
		require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
		return func(msg string) string {
			require.NoError(t, conn.WriteMessage(gorilla.TextMessage, []byte(msg)))
			_, got, err := conn.ReadMessage()
			require.NoError(t, err)
			return string(got)
		}, func() { conn.Close() }
	},
}

var coderEcho = wsEcho{
	handler: func(w http.ResponseWriter, r *http.Request) {
		conn, err := coder.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		for {
			kind, msg, err := conn.Read(r.Context())
			if err != nil {
				return
			}
			if conn.Write(r.Context(), kind, msg) != nil {
				return
			}
		}
	},
	dial: func(t *testing.T, url, token string) (func(string) string, func()) {
		ctx := context.Background()
		conn, resp, err := coder.Dial(ctx, url, &coder.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
		require.NoError(t, err)
		require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
		return func(msg string) string {
			require.NoError(t, conn.Write(ctx, coder.MessageText, []byte(msg)))
			_, got, err := conn.Read(ctx)
			require.NoError(t, err)
			return string(got)
		}, func() { conn.Close(coder.StatusNormalClosure, "") }
	},
}

// TestWebSocketsCountWhileOpenAndActive: gorilla/websocket and
// coder/websocket upgrades behind CountServed(400), through net/http and
// through the chi recipe, succeed; the account counts at the upgrade, while
// the socket is open, ages out of the 5-minute window after an idle
// fake-clock hour, and counts again at its next message.
func TestWebSocketsCountWhileOpenAndActive(t *testing.T) {
	for _, lib := range []struct {
		name string
		ws   wsEcho
	}{{"gorilla", gorillaEcho}, {"coder", coderEcho}} {
		for _, router := range []string{"net/http", "chi"} {
			t.Run(lib.name+"/"+router, func(t *testing.T) {
				var clk clock
				clk.sec.Store(t0.Unix())
				tr := activeusers.New(activeusers.WithClock(clk.now))
				var h http.Handler
				if router == "chi" {
					r := Chi(tr).(chi.Router)
					r.Get("/ws", lib.ws.handler)
					h = r
				} else {
					mux := http.NewServeMux()
					mux.Handle("/ws", lib.ws.handler)
					h = activeusers.Middleware(tr, bearer, activeusers.CountServed(400))(mux)
				}
				srv := httptest.NewServer(h)
				defer srv.Close()
				fiveMin := func() int { return tr.Counts(5 * time.Minute)[0] }

				roundTrip, closeConn := lib.ws.dial(t, srv.URL+"/ws", "alice")
				assert.Equal(t, 1, fiveMin(), "counted at the upgrade, while open")
				assert.Equal(t, "hello", roundTrip("hello"))
				clk.add(time.Hour)
				assert.Equal(t, 0, fiveMin(), "idle for an hour: aged out of 5 minutes")
				assert.Equal(t, "again", roundTrip("again"))
				assert.Equal(t, 1, fiveMin(), "a message an hour later counts again")
				clk.add(4 * time.Minute)
				assert.Equal(t, "later", roundTrip("later"))
				clk.add(4 * time.Minute)
				assert.Equal(t, 1, fiveMin(), "as of the last message")
				closeConn()
				assert.Equal(t, []int{1}, tr.Counts(24*time.Hour))
			})
		}
	}
}
