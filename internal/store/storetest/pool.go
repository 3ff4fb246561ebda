package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/numberpool"
)

// RunPairs checks the numberpool.Store contract. open returns two handles on one empty store whose
// leases lapse after retention.
func RunPairs(t *testing.T, open func(t *testing.T, retention time.Duration) (numberpool.Store, numberpool.Store)) {
	t.Run("a pair is leased once", func(t *testing.T) {
		a, b := open(t, time.Hour)
		stores := []numberpool.Store{a, b}
		// 40 chats grab overlapping pairs: (rider, n) and (customer i, n) for 4 numbers.
		var mu sync.Mutex
		holder := map[numberpool.Pair]string{}
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() {
				chat := fmt.Sprint("chat-", i)
				for n := range 4 {
					number := fmt.Sprint("whatsapp:+1555010000", n)
					pairs := []numberpool.Pair{{Address: "whatsapp:+15550009999", Number: number}, {Address: fmt.Sprint("whatsapp:+155500000", i%10), Number: number}}
					ok, err := stores[i%2].Take(t.Context(), chat, pairs)
					if err != nil {
						t.Error(err)
						return
					}
					if ok {
						mu.Lock()
						for _, p := range pairs {
							if other, taken := holder[p]; taken {
								t.Errorf("%v leased to %s and %s", p, other, chat)
							}
							holder[p] = chat
						}
						mu.Unlock()
						return
					}
				}
			})
		}
		wg.Wait()
		if len(holder) != 8 {
			t.Errorf("%d pairs leased, want 8 (the rider on each of the 4 numbers, with one customer each)", len(holder))
		}
		counts, err := a.InUse(t.Context())
		if err != nil || len(counts) != 4 || counts["whatsapp:+15550100000"] != 2 {
			t.Errorf("in use %v %v", counts, err)
		}
	})

	t.Run("release, block and last", func(t *testing.T) {
		s, other := open(t, time.Hour)
		ctx := t.Context()
		p1 := numberpool.Pair{Address: "whatsapp:+15550001111", Number: "whatsapp:+15550100000"}
		p2 := numberpool.Pair{Address: "whatsapp:+15550002222", Number: "whatsapp:+15550100000"}
		if ok, err := s.Take(ctx, "chat-1", []numberpool.Pair{p1, p2}); !ok || err != nil {
			t.Fatalf("take: %v %v", ok, err)
		}
		if ok, _ := other.Take(ctx, "chat-2", []numberpool.Pair{{Address: p1.Address, Number: "whatsapp:+15550100001"}, p2}); ok {
			t.Error("a take with one leased pair succeeded")
		}
		if ok, _ := other.Take(ctx, "chat-2", []numberpool.Pair{{Address: p1.Address, Number: "whatsapp:+15550100001"}}); !ok {
			t.Error("the failed take left its free pair leased")
		}
		if n, err := other.Last(ctx, p1.Address); err != nil || n != "whatsapp:+15550100001" {
			t.Errorf("last %q %v", n, err)
		}
		if n, _ := s.Last(ctx, "whatsapp:+15550003333"); n != "" {
			t.Errorf("last of a stranger %q", n)
		}
		if err := other.Release(ctx, "chat-1"); err != nil {
			t.Fatal(err)
		}
		if err := s.Release(ctx, "chat-1"); err != nil {
			t.Errorf("second release: %v", err)
		}
		counts, _ := s.InUse(ctx)
		if counts["whatsapp:+15550100000"] != 0 || counts["whatsapp:+15550100001"] != 1 {
			t.Errorf("in use after release %v", counts)
		}
		if ok, _ := s.Take(ctx, "chat-4", []numberpool.Pair{p2}); !ok {
			t.Fatal("a released pair could not be leased again")
		}
		if err := s.Block(ctx, p2, 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if counts, _ := other.InUse(ctx); counts[p2.Number] != 0 {
			t.Errorf("a blocked pair still counts as leased: %v", counts)
		}
		if ok, _ := other.Take(ctx, "chat-3", []numberpool.Pair{p2}); ok {
			t.Error("a blocked pair was leased")
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			if ok, _ := other.Take(ctx, "chat-3", []numberpool.Pair{p2}); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("a block never lapsed")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("one party's pairs released, the other's kept", func(t *testing.T) {
		s, other := open(t, time.Hour)
		ctx := t.Context()
		customer := numberpool.Pair{Address: "whatsapp:+15550001111", Number: "whatsapp:+15550100000"}
		rider := numberpool.Pair{Address: "whatsapp:+15550002222", Number: "whatsapp:+15550100000"}
		sms := numberpool.Pair{Address: "+15550001111", Number: "+15550109999"}
		if ok, err := s.Take(ctx, "chat-1", []numberpool.Pair{customer, rider}); !ok || err != nil {
			t.Fatalf("take: %v %v", ok, err)
		}
		if ok, err := s.Take(ctx, "chat-1", []numberpool.Pair{sms}); !ok || err != nil {
			t.Fatalf("take sms: %v %v", ok, err)
		}
		if err := other.ReleaseAddress(ctx, "chat-1", customer.Address); err != nil {
			t.Fatal(err)
		}
		if counts, _ := s.InUse(ctx); counts[customer.Number] != 1 || counts[sms.Number] != 1 {
			t.Errorf("in use after one address's release %v, want the rider's and the SMS pair", counts)
		}
		if ok, _ := other.Take(ctx, "chat-2", []numberpool.Pair{customer}); !ok {
			t.Error("the released pair could not be leased again")
		}
		if ok, _ := other.Take(ctx, "chat-2", []numberpool.Pair{rider}); ok {
			t.Error("the other party's pair was released too")
		}
		// The chat's release later frees what it still holds, not the pair another chat took since.
		if err := s.Release(ctx, "chat-1"); err != nil {
			t.Fatal(err)
		}
		if counts, _ := other.InUse(ctx); counts[customer.Number] != 1 || counts[sms.Number] != 0 {
			t.Errorf("in use after the chat's release %v, want only chat-2's pair", counts)
		}
	})
	t.Run("a lease that lapses stops counting and frees its pair", func(t *testing.T) {
		a, b := open(t, 2*time.Second)
		ctx := t.Context()
		p := numberpool.Pair{Address: "whatsapp:+15550001111", Number: "whatsapp:+15550100000"}
		if ok, err := a.Take(ctx, "chat-1", []numberpool.Pair{p}); !ok || err != nil {
			t.Fatalf("take: %v %v", ok, err)
		}
		if counts, _ := b.InUse(ctx); counts[p.Number] != 1 {
			t.Fatalf("in use %v", counts)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			counts, err := b.InUse(ctx)
			if err == nil && counts[p.Number] == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a lapsed lease still counts: %v %v", counts, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if ok, _ := b.Take(ctx, "chat-2", []numberpool.Pair{p}); !ok {
			t.Error("a lapsed lease's pair could not be leased again")
		}
		if counts, _ := a.InUse(ctx); counts[p.Number] != 1 {
			t.Errorf("in use after the new lease %v", counts)
		}
	})

	t.Run("a renewed lease lasts another term", func(t *testing.T) {
		a, b := open(t, 1500*time.Millisecond)
		ctx := t.Context()
		p := numberpool.Pair{Address: "whatsapp:+15550001111", Number: "whatsapp:+15550100000"}
		if ok, err := a.Take(ctx, "chat-1", []numberpool.Pair{p}); !ok || err != nil {
			t.Fatalf("take: %v %v", ok, err)
		}
		// Renewed every third of a term for three terms: never free, always counted.
		end := time.Now().Add(4500 * time.Millisecond)
		for time.Now().Before(end) {
			if err := b.Renew(ctx, "chat-1"); err != nil {
				t.Fatal(err)
			}
			if ok, _ := b.Take(ctx, "chat-2", []numberpool.Pair{p}); ok {
				t.Fatal("a renewed lease lapsed")
			}
			if counts, _ := a.InUse(ctx); counts[p.Number] != 1 {
				t.Fatalf("in use %v", counts)
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err := a.Renew(ctx, "chat-none"); err != nil {
			t.Errorf("renewing a chat with no pairs: %v", err)
		}
	})
}
