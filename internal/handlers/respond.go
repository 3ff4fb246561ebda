package handlers

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/rs/zerolog/hlog"

	"github.com/optinkit/optin/internal/optin"
)

// httpError is an error with the status and the client-facing message it maps to.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

var (
	errNotFound     = &httpError{http.StatusNotFound, "not found"}
	errMethod       = &httpError{http.StatusMethodNotAllowed, "method not allowed"}
	errTooLarge     = &httpError{http.StatusRequestEntityTooLarge, "request body exceeds 1 MiB"}
	errNoSignature  = &httpError{http.StatusForbidden, "missing X-Twilio-Signature"}
	errBadSignature = &httpError{http.StatusForbidden, "invalid X-Twilio-Signature"}
	errInternal     = &httpError{http.StatusInternalServerError, "internal error"}
)

func malformed(msg string) error { return &httpError{http.StatusBadRequest, msg} }

// writeError is the one place errors become responses; internals are logged, never sent.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	switch {
	case errors.As(err, &he):
	case errors.Is(err, optin.ErrInvalidEvent):
		he = &httpError{http.StatusBadRequest, err.Error()}
	case errors.Is(err, optin.ErrUnavailable):
		hlog.FromRequest(r).Error().Err(err).Msg("request failed")
		he = &httpError{http.StatusServiceUnavailable, "temporarily unavailable"}
	default:
		hlog.FromRequest(r).Error().Err(err).Msg("request failed")
		he = errInternal
	}
	writeJSON(w, he.status, map[string]string{"error": he.msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
