// Package handlers is the service's HTTP surface: the chi router, its middleware and the handlers for
// Twilio's Conversations webhook and the health probes.
package handlers

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"
	"github.com/rs/zerolog/hlog"

	"github.com/optinkit/optin/internal/signature"
)

// Deps is everything the routes use.
type Deps struct {
	Log       zerolog.Logger
	Flows     Flows
	Validator *signature.Validator
	URLs      SignedURL
	// Ready reports why the service cannot take traffic: shutting down, or its state unreachable.
	Ready func(ctx context.Context) error
	// Metrics counts webhook outcomes; nil counts nothing.
	Metrics Recorder
	// MetricsHandler, when set, is served at /metrics.
	MetricsHandler http.Handler
}

// Recorder counts webhook requests by outcome (the metrics package's label values).
type Recorder interface {
	Webhook(outcome string)
}

type noRecorder struct{}

func (noRecorder) Webhook(string) {}

// NewRouter lists every route with its middleware.
func NewRouter(d Deps) http.Handler {
	r := chi.NewRouter()
	r.Use(
		hlog.NewHandler(d.Log),
		hlog.RequestIDHandler("request_id", "X-Request-Id"),
		accessLog,
		recoverer,
	)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, errNotFound)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, errMethod)
	})

	r.Get("/healthz", handleHealthz())
	r.Get("/readyz", handleReadyz(d.Ready))
	if d.MetricsHandler != nil {
		r.Method(http.MethodGet, "/metrics", d.MetricsHandler)
	}

	rec := d.Metrics
	if rec == nil {
		rec = noRecorder{}
	}
	webhook := handleConversationsWebhook(d.Flows, d.Validator, d.URLs, rec)
	r.Method(http.MethodGet, "/webhooks/conversations", webhook)
	r.Method(http.MethodPost, "/webhooks/conversations", webhook)
	return r
}
