package chat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/guard"
	"github.com/optinkit/optin/internal/twiliocall"
)

// Twilio error codes a chat's start reads.
const (
	codeUniqueNameTaken = 50353 // a conversation with this UniqueName exists
	codeAlreadyPresent  = 50437 // the participant is already in this conversation
	codeSameBinding     = 50433 // a participant with this binding is already in this conversation
	codePairInUse       = 50416 // the address and proxy pair is in another active conversation
)

// Event names a chat's webhooks ask Twilio for.
const (
	EventMessageAdded      = "onMessageAdded"
	EventStateUpdated      = "onConversationStateUpdated"
	EventDeliveryUpdated   = "onDeliveryUpdated"
	defaultStartBudget     = 10 * time.Second
	leaseMargin            = 5 * time.Second
	busyPoll               = 100 * time.Millisecond
	stepConversation       = "conversation"
	stepMessageWebhook     = "message_webhook"
	stepLifecycleWebhook   = "lifecycle_webhook"
	stepNumbers            = "numbers"
	stepCustomer           = "customer"
	stepRider              = "rider"
	stepInvite             = "invite"
	webhookMethod          = "post"
	conversationNamePrefix = "Delivery "
)

// Config is what a chat is started with.
type Config struct {
	// WhatsApp leases the WhatsApp senders the parties talk to; SMS, when set, the SMS numbers.
	WhatsApp, SMS Pool
	// WebhookURL is where Twilio calls the service (the public URL + /webhooks/conversations).
	WebhookURL string
	// InviteContentSid is the default invitation template, with variables {"1": customer, "2": rider}.
	InviteContentSid string
	// DefaultTTL closes a chat's conversation after this long without activity.
	DefaultTTL time.Duration
	// StartBudget bounds a start call; past it the start answers ErrBusy and may be repeated.
	StartBudget time.Duration
	Retry       twiliocall.RetryPolicy
	// Notifier, when set, delivers an event to the platform for each transition it hears of.
	Notifier Notifier
	// Observer, when set, counts transitions.
	Observer Observer
	// Limiter, when set, paces conversation creates: a start waits for it within its budget.
	Limiter Limiter
	// ReconcileInterval is how often the open chats are checked against Twilio (Maintain); 0: 5m.
	ReconcileInterval time.Duration
	// ReconcileRate bounds the reconciler's reads of conversations, per second, over all its shards;
	// 0: 10.
	ReconcileRate float64
	// ReconcileShards is how many shards the reconcile runs in; 0: DefaultReconcileShards.
	ReconcileShards int
	// Windows, when set, keeps the parties' WhatsApp windows: a message that fails for a party whose
	// window is closed is then held and sent again once that party writes.
	Windows Windows
	// HoldMax is how long a message is held before it is dropped; 0: DefaultHoldMax.
	HoldMax time.Duration
	// HoldLimit and HoldLimitBytes bound what a party holds (the oldest dropped first, counted);
	// 0: DefaultHoldLimit messages, DefaultHoldLimitBytes.
	HoldLimit, HoldLimitBytes int
	// NudgeContentSid, when set, is the template a party with a closed window and a held message is
	// sent, once per closed window, authored by the other party; its variable "1" is that party's name.
	NudgeContentSid string
	// SMSInvite is the invitation a customer moved to SMS gets, {{1}} and {{2}} the customer's and the
	// rider's names; empty: DefaultSMSInvite.
	SMSInvite string
	// Now, when set, is the service's clock.
	Now func() time.Time
	// Tracer, when set, makes a span of each start step.
	Tracer trace.Tracer
	// Work, when set, makes the work a chat records durable: a queue (one task per chat at a time,
	// run once more when enqueued while it runs) whose worker is Service.Worker. Without it the work
	// runs in a goroutine, and the sweep finishes what a crash cut off.
	Work WorkQueue
	// Pairs, when set, finds a chat by its pair of numbers: the parties' calls are routed by it, and
	// their messages after the end answered.
	Pairs PairIndex
	// Guard is what GuardMessage does with contact data typed into a chat (its zero value redacts).
	Guard guard.Guard
	// AfterEndEvery is how often, at most, a party writing after the end is answered; 0:
	// DefaultAfterEndEvery.
	AfterEndEvery time.Duration
}

// WorkQueue queues a chat's recorded work (tend) for a worker.
type WorkQueue interface {
	Enqueue(ctx context.Context, chatID string) error
}

// Defaults of the upkeep.
const (
	DefaultReconcileInterval = 5 * time.Minute
	DefaultReconcileRate     = 10
	// DefaultHoldMax is how long a message is held for a party who does not write.
	DefaultHoldMax = 24 * time.Hour
	// OutboxInterval is how often the outbox is swept, at most: as often as chats are reconciled when
	// that is more often.
	OutboxInterval = 10 * time.Second
)

// Observer counts what happens to chats, for metrics.
type Observer interface {
	ChatTransition(state, reason string)
	// NoFreeNumber counts a start that found no number for a party.
	NoFreeNumber()
	// Reconciled counts n chats the reconciler treated with outcome (closed, concluded, resumed, failed).
	Reconciled(outcome string, n int)
	// OutboxResent counts n events the outbox sweep queued again.
	OutboxResent(n int)
	// MessagesHeld, MessagesResent and MessagesDropped count messages held for a closed window, sent
	// again, and dropped (reason: expired, closed).
	MessagesHeld(n int)
	MessagesResent(n int)
	MessagesDropped(reason string, n int)
	// Nudged counts a nudge sent.
	Nudged()
	// ChannelFallback counts a customer moved from WhatsApp to SMS.
	ChannelFallback()
	// WorkParked counts a chat whose recorded work failed through all its runs (Chat.Parked).
	WorkParked()
}

// Service starts, reads and ends chats.
type Service struct {
	conv  Conversations
	store Store
	cfg   Config
	now   func() time.Time
	// sleep waits d, or until ctx ends: a call that waits for another's lease polls with it, measuring
	// its budget on the service's clock, so that a simulation on a virtual clock waits no real time.
	sleep func(ctx context.Context, d time.Duration) error
}

// realSleep waits d on the wall clock, or until ctx ends.
func realSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// NewService checks its dependencies and returns a Service.
func NewService(conv Conversations, store Store, cfg Config) (*Service, error) {
	switch {
	case conv == nil:
		return nil, errors.New("chat: nil Conversations")
	case store == nil:
		return nil, errors.New("chat: nil Store")
	case cfg.WhatsApp == nil:
		return nil, errors.New("chat: no WhatsApp number pool")
	case cfg.WebhookURL == "":
		return nil, errors.New("chat: no webhook URL")
	case cfg.DefaultTTL < MinTTL || cfg.DefaultTTL > MaxTTL:
		return nil, fmt.Errorf("chat: default ttl %s: want %s to %s", cfg.DefaultTTL, MinTTL, MaxTTL)
	}
	if cfg.StartBudget <= 0 {
		cfg.StartBudget = defaultStartBudget
	}
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = DefaultReconcileInterval
	}
	if cfg.ReconcileRate <= 0 {
		cfg.ReconcileRate = DefaultReconcileRate
	}
	if cfg.HoldMax <= 0 {
		cfg.HoldMax = DefaultHoldMax
	}
	if cfg.HoldLimit <= 0 {
		cfg.HoldLimit = DefaultHoldLimit
	}
	if cfg.HoldLimitBytes <= 0 {
		cfg.HoldLimitBytes = DefaultHoldLimitBytes
	}
	clock := cfg.Now
	if clock == nil {
		clock = time.Now
	}
	return &Service{conv: conv, store: store, cfg: cfg, now: func() time.Time { return clock().UTC().Truncate(time.Millisecond) }, sleep: realSleep}, nil
}

// Get returns the chat named by key: its id, or its conversation's SID.
func (s *Service) Get(ctx context.Context, key string) (Chat, error) {
	var (
		c   Chat
		err error
	)
	if conversation.IsSid("CH", key) {
		c, err = s.store.ByConversation(ctx, key)
	} else {
		c, err = s.store.Get(ctx, key)
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Chat{}, fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
	}
	return c, err
}

// List returns up to limit chats, newest first, optionally in one state; before is the cursor of the
// page (0 for the first) and next that of the following page (0 at the end).
func (s *Service) List(ctx context.Context, state State, limit int, before int64) ([]Chat, int64, error) {
	chats, next, err := s.store.List(ctx, state, limit, before)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
	}
	return chats, next, nil
}

func newOwner() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
