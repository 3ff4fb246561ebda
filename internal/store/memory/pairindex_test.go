package memory

import (
	"fmt"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/numberpool"
	"github.com/optinkit/optin/internal/store/storetest"
)

func TestPairIndexContract(t *testing.T) {
	storetest.RunPairIndex(t, func(_ *testing.T, retention time.Duration) (numberpool.IndexedStore, numberpool.IndexedStore) {
		s := NewPairs(retention)
		return s, s
	})
}

// The index keeps a pair for the retention after its lease ends, then prunes it.
func TestPairIndexIsPruned(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewPairs(time.Hour)
	s.now = func() time.Time { return now }
	ctx := t.Context()
	for i := range 100 {
		p := numberpool.Pair{Address: fmt.Sprintf("whatsapp:+1555000%04d", i), Number: "whatsapp:+15550100000"}
		if ok, _ := s.Take(ctx, fmt.Sprint("chat-", i), []numberpool.Pair{p}); !ok {
			t.Fatal("take")
		}
		_ = s.Release(ctx, fmt.Sprint("chat-", i))
	}
	if n := s.chatOf.len(); n != 100 {
		t.Fatalf("index size %d after the releases, want 100", n)
	}
	now = now.Add(2 * time.Hour)
	if ok, _ := s.Take(ctx, "chat-new", []numberpool.Pair{{Address: "whatsapp:+15550009999", Number: "whatsapp:+15550100000"}}); !ok {
		t.Fatal("take after the lapse")
	}
	if n := s.chatOf.len(); n != 1 {
		t.Errorf("index size %d after the lapse, want 1", n)
	}
	// The lapsed takes' records were freed, and the new take reuses one of them.
	if n := len(s.takes.free); n != 99 {
		t.Errorf("%d free take records after the lapse, want 99", n)
	}
	if got, _ := s.ChatOf(ctx, "+15550100000", "+15550009999"); got != "chat-new" {
		t.Errorf("the new pair's chat %q, want chat-new", got)
	}
	if got, _ := s.ChatOf(ctx, "+15550100000", "+15550000042"); got != "" {
		t.Errorf("a lapsed pair's chat %q, want none", got)
	}
	if got, _ := s.Last(ctx, "whatsapp:+15550000042"); got != "" {
		t.Errorf("a lapsed address's last number %q, want none", got)
	}
}

// A take's pairs share one record: renewing the chat renews both its index entries and last numbers,
// and a pair taken again names the new take while the other pair keeps the old one.
func TestTakesAreShared(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewPairs(time.Hour)
	s.now = func() time.Time { return now }
	ctx := t.Context()
	customer := numberpool.Pair{Address: "whatsapp:+15550001111", Number: "whatsapp:+15550100000"}
	rider := numberpool.Pair{Address: "whatsapp:+15550002222", Number: "whatsapp:+15550100000"}
	if ok, _ := s.Take(ctx, "chat-1", []numberpool.Pair{customer, rider}); !ok {
		t.Fatal("take")
	}
	if n := s.takes.chunks[0]; len(n) != 1 {
		t.Fatalf("%d take records for one take, want 1", len(n))
	}
	now = now.Add(50 * time.Minute)
	if err := s.Renew(ctx, "chat-1"); err != nil {
		t.Fatal(err)
	}
	_ = s.Release(ctx, "chat-1")
	if ok, _ := s.Take(ctx, "chat-2", []numberpool.Pair{rider}); !ok {
		t.Fatal("take the rider's pair again")
	}
	now = now.Add(30 * time.Minute) // past the first term, within the renewed one
	if got, _ := s.ChatOf(ctx, "+15550100000", "+15550001111"); got != "chat-1" {
		t.Errorf("the customer's pair %q, want chat-1", got)
	}
	if got, _ := s.ChatOf(ctx, "+15550100000", "+15550002222"); got != "chat-2" {
		t.Errorf("the rider's pair %q, want chat-2", got)
	}
	if got, _ := s.Last(ctx, customer.Address); got != customer.Number {
		t.Errorf("the customer's last number %q, want %s", got, customer.Number)
	}
	now = now.Add(time.Hour) // both terms over
	if got, _ := s.ChatOf(ctx, "+15550100000", "+15550001111"); got != "" {
		t.Errorf("the customer's pair %q after its term, want none", got)
	}
}
