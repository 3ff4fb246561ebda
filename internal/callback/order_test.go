package callback

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/store/memory"
)

// receiver records the webhook-ids it is sent, in order.
type receiver struct {
	mu  sync.Mutex
	ids []string
}

func (rc *receiver) got() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.ids)
}

func newOrderWorker(t *testing.T, pending ...string) (*Worker, *receiver, *memory.Chats) {
	t.Helper()
	rc := &receiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		rc.ids = append(rc.ids, r.Header.Get("webhook-id"))
		rc.mu.Unlock()
		w.WriteHeader(204)
	}))
	t.Cleanup(srv.Close)
	sender, err := NewSender(srv.URL, secret, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	chats := memory.NewChats(time.Hour)
	c := chat.Chat{ID: "order-1", State: chat.StateConnected, Steps: map[string]string{}}
	for _, id := range pending {
		c.Pending = append(c.Pending, chat.Event{ID: id, Type: "chat." + id, At: time.Now(), Data: []byte(`{}`)})
	}
	if _, _, err := chats.Create(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	return NewWorker(&countingGets{Store: chats}, sender, nil), rc, chats
}

// countingGets counts the reads of a chat: how many times a waiting event has looked.
type countingGets struct {
	chat.Store
	gets atomic.Int32
}

func (c *countingGets) Get(ctx context.Context, id string) (chat.Chat, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, id)
}

// A later event waits for the earlier one's own delivery, and does not send it again.
func TestEventsWaitForEarlierOnes(t *testing.T) {
	w, rc, _ := newOrderWorker(t, "a", "b")
	done := make(chan error, 1)
	go func() { done <- w.Work(t.Context(), "order-1|b") }()
	looks := w.chats.(*countingGets)
	poll.Until(t, "b looking for a three times", func() bool { return looks.gets.Load() >= 3 })
	if got := rc.got(); len(got) != 0 {
		t.Fatalf("b did not wait for a: %v", got)
	}
	if err := w.Work(t.Context(), "order-1|a"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := rc.got(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("delivered %v, want [a b] once each", got)
	}
}

// An earlier event whose own delivery does not come (its task lost or retrying) is sent first by the
// later one once orderWait has passed.
func TestEventsSendEarlierOnesAfterTheWait(t *testing.T) {
	w, rc, chats := newOrderWorker(t, "a", "b")
	start := time.Now()
	w.now = func() time.Time { return start.Add(time.Since(start) * 1000) } // orderWait passes at once
	if err := w.Work(t.Context(), "order-1|b"); err != nil {
		t.Fatal(err)
	}
	if got := rc.got(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("delivered %v, want [a b]", got)
	}
	if c, _ := chats.Get(t.Context(), "order-1"); len(c.Pending) != 0 {
		t.Errorf("still pending %v", c.Pending)
	}
}
