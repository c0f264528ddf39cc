package routers

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-chi/chi/v5"
	"github.com/gofiber/fiber/v2"
	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"github.com/activeusers/activeusers"
)

func init() { gin.SetMode(gin.ReleaseMode) }

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// serve is one router behind a uniform call: path, token → status.
type serve func(path, token string) int

func viaNetHTTP(h http.Handler) serve {
	return func(path, token string) int {
		r := httptest.NewRequest("GET", path, nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
}

// viaFasthttp serves through fiber's fasthttp handler, as fiber's server does.
func viaFasthttp(h fasthttp.RequestHandler) serve {
	return func(path, token string) int {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("GET")
		ctx.Request.SetRequestURI(path)
		if token != "" {
			ctx.Request.Header.Set("Authorization", "Bearer "+token)
		}
		h(&ctx)
		return ctx.Response.StatusCode()
	}
}

// routers is each router behind a serve: with the middleware counting into
// t, or bare (no counting) if t is nil.
func routers(t *activeusers.Tracker) map[string]serve {
	std, fast := handlers(t)
	return map[string]serve{"chi": viaNetHTTP(std["chi"]), "echo": viaNetHTTP(std["echo"]), "gin": viaNetHTTP(std["gin"]), "fiber": viaFasthttp(fast)}
}

// TestEveryRouterCountsServedAccounts: alice twice, bob, an anonymous
// request, and carol refused with 403 — two accounts, in every router.
func TestEveryRouterCountsServedAccounts(t *testing.T) {
	for _, name := range []string{"chi", "echo", "gin", "fiber"} {
		t.Run(name, func(t *testing.T) {
			tr := activeusers.New(activeusers.WithClock(func() time.Time { return t0 }))
			call := routers(tr)[name]
			for _, token := range []string{"alice", "bob", "alice", ""} {
				require.Equal(t, http.StatusOK, call("/api/hello", token))
			}
			require.Equal(t, http.StatusForbidden, call("/api/forbidden", "carol"))
			assert.Equal(t, []int{2}, tr.Counts(time.Hour))
		})
	}
}

// discard is a ResponseWriter that keeps nothing, so that a benchmark op is
// the router's work and the middleware's, not a recorder's.
type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(code int)        { d.code = code }

// handlers is each router's handler, for the benchmark's reuse of one
// request: net/http ones, and fiber's fasthttp one.
func handlers(t *activeusers.Tracker) (map[string]http.Handler, fasthttp.RequestHandler) {
	if t == nil {
		c := chi.NewRouter()
		c.Get("/api/hello", hello)
		e := echo.New()
		e.GET("/api/hello", func(c echo.Context) error { return c.String(http.StatusOK, "hello") })
		g := gin.New()
		g.GET("/api/hello", func(c *gin.Context) { c.String(http.StatusOK, "hello") })
		f := fiber.New(fiber.Config{DisableStartupMessage: true})
		f.Get("/api/hello", func(c *fiber.Ctx) error { return c.SendString("hello") })
		return map[string]http.Handler{"chi": c, "echo": e, "gin": g}, f.Handler()
	}
	return map[string]http.Handler{"chi": Chi(t), "echo": Echo(t), "gin": Gin(t)}, Fiber(t).Handler()
}

// BenchmarkRouters: one request, built once, through each router, bare and
// with the activeusers middleware (a returning account). The difference is
// what the middleware adds per request.
func BenchmarkRouters(b *testing.B) {
	tr := activeusers.New()
	defer tr.Close()
	r := httptest.NewRequest("GET", "/api/hello", nil)
	r.Header.Set("Authorization", "Bearer alice")
	for _, variant := range []string{"bare", "activeusers"} {
		var t *activeusers.Tracker
		if variant == "activeusers" {
			t = tr
		}
		std, fast := handlers(t)
		for _, name := range []string{"chi", "echo", "gin"} {
			b.Run("router="+name+"/"+variant, func(b *testing.B) {
				w := &discard{h: http.Header{}}
				b.ReportAllocs()
				for b.Loop() {
					std[name].ServeHTTP(w, r)
				}
			})
		}
		b.Run("router=fiber/"+variant, func(b *testing.B) {
			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetMethod("GET")
			ctx.Request.SetRequestURI("/api/hello")
			ctx.Request.Header.Set("Authorization", "Bearer alice")
			b.ReportAllocs()
			for b.Loop() {
				fast(&ctx)
			}
		})
	}
}

// TestMiddlewareAddsNoAllocation holds the figure the benchmark shows.
func TestMiddlewareAddsNoAllocation(t *testing.T) {
	if raceEnabled {
		t.Skip("under -race, which allocates and drops sync.Pool items at random: ./test.sh and .ci/run run it without")
	}
	tr := activeusers.New()
	defer tr.Close()
	with, without := routers(tr), routers(nil)
	// echo applies its middleware to the handler on every request
	// (applyMiddleware in (*Echo).ServeHTTP), allocating the closure that
	// results: one allocation for any echo middleware, none from what this
	// one does.
	echoApplies := map[string]float64{"echo": 1}
	for _, name := range []string{"chi", "echo", "gin", "fiber"} {
		with[name]("/api/hello", "alice")
		without[name]("/api/hello", "alice")
		b := testing.AllocsPerRun(200, func() { without[name]("/api/hello", "alice") })
		w := testing.AllocsPerRun(200, func() { with[name]("/api/hello", "alice") })
		assert.Equal(t, b+echoApplies[name], w, "%s: the middleware adds no allocation of its own", name)
	}
}
