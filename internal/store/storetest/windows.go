package storetest

import (
	"testing"
	"time"

	"github.com/optinkit/optin/internal/chat"
)

// RunWindows checks the contract of a chat.Windows. open returns two handles on one empty store: two
// replicas.
func RunWindows(t *testing.T, open func(t *testing.T) (chat.Windows, chat.Windows)) {
	a, b := open(t)
	ctx := t.Context()
	const rider, number, other = "whatsapp:+15550001111", "whatsapp:+15550009999", "whatsapp:+15550008888"
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 123_000_000, time.UTC)
	if w, err := b.Window(ctx, rider, number); err != nil || !w.LastInbound.IsZero() {
		t.Fatalf("window never opened = %v %v, want zero", w, err)
	}
	if err := a.Opened(ctx, rider, number, t0); err != nil {
		t.Fatal(err)
	}
	// A replica whose report comes late (or whose clock is behind) does not move the window back.
	if err := b.Opened(ctx, rider, number, t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if w, err := b.Window(ctx, rider, number); err != nil || !w.LastInbound.Equal(t0) {
		t.Fatalf("window = %v %v, want the later message %v", w.LastInbound, err, t0)
	}
	if err := b.Opened(ctx, rider, number, t0.Add(25*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if w, _ := a.Window(ctx, rider, number); !w.LastInbound.Equal(t0.Add(25 * time.Hour)) {
		t.Fatalf("window = %v, want it moved to the newer message", w.LastInbound)
	}
	// The window is the pair's: the same person on another number has their own.
	if w, _ := a.Window(ctx, rider, other); !w.LastInbound.IsZero() {
		t.Fatalf("another number's window = %v, want zero", w.LastInbound)
	}
}
