package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/twiliocall"
)

// codeWindowClosed is Twilio's error for a free-form message outside the person's 24-hour window.
const codeWindowClosed = 63016

// Reasons a relayed event is ignored.
const (
	ReasonChatEnded    = "chat_ended"
	ReasonDelivered    = "not_failed"
	ReasonOtherFailure = "other_failure"
	ReasonNotHeld      = "not_held"
)

// Party roles, as markers, logs and metrics name them.
const (
	roleCustomer = "customer"
	roleRider    = "rider"
)

// party returns the chat's party of role.
func (c *Chat) party(role string) *Party {
	if role == roleRider {
		return &c.Rider
	}
	return &c.Customer
}

// roleOf names the party whose address this is; "" when neither's.
func (c Chat) roleOf(address string) string {
	switch address {
	case "":
		return ""
	case c.Customer.Address:
		return roleCustomer
	case c.Rider.Address:
		return roleRider
	}
	return ""
}

func other(role string) string {
	if role == roleRider {
		return roleCustomer
	}
	return roleRider
}

// relaying reports whether the chat's parties talk: what they write is theirs, not the opt-in's.
func (c Chat) relaying() bool { return c.State == StateConnecting || c.State == StateConnected }

// MessageAdded takes a message written in a chat's conversation. It records that the author's window
// is open and, when messages are held for the author, sends them again. taken is false when the
// message is the opt-in's to decide: the conversation has no chat, or its chat awaits the answer.
func (s *Service) MessageAdded(ctx context.Context, ev conversation.Event) (d conversation.Decision, taken bool, err error) {
	c, err := s.store.ByConversation(ctx, ev.ConversationSid)
	switch {
	case errors.Is(err, ErrNotFound):
		return conversation.Decision{}, false, nil
	case err != nil:
		return conversation.Decision{}, false, fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
	}
	role := c.roleOf(ev.Author)
	if role != "" && s.cfg.Windows != nil && c.party(role).Channel() == ChannelWhatsApp {
		at := ev.DateCreated
		if at.IsZero() {
			at = s.now()
		}
		p := c.party(role)
		if err := s.cfg.Windows.Opened(ctx, p.Address, p.ProxyAddress, at); err != nil {
			return conversation.Decision{}, false, fmt.Errorf("%w: recording a window: %w", conversation.ErrUnavailable, err)
		}
	}
	switch {
	case c.State == StateStarting || c.State == StateInvited:
		return conversation.Decision{}, false, nil
	case c.State.Final():
		return conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonChatEnded}, true, nil
	}
	// Read again after the window's write: a message held meanwhile (its failure reported at the same
	// time) is seen here, or its holder sees the window open. Work is recorded, so that a tend running
	// now runs again after it.
	if c, err = s.store.Get(ctx, c.ID); err == nil && role != "" && len(c.party(role).Held) > 0 {
		if err := s.recordWork(ctx, c.ID); err != nil {
			return conversation.Decision{}, false, fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
		}
		s.later(ctx, c.ID)
	}
	return conversation.Decision{Outcome: conversation.OutcomeRelayed}, true, nil
}

// recordWork tells a tend that runs now that there is more to do.
func (s *Service) recordWork(ctx context.Context, id string) error {
	_, err := s.store.Update(ctx, id, func(c *Chat) error { c.Work++; return nil })
	return err
}

// DeliveryUpdated takes Twilio's report of a message's delivery to one participant. A message that
// failed because the party's window was closed, or because the customer is not on WhatsApp, is
// recorded on the chat in one write and answered at once; tend then reads the message and holds it
// (and nudges), or moves the customer to SMS. Recorded, a failure outlives a crash or Twilio being
// away: the sweep comes back to it.
func (s *Service) DeliveryUpdated(ctx context.Context, ev conversation.Event) (conversation.Decision, error) {
	if err := ev.Validate(); err != nil {
		return conversation.Decision{}, err
	}
	if ev.Status != "failed" && ev.Status != "undelivered" {
		return conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonDelivered}, nil
	}
	notOnWhatsApp := ev.ErrorCode == codeNotOnWhatsApp || ev.ErrorCode == codeNotWhatsAppNum
	if ev.ErrorCode != codeWindowClosed && !notOnWhatsApp {
		return conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonOtherFailure}, nil
	}
	if !notOnWhatsApp && s.cfg.Windows == nil {
		return conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonNotHeld}, nil
	}
	c, err := s.store.ByConversation(ctx, ev.ConversationSid)
	switch {
	case errors.Is(err, ErrNotFound):
		return conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonNoChat}, nil
	case err != nil:
		return conversation.Decision{}, fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
	case c.State.Final():
		return conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonChatEnded}, nil
	}
	if _, err := s.failed(ctx, c.ID, []Undelivered{{MessageSid: ev.MessageSid, Code: ev.ErrorCode}}); err != nil {
		return conversation.Decision{}, fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
	}
	s.later(zerolog.Ctx(ctx).With().Str("chat_id", c.ID).Logger().WithContext(ctx), c.ID)
	return conversation.Decision{Outcome: conversation.OutcomeRelayed}, nil
}

// maxUndelivered bounds the failed deliveries a chat keeps waiting to be read: past it, a report is
// dropped and counted (the party's held messages are capped lower still).
const maxUndelivered = 200

// failed records failed deliveries on the chat, but those recorded already; it returns how many it
// recorded. Those acted on already are known only once read (Handled keeps indexes): resolve skips them.
func (s *Service) failed(ctx context.Context, id string, us []Undelivered) (int, error) {
	n, over := 0, 0
	_, err := s.store.Update(ctx, id, func(c *Chat) error {
		n, over = decideFailed(c, us)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("recording a failed delivery: %w", err)
	}
	if over > 0 {
		// Reports, not held messages (some are repeats): logged, not counted as messages dropped. The
		// reconciler finds a failure again while its message is among the newest.
		zerolog.Ctx(ctx).Warn().Str("chat_id", id).Int("reports", over).Msg("failed deliveries not recorded: too many waiting to be read")
	}
	return n, nil
}

// Undelivered is a message Twilio reported undelivered, for a reason the chat acts on (a closed
// window, a customer not on WhatsApp), waiting to be read and acted on.
type Undelivered struct {
	MessageSid string
	Code       int
	// Index is the message's index when the finder knew it (the reconciler does, a report does not).
	Index   int  `json:",omitempty"`
	Indexed bool `json:",omitempty"`
}

// resolve reads each failed message the chat recorded and acts on it, once per message (by its index):
// a closed window holds it for its reader, a customer not on WhatsApp records the move to SMS. A
// message Twilio no longer has is let go; a failed read is left for the next run.
func (s *Service) resolve(ctx context.Context, id string) error {
	c, err := s.store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
	}
	if c.State == StateStarting && !slices.ContainsFunc(c.Undelivered, func(u Undelivered) bool { return u.Code != codeWindowClosed }) {
		return nil // nothing is held before the invitation: wait for the start
	}
	for _, u := range c.Undelivered {
		m, err := twiliocall.Retry(ctx, s.cfg.Retry, nil, "fetch_message", func(ctx context.Context) (Message, error) {
			return s.conv.FetchMessage(ctx, c.ConversationSid, u.MessageSid)
		})
		index := -1
		switch {
		case twiliocall.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("reading a failed message: %w", err)
		case c.Handled.Has(m.Index):
			// Acted on before: a replayed or repeated report.
		case u.Code == codeWindowClosed:
			// Held, marked handled and taken off the failures in one write: a repeat never holds it
			// again, whatever fails after.
			if _, err := s.hold(ctx, id, m, u.MessageSid); err != nil {
				return err
			}
			continue
		default:
			if err := s.unreachable(ctx, id, m, u.Code); err != nil {
				return err
			}
			index = m.Index
		}
		if _, err := s.store.Update(ctx, id, func(c *Chat) error {
			c.Undelivered = slices.DeleteFunc(c.Undelivered, func(x Undelivered) bool { return x.MessageSid == u.MessageSid })
			if index >= 0 && !c.State.Final() {
				c.Handled = c.Handled.With(index)
			}
			return nil
		}); err != nil {
			return fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
		}
	}
	return nil
}

// Reasons a held message is dropped, as the dropped counter names them.
const (
	DropExpired  = "expired"
	DropClosed   = "closed"
	DropOverflow = "overflow"
	DropRefused  = "refused"
)

// Defaults of the hold's bound, per party.
const (
	DefaultHoldLimit      = 50
	DefaultHoldLimitBytes = 64 << 10
)

// size is what a held message weighs against the hold's byte bound.
func (h Held) size() int { return len(h.Body) + len(h.Author) + len(h.MessageSid) + 64*len(h.Media) }

// trim drops the party's oldest held messages (but those being sent) until at most limit remain,
// weighing at most limitBytes; it returns how many counted messages (not early ones) it dropped.
func (p *Party) trim(limit, limitBytes int) int {
	total := 0
	for _, h := range p.Held {
		total += h.size()
	}
	dropped := 0
	for len(p.Held) > limit || total > limitBytes {
		i := slices.IndexFunc(p.Held, func(h Held) bool { return !h.Sending })
		if i < 0 {
			break
		}
		total -= p.Held[i].size()
		if !p.Held[i].Early {
			dropped++
		}
		p.Held = slices.Delete(p.Held, i, i+1)
	}
	return dropped
}

// hold keeps m for the party it failed to reach: the other party than its author's, and records the
// failure (its Undelivered entry) acted on, in the same write. A message of
// no party's (a system message), the customer's answer, or one written before the customer answered
// by anyone but the customer, is not held. A party holds at most HoldLimit messages of HoldLimitBytes:
// the oldest go first, counted.
func (s *Service) hold(ctx context.Context, id string, m Message, failure string) (bool, error) {
	var d HoldDecision
	_, err := s.store.Update(ctx, id, func(c *Chat) error {
		d = decideHold(c, m, failure, s.now(), s.cfg.HoldLimit, s.cfg.HoldLimitBytes)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("%w: holding a message: %w", conversation.ErrUnavailable, err)
	}
	if d.Added {
		zerolog.Ctx(ctx).Info().Str("party", d.For).Str("message_sid", m.Sid).Msg("message held: the party's window is closed")
	}
	if d.Counted {
		s.observe(func(o Observer) { o.MessagesHeld(1) })
	}
	if d.Dropped > 0 {
		zerolog.Ctx(ctx).Warn().Str("chat_id", id).Str("party", d.For).Int("dropped", d.Dropped).Msg("held messages dropped: the party holds too many")
		s.observe(func(o Observer) { o.MessagesDropped(DropOverflow, d.Dropped) })
	}
	return d.Added, nil
}

// answered records the customer's answer: an early hold of it is let go (the rider gets the opt-in
// template instead); the customer's other early holds now count.
func (s *Service) answered(ctx context.Context, id, answer string) error {
	promoted := 0
	_, err := s.store.Update(ctx, id, func(c *Chat) error {
		promoted = decideAnswered(c, answer)
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: recording the answer: %w", conversation.ErrUnavailable, err)
	}
	if promoted > 0 {
		s.observe(func(o Observer) { o.MessagesHeld(promoted) })
		s.later(ctx, id)
	}
	return nil
}
