// Package callback delivers a chat's events to the platform (OPTIN_CALLBACK_URL): JSON signed as the
// Standard Webhooks specification says, at least once, retried through a durable queue for a day.
package callback

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/optin"
)

// MaxAge is how long an event is retried before it is dropped.
const MaxAge = 24 * time.Hour

// Sender posts events to one URL, signed with one secret.
type Sender struct {
	url    string
	signer *standardwebhooks.Webhook
	client *http.Client
	now    func() time.Time
}

// NewSender returns a Sender for url and a whsec_… secret (base64 after the prefix).
func NewSender(url, secret string, timeout time.Duration) (*Sender, error) {
	signer, err := signerFor(secret)
	if err != nil {
		return nil, err
	}
	return &Sender{url: url, signer: signer, client: &http.Client{Timeout: timeout}, now: time.Now}, nil
}

// CheckSecret says what is wrong with a signing secret, without naming it.
func CheckSecret(secret string) error {
	_, err := signerFor(secret)
	return err
}

func signerFor(secret string) (*standardwebhooks.Webhook, error) {
	if !strings.HasPrefix(secret, "whsec_") {
		return nil, errors.New("callback secret must start with whsec_")
	}
	signer, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return nil, errors.New("callback secret: not base64 after whsec_")
	}
	return signer, nil
}

// Rejected is a receiver's answer that a retry cannot change (a 4xx other than 408 and 429).
type Rejected struct{ Status int }

func (r *Rejected) Error() string { return fmt.Sprintf("receiver rejected the event: %d", r.Status) }

// payload is the body of every event.
type payload struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// Send posts ev once. A nil error means a 2xx answer; *Rejected means never again.
func (s *Sender) Send(ctx context.Context, ev chat.Event) error {
	body, err := json.Marshal(payload{Type: ev.Type, Timestamp: ev.At, Data: ev.Data})
	if err != nil {
		return err
	}
	now := s.now()
	sig, err := s.signer.Sign(ev.ID, now, body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(standardwebhooks.HeaderWebhookID, ev.ID)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	req.Header.Set("User-Agent", "optin-callback/1")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("posting event: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		return &Rejected{Status: resp.StatusCode}
	}
	return fmt.Errorf("receiver answered %d", resp.StatusCode)
}

// Observer counts deliveries by outcome: delivered, retried, rejected, expired.
type Observer interface{ Callback(outcome string) }

// Worker is the queue's worker for events: the queued id is "<chat id>|<event id>".
type Worker struct {
	chats  chat.Store
	sender *Sender
	obs    Observer
	now    func() time.Time
}

var _ optin.Worker = (*Worker)(nil)

// NewWorker returns a Worker delivering the chats' pending events through sender; obs may be nil.
func NewWorker(chats chat.Store, sender *Sender, obs Observer) *Worker {
	if obs == nil {
		obs = noObserver{}
	}
	return &Worker{chats: chats, sender: sender, obs: obs, now: time.Now}
}

type noObserver struct{}

func (noObserver) Callback(string) {}

// Work sends the event if it is still pending, then removes it. A chat's events arrive in the order of
// its transitions: while one written before it is pending, Work gives that event's own delivery up to
// orderWait, then sends the earlier ones itself, in order (a repeat may then come late when both send
// it at once; receivers drop it by its webhook-id). An error asks the queue to run it again.
func (w *Worker) Work(ctx context.Context, id string) error {
	chatID, eventID, ok := strings.Cut(id, "|")
	if !ok {
		return nil
	}
	deadline := w.now().Add(orderWait)
	for {
		c, err := w.chats.Get(ctx, chatID)
		if errors.Is(err, chat.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		i := slices.IndexFunc(c.Pending, func(e chat.Event) bool { return e.ID == eventID })
		if i < 0 {
			return nil // delivered by an earlier run
		}
		if i == 0 || !w.now().Before(deadline) {
			for _, ev := range c.Pending[:i+1] {
				if err := w.deliver(ctx, chatID, ev); err != nil {
					return err
				}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(orderPoll):
		}
	}
}

// How long an event waits for the delivery of the chat's earlier ones before sending them itself, and
// how often it looks.
const (
	orderWait = 2 * time.Second
	orderPoll = 25 * time.Millisecond
)

// deliver sends one event and removes it from the chat's pending ones, unless it must be retried.
func (w *Worker) deliver(ctx context.Context, chatID string, ev chat.Event) error {
	log := zerolog.Ctx(ctx).With().Str("chat_id", chatID).Str("event_id", ev.ID).Str("type", ev.Type).Logger()
	if w.now().Sub(ev.At) > MaxAge {
		log.Warn().Msg("event dropped: undelivered for a day")
		w.obs.Callback("expired")
		return w.remove(ctx, chatID, ev.ID)
	}
	err := w.sender.Send(ctx, ev)
	var rejected *Rejected
	switch {
	case errors.As(err, &rejected):
		log.Warn().Int("status", rejected.Status).Msg("event rejected by the receiver; not retried")
		w.obs.Callback("rejected")
	case err != nil:
		log.Warn().Err(err).Msg("event not delivered; will retry")
		w.obs.Callback("retried")
		return err
	default:
		log.Info().Msg("event delivered")
		w.obs.Callback("delivered")
	}
	return w.remove(ctx, chatID, ev.ID)
}

// GiveUp drops the event once the queue stops retrying it.
func (w *Worker) GiveUp(ctx context.Context, id string, cause error) error {
	chatID, eventID, _ := strings.Cut(id, "|")
	zerolog.Ctx(ctx).Warn().Err(cause).Str("chat_id", chatID).Str("event_id", eventID).Msg("event dropped after its retries")
	w.obs.Callback("expired")
	return w.remove(ctx, chatID, eventID)
}

func (w *Worker) remove(ctx context.Context, chatID, eventID string) error {
	_, err := w.chats.Update(ctx, chatID, func(c *chat.Chat) error {
		c.Pending = slices.DeleteFunc(c.Pending, func(e chat.Event) bool { return e.ID == eventID })
		return nil
	})
	if errors.Is(err, chat.ErrNotFound) {
		return nil
	}
	return err
}

// RunDelay is the wait before the nth retry of an event (n from 1): from 10 s, doubling, at most an
// hour, with jitter — the first retry comes within a minute, and a day holds about thirty.
func RunDelay(n int, _ error) time.Duration {
	d := min(10*time.Second<<min(max(n-1, 0), 10), time.Hour)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// MaxRuns covers MaxAge with RunDelay's waits even when every jitter draws the shortest: the queue
// keeps retrying for a day, and the worker drops what is older.
const MaxRuns = 60

// Notifier queues the delivery of chats' events on a queue whose worker is a Worker.
type Notifier struct{ Queue optin.Queue }

// Notify queues one event.
func (n Notifier) Notify(ctx context.Context, chatID, eventID string) error {
	return n.Queue.Enqueue(ctx, chatID+"|"+eventID)
}
