package handlers

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
)

var errUnauthorized = errors.New("missing or invalid bearer token")

// requireToken admits requests that carry one of tokens as a bearer token. The tokens are compared by
// their SHA-256 digests in constant time, every one of them, so the answer's timing says nothing of
// how close a guess came.
func requireToken(tokens []string) func(http.Handler) http.Handler {
	digests := make([][32]byte, 0, len(tokens))
	for _, t := range tokens {
		if t != "" {
			digests = append(digests, sha256.Sum256([]byte(t)))
		}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			got := sha256.Sum256([]byte(strings.TrimSpace(token)))
			ok := 0
			for _, d := range digests {
				ok |= subtle.ConstantTimeCompare(got[:], d[:])
			}
			if !strings.EqualFold(scheme, "Bearer") || token == "" || ok != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="optin"`)
				writeProblem(w, r, errUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
