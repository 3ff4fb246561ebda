package storetest

import (
	"testing"
	"time"

	"github.com/optinkit/optin/internal/numberpool"
)

// RunPairIndex checks the numberpool.PairIndex contract of a store. open returns two handles on one
// empty store whose leases (and index entries) lapse after retention.
func RunPairIndex(t *testing.T, open func(t *testing.T, retention time.Duration) (numberpool.IndexedStore, numberpool.IndexedStore)) {
	const (
		customer = "whatsapp:+15550001111"
		rider    = "whatsapp:+15550002222"
		number   = "whatsapp:+15550100000"
		sms      = "+15550109999"
	)
	t.Run("a pair's chat is found by its bare numbers, the last taker's, beyond the release", func(t *testing.T) {
		s, other := open(t, time.Hour)
		ctx := t.Context()
		if ok, err := s.Take(ctx, "chat-1", []numberpool.Pair{{Address: customer, Number: number}, {Address: rider, Number: number}}); !ok || err != nil {
			t.Fatalf("take: %v %v", ok, err)
		}
		cases := []struct{ number, address, want string }{
			{"+15550100000", "+15550001111", "chat-1"},
			{"+15550100000", "+15550002222", "chat-1"},
			{number, customer, "chat-1"},         // as leased
			{"+15550100000", customer, "chat-1"}, // either side may carry its channel
			{"+15550100001", "+15550001111", ""}, // another number
			{"+15550100000", "+15550003333", ""}, // a stranger
			{"+15550001111", "+15550100000", ""}, // the two swapped
		}
		for _, c := range cases {
			if got, err := other.ChatOf(ctx, c.number, c.address); err != nil || got != c.want {
				t.Errorf("ChatOf(%s, %s) = %q %v, want %q", c.number, c.address, got, err, c.want)
			}
		}
		// The customer moved to SMS: the SMS pair finds the chat; the WhatsApp pair still does.
		if ok, err := other.Take(ctx, "chat-1", []numberpool.Pair{{Address: "+15550001111", Number: sms}}); !ok || err != nil {
			t.Fatalf("take sms: %v %v", ok, err)
		}
		if got, err := s.ChatOf(ctx, sms, "+15550001111"); err != nil || got != "chat-1" {
			t.Errorf("the SMS pair's chat %q %v", got, err)
		}
		// Released, the chat is still found; taken by another chat, that chat is.
		if err := s.Release(ctx, "chat-1"); err != nil {
			t.Fatal(err)
		}
		if got, err := other.ChatOf(ctx, "+15550100000", "+15550001111"); err != nil || got != "chat-1" {
			t.Errorf("after the release %q %v, want chat-1", got, err)
		}
		if ok, err := other.Take(ctx, "chat-2", []numberpool.Pair{{Address: customer, Number: number}}); !ok || err != nil {
			t.Fatalf("take again: %v %v", ok, err)
		}
		if got, err := s.ChatOf(ctx, "+15550100000", "+15550001111"); err != nil || got != "chat-2" {
			t.Errorf("after another chat took the pair %q %v, want chat-2", got, err)
		}
		if got, err := s.ChatOf(ctx, "+15550100000", "+15550002222"); err != nil || got != "chat-1" {
			t.Errorf("the rider's pair %q %v, want chat-1 still", got, err)
		}
		// A take that fails records nothing.
		if ok, _ := s.Take(ctx, "chat-3", []numberpool.Pair{{Address: "whatsapp:+15550004444", Number: number}, {Address: customer, Number: number}}); ok {
			t.Fatal("a take of a leased pair succeeded")
		}
		if got, _ := other.ChatOf(ctx, "+15550100000", "+15550004444"); got != "" {
			t.Errorf("a failed take indexed its free pair: %q", got)
		}
	})

	t.Run("an index entry lapses after the retention unless its lease is renewed", func(t *testing.T) {
		s, other := open(t, 1500*time.Millisecond)
		ctx := t.Context()
		if ok, err := s.Take(ctx, "kept", []numberpool.Pair{{Address: customer, Number: number}}); !ok || err != nil {
			t.Fatalf("take: %v %v", ok, err)
		}
		if ok, err := s.Take(ctx, "lapsing", []numberpool.Pair{{Address: rider, Number: number}}); !ok || err != nil {
			t.Fatalf("take: %v %v", ok, err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			if err := other.Renew(ctx, "kept"); err != nil {
				t.Fatal(err)
			}
			got, err := other.ChatOf(ctx, "+15550100000", "+15550002222")
			if err != nil {
				t.Fatal(err)
			}
			if got == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("an index entry never lapsed")
			}
			time.Sleep(100 * time.Millisecond)
		}
		if got, err := s.ChatOf(ctx, "+15550100000", "+15550001111"); err != nil || got != "kept" {
			t.Errorf("the renewed pair's chat %q %v, want kept", got, err)
		}
	})
}
