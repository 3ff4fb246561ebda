package handlers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/optin"
	"github.com/optinkit/optin/internal/queue/inproc"
	"github.com/optinkit/optin/internal/signature"
	"github.com/optinkit/optin/internal/store/memory"
)

// instant is Twilio answering every call at once.
type instant struct{}

func (instant) CreateMessage(context.Context, string, conversation.Message) (string, error) {
	return "IM00000000000000000000000000000009", nil
}
func (instant) RecentMessages(context.Context, string, int) ([]conversation.PostedMessage, error) {
	return nil, nil
}
func (instant) ScopedWebhooks(context.Context, string) ([]conversation.Webhook, error) {
	return nil, nil
}
func (instant) DeleteWebhook(context.Context, string, string) error { return nil }
func (instant) CloseConversation(context.Context, string) error     { return nil }

// benchRouter is the real router on the real flow, in-memory state and queue, against instant Twilio.
func benchRouter(b *testing.B) http.Handler {
	q := inproc.New(1000, 3, nil)
	svc, err := optin.NewService(instant{}, memory.New(time.Hour), q, optin.Config{WaitMessage: "wait", RiderOptIn: optin.Template{Body: "hi"}})
	if err != nil {
		b.Fatal(err)
	}
	if err := q.Start(svc); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = q.Shutdown(context.Background()) })
	h, err := NewRouter(zerolog.New(io.Discard), svc, signature.New(token), SignedURL{}, func(context.Context) error { return nil }, Options{})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

func post(h http.Handler, params url.Values, sig string) int {
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(params.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("X-Twilio-Signature", sig)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code
}

// BenchmarkWebhookPath is one webhook through the router, the signature check, the flow's decision,
// the in-memory claim and the queue: refused (forged), a repeat (duplicate), and a new conversation
// (accepted; the opt-in then runs in the background against an instant Twilio).
func BenchmarkWebhookPath(b *testing.B) {
	b.Run("reject", func(b *testing.B) {
		h := benchRouter(b)
		forged := signature.Compute("not-the-token", target, event)
		b.ReportAllocs()
		for b.Loop() {
			if code := post(h, event, forged); code != 403 {
				b.Fatal(code)
			}
		}
	})
	b.Run("duplicate", func(b *testing.B) {
		h := benchRouter(b)
		sig := signature.Compute(token, target, event)
		if code := post(h, event, sig); code != 200 {
			b.Fatal(code)
		}
		b.ReportAllocs()
		for b.Loop() {
			if code := post(h, event, sig); code != 200 {
				b.Fatal(code)
			}
		}
	})
	b.Run("accept", func(b *testing.B) {
		h := benchRouter(b)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			b.StopTimer()
			i++
			ev := url.Values{}
			for k, v := range event {
				ev[k] = v
			}
			ev.Set("ConversationSid", fmt.Sprintf("CH%032x", i))
			sig := signature.Compute(token, target, ev)
			b.StartTimer()
			if code := post(h, ev, sig); code != 200 {
				b.Fatal(code)
			}
		}
	})
}
