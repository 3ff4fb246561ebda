package chat

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"
)

// edge is one transition of the machine.
type edge struct{ from, to State }

// transitions is a chat's lifecycle: every transition allowed, each with the reasons it may carry.
// Nothing leaves a final state. Start, End, the opt-in's stages, Twilio's close and the reconciler
// only ask for transitions; Service.apply is the one place they are checked and recorded.
var transitions = map[edge][]string{
	{StateStarting, StateInvited}:     {""},
	{StateStarting, StateConnected}:   {""}, // a direct chat
	{StateStarting, StateFailed}:      {ReasonFailed},
	{StateStarting, StateClosed}:      {ReasonEnded, ReasonExpired},
	{StateInvited, StateConnecting}:   {""},
	{StateInvited, StateDeclined}:     {ReasonDeclined, ReasonOptedOut},
	{StateInvited, StateFailed}:       {ReasonFailed, ReasonUnreachable},
	{StateInvited, StateClosed}:       {ReasonEnded, ReasonExpired},
	{StateConnecting, StateConnected}: {""},
	{StateConnecting, StateFailed}:    {ReasonFailed, ReasonUnreachable},
	{StateConnecting, StateClosed}:    {ReasonEnded, ReasonExpired},
	{StateConnected, StateClosed}:     {ReasonEnded, ReasonExpired},
}

// Allowed reports whether a chat in from may move to to for reason.
func Allowed(from, to State, reason string) bool {
	for _, r := range transitions[edge{from, to}] {
		if r == reason {
			return true
		}
	}
	return false
}

// Ending is the final state a chat is headed for, recorded before its conversation is closed: whoever
// then learns that the conversation is closed — the closer, Twilio's report, the reconciler — moves the
// chat to this state, so the order of those reports never decides the outcome. The first ending
// recorded wins.
type Ending struct {
	State  State
	Reason string
	Error  *Failure
}

// ending is the end a chat would take now for these reasons: its recorded one, or fallback.
func (c Chat) ending(fallback Ending) Ending {
	if c.Ending != nil {
		return *c.Ending
	}
	return fallback
}

// errRefused is a transition the machine does not allow from the chat's state.
var errRefused = errors.New("transition refused")

// apply moves the chat to state for reason, when the machine allows it from where the chat stands
// (a chat that is ending takes only a final state). It returns the chat as stored and whether it moved.
func (s *Service) apply(ctx context.Context, id string, state State, reason string) (Chat, bool, error) {
	return s.move(ctx, id, func(c Chat) (Ending, bool) {
		return Ending{State: state, Reason: reason}, Allowed(c.State, state, reason) && (c.Ending == nil || state.Final())
	})
}

// move is the one place a chat changes state. choose, given the chat as stored, names the transition
// or refuses it; the transition and the event the platform hears of are recorded in the same write
// (the outbox). After the write, a final state frees the chat's numbers and the events are handed to
// the notifier. It returns the chat as stored and whether it moved.
func (s *Service) move(ctx context.Context, id string, choose func(Chat) (Ending, bool)) (Chat, bool, error) {
	var refused *Chat
	var to Ending
	var dropped int
	c, err := s.store.Update(ctx, id, func(c *Chat) error {
		dropped = 0
		var ok bool
		if to, ok = choose(*c); !ok {
			refused = c // the chat as it stands: no second read to answer with it
			return errRefused
		}
		refused = nil
		now := s.now()
		if to.Error != nil && c.Error == nil {
			c.Error = to.Error
		}
		c.State, c.Reason, c.UpdatedAt = to.State, to.Reason, now
		c.History = append(c.History, Transition{State: to.State, At: now})
		if to.State.Final() {
			c.Ending = nil
			// No copy reaches anyone through a closed conversation.
			dropped = c.letGo()
			if len(c.Settling) > 0 {
				c.Work++ // a tend under way settles them when it is done, or the one started below
			}
			// Freed after this write; until then the upkeep knows they are to be freed.
			c.Release = true
		}
		if s.cfg.Notifier != nil && eventTypes[to.State] != "" {
			c.Pending = append(c.Pending, newEvent(*c, eventTypes[to.State], now))
		}
		return nil
	})
	if errors.Is(err, errRefused) && refused != nil {
		return *refused, false, nil
	}
	if err != nil {
		return Chat{}, false, fmt.Errorf("%w: recording %s: %w", ErrUnavailable, to.State, err)
	}
	if s.cfg.Observer != nil {
		s.cfg.Observer.ChatTransition(string(c.State), c.Reason)
		if dropped > 0 {
			s.cfg.Observer.MessagesDropped(DropClosed, dropped)
		}
	}
	log := zerolog.Ctx(ctx).Info().Str("chat_id", c.ID).Str("state", string(c.State))
	if c.Reason != "" {
		log = log.Str("reason", c.Reason)
	}
	log.Msg("chat moved")
	if c.State.Final() {
		// Declined, failed and closed chats bind nothing at Twilio any more (their conversation was
		// closed first): free the numbers. A release that fails stays recorded (Release) and the
		// upkeep frees them on its next sweep.
		if err := s.releaseRecorded(ctx, c.ID); err != nil {
			zerolog.Ctx(ctx).Error().Err(err).Str("chat_id", c.ID).Msg("freeing a chat's numbers; the sweep will")
		} else {
			c.Release = false
		}
	}
	if len(c.Settling) > 0 {
		s.later(ctx, c.ID)
	}
	s.notify(ctx, c)
	return c, true, nil
}

// conclude takes the chat to its final state: it records end as the chat's ending (unless one is
// recorded already; nothing happens when the chat may not end so), closes the conversation at Twilio
// and then moves the chat. When the close fails the ending stays recorded and the chat open: the
// reconciler concludes it later. A final chat is returned as it is.
func (s *Service) conclude(ctx context.Context, c Chat, end Ending) (Chat, error) {
	if c.State.Final() {
		return c, nil
	}
	c, err := s.intend(ctx, c.ID, end)
	if err != nil || c.State.Final() || c.Ending == nil {
		return c, err
	}
	if c.ConversationSid != "" {
		if err := s.close(ctx, c.ConversationSid); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Str("chat_id", c.ID).Msg("closing a chat's conversation; the reconciler will try again")
			return c, err
		}
	}
	return s.closed(ctx, c.ID, end)
}

// intend records end as the chat's ending unless it has one, is final, or may not end so from where
// it stands (a connected chat does not fail: the opt-in's late give-up leaves it connected).
func (s *Service) intend(ctx context.Context, id string, end Ending) (Chat, error) {
	c, err := s.store.Update(ctx, id, func(c *Chat) error {
		if c.State.Final() || c.Ending != nil || !Allowed(c.State, end.State, end.Reason) {
			return nil
		}
		c.Ending = &end
		return nil
	})
	if err != nil {
		return Chat{}, fmt.Errorf("%w: recording the end of chat %s: %w", ErrUnavailable, id, err)
	}
	return c, nil
}

// closed moves a chat whose conversation is closed (or never existed) to its recorded ending, or to
// fallback when it has none — chosen on the chat as stored, in the write itself. An ending that does
// not fit where the chat stands (a decline for a chat not yet invited) closes it instead, which every
// open state allows.
func (s *Service) closed(ctx context.Context, id string, fallback Ending) (Chat, error) {
	c, _, err := s.move(ctx, id, func(c Chat) (Ending, bool) {
		if c.State.Final() {
			return Ending{}, false
		}
		end := c.ending(fallback)
		if !Allowed(c.State, end.State, end.Reason) {
			end = Ending{State: StateClosed, Reason: ReasonEnded}
		}
		return end, true
	})
	return c, err
}

// letGo forgets the messages held, the nudges pending and the move to SMS of a chat that ends, returning how many
// held messages are dropped: one being sent is kept to settle (Settling), counted once its copy is
// looked for.
func (c *Chat) letGo() int {
	n := 0
	for _, p := range []*Party{&c.Customer, &c.Rider} {
		for _, h := range p.Held {
			switch {
			case h.Sending:
				c.Settling = append(c.Settling, h) // its copy may exist: looked for, then counted
			case !h.Early:
				n++
			}
		}
		p.Held, p.Nudging = nil, false
	}
	// A move to SMS under way stops: nothing moves a final chat (what it leased is freed with the rest).
	c.Undelivered, c.Handled, c.Fallback = nil, nil, nil
	return n
}
