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
}
