package handlers

import (
	"fmt"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/rs/zerolog/hlog"
)

// accessLog writes one line per request — but for a refused webhook (403): that one is logged, sampled,
// as "webhook rejected".
var accessLog = hlog.AccessHandler(func(r *http.Request, status, size int, d time.Duration) {
	if status == http.StatusForbidden {
		return
	}
	hlog.FromRequest(r).Info().
		Str("method", r.Method).
		Str("path", r.URL.Path).
		Int("status", status).
		Int("size", size).
		Dur("latency", d).
		Msg("request")
})

// recoverer turns a panic into a logged 500 instead of a dropped connection.
func recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				hlog.FromRequest(r).Error().Interface("panic", v).Bytes("stack", debug.Stack()).Msg("handler panicked")
				writeError(w, r, fmt.Errorf("handler panicked: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}
