package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/optin"
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
func (s *Service) MessageAdded(ctx context.Context, ev optin.Event) (d optin.Decision, taken bool, err error) {
	c, err := s.store.ByConversation(ctx, ev.ConversationSid)
	switch {
	case errors.Is(err, ErrNotFound):
		return optin.Decision{}, false, nil
	case err != nil:
		return optin.Decision{}, false, fmt.Errorf("%w: %w", optin.ErrUnavailable, err)
	}
	role := c.roleOf(ev.Author)
	if role != "" && s.cfg.Windows != nil && c.party(role).Channel() == ChannelWhatsApp {
		at := ev.DateCreated
		if at.IsZero() {
			at = s.now()
		}
		p := c.party(role)
		if err := s.cfg.Windows.Opened(ctx, p.Address, p.ProxyAddress, at); err != nil {
			return optin.Decision{}, false, fmt.Errorf("%w: recording a window: %w", optin.ErrUnavailable, err)
		}
	}
	switch {
	case c.State == StateStarting || c.State == StateInvited:
		return optin.Decision{}, false, nil
	case c.State.Final():
		return optin.Decision{Outcome: optin.OutcomeIgnored, Reason: ReasonChatEnded}, true, nil
	}
	// Read again after the window's write: a message held meanwhile (its failure reported at the same
	// time) is seen here, or its holder sees the window open.
	if c, err = s.store.Get(ctx, c.ID); err == nil && role != "" && len(c.party(role).Held) > 0 {
		s.later(ctx, c.ID)
	}
	return optin.Decision{Outcome: optin.OutcomeRelayed}, true, nil
}

// DeliveryUpdated takes Twilio's report of a message's delivery to one participant. A message that
// failed because the party's window was closed, or because the customer is not on WhatsApp, is
// recorded on the chat in one write and answered at once; tend then reads the message and holds it
// (and nudges), or moves the customer to SMS. Recorded, a failure outlives a crash or Twilio being
// away: the sweep comes back to it.
func (s *Service) DeliveryUpdated(ctx context.Context, ev optin.Event) (optin.Decision, error) {
	if err := ev.Validate(); err != nil {
		return optin.Decision{}, err
	}
	if ev.Status != "failed" && ev.Status != "undelivered" {
		return optin.Decision{Outcome: optin.OutcomeIgnored, Reason: ReasonDelivered}, nil
	}
	notOnWhatsApp := ev.ErrorCode == codeNotOnWhatsApp || ev.ErrorCode == codeNotWhatsAppNum
	if ev.ErrorCode != codeWindowClosed && !notOnWhatsApp {
		return optin.Decision{Outcome: optin.OutcomeIgnored, Reason: ReasonOtherFailure}, nil
	}
	if !notOnWhatsApp && s.cfg.Windows == nil {
		return optin.Decision{Outcome: optin.OutcomeIgnored, Reason: ReasonNotHeld}, nil
	}
	c, err := s.store.ByConversation(ctx, ev.ConversationSid)
	switch {
	case errors.Is(err, ErrNotFound):
		return optin.Decision{Outcome: optin.OutcomeIgnored, Reason: ReasonNoChat}, nil
	case err != nil:
		return optin.Decision{}, fmt.Errorf("%w: %w", optin.ErrUnavailable, err)
	case c.State.Final():
		return optin.Decision{Outcome: optin.OutcomeIgnored, Reason: ReasonChatEnded}, nil
	}
	if _, err := s.failed(ctx, c.ID, []Undelivered{{MessageSid: ev.MessageSid, Code: ev.ErrorCode}}); err != nil {
		return optin.Decision{}, fmt.Errorf("%w: %w", optin.ErrUnavailable, err)
	}
	s.later(zerolog.Ctx(ctx).With().Str("chat_id", c.ID).Logger().WithContext(ctx), c.ID)
	return optin.Decision{Outcome: optin.OutcomeRelayed}, nil
}

// maxHandled bounds Chat.Handled: more than the newest messages the reconciler reads.
const maxHandled = 2 * twiliocall.MarkerLookback

// failed records failed deliveries on the chat, but those recorded already or acted on; it returns
// how many it recorded.
func (s *Service) failed(ctx context.Context, id string, us []Undelivered) (int, error) {
	n := 0
	_, err := s.store.Update(ctx, id, func(c *Chat) error {
		n = 0
		if c.State.Final() {
			return nil
		}
		for _, u := range us {
			if slices.Contains(c.Handled, u.MessageSid) || slices.ContainsFunc(c.Undelivered, func(x Undelivered) bool { return x.MessageSid == u.MessageSid }) {
				continue
			}
			c.Undelivered = append(c.Undelivered, u)
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("recording a failed delivery: %w", err)
	}
	return n, nil
}

// Undelivered is a message Twilio reported undelivered, for a reason the chat acts on (a closed
// window, a customer not on WhatsApp), waiting to be read and acted on.
type Undelivered struct {
	MessageSid string
	Code       int
}

// resolve reads each failed message the chat recorded and acts on it: a closed window holds it for
// its reader, a customer not on WhatsApp records the move to SMS. A message Twilio no longer has is
// let go; a failed read is left for the next run.
func (s *Service) resolve(ctx context.Context, id string) error {
	c, err := s.store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if c.State == StateStarting && !slices.ContainsFunc(c.Undelivered, func(u Undelivered) bool { return u.Code != codeWindowClosed }) {
		return nil // nothing is held before the invitation: wait for the start
	}
	for _, u := range c.Undelivered {
		m, err := twiliocall.Retry(ctx, s.cfg.Retry, nil, "fetch_message", func(ctx context.Context) (Message, error) {
			return s.conv.FetchMessage(ctx, c.ConversationSid, u.MessageSid)
		})
		switch {
		case twiliocall.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("reading a failed message: %w", err)
		case u.Code == codeWindowClosed:
			if _, err := s.hold(ctx, id, m); err != nil {
				return err
			}
		default:
			if err := s.unreachable(ctx, id, m, u.Code); err != nil {
				return err
			}
		}
		if _, err := s.store.Update(ctx, id, func(c *Chat) error {
			c.Undelivered = slices.DeleteFunc(c.Undelivered, func(x Undelivered) bool { return x.MessageSid == u.MessageSid })
			if !slices.Contains(c.Handled, u.MessageSid) {
				c.Handled = append(c.Handled, u.MessageSid)
				c.Handled = c.Handled[max(len(c.Handled)-maxHandled, 0):]
			}
			return nil
		}); err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	return nil
}

// hold keeps m for the party it failed to reach: the other party than its author's. A message of
// no party's (a system message), the customer's answer, or one written before the customer answered
// by anyone but the customer, is not held.
func (s *Service) hold(ctx context.Context, id string, m Message) (bool, error) {
	var added, counted bool
	var to string
	_, err := s.store.Update(ctx, id, func(c *Chat) error {
		added, counted = false, false
		from := c.roleOf(m.Author)
		early := c.State == StateInvited
		switch {
		case from == "" || c.State.Final() || c.State == StateStarting || m.Sid == c.Answer:
			return nil
		case early && from != roleCustomer:
			return nil
		}
		to = other(from)
		p := c.party(to)
		if slices.ContainsFunc(p.Held, func(h Held) bool { return h.MessageSid == m.Sid }) {
			return nil
		}
		p.Held = append(p.Held, Held{MessageSid: m.Sid, Index: m.Index, Author: m.Author, Body: m.Body,
			Created: m.Created, HeldAt: s.now(), Early: early})
		slices.SortStableFunc(p.Held, func(a, b Held) int { return a.Index - b.Index })
		added, counted = true, !early
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("%w: holding a message: %w", ErrUnavailable, err)
	}
	if added {
		zerolog.Ctx(ctx).Info().Str("party", to).Str("message_sid", m.Sid).Msg("message held: the party's window is closed")
	}
	if counted {
		s.observe(func(o Observer) { o.MessagesHeld(1) })
	}
	return added, nil
}

// answered records the customer's answer: an early hold of it is let go (the rider gets the opt-in
// template instead); the customer's other early holds now count.
func (s *Service) answered(ctx context.Context, id, answer string) error {
	promoted := 0
	_, err := s.store.Update(ctx, id, func(c *Chat) error {
		promoted = 0
		if c.Answer != "" || answer == "" {
			return nil
		}
		c.Answer = answer
		p := &c.Rider
		p.Held = slices.DeleteFunc(p.Held, func(h Held) bool { return h.MessageSid == answer })
		for i := range p.Held {
			if p.Held[i].Early {
				p.Held[i].Early = false
				promoted++
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: recording the answer: %w", ErrUnavailable, err)
	}
	if promoted > 0 {
		s.observe(func(o Observer) { o.MessagesHeld(promoted) })
		s.later(ctx, id)
	}
	return nil
}

// later tends the chat's held messages and nudges after the caller's answer: a webhook answers
// Twilio first. What a crash cuts off, the upkeep's sweep finishes.
func (s *Service) later(ctx context.Context, id string) {
	ctx = context.WithoutCancel(ctx)
	s.spawn(func() {
		ctx, cancel := context.WithTimeout(ctx, s.cfg.StartBudget)
		defer cancel()
		if err := s.tend(ctx, id); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Str("chat_id", id).Msg("sending held messages; the sweep will")
		}
	})
}

// heldLease names the lease under which one replica at a time sends a chat's held messages and nudges.
func heldLease(id string) string { return "~held:" + id }

// tend does what the chat's held messages call for, under the chat's held lease: those held past
// HoldMax are dropped; those whose party has written since are sent again, in order, each once; a
// party with a closed window and a held message is nudged, once per closed window.
func (s *Service) tend(ctx context.Context, id string) error {
	owner := newOwner()
	locked, err := s.store.Lock(ctx, heldLease(id), owner, s.cfg.StartBudget+leaseMargin)
	if err != nil || !locked {
		return err // another replica tends it
	}
	defer func() { _ = s.store.Unlock(context.WithoutCancel(ctx), heldLease(id), owner) }()
	// The work ends well before the lease can lapse: another replica taking it then cannot overlap a
	// create still in flight here.
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartBudget)
	defer cancel()
	if err := s.resolve(ctx, id); err != nil {
		return err
	}
	if err := s.fallBack(ctx, id); err != nil {
		return err
	}
	if err := s.dropExpired(ctx, id); err != nil || s.cfg.Windows == nil {
		return err
	}
	for _, role := range []string{roleCustomer, roleRider} {
		if err := s.resend(ctx, id, role); err != nil {
			return err
		}
		if err := s.nudge(ctx, id, role); err != nil {
			return err
		}
	}
	return nil
}

// dropExpired drops the messages held longer than HoldMax.
func (s *Service) dropExpired(ctx context.Context, id string) error {
	dropped := 0
	_, err := s.store.Update(ctx, id, func(c *Chat) error {
		dropped = 0
		now := s.now()
		for _, role := range []string{roleCustomer, roleRider} {
			p := c.party(role)
			p.Held = slices.DeleteFunc(p.Held, func(h Held) bool {
				expired := !h.Sending && now.Sub(h.HeldAt) > s.cfg.HoldMax
				if expired && !h.Early {
					dropped++
				}
				return expired
			})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: dropping expired held messages: %w", ErrUnavailable, err)
	}
	if dropped > 0 {
		zerolog.Ctx(ctx).Warn().Str("chat_id", id).Int("dropped", dropped).Msg("held messages dropped: held too long")
		s.observe(func(o Observer) { o.MessagesDropped("expired", dropped) })
	}
	return nil
}

// resend sends the party's held messages again, oldest first, while the party has written since each
// was sent: authored by its author, so that only this party gets the copy, and marked with the
// original's SID, so that a run after a crash finds a copy already made rather than making another.
func (s *Service) resend(ctx context.Context, id, role string) error {
	for {
		c, err := s.store.Get(ctx, id)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		p := c.party(role)
		if !c.relaying() || len(p.Held) == 0 || p.Held[0].Early {
			return nil
		}
		h := p.Held[0]
		w, err := s.cfg.Windows.Window(ctx, p.Address, p.ProxyAddress)
		if err != nil {
			return fmt.Errorf("%w: reading a window: %w", ErrUnavailable, err)
		}
		if !w.ReopenedAfter(h.Created) {
			return nil
		}
		look := h.Sending
		if !look {
			marked := false
			if _, err := s.store.Update(ctx, id, func(c *Chat) error {
				hs := c.party(role).Held
				marked = len(hs) > 0 && hs[0].MessageSid == h.MessageSid
				if marked {
					hs[0].Sending = true
				}
				return nil
			}); err != nil {
				return fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
			if !marked {
				continue // let go meanwhile (the chat ended), or sent by another run: read again
			}
		}
		marker := chatMarker(id, "resend", h.MessageSid)
		sid, err := s.createOnce(ctx, c.ConversationSid, "resend", look, optin.Message{Author: h.Author, Body: h.Body, Attributes: marker})
		if twiliocall.Code(err) == twiliocall.CodeClosed {
			// The chat ended meanwhile (its end let the message go): this one is dropped, not sent.
			s.observe(func(o Observer) { o.MessagesDropped("closed", 1) })
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := s.store.Update(ctx, id, func(c *Chat) error {
			p := c.party(role)
			p.Held = slices.DeleteFunc(p.Held, func(x Held) bool { return x.MessageSid == h.MessageSid })
			return nil
		}); err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		zerolog.Ctx(ctx).Info().Str("chat_id", id).Str("party", role).Str("message_sid", h.MessageSid).Str("created_sid", sid).Msg("held message sent again")
		s.observe(func(o Observer) { o.MessagesResent(1) })
	}
}

// nudge sends the party the nudge template, authored by the other party, when a message is held for
// them, their window is closed, and they were not nudged for this window yet.
func (s *Service) nudge(ctx context.Context, id, role string) error {
	if s.cfg.NudgeContentSid == "" {
		return nil
	}
	c, err := s.store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	p := c.party(role)
	w, err := s.cfg.Windows.Window(ctx, p.Address, p.ProxyAddress)
	if err != nil {
		return fmt.Errorf("%w: reading a window: %w", ErrUnavailable, err)
	}
	look := p.Nudging
	if !look {
		decided := false
		c, err = s.store.Update(ctx, id, func(c *Chat) error {
			decided = false
			p := c.party(role)
			waiting := slices.ContainsFunc(p.Held, func(h Held) bool { return !h.Early && !w.ReopenedAfter(h.Created) })
			if !c.relaying() || !waiting || p.Nudging || (!p.NudgedAt.IsZero() && p.NudgedFor.Equal(w.LastInbound)) {
				return nil
			}
			p.Nudging, p.NudgedAt, p.NudgedFor, decided = true, s.now(), w.LastInbound, true
			return nil
		})
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if !decided {
			return nil
		}
		p = c.party(role)
	}
	from := c.party(other(role))
	vars, _ := json.Marshal(map[string]string{"1": nameOr(from.Name, other(role))})
	marker := chatMarker(id, "nudge", role+"@"+strconv.FormatInt(p.NudgedFor.UnixMilli(), 10))
	_, err = s.createOnce(ctx, c.ConversationSid, "nudge", look,
		optin.Message{Author: from.Address, ContentSid: s.cfg.NudgeContentSid, ContentVariables: string(vars), Attributes: marker})
	if err != nil && !twiliocall.Permanently(err) {
		return err
	}
	if _, uerr := s.store.Update(ctx, id, func(c *Chat) error {
		c.party(role).Nudging = false
		return nil
	}); uerr != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, uerr)
	}
	if err != nil {
		// Twilio refused the template itself: trying again changes nothing.
		zerolog.Ctx(ctx).Error().Err(err).Str("chat_id", id).Str("party", role).Msg("nudge refused")
		return nil
	}
	zerolog.Ctx(ctx).Info().Str("chat_id", id).Str("party", role).Msg("party nudged")
	s.observe(func(o Observer) { o.Nudged() })
	return nil
}

// nameOr is the party's name, or what they are to the other ("your rider") when it has none.
func nameOr(name, role string) string {
	if name != "" {
		return name
	}
	return "your " + role
}

// createOnce creates m in the conversation once: with look, or after a failure whose effect is
// unknown, it first looks for m's marker among the newest messages.
func (s *Service) createOnce(ctx context.Context, conv, op string, look bool, m optin.Message) (string, error) {
	recent := func(ctx context.Context, limit int) ([]twiliocall.Posted, error) {
		return s.conv.RecentMessages(ctx, conv, limit)
	}
	return twiliocall.CreateOnce(ctx, s.cfg.Retry, nil, op, look, recent,
		func(a string) bool { return a == m.Attributes },
		func(ctx context.Context) (string, error) { return s.conv.CreateMessage(ctx, conv, m) })
}

func (s *Service) observe(f func(Observer)) {
	if s.cfg.Observer != nil {
		f(s.cfg.Observer)
	}
}
