package activeusers

import "net/http"

// Middleware returns net/http middleware that records each request's account
// as seen, then serves it. accountID extracts the account from the request —
// typically from a token or session the authentication middleware before it
// put in the context — and returns "" for requests that are not authenticated,
// which are not counted.
//
// The middleware adds no allocation to a request beyond what accountID does.
// It panics if t or accountID is nil, at wiring time rather than on the first
// request.
func Middleware(t *Tracker, accountID func(*http.Request) string) func(http.Handler) http.Handler {
	if t == nil {
		panic("activeusers.Middleware: nil *Tracker")
	}
	if accountID == nil {
		panic("activeusers.Middleware: nil accountID function")
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t.Seen(accountID(r))
			next.ServeHTTP(w, r)
		})
	}
}
