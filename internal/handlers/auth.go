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
// tokens.Set does: in constant time, every one of them). A client that failed too often is answered
// 429 with Retry-After before its token is looked at; failures are logged sampled, as refused webhooks
// are, and leave no access line each.
func requireToken(set *tokens.Set, guard *authlimit.Limiter) func(http.Handler) http.Handler {
	refusals := newSampledLog()
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			client := guard.Key(r)
			if wait := guard.Wait(client); wait > 0 {
				w.Header().Set("Retry-After", authlimit.RetryAfter(wait))
				writeProblem(w, r, errTooManyAttempts)
				return
			}
			scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			_, ok := set.Match(strings.TrimSpace(token))
			if !strings.EqualFold(scheme, "Bearer") || token == "" || !ok {
				guard.Failed(client)
				if suppressed, ok := refusals.take(); ok {
					zerolog.Ctx(r.Context()).Warn().Str("path", r.URL.Path).Int64("suppressed", suppressed).Msg("admin API authentication refused")
				}
				w.Header().Set("WWW-Authenticate", `Bearer realm="optin"`)
				writeProblem(w, r, errUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
