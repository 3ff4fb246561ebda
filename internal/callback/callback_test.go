package callback

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/optinkit/optin/internal/chat"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestSendSignsAndClassifies(t *testing.T) {
	verifier, _ := standardwebhooks.NewWebhook(secret)
	status := 204
	var body []byte
	var header http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
		header = r.Header.Clone()
		w.WriteHeader(status)
	}))
	defer srv.Close()
	s, err := NewSender(srv.URL, secret, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ev := chat.Event{ID: "msg_1", Type: "chat.connected", At: time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC), Data: []byte(`{"id":"order-1"}`)}
	if err := s.Send(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	if err := verifier.Verify(body, header); err != nil {
		t.Errorf("signature: %v", err)
	}
	if string(body) != `{"type":"chat.connected","timestamp":"2026-11-22T04:00:00Z","data":{"id":"order-1"}}` ||
		header.Get("webhook-id") != "msg_1" || header.Get("Content-Type") != "application/json" {
		t.Errorf("sent %s %v", body, header)
	}
	for code, rejected := range map[int]bool{400: true, 404: true, 410: true, 408: false, 429: false, 500: false, 503: false} {
		status = code
		err := s.Send(t.Context(), ev)
		var r *Rejected
		if err == nil || errors.As(err, &r) != rejected {
			t.Errorf("%d: %v, rejected=%v", code, err, rejected)
		}
	}
	srv.Close()
	if err := s.Send(t.Context(), ev); err == nil || errors.As(err, new(*Rejected)) {
		t.Errorf("no receiver: %v", err)
	}
	for _, bad := range []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!"} {
		if _, err := NewSender(srv.URL, bad, time.Second); err == nil {
			t.Errorf("secret %q accepted", bad)
		}
	}
}

// The first retry comes within a minute; the retries last a day even when every wait is the shortest.
func TestRunDelayCoversADay(t *testing.T) {
	if d := RunDelay(1, nil); d < 5*time.Second || d > 10*time.Second {
		t.Errorf("first retry after %v", d)
	}
	var shortest time.Duration
	for n := 1; n < MaxRuns; n++ {
		d := RunDelay(n, nil)
		if d > time.Hour {
			t.Errorf("retry %d after %v", n, d)
		}
		shortest += min(10*time.Second<<min(n-1, 10), time.Hour) / 2
	}
	if shortest < MaxAge {
		t.Errorf("%d runs may all be over within %v, before a day", MaxRuns, shortest)
	}
}
