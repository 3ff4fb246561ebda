package handlers

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/optinkit/optin/internal/tracing"
)

// Traced makes a server span of each request to h, named by its method and route template, in the
// trace its caller sent (traceparent) or a new one; its handler's log lines carry the span's ids.
// The span holds the method, the route and the status — never the URL or its query, where a GET
// webhook carries the customer's number and message. With t nil it returns h.
func Traced(t trace.Tracer, h http.Handler) http.Handler {
	if t == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := tracing.ExtractHeader(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := t.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method)))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r.WithContext(tracing.WithLogIDs(ctx)))
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		if rc := chi.RouteContext(r.Context()); rc != nil && len(rc.RoutePatterns) > 0 {
			route := routeOf(rc.RoutePatterns)
			span.SetName(r.Method + " " + route)
			span.SetAttributes(attribute.String("http.route", route))
		}
		span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.status))
		}
	})
}

// routeOf joins the route patterns chi matched, router by router, into one template: "/v1/*" (where
// the admin API is handed the request, and where it mounts its routes) and "/chats/{id}" are
// "/v1/chats/{id}".
func routeOf(patterns []string) string {
	route := ""
	for i, p := range patterns {
		if i > 0 && p == patterns[i-1] {
			continue
		}
		route = strings.TrimSuffix(route, "/*") + p
	}
	return route
}
