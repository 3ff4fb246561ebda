package chat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/numberpool"
	"github.com/optinkit/optin/internal/optin"
)

// Twilio error codes a chat's start reads.
const (
	codeUniqueNameTaken = 50353 // a conversation with this UniqueName exists
	codeAlreadyPresent  = 50437 // the participant is already in this conversation
	codeSameBinding     = 50433 // a participant with this binding is already in this conversation
	codePairInUse       = 50416 // the address and proxy pair is in another active conversation
	codeClosed          = 50377 // the conversation is closed
	codeNotFound        = 20404
)

// Event names a chat's webhooks ask Twilio for.
const (
	EventMessageAdded      = "onMessageAdded"
	EventStateUpdated      = "onConversationStateUpdated"
	defaultStartBudget     = 10 * time.Second
	defaultMarkerLookback  = 50
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
	Retry       optin.RetryPolicy
	// Notifier, when set, delivers an event to the platform for each transition it hears of.
	Notifier Notifier
	// Observer, when set, counts transitions.
	Observer Observer
	// Limiter, when set, paces conversation creates: a start waits for it within its budget.
	Limiter Limiter
}

// Observer counts what happens to chats, for metrics.
type Observer interface {
	ChatTransition(state, reason string)
	// NoFreeNumber counts a start that found no number for a party.
	NoFreeNumber()
}

// Service starts, reads and ends chats.
type Service struct {
	conv  Conversations
	store Store
	cfg   Config
	now   func() time.Time
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
	return &Service{conv: conv, store: store, cfg: cfg, now: func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }}, nil
}

// Start starts the chat r asks for, or answers for the chat its id already names: created is true when
// this call made (or completed) the chat. The same id with another request is ErrConflict; a start that
// does not finish within the budget is ErrBusy and is resumed by the same call repeated; a permanent
// Twilio refusal is a *TwilioError.
func (s *Service) Start(ctx context.Context, r StartRequest) (c Chat, created bool, err error) {
	c, err = r.validate(s.cfg, s.now())
	if err != nil {
		return Chat{}, false, err
	}
	existing, fresh, err := s.store.Create(ctx, c)
	if err != nil {
		return Chat{}, false, fmt.Errorf("%w: creating chat %s: %w", ErrUnavailable, c.ID, err)
	}
	if !fresh {
		if existing.Fingerprint != c.Fingerprint {
			return existing, false, ErrConflict
		}
		if existing.State != StateStarting {
			return existing, false, nil
		}
		c = existing
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartBudget)
	defer cancel()
	owner := newOwner()
	locked, err := s.store.Lock(ctx, c.ID, owner, s.cfg.StartBudget+leaseMargin)
	if err != nil {
		return Chat{}, false, fmt.Errorf("%w: locking chat %s: %w", ErrUnavailable, c.ID, err)
	}
	if !locked {
		return s.awaitStart(ctx, c.ID)
	}
	id := c.ID
	defer func() { _ = s.store.Unlock(context.WithoutCancel(ctx), id, owner) }()
	// The lease may have been taken after another call finished the start: read the chat again.
	if c, err = s.store.Get(ctx, c.ID); err != nil {
		return Chat{}, false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if c.State != StateStarting {
		return c, false, nil
	}
	ctx = zerolog.Ctx(ctx).With().Str("chat_id", c.ID).Logger().WithContext(ctx)
	c, err = s.runStart(ctx, c, !fresh)
	return c, err == nil, err
}

// awaitStart waits for a start that another call runs, until it leaves starting or the budget ends.
func (s *Service) awaitStart(ctx context.Context, id string) (Chat, bool, error) {
	for {
		c, err := s.store.Get(ctx, id)
		if err == nil && c.State != StateStarting {
			return c, false, nil
		}
		select {
		case <-ctx.Done():
			return Chat{}, false, ErrBusy
		case <-time.After(busyPoll):
		}
	}
}

// runStart performs the start's steps that c has not done yet, each recorded once done. resumed says
// an earlier call may have been cut off mid-step: creates then look for their effect first.
func (s *Service) runStart(ctx context.Context, c Chat, resumed bool) (Chat, error) {
	if _, done := c.Steps[stepNumbers]; !done {
		var err error
		if c, err = s.leaseNumbers(ctx, c); err != nil {
			return Chat{}, err
		}
	}
	marker := func(step string) string {
		b, _ := json.Marshal(map[string]map[string]string{"optin": {"chat": c.ID, "step": step}})
		return string(b)
	}
	steps := []struct {
		name string
		run  func(ctx context.Context, look bool) (string, error)
	}{
		{stepConversation, func(ctx context.Context, _ bool) (string, error) {
			if s.cfg.Limiter != nil {
				if err := s.cfg.Limiter.Wait(ctx); err != nil {
					return "", err
				}
			}
			sid, err := s.conv.CreateConversation(ctx, NewConversation{
				UniqueName: c.ID, FriendlyName: conversationNamePrefix + c.ID, Attributes: marker(stepConversation), ClosedAfter: c.TTL})
			if twilioCode(err) != codeUniqueNameTaken {
				return sid, err
			}
			// An earlier attempt created it — or an earlier chat of this id did, and closed it since.
			sid, closed, err := s.conv.FindConversation(ctx, c.ID)
			if err == nil && closed {
				return "", &optin.CallError{Op: "find conversation", Kind: optin.Permanent, Code: codeUniqueNameTaken,
					Err: errors.New("a closed conversation already has this id as its unique name")}
			}
			return sid, err
		}},
		{stepMessageWebhook, func(ctx context.Context, look bool) (string, error) {
			return s.armWebhook(ctx, c.ConversationSid, EventMessageAdded, look)
		}},
		{stepLifecycleWebhook, func(ctx context.Context, look bool) (string, error) {
			return s.armWebhook(ctx, c.ConversationSid, EventStateUpdated, look)
		}},
		{stepCustomer, func(ctx context.Context, _ bool) (string, error) {
			return "added", s.addParticipant(ctx, &c, "customer")
		}},
		{stepRider, func(ctx context.Context, _ bool) (string, error) {
			return "added", s.addParticipant(ctx, &c, "rider")
		}},
		{stepInvite, func(ctx context.Context, look bool) (string, error) {
			m := optin.Message{Author: c.Rider.Address, Attributes: marker(stepInvite)}
			if c.Invite.ContentSid != "" {
				vars, _ := json.Marshal(c.Invite.ContentVariables)
				m.ContentSid, m.ContentVariables = c.Invite.ContentSid, string(vars)
			} else {
				m.Body = c.Invite.Body
			}
			if look {
				if sid, err := s.findMarked(ctx, c.ConversationSid, m.Attributes); err != nil || sid != "" {
					return sid, err
				}
			}
			return s.conv.CreateMessage(ctx, c.ConversationSid, m)
		}},
	}
	for _, st := range steps {
		if _, done := c.Steps[st.name]; done {
			continue
		}
		if c.Mode == ModeDirect && (st.name == stepMessageWebhook || st.name == stepInvite) {
			continue // no invitation, so no answer to wait for
		}
		look := resumed
		ref, err := optin.Retry(ctx, s.cfg.Retry, nil, "chat_"+st.name, func(ctx context.Context) (string, error) {
			ref, err := st.run(ctx, look)
			if kind(err) != optin.Retryable && err != nil {
				look = true // the call may have taken effect: look before creating again
			}
			return ref, err
		})
		if err != nil {
			return s.startFailed(ctx, c, st.name, err)
		}
		name := st.name
		c, err = s.store.Update(ctx, c.ID, func(c *Chat) error {
			c.Steps[name] = ref
			if name == stepConversation {
				c.ConversationSid = ref
			}
			return nil
		})
		if err != nil {
			return Chat{}, fmt.Errorf("%w: recording step %s: %w", ErrUnavailable, name, err)
		}
	}
	old := c.State
	c, err := s.store.Update(ctx, c.ID, func(c *Chat) error {
		if c.Mode == ModeDirect {
			s.transition(c, StateConnected, "")
		} else {
			s.transition(c, StateInvited, "")
		}
		return nil
	})
	if err != nil {
		return Chat{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	s.after(ctx, old, c)
	zerolog.Ctx(ctx).Info().Str("conversation_sid", c.ConversationSid).Str("state", string(c.State)).Msg("chat started")
	return c, nil
}

// startFailed ends a start whose step failed. A transient failure leaves the chat starting (ErrBusy:
// repeat the call). A permanent one fails the chat — closing its conversation so that nothing stays
// bound — or, when nothing exists at Twilio yet, forgets it so that its id can be used again.
func (s *Service) startFailed(ctx context.Context, c Chat, step string, err error) (Chat, error) {
	log := zerolog.Ctx(ctx)
	if nn, ok := errors.AsType[*NoNumberError](err); ok {
		return s.refused(ctx, c, step, nn.TwilioCode, nn)
	}
	ce, isCall := errors.AsType[*optin.CallError](err)
	if !isCall || ce.Kind != optin.Permanent {
		log.Warn().Err(err).Str("step", step).Msg("chat start incomplete; the call may be repeated")
		return Chat{}, fmt.Errorf("%w: step %s: %w", ErrBusy, step, err)
	}
	return s.refused(ctx, c, step, ce.Code, &TwilioError{Code: ce.Code, Status: ce.Status, Err: fmt.Errorf("step %s: %w", step, err)})
}

// refused ends a start that cannot go on: the chat fails — its conversation closed, its numbers
// freed — or, when nothing exists at Twilio yet, is forgotten.
func (s *Service) refused(ctx context.Context, c Chat, step string, code int, terr error) (Chat, error) {
	log := zerolog.Ctx(ctx)
	log.Error().Err(terr).Str("step", step).Int("twilio_code", code).Msg("chat start refused")
	// Recording the outcome matters more than the caller's deadline.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StartBudget)
	defer cancel()
	if c.ConversationSid == "" {
		if rerr := s.release(ctx, c.ID); rerr != nil {
			log.Error().Err(rerr).Msg("freeing the numbers of a refused start")
		}
		if derr := s.store.Delete(ctx, c.ID); derr != nil {
			return Chat{}, fmt.Errorf("%w: forgetting chat %s: %w", ErrUnavailable, c.ID, derr)
		}
		return Chat{}, terr
	}
	if cerr := s.close(ctx, c.ConversationSid); cerr != nil {
		log.Error().Err(cerr).Msg("closing the conversation of a failed start")
	}
	failed, uerr := s.store.Update(ctx, c.ID, func(c *Chat) error {
		c.Error = &Failure{TwilioCode: code, Detail: terr.Error(), Step: step}
		s.transition(c, StateFailed, ReasonFailed)
		return nil
	})
	if uerr != nil {
		return Chat{}, fmt.Errorf("%w: %w", ErrUnavailable, uerr)
	}
	s.after(ctx, c.State, failed)
	return failed, terr
}

// armWebhook makes sure the conversation has a scoped webhook at the service for event; with look set
// it first looks for one an earlier attempt made.
func (s *Service) armWebhook(ctx context.Context, conv, event string, look bool) (string, error) {
	if look {
		hooks, err := s.conv.ScopedWebhooks(ctx, conv)
		if err != nil {
			return "", err
		}
		for _, h := range hooks {
			if h.URL == s.cfg.WebhookURL && slices.Equal(h.Filters, []string{event}) {
				return h.Sid, nil
			}
		}
	}
	return s.conv.CreateWebhook(ctx, conv, optin.Webhook{URL: s.cfg.WebhookURL, Method: webhookMethod, Filters: []string{event}})
}

// pool is the pool of the party's channel.
func (s *Service) pool(p Party) Pool {
	if p.Channel() == ChannelSMS {
		return s.cfg.SMS
	}
	return s.cfg.WhatsApp
}

// lease leases the customer's and the rider's numbers: from one pool together when they share a
// channel (so that they may share a number), else each from its own.
func (s *Service) lease(ctx context.Context, c Chat) ([]string, error) {
	if c.Customer.Channel() == c.Rider.Channel() {
		return s.pool(c.Customer).Lease(ctx, c.ID, []string{c.Customer.Address, c.Rider.Address})
	}
	customer, err := s.pool(c.Customer).Lease(ctx, c.ID, []string{c.Customer.Address})
	if err != nil {
		return nil, err
	}
	rider, err := s.pool(c.Rider).Lease(ctx, c.ID, []string{c.Rider.Address})
	if err != nil {
		_ = s.release(context.WithoutCancel(ctx), c.ID)
		return nil, err
	}
	return []string{customer[0], rider[0]}, nil
}

// release frees the chat's numbers in every pool.
func (s *Service) release(ctx context.Context, chatID string) error {
	err := s.cfg.WhatsApp.Release(ctx, chatID)
	if s.cfg.SMS != nil {
		err = errors.Join(err, s.cfg.SMS.Release(ctx, chatID))
	}
	return err
}

// leaseNumbers gives both parties a business number from the pool, before anything exists at Twilio:
// when the pool has none for a party, the chat is forgotten and its id may be used again.
func (s *Service) leaseNumbers(ctx context.Context, c Chat) (Chat, error) {
	numbers, err := s.lease(ctx, c)
	if err != nil {
		var ex *numberpool.ExhaustedError
		if !errors.As(err, &ex) {
			return Chat{}, fmt.Errorf("%w: leasing numbers: %w", ErrUnavailable, err)
		}
		party := "rider"
		if ex.Address == c.Customer.Address {
			party = "customer"
		}
		if derr := s.store.Delete(context.WithoutCancel(ctx), c.ID); derr != nil {
			return Chat{}, fmt.Errorf("%w: forgetting chat %s: %w", ErrUnavailable, c.ID, derr)
		}
		s.noFreeNumber()
		return Chat{}, &NoNumberError{Party: party, Address: ex.Address, Err: err}
	}
	c, err = s.store.Update(ctx, c.ID, func(c *Chat) error {
		c.Customer.ProxyAddress, c.Rider.ProxyAddress = numbers[0], numbers[1]
		c.Steps[stepNumbers] = strings.Join(numbers, ",")
		return nil
	})
	if err != nil {
		_ = s.release(context.WithoutCancel(ctx), c.ID)
		return Chat{}, fmt.Errorf("%w: recording numbers: %w", ErrUnavailable, err)
	}
	return c, nil
}

// addParticipant adds the party; one already in the conversation (an earlier attempt) counts as added.
// When Twilio answers that the party's pair is bound in a conversation the service did not make
// (50416), the pair is set aside and the party gets the pool's next free number.
func (s *Service) addParticipant(ctx context.Context, c *Chat, party string) error {
	for {
		p := c.Customer
		if party == "rider" {
			p = c.Rider
		}
		err := s.conv.AddParticipant(ctx, c.ConversationSid, p.Address, p.ProxyAddress)
		switch twilioCode(err) {
		case codeAlreadyPresent, codeSameBinding:
			return nil
		case codePairInUse:
		default:
			return err
		}
		zerolog.Ctx(ctx).Warn().Str("party", party).Str("proxy_address", p.ProxyAddress).Msg("pair bound in another conversation; taking the next number")
		number, rerr := s.pool(p).Replace(ctx, c.ID, p.Address, p.ProxyAddress)
		if rerr != nil {
			var ex *numberpool.ExhaustedError
			if errors.As(rerr, &ex) {
				s.noFreeNumber()
				// Permanent: no retry of the step can find a number the pool does not have.
				return &optin.CallError{Op: "lease a number", Kind: optin.Permanent, Code: codePairInUse,
					Err: &NoNumberError{Party: party, Address: p.Address, Err: rerr, TwilioCode: codePairInUse}}
			}
			return rerr
		}
		updated, uerr := s.store.Update(ctx, c.ID, func(c *Chat) error {
			if party == "rider" {
				c.Rider.ProxyAddress = number
			} else {
				c.Customer.ProxyAddress = number
			}
			return nil
		})
		if uerr != nil {
			return uerr
		}
		*c = updated
	}
}

// findMarked returns the SID of the newest message carrying attributes, "" when there is none.
func (s *Service) findMarked(ctx context.Context, conv, attributes string) (string, error) {
	msgs, err := s.conv.RecentMessages(ctx, conv, defaultMarkerLookback)
	if err != nil {
		return "", err
	}
	for _, m := range msgs {
		if m.Attributes == attributes {
			return m.Sid, nil
		}
	}
	return "", nil
}

// close closes a conversation, retried; one already closed or gone counts as closed.
func (s *Service) close(ctx context.Context, conv string) error {
	_, err := optin.Retry(ctx, s.cfg.Retry, nil, "chat_close", func(ctx context.Context) (struct{}, error) {
		err := s.conv.CloseConversation(ctx, conv)
		if c := twilioCode(err); c == codeClosed || c == codeNotFound {
			return struct{}{}, nil
		}
		return struct{}{}, err
	})
	return err
}

// Get returns the chat named by key: its id, or its conversation's SID.
func (s *Service) Get(ctx context.Context, key string) (Chat, error) {
	var (
		c   Chat
		err error
	)
	if optin.IsSid("CH", key) {
		c, err = s.store.ByConversation(ctx, key)
	} else {
		c, err = s.store.Get(ctx, key)
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Chat{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return c, err
}

// List returns up to limit chats, newest first, optionally in one state; before is the cursor of the
// page (0 for the first) and next that of the following page (0 at the end).
func (s *Service) List(ctx context.Context, state State, limit int, before int64) ([]Chat, int64, error) {
	chats, next, err := s.store.List(ctx, state, limit, before)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return chats, next, nil
}

// End closes the chat's conversation and records the chat closed; a chat already ended is answered as it is.
func (s *Service) End(ctx context.Context, key string) (Chat, error) {
	c, err := s.Get(ctx, key)
	if err != nil {
		return Chat{}, err
	}
	if c.State.Final() {
		return c, nil
	}
	if c.ConversationSid != "" {
		ctx, cancel := context.WithTimeout(ctx, s.cfg.StartBudget)
		defer cancel()
		if err := s.close(ctx, c.ConversationSid); err != nil {
			if ce, ok := errors.AsType[*optin.CallError](err); ok && ce.Kind == optin.Permanent {
				return Chat{}, &TwilioError{Code: ce.Code, Status: ce.Status, Err: err}
			}
			return Chat{}, fmt.Errorf("%w: closing the conversation: %w", ErrBusy, err)
		}
	}
	old := c.State
	c, err = s.store.Update(ctx, c.ID, func(c *Chat) error {
		s.transition(c, StateClosed, ReasonEnded)
		return nil
	})
	if err != nil {
		return Chat{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	s.after(ctx, old, c)
	zerolog.Ctx(ctx).Info().Str("chat_id", c.ID).Str("conversation_sid", c.ConversationSid).Str("state", string(c.State)).Msg("chat ended")
	return c, nil
}

func twilioCode(err error) int {
	if ce, ok := errors.AsType[*optin.CallError](err); ok {
		return ce.Code
	}
	return 0
}

func kind(err error) optin.FailureKind {
	if ce, ok := errors.AsType[*optin.CallError](err); ok {
		return ce.Kind
	}
	return optin.Uncertain
}

func newOwner() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var _ optin.Chats = (*Service)(nil)

// Parties names the customer and rider of the conversation's chat; ok is false when it has none.
func (s *Service) Parties(ctx context.Context, conversationSid string) (customer, rider string, ok bool, err error) {
	c, err := s.store.ByConversation(ctx, conversationSid)
	switch {
	case errors.Is(err, ErrNotFound):
		return "", "", false, nil
	case err != nil:
		return "", "", false, err
	}
	return c.Customer.Address, c.Rider.Address, true, nil
}

// stageStates maps the opt-in's stages to a chat's states and reasons.
var stageStates = map[optin.Stage]struct {
	state  State
	reason string
}{
	optin.StageConnecting: {StateConnecting, ""},
	optin.StageConnected:  {StateConnected, ""},
	optin.StageDeclined:   {StateDeclined, ReasonDeclined},
	optin.StageOptedOut:   {StateDeclined, ReasonOptedOut},
	optin.StageFailed:     {StateFailed, ReasonFailed},
}

// Advance moves the conversation's chat to the state of stage; a conversation without a chat has
// nothing to move.
func (s *Service) Advance(ctx context.Context, conversationSid string, stage optin.Stage, cause error) error {
	to, known := stageStates[stage]
	if !known {
		return fmt.Errorf("chat: unknown stage %q", stage)
	}
	c, err := s.store.ByConversation(ctx, conversationSid)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	old := c.State
	c, err = s.store.Update(ctx, c.ID, func(c *Chat) error {
		if to.state == StateFailed && c.Error == nil && !c.State.Final() && cause != nil {
			c.Error = &Failure{TwilioCode: twilioCode(cause), Detail: cause.Error()}
		}
		s.transition(c, to.state, to.reason)
		return nil
	})
	if err != nil {
		return err
	}
	s.after(ctx, old, c)
	zerolog.Ctx(ctx).Info().Str("chat_id", c.ID).Str("conversation_sid", conversationSid).Str("state", string(c.State)).Msg("chat advanced")
	return nil
}

// Reasons a state event is ignored.
const (
	ReasonNotClosed = "state_not_closed"
	ReasonNoChat    = "no_chat"
)

// StateUpdated records that Twilio closed a chat's conversation: its closed timer ran out (expired)
// or someone closed it (ended). A chat already declined or failed stays so.
func (s *Service) StateUpdated(ctx context.Context, ev optin.Event) (optin.Decision, error) {
	if ev.StateTo != "closed" {
		return optin.Decision{Outcome: optin.OutcomeIgnored, Reason: ReasonNotClosed}, nil
	}
	c, err := s.store.ByConversation(ctx, ev.ConversationSid)
	switch {
	case errors.Is(err, ErrNotFound):
		return optin.Decision{Outcome: optin.OutcomeIgnored, Reason: ReasonNoChat}, nil
	case err != nil:
		return optin.Decision{}, fmt.Errorf("%w: %w", optin.ErrUnavailable, err)
	}
	reason := ReasonEnded
	if ev.StateReason == "TIMER" {
		reason = ReasonExpired
	}
	old := c.State
	c, err = s.store.Update(ctx, c.ID, func(c *Chat) error {
		s.transition(c, StateClosed, reason)
		return nil
	})
	if err != nil {
		return optin.Decision{}, fmt.Errorf("%w: %w", optin.ErrUnavailable, err)
	}
	s.after(ctx, old, c)
	zerolog.Ctx(ctx).Info().Str("chat_id", c.ID).Str("conversation_sid", c.ConversationSid).Str("state", string(c.State)).Str("reason", c.Reason).Msg("chat's conversation closed")
	return optin.Decision{Outcome: optin.OutcomeAccepted}, nil
}

// transition moves c to state and, when the platform hears of it, records the event in the same write.
func (s *Service) transition(c *Chat, state State, reason string) {
	now := s.now()
	if !c.moveTo(state, reason, now) {
		return
	}
	if s.cfg.Notifier == nil || eventTypes[state] == "" {
		return
	}
	data, _ := json.Marshal(c.View())
	c.Pending = append(c.Pending, Event{ID: "msg_" + newOwner() + newOwner(), Type: eventTypes[state], At: now, Data: data})
}

func (s *Service) noFreeNumber() {
	if s.cfg.Observer != nil {
		s.cfg.Observer.NoFreeNumber()
	}
}

// after follows a stored change of a chat that was in state old: it counts the transition and hands
// every pending event to the notifier. Handing one twice is harmless: the delivery drops an event no
// longer pending. A failure leaves the event pending for the next transition.
func (s *Service) after(ctx context.Context, old State, c Chat) {
	if s.cfg.Observer != nil && c.State != old {
		s.cfg.Observer.ChatTransition(string(c.State), c.Reason)
	}
	if c.State.Final() {
		// Declined, failed and closed conversations bind nothing at Twilio any more: free the numbers.
		if err := s.release(ctx, c.ID); err != nil {
			zerolog.Ctx(ctx).Error().Err(err).Str("chat_id", c.ID).Msg("freeing a chat's numbers")
		}
	}
	if s.cfg.Notifier == nil {
		return
	}
	for _, ev := range c.Pending {
		if err := s.cfg.Notifier.Notify(ctx, c.ID, ev.ID); err != nil {
			zerolog.Ctx(ctx).Error().Err(err).Str("chat_id", c.ID).Str("event_id", ev.ID).Msg("queueing a chat event")
		}
	}
}
