package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/redistest"
)

// startTraced runs the server with its spans recorded in memory, as the SDK's test exporter keeps them.
func startTraced(t *testing.T, fake *twilio, env map[string]string) (*server, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return startRunCtx(t, withTracerProvider(context.Background(), tp), baseEnv(fake, env), "optin-server"), exp
}

// spansNamed returns the recorded spans called name.
func spansNamed(spans tracetest.SpanStubs, name string) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// One opt-in is one trace: the webhook's request, the run of its work off the queue (in memory, and
// across Redis), and every Twilio call of the work — a 429 answered and its retry as two client spans
// — and no span holds a number, a message or a credential.
func TestOneTraceFromWebhookToTwilio(t *testing.T) {
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			env := map[string]string{}
			if backend == "redis" {
				env["OPTIN_REDIS_URL"] = redistest.Start(t).URL()
			}
			fake := newFake(t, hook(1), hook(2))
			fail(t, fake, emulator.Fault{Route: "messages.create", Kind: "429", Code: 20429, Count: 1})
			s, exp := startTraced(t, fake, env)
			// A GET webhook: the customer's number and message are in the query.
			if code, body := s.send(s.getReq(event(msg1, customer))); code != 200 || body != `{"outcome":"accepted"}` {
				t.Fatalf("webhook: %d %s", code, body)
			}
			awaitSpan(t, exp, spanWork)
			s.stop()
			spans := exp.GetSpans()
			hooks, works := spansNamed(spans, "GET /webhooks/conversations"), spansNamed(spans, spanWork)
			if len(hooks) != 1 || len(works) != 1 {
				t.Fatalf("webhook spans %d, work spans %d: %v", len(hooks), len(works), names(spans))
			}
			hook, work := hooks[0], works[0]
			if work.Parent.SpanID() != hook.SpanContext.SpanID() || work.SpanContext.TraceID() != hook.SpanContext.TraceID() {
				t.Errorf("the work is not the webhook's child: parent %s, webhook %s", work.Parent.SpanID(), hook.SpanContext.SpanID())
			}
			want := map[string]int{"twilio create_message": 3, "twilio list_webhooks": 1, "twilio delete_webhook": 2}
			got := map[string]int{}
			for _, sp := range spans {
				if !strings.HasPrefix(sp.Name, "twilio ") {
					continue
				}
				got[sp.Name]++
				if sp.SpanContext.TraceID() != hook.SpanContext.TraceID() || sp.Parent.SpanID() != work.SpanContext.SpanID() {
					t.Errorf("%s is not in the work's trace, under the work", sp.Name)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("client spans %v, want %v (the 429 and its retry are two)", got, want)
			}
			refused := 0
			for _, sp := range spansNamed(spans, "twilio create_message") {
				attrs := map[string]string{}
				for _, a := range sp.Attributes {
					attrs[string(a.Key)] = a.Value.Emit()
				}
				if attrs["url.template"] != "/v1/Conversations/{ConversationSid}/Messages" || attrs["http.request.method"] != "POST" {
					t.Errorf("create_message attributes %v", attrs)
				}
				if attrs["http.response.status_code"] == "429" && attrs["twilio.error_code"] == "20429" {
					refused++
				}
			}
			if refused != 1 {
				t.Errorf("%d create_message spans carry the 429 and its code, want 1", refused)
			}
			// Nothing personal or secret anywhere in a span.
			for _, sp := range spans {
				text := sp.Name
				for _, a := range sp.Attributes {
					text += " " + a.Value.Emit()
				}
				for _, ev := range sp.Events {
					text += " " + ev.Name
					for _, a := range ev.Attributes {
						text += " " + a.Value.Emit()
					}
				}
				for _, secret := range []string{"15550001111", "Yes", authToken, waitText, riderText, "Body", "Author"} {
					if strings.Contains(text, secret) {
						t.Errorf("span %s holds %q: %s", sp.Name, secret, text)
					}
				}
			}
		})
	}
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

// awaitSpan polls until a span called name has ended; if it gives up, it names those that have.
func awaitSpan(t *testing.T, exp *tracetest.InMemoryExporter, name string) {
	t.Helper()
	defer func() {
		if spans := exp.GetSpans(); len(spansNamed(spans, name)) == 0 {
			t.Logf("spans: %v", names(spans))
		}
	}()
	poll.Until(t, "a span "+name, func() bool { return len(spansNamed(exp.GetSpans(), name)) > 0 })
}

// A chat's start is one trace — the API request, a span per step, the step's Twilio calls under it —
// each delivery of its events to the platform is a trace of its own, linked to the one that made the
// event, and the log lines of the traced work carry the trace's ids.
func TestTracesOfAChatStartAndItsEvents(t *testing.T) {
	p := newPlatform(t, "order-8812")
	s, exp := startTraced(t, newTwilio(t, emulator.Options{}), adminEnv(map[string]string{"OPTIN_CALLBACK_URL": p.srv.URL + "/hooks/optin", "OPTIN_CALLBACK_SECRET": callbackSecret}))
	if code, _, body := s.api("POST", "/v1/chats", adminToken1, startBody); code != 201 {
		t.Fatalf("start: %d %s", code, body)
	}
	p.waitFor(1)
	awaitSpan(t, exp, spanCallback)
	spans := exp.GetSpans()
	starts := spansNamed(spans, "POST /v1/chats")
	if len(starts) != 1 {
		t.Fatalf("start spans: %v", names(spans))
	}
	start := starts[0]
	steps := map[string]string{} // step span id → name
	for _, sp := range spans {
		if strings.HasPrefix(sp.Name, "chat.step ") {
			if sp.Parent.SpanID() != start.SpanContext.SpanID() {
				t.Errorf("%s is not under the start", sp.Name)
			}
			steps[sp.SpanContext.SpanID().String()] = sp.Name
		}
	}
	if len(steps) != 6 { // conversation, two webhooks, two participants, the invitation (numbers needs no Twilio call)
		t.Errorf("step spans %v", steps)
	}
	for _, sp := range spans {
		if strings.HasPrefix(sp.Name, "twilio ") && steps[sp.Parent.SpanID().String()] == "" {
			t.Errorf("%s is not under a step", sp.Name)
		}
	}
	delivery := spansNamed(spans, spanCallback)[0]
	if delivery.SpanContext.TraceID() == start.SpanContext.TraceID() || delivery.Parent.IsValid() ||
		len(delivery.Links) != 1 || delivery.Links[0].SpanContext.TraceID() != start.SpanContext.TraceID() {
		t.Errorf("the delivery is not a trace of its own linked to the start's: parent %v, links %+v", delivery.Parent, delivery.Links)
	}
	if want := `"trace_id":"` + start.SpanContext.TraceID().String() + `"`; !strings.Contains(s.logs.String(), want) {
		t.Errorf("no log line carries the start's trace id %s", want)
	}
}
