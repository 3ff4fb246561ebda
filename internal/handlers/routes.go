// Package handlers is the service's HTTP surface: the chi router, its middleware and the handlers for
// Twilio's Conversations webhook and the health probes.
package handlers

import (
	"context"
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"
	"github.com/rs/zerolog/hlog"

	"github.com/optinkit/optin/internal/signature"
)

// Recorder counts webhook requests by outcome (the metrics package's label values).
type Recorder interface {
	Webhook(outcome string)
}

type noRecorder struct{}

func (noRecorder) Webhook(string) {}

// Observability is what the routes report to; its zero value reports nothing.
type Observability struct {
	// Metrics counts webhook outcomes.
	Metrics Recorder
	// Handler, when set, is served at /metrics.
	Handler http.Handler
}

// NewRouter lists every route with its middleware. flows, v and ready are required: ready reports why
// the service cannot take traffic (shutting down, or its state unreachable).
func NewRouter(log zerolog.Logger, flows Flows, v *signature.Validator, urls SignedURL, ready func(context.Context) error, obs Observability) (http.Handler, error) {
	switch {
	case flows == nil:
		return nil, errors.New("handlers: nil Flows")
	case v == nil:
		return nil, errors.New("handlers: nil signature validator")
	case ready == nil:
		return nil, errors.New("handlers: nil readiness check")
	}
	rec := obs.Metrics
	if rec == nil {
		rec = noRecorder{}
	}

	r := chi.NewRouter()
	r.Use(
		hlog.NewHandler(log),
		hlog.RequestIDHandler("request_id", "X-Request-Id"),
		accessLog,
		recoverer,
	)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { writeError(w, r, errNotFound) })
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) { writeError(w, r, errMethod) })

	r.Get("/healthz", handleHealthz())
	r.Get("/readyz", handleReadyz(ready))
	if obs.Handler != nil {
		r.Method(http.MethodGet, "/metrics", obs.Handler)
	}

	webhook := handleConversationsWebhook(flows, v, urls, rec)
	r.Method(http.MethodGet, "/webhooks/conversations", webhook)
	r.Method(http.MethodPost, "/webhooks/conversations", webhook)
	return r, nil
}
