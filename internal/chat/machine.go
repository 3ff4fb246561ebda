package chat

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/conversation"
)

// edge is one transition of the machine.
type edge struct{ from, to State }

// transitions is a chat's lifecycle: every transition allowed, each with the reasons it may carry.
// Nothing leaves a final state. Start, End, the opt-in's stages, Twilio's close and the reconciler
// only ask for transitions; the core (core.go: decide) is the one place they are checked and recorded.
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
	{StateConnecting, StateClosed}:    {ReasonEnded, ReasonExpired, ReasonUnreachable},
	{StateConnected, StateClosed}:     {ReasonEnded, ReasonExpired, ReasonUnreachable}, // a move to SMS that could not finish
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

// decideOn asks the core what in does to the chat as stored, writes the change in one store update
// (the decision is taken again on the latest version should the write race another), and then
// carries out the effects the core named. It returns the chat as stored and the decision.
func (s *Service) decideOn(ctx context.Context, id string, in Input) (Chat, Decision, error) {
	var d Decision
	var unchanged *Chat
	c, err := s.store.Update(ctx, id, func(c *Chat) error {
		if d = decide(c, in, s.now(), s.cfg.Notifier != nil); !d.Changed {
			unchanged = c // the chat as it stands: no second read to answer with it
			return errUnchanged
		}
		unchanged = nil
		return nil
	})
	if errors.Is(err, errUnchanged) && unchanged != nil {
		return *unchanged, d, nil
	}
	if err != nil {
		return Chat{}, Decision{}, fmt.Errorf("%w: recording what happened to chat %s: %w", conversation.ErrUnavailable, id, err)
	}
	s.carryOut(ctx, c, d)
	return c, d, nil
}

// errUnchanged aborts a store update the core made no change for.
var errUnchanged = errors.New("nothing to change")

// carryOut performs a written decision's effects, but the close (the caller's: it holds what the close
// needs — a lease, a budget): the counters, the release of a final chat's numbers, the settling of
// copies in flight, the events. What fails here stays recorded and the upkeep does it again.
func (s *Service) carryOut(ctx context.Context, c Chat, d Decision) {
	if !d.Moved {
		return
	}
	if s.cfg.Observer != nil {
		s.cfg.Observer.ChatTransition(string(c.State), c.Reason)
		if d.Dropped > 0 {
			s.cfg.Observer.MessagesDropped(DropClosed, d.Dropped)
		}
	}
	log := zerolog.Ctx(ctx).Info().Str("chat_id", c.ID).Str("state", string(c.State))
	if c.Reason != "" {
		log = log.Str("reason", c.Reason)
	}
	log.Msg("chat moved")
	if d.Has(EffectRelease) {
		// Declined, failed and closed chats bind nothing at Twilio any more (their conversation was
		// closed first): free the numbers.
		if err := s.releaseRecorded(ctx, c.ID); err != nil {
			zerolog.Ctx(ctx).Error().Err(err).Str("chat_id", c.ID).Msg("freeing a chat's numbers; the sweep will")
		}
	}
	if d.Has(EffectSettle) {
		s.later(ctx, c.ID)
	}
	if d.Has(EffectNotify) {
		s.notify(ctx, c)
	}
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
	c, _, err := s.decideOn(ctx, id, Input{Kind: InEndAsked, To: end})
	return c, err
}

// closed moves a chat whose conversation is closed (or never existed) to its recorded ending, or to
// fallback when it has none — chosen by the core on the chat as stored, in the write itself.
func (s *Service) closed(ctx context.Context, id string, fallback Ending) (Chat, error) {
	c, _, err := s.decideOn(ctx, id, Input{Kind: InClosed, To: fallback})
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
	c.Notices = nil // nothing reaches anyone through a closed conversation
	return n
}
