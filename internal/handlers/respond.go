package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/rs/zerolog/hlog"

	"github.com/optinkit/optin/internal/metrics"
	"github.com/optinkit/optin/internal/optin"
)

// Errors of the HTTP layer itself; the table below gives each its answer.
var (
	errNotFound     = errors.New("not found")
	errMethod       = errors.New("method not allowed")
	errTooLarge     = errors.New("request body too large")
	errNoSignature  = errors.New("missing X-Twilio-Signature")
	errBadSignature = errors.New("invalid X-Twilio-Signature")
	errMalformed    = errors.New("malformed request")
)

// malformed is a 400 whose detail the client may read: it names what is wrong with its own request.
func malformed(detail string) error { return fmt.Errorf("%w: %s", errMalformed, detail) }

// failure is how one kind of error is answered and counted.
type failure struct {
	status int
	// title is what the client is told.
	title string
	// detail: the client is also told the error's own text (only for errors about its request).
	detail bool
	// outcome labels a rejected webhook in optin_webhook_requests_total.
	outcome string
	// logged: an internal failure, logged with its cause, which the client never sees.
	logged bool
}

// failures is the one table from errors to answers; the first match wins, the last row is the default.
var failures = []struct {
	err error
	failure
}{
	{errNotFound, failure{status: http.StatusNotFound, title: "not found"}},
	{errMethod, failure{status: http.StatusMethodNotAllowed, title: "method not allowed"}},
	{errTooLarge, failure{status: http.StatusRequestEntityTooLarge, title: fmt.Sprintf("request body exceeds %d KiB", MaxBodyBytes>>10), outcome: metrics.TooLarge}},
	{errNoSignature, failure{status: http.StatusForbidden, title: errNoSignature.Error(), outcome: metrics.BadSignature}},
	{errBadSignature, failure{status: http.StatusForbidden, title: errBadSignature.Error(), outcome: metrics.BadSignature}},
	{errMalformed, failure{status: http.StatusBadRequest, title: "malformed request", detail: true, outcome: metrics.Malformed}},
	{optin.ErrInvalidEvent, failure{status: http.StatusBadRequest, title: "invalid event", detail: true, outcome: metrics.Malformed}},
	{optin.ErrUnavailable, failure{status: http.StatusServiceUnavailable, title: "temporarily unavailable", outcome: metrics.Unavailable, logged: true}},
	{nil, failure{status: http.StatusInternalServerError, title: "internal error", outcome: metrics.Failed, logged: true}},
}

// failureOf finds err's row of the table.
func failureOf(err error) failure {
	for _, row := range failures {
		if row.err == nil || errors.Is(err, row.err) {
			return row.failure
		}
	}
	panic("unreachable: the table ends with a default")
}

// writeError is the one place errors become responses; internals are logged, never sent.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	f := failureOf(err)
	if f.logged {
		hlog.FromRequest(r).Error().Err(err).Msg("request failed")
	}
	msg := f.title
	if f.detail {
		msg = err.Error()
	}
	writeJSON(w, f.status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
