package handlers

import (
	"errors"
	"net/http"
	"strings"

	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/authlimit"
	"github.com/optinkit/optin/internal/tokens"
)

var (
	errUnauthorized    = errors.New("missing or invalid bearer token")
	errTooManyAttempts = errors.New("too many failed attempts")
)

// requireToken admits requests that carry one of the tokens as a bearer token (compared as
// tokens.Set does: in constant time, every one of them), whatever failures their client made before: a
// right token is never refused because a stale script or a guesser shares the client's address. A
// wrong token is 401 within the client's budget of failures, 429 with Retry-After beyond it. Refusals
// are logged sampled, naming the client as the guard knows it, never the token.
func requireToken(set *tokens.Set, guard *authlimit.Limiter) func(http.Handler) http.Handler {
	refusals := newSampledLog()
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			_, ok := set.Match(strings.TrimSpace(token))
			if strings.EqualFold(scheme, "Bearer") && token != "" && ok {
				next.ServeHTTP(w, r)
				return
			}
			client := guard.Key(r)
			wait := guard.Failed(client)
			if suppressed, ok := refusals.take(); ok {
				zerolog.Ctx(r.Context()).Warn().Str("path", r.URL.Path).Str("client", client).Bool("throttled", wait > 0).
					Int64("suppressed", suppressed).Msg("admin API authentication refused")
			}
			if wait > 0 {
				w.Header().Set("Retry-After", authlimit.RetryAfter(wait))
				writeProblem(w, r, errTooManyAttempts)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="optin"`)
			writeProblem(w, r, errUnauthorized)
		})
	}
}
