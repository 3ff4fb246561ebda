package optin

import (
	"context"
	"fmt"
	"testing"

	"github.com/optinkit/optin/internal/conversation"
)

type nopQueue struct{}

func (nopQueue) Enqueue(context.Context, string) error { return nil }

// BenchmarkOptIn is one whole opt-in against a Twilio that answers at once: the decision, the claim,
// and the work — the wait message, the rider's opt-in and the webhook removal.
func BenchmarkOptIn(b *testing.B) {
	fc := &fakeConversations{webhooks: []string{"WH1"}}
	svc, err := NewService(fc, &fakeStore{}, nopQueue{}, Config{WaitMessage: wait, RiderOptIn: Template{Body: riderMsg}, Retry: fastRetry})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		conv := fmt.Sprintf("CH%032x", i)
		if _, err := svc.Handle(b.Context(), conversation.Event{Type: conversation.EventMessageAdded, ConversationSid: conv, MessageSid: msg1, Author: customer, Body: "Yes"}); err != nil {
			b.Fatal(err)
		}
		if err := svc.Work(b.Context(), conv); err != nil {
			b.Fatal(err)
		}
	}
}
