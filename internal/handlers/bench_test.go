package handlers

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/signature"
)

type decideOnly struct{}

func (decideOnly) Handle(context.Context, conversation.Event) (conversation.Decision, error) {
	return conversation.Decision{Outcome: conversation.OutcomeDuplicate}, nil
}

// BenchmarkWebhookPOST is a signed form webhook through the real router, middleware and logging
// included, with a flow that only decides.
func BenchmarkWebhookPOST(b *testing.B) {
	h, err := NewRouter(zerolog.New(io.Discard), decideOnly{}, signature.New(token), SignedURL{},
		func(context.Context) error { return nil }, Options{})
	if err != nil {
		b.Fatal(err)
	}
	body := event.Encode()
	sig := signature.Compute(token, target, event)
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("X-Twilio-Signature", sig)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkForgedWebhook is the refusal path — a forged signature through the real router — with
// tracing off (no Tracer: the handler is the same as without tracing) and on (the SDK recording every
// span, exported nowhere): what turning traces on costs each forged request.
func BenchmarkForgedWebhook(b *testing.B) {
	for _, bc := range []struct {
		name   string
		tracer trace.Tracer
	}{
		{"off", nil},
		{"on", sdktrace.NewTracerProvider().Tracer("bench")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h, err := NewRouter(zerolog.New(io.Discard), decideOnly{}, signature.New(token), SignedURL{},
				func(context.Context) error { return nil }, Options{Tracer: bc.tracer})
			if err != nil {
				b.Fatal(err)
			}
			body := event.Encode()
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				r.Header.Set("X-Twilio-Signature", "forged0000000000000000000000=")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusForbidden {
					b.Fatal(w.Code)
				}
			}
		})
	}
}
