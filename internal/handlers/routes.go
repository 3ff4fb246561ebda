// Package handlers is the service's HTTP surface: the chi router, its middleware and the handlers for
// Twilio's Conversations webhook (the guard's pre-events among them), the voice webhooks of masked
// calls, the incoming-message webhook of messages after a chat's end, and the health probes.
package handlers

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/optinkit/optin/internal/authlimit"
	"github.com/optinkit/optin/internal/signature"
	"github.com/optinkit/optin/internal/tokens"
)

// Recorder counts webhook requests by outcome (the metrics package's label values).
type Recorder interface {
	Webhook(outcome string)
}

type noRecorder struct{}

func (noRecorder) Webhook(string) {}

// Options are the router's optional parts; the zero value has none.
type Options struct {
	// Metrics counts webhook outcomes.
	Metrics Recorder
	// MetricsHandler, when set, is served at /metrics. This is the public listener: what it exports
	// must not name the business numbers (cmd/server serves them without the number label).
	MetricsHandler http.Handler
	// Admin, when set, serves /v1 (NewAdminRouter); without it /v1 is not found.
	Admin http.Handler
	// Console, when set, serves /console/ (the console package); without it /console/ is not found.
	Console http.Handler
	// Lifecycle, when set, is told of the events of chats started through the API: their close, their
	// messages and deliveries; without it those events are the opt-in's (which ignores all but messages).
	Lifecycle Lifecycle
	// Tracer, when set, makes a server span of each webhook and admin API request (Traced).
	Tracer trace.Tracer
	// Voice, when set, serves the voice webhooks (masked calls between a chat's parties).
	Voice *Voice
	// Mask, when set, answers the guard's pre-events on /webhooks/conversations (without it they
	// publish every message as written) and serves /webhooks/messaging (messages after the end).
	Mask *Mask
	// ReadyDetail, when set, adds its fields to /readyz's answer (what the start learnt of Twilio's
	// setup); it never makes the service unready.
	ReadyDetail func() map[string]string
}

// NewRouter lists every route with its middleware. flows, v and ready are required: ready reports why
// the service cannot take traffic (shutting down, or its state unreachable).
func NewRouter(log zerolog.Logger, flows Flows, v *signature.Validator, urls SignedURL, ready func(context.Context) error, opts Options) (http.Handler, error) {
	switch {
	case flows == nil:
		return nil, errors.New("handlers: nil Flows")
	case v == nil:
		return nil, errors.New("handlers: nil signature validator")
	case ready == nil:
		return nil, errors.New("handlers: nil readiness check")
	}
	rec := opts.Metrics
	if rec == nil {
		rec = noRecorder{}
	}

	r := chi.NewRouter()
	r.Use(requestScope(log))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { writeError(w, r, errNotFound) })
	r.MethodNotAllowed(methodNotAllowed(r, writeError))

	r.Get("/healthz", handleHealthz())
	r.Get("/readyz", handleReadyz(ready, opts.ReadyDetail))
	if opts.MetricsHandler != nil {
		r.Method(http.MethodGet, "/metrics", opts.MetricsHandler)
	}
	if opts.Admin != nil {
		r.Handle("/v1/*", Traced(opts.Tracer, opts.Admin))
	}
	mountConsole(r, opts.Console)

	webhook := Traced(opts.Tracer, handleConversationsWebhook(flows, opts.Lifecycle, newPreEvent(opts.Mask, rec), v, urls, rec))
	r.Method(http.MethodGet, "/webhooks/conversations", webhook)
	r.Method(http.MethodPost, "/webhooks/conversations", webhook)
	if opts.Voice != nil {
		voice, err := newVoiceHandlers(*opts.Voice, v, urls, rec)
		if err != nil {
			return nil, err
		}
		r.Method(http.MethodPost, voicePath, Traced(opts.Tracer, http.HandlerFunc(voice.call)))
		r.Method(http.MethodPost, statusPath, Traced(opts.Tracer, http.HandlerFunc(voice.status)))
		r.Method(http.MethodGet, whisperPath, http.HandlerFunc(voice.whisperTo))
		r.Method(http.MethodPost, whisperPath, http.HandlerFunc(voice.whisperTo))
	}
	if opts.Mask != nil {
		messaging, err := newMessagingHandler(*opts.Mask, v, urls, rec)
		if err != nil {
			return nil, err
		}
		r.Method(http.MethodPost, messagingPath, Traced(opts.Tracer, messaging))
	}
	return r, nil
}

// NewAdminRouter is the admin API under /v1: every route behind one of tokens (several, so that one can
// be rotated out while another is in use), guard slowing the clients that fail. Errors are
// application/problem+json.
func NewAdminRouter(chats Chats, pools Pools, adminTokens []string, guard *authlimit.Limiter, openAPI []byte) (http.Handler, error) {
	switch {
	case chats == nil:
		return nil, errors.New("handlers: nil Chats")
	case pools == nil:
		return nil, errors.New("handlers: nil Pools")
	case guard == nil:
		return nil, errors.New("handlers: nil authentication guard")
	}
	set := tokens.New(adminTokens)
	if set.Len() == 0 {
		return nil, errors.New("handlers: the admin API needs at least one token")
	}
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { writeProblem(w, r, errNotFound) })
	r.MethodNotAllowed(methodNotAllowed(r, writeProblem))
	r.Route("/v1", func(r chi.Router) {
		// The document holds no secret: tools and code generators fetch it without a token.
		r.Get("/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(openAPI)
		})
		r.Group(func(r chi.Router) {
			r.Use(requireToken(set, guard))
			r.Post("/chats", handleStartChat(chats))
			r.Get("/chats", handleListChats(chats))
			r.Get("/chats/{id}", handleGetChat(chats))
			r.Delete("/chats/{id}", handleEndChat(chats))
			r.Get("/pools", handlePools(pools))
		})
	})
	return r, nil
}

// NewAdminServer is the router of a separate admin listener (OPTIN_ADMIN_ADDR): the admin API, the
// console and /metrics when given, and the probes, with the same logging and recovery as the main
// router.
func NewAdminServer(log zerolog.Logger, admin, console, metrics http.Handler, ready func(context.Context) error) http.Handler {
	r := chi.NewRouter()
	r.Use(requestScope(log))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { writeProblem(w, r, errNotFound) })
	r.Get("/healthz", handleHealthz())
	r.Get("/readyz", handleReadyz(ready, nil))
	if metrics != nil {
		r.Method(http.MethodGet, "/metrics", metrics)
	}
	r.Handle("/v1/*", admin)
	mountConsole(r, console)
	return r
}

func mountConsole(r chi.Router, console http.Handler) {
	if console != nil {
		r.Handle("/console", console)
		r.Handle("/console/*", console)
	}
}

// methodNotAllowed answers 405 with the Allow header a client needs (chi sets it only in its own
// handler): the methods the path has among routes.
func methodNotAllowed(routes chi.Routes, write func(http.ResponseWriter, *http.Request, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var allowed []string
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
			if routes.Match(chi.NewRouteContext(), m, r.URL.Path) {
				allowed = append(allowed, m)
			}
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		write(w, r, errMethod)
	}
}
