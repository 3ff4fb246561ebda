package handlers

import (
	"fmt"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/rs/xid"
	"github.com/rs/zerolog"
)

// requestScope is every request's frame, in one layer (one copy of the request, one context value: on
// the webhook's path it runs for each forged request too): a logger carrying a new request_id, also
// answered as X-Request-Id; a panic turned into a logged 500 instead of a dropped connection; and one
// access line once answered — but for a refused webhook (403), logged sampled where it is refused: a
// flood of forged webhooks must not become a flood of lines. A refused authentication (401, 429) has
// its access line like any answer: the operator sees every one, and who is failing in the sampled
// refusal lines.
func requestScope(log zerolog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			var buf [20]byte
			id := string(xid.New().Encode(buf[:]))
			l := log.With().Str("request_id", id).Logger()
			r = r.WithContext(l.WithContext(r.Context()))
			w.Header()["X-Request-Id"] = []string{id}
			sw := &statusWriter{ResponseWriter: w}
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					l.Error().Interface("panic", v).Bytes("stack", debug.Stack()).Msg("handler panicked")
					writeError(sw, r, fmt.Errorf("handler panicked: %v", v))
				}
				if sw.status == http.StatusForbidden {
					return
				}
				l.Info().
					Str("method", r.Method).
					Str("path", r.URL.Path).
					Int("status", sw.status).
					Int("size", sw.size).
					Dur("latency", time.Since(start)).
					Msg("request")
			}()
			next.ServeHTTP(sw, r)
		})
	}
}

// statusWriter notes the status and size of an answer.
type statusWriter struct {
	http.ResponseWriter
	status, size int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.size += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer (to flush, or to set deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
