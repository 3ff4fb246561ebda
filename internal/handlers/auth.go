package handlers

import (
	"errors"
	"net/http"
	"strings"

	"github.com/optinkit/optin/internal/tokens"
)

var errUnauthorized = errors.New("missing or invalid bearer token")

// requireToken admits requests that carry one of the tokens as a bearer token (compared as
// tokens.Set does: in constant time, every one of them).
func requireToken(set *tokens.Set) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			_, ok := set.Match(strings.TrimSpace(token))
			if !strings.EqualFold(scheme, "Bearer") || token == "" || !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="optin"`)
				writeProblem(w, r, errUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
