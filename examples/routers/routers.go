// Package routers shows the shortest correct wiring of activeusers into the
// routers gateways are built on: chi, echo, gin and fiber. Each function
// builds a router with one route, /api/hello, behind middleware that records
// the request's account (the bearer token, in these examples; a real gateway
// takes it from what its authentication middleware verified).
//
// chi takes activeusers.Middleware as it is: it is net/http middleware. echo
// and gin have middleware types of their own; a few lines in each call Seen
// directly, rather than adapt net/http middleware (echo.WrapMiddleware
// allocates closures on every request; gin has no adapter). echo applies its
// middleware to the handler on every request, which costs one allocation for
// any echo middleware, this one included. fiber runs on
// fasthttp, not net/http: its adaptor converts every request to an
// *http.Request, so the native middleware below reads the header's bytes
// and calls SeenBytes instead, with no allocation.
package routers

import (
	"bytes"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/go-chi/chi/v5"
	"github.com/gofiber/fiber/v2"
	"github.com/labstack/echo/v4"

	"github.com/activeusers/activeusers"
)

// bearer is the account of a net/http request, "" if it has none.
func bearer(r *http.Request) string {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return token
}

func hello(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("hello")) }

// forbidden stands for a route an authorization layer refuses.
func forbidden(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) }

// Chi: activeusers.Middleware as it is. With CountServed(400), a request
// refused with 401, 403 or 429 does not count.
func Chi(t *activeusers.Tracker) http.Handler {
	r := chi.NewRouter()
	r.Use(activeusers.Middleware(t, bearer, activeusers.CountServed(400)))
	r.Get("/api/hello", hello)
	r.Get("/api/forbidden", forbidden)
	return r
}

// Echo: a native echo middleware. After next, c.Response().Status is the
// status sent, for counting only requests that were served.
func Echo(t *activeusers.Tracker) *echo.Echo {
	e := echo.New()
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			err := next(c)
			if err == nil && c.Response().Status < 400 {
				t.Seen(bearer(c.Request()))
			}
			return err
		}
	})
	e.GET("/api/hello", func(c echo.Context) error { return c.String(http.StatusOK, "hello") })
	e.GET("/api/forbidden", func(c echo.Context) error { return c.NoContent(http.StatusForbidden) })
	return e
}

// Gin: a native gin middleware; c.Writer.Status() after c.Next() is the
// status sent.
func Gin(t *activeusers.Tracker) *gin.Engine {
	r := gin.New()
	r.Use(func(c *gin.Context) {
		c.Next()
		if c.Writer.Status() < 400 {
			t.Seen(bearer(c.Request))
		}
	})
	r.GET("/api/hello", func(c *gin.Context) { c.String(http.StatusOK, "hello") })
	r.GET("/api/forbidden", func(c *gin.Context) { c.Status(http.StatusForbidden) })
	return r
}

var bearerPrefix = []byte("Bearer ")

// Fiber: a native fiber middleware on the header's bytes (fasthttp reuses
// them after the request, and SeenBytes does not keep them).
func Fiber(t *activeusers.Tracker) *fiber.App {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(func(c *fiber.Ctx) error {
		err := c.Next()
		if err == nil && c.Response().StatusCode() < 400 {
			if token, ok := bytes.CutPrefix(c.Request().Header.Peek("Authorization"), bearerPrefix); ok {
				t.SeenBytes(token)
			}
		}
		return err
	})
	app.Get("/api/hello", func(c *fiber.Ctx) error { return c.SendString("hello") })
	app.Get("/api/forbidden", func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusForbidden) })
	return app
}
