package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/rs/zerolog/hlog"

	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/metrics"
	"github.com/optinkit/optin/internal/pii"
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

// malformedError is a 400 whose detail the client may read: what is wrong with its own request, in
// plain words, and the field at fault when one is.
type malformedError struct {
	field, message string
}

// malformed is a malformedError about the request as a whole.
func malformed(message string) error { return &malformedError{message: message} }

// malformedField is a malformedError naming the field at fault (customer.address).
func malformedField(field, message string) error {
	if field == "" {
		return malformed("the body's JSON object " + message)
	}
	return &malformedError{field: field, message: message}
}

// Error is the text the webhook's JSON answer carries.
func (e *malformedError) Error() string { return errMalformed.Error() + ": " + e.detail() }

func (e *malformedError) Unwrap() error { return errMalformed }

// detail is what the problem's detail says: the field, then what is wrong.
func (e *malformedError) detail() string {
	if e.field == "" {
		return e.message
	}
	return e.field + ": " + e.message
}

// failure is how one kind of error is answered and counted.
type failure struct {
	status int
	// slug names the problem type in problem+json answers (docs/API.md#errors).
	slug string
	// title is what the client is told.
	title string
	// detail: the client is also told the error's own text (only for errors about its request).
	detail bool
	// outcome labels a rejected webhook in optin_webhook_requests_total.
	outcome string
	// logged: an internal failure, logged with its cause, which the client never sees.
	logged bool
}

// isType matches an error of type T anywhere in a chain.
func isType[T error](err error) bool {
	_, ok := errors.AsType[T](err)
	return ok
}

// failures is the one table from errors to answers; the first match wins, the last row is the default.
// A row matches a sentinel (errors.Is) or, with match set, an error type.
var failures = []struct {
	err   error
	match func(error) bool
	failure
}{
	{err: errNotFound, failure: failure{status: http.StatusNotFound, slug: "not-found", title: "not found"}},
	{err: errMethod, failure: failure{status: http.StatusMethodNotAllowed, slug: "method-not-allowed", title: "method not allowed"}},
	{err: errTooLarge, failure: failure{status: http.StatusRequestEntityTooLarge, slug: "too-large", title: fmt.Sprintf("request body exceeds %d KiB", MaxBodyBytes>>10), outcome: metrics.TooLarge}},
	{err: errNoSignature, failure: failure{status: http.StatusForbidden, slug: "bad-signature", title: errNoSignature.Error(), outcome: metrics.BadSignature}},
	{err: errBadSignature, failure: failure{status: http.StatusForbidden, slug: "bad-signature", title: errBadSignature.Error(), outcome: metrics.BadSignature}},
	{err: errUnauthorized, failure: failure{status: http.StatusUnauthorized, slug: "unauthorized", title: errUnauthorized.Error()}},
	{err: errTooManyAttempts, failure: failure{status: http.StatusTooManyRequests, slug: "too-many-attempts", title: "too many failed attempts; wait as Retry-After says"}},
	{err: errMalformed, failure: failure{status: http.StatusBadRequest, slug: "malformed", title: "malformed request", detail: true, outcome: metrics.Malformed}},
	{err: errMediaType, failure: failure{status: http.StatusUnsupportedMediaType, slug: "unsupported-media-type", title: "the body must be application/json"}},
	{err: conversation.ErrInvalidEvent, failure: failure{status: http.StatusBadRequest, slug: "malformed", title: "invalid event", detail: true, outcome: metrics.Malformed}},
	{match: isType[*chat.ValidationError], failure: failure{status: http.StatusUnprocessableEntity, slug: "validation", title: "invalid request", detail: true}},
	{err: chat.ErrNotFound, failure: failure{status: http.StatusNotFound, slug: "not-found", title: "no such chat"}},
	{err: chat.ErrConflict, failure: failure{status: http.StatusConflict, slug: "id-conflict", title: "chat id already used with a different request"}},
	{match: isType[*chat.NoNumberError], failure: failure{status: http.StatusConflict, slug: "no-free-number", title: "no business number is free for a party", detail: true}},
	{match: isType[*chat.TwilioError], failure: failure{status: http.StatusConflict, slug: "twilio-refused", title: "Twilio refused the request", detail: true}},
	{err: chat.ErrEnded, failure: failure{status: http.StatusConflict, slug: "ended-during-start", title: "the chat was ended while it was being started"}},
	// 5xx answers say nothing of their cause (Twilio URLs, dial errors, Redis addresses): it is in the
	// log line of the request's X-Request-Id.
	{err: chat.ErrBusy, failure: failure{status: http.StatusServiceUnavailable, slug: "busy", title: "not finished yet; repeat the call", logged: true}},
	{err: conversation.ErrUnavailable, failure: failure{status: http.StatusServiceUnavailable, slug: "unavailable", title: "temporarily unavailable", outcome: metrics.Unavailable, logged: true}},
	{failure: failure{status: http.StatusInternalServerError, slug: "internal", title: "internal error", outcome: metrics.Failed, logged: true}},
}

// failureOf finds err's row of the table.
func failureOf(err error) failure {
	for _, row := range failures {
		switch {
		case row.match != nil:
			if row.match(err) {
				return row.failure
			}
		case row.err == nil || errors.Is(err, row.err):
			return row.failure
		}
	}
	panic("unreachable: the table ends with a default")
}

// problemBase prefixes each problem's slug to make its type URI.
const problemBase = "https://github.com/optinkit/optin/blob/main/docs/API.md#problem-"

// problem is an RFC 9457 answer.
type problem struct {
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Status     int            `json:"status"`
	Detail     string         `json:"detail,omitempty"`
	Errors     []problemField `json:"errors,omitempty"`
	TwilioCode int            `json:"twilio_code,omitempty"`
}

type problemField struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// writeProblem is writeError for the admin API: the same table, as application/problem+json.
func writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	f := failureOf(err)
	if f.logged {
		hlog.FromRequest(r).Error().Err(err).Msg("request failed")
	}
	p := problem{Type: problemBase + f.slug, Title: f.title, Status: f.status}
	if f.detail {
		p.Detail = pii.Redact(err.Error())
	}
	if me, ok := errors.AsType[*malformedError](err); ok {
		p.Detail = pii.Redact(me.detail())
		if me.field != "" {
			p.Errors = []problemField{{me.field, pii.Redact(me.message)}}
		}
	}
	if ve, ok := errors.AsType[*chat.ValidationError](err); ok {
		p.Detail = "see errors"
		for _, fe := range ve.Fields {
			p.Errors = append(p.Errors, problemField{fe.Field, fe.Message})
		}
	}
	if te, ok := errors.AsType[*chat.TwilioError](err); ok {
		p.TwilioCode = te.Code
	}
	if nn, ok := errors.AsType[*chat.NoNumberError](err); ok {
		p.TwilioCode = nn.TwilioCode
	}
	if f.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(f.status)
	_ = json.NewEncoder(w).Encode(p)
}

// writeError is the one place errors become responses; internals are logged, never sent.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	f := failureOf(err)
	if f.logged {
		hlog.FromRequest(r).Error().Err(err).Msg("request failed")
	}
	if !f.detail {
		writeFixed(w, f.status, "error", f.title, "", "")
		return
	}
	writeJSON(w, f.status, map[string]string{"error": pii.Redact(err.Error())})
}

// fixedAnswers caches the JSON of answers made only of constant texts — the webhook's outcomes and
// reasons, the errors' titles — so that the answer to each of a flood of forged requests is a copy of
// bytes. It stays as small as the set of those constants.
var fixedAnswers = struct {
	sync.RWMutex
	m map[[4]string][]byte
}{m: map[[4]string][]byte{}}

// jsonContentType is shared by every fixed answer's header rather than allocated for each: nothing
// changes a header's values in place.
var jsonContentType = []string{"application/json"}

// writeFixed answers {k1: v1, k2: v2} (k2 empty: only the first pair), exactly as writeJSON would. The
// values must be constants of the code, never request data.
func writeFixed(w http.ResponseWriter, status int, k1, v1, k2, v2 string) {
	key := [4]string{k1, v1, k2, v2}
	fixedAnswers.RLock()
	body, ok := fixedAnswers.m[key]
	fixedAnswers.RUnlock()
	if !ok {
		m := map[string]string{k1: v1}
		if k2 != "" {
			m[k2] = v2
		}
		b, _ := json.Marshal(m)
		body = append(b, '\n')
		fixedAnswers.Lock()
		fixedAnswers.m[key] = body
		fixedAnswers.Unlock()
	}
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
