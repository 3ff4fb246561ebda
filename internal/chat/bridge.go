package chat

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/pii"
	"github.com/optinkit/optin/internal/twiliocall"
)

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
var stageStates = map[conversation.Stage]struct {
	state  State
	reason string
}{
	conversation.StageConnecting: {StateConnecting, ""},
	conversation.StageConnected:  {StateConnected, ""},
	conversation.StageDeclined:   {StateDeclined, ReasonDeclined},
	conversation.StageOptedOut:   {StateDeclined, ReasonOptedOut},
	conversation.StageFailed:     {StateFailed, ReasonFailed},
}

// errNotInvited asks the opt-in to try again: its chat's start has not recorded the invitation yet.
var errNotInvited = errors.New("the chat's start has not finished")

// Advance moves the conversation's chat to the state of stage; a conversation without a chat has
// nothing to move. Connecting records answer, the customer's message that said yes. The final stages conclude the chat: its conversation is closed first (after the
// opt-in's last message), then the chat moves — or, when the close fails, the chat keeps its ending
// and the reconciler closes it.
func (s *Service) Advance(ctx context.Context, conversationSid string, stage conversation.Stage, answer string, cause error) error {
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
	ctx = zerolog.Ctx(ctx).With().Str("chat_id", c.ID).Logger().WithContext(ctx)
	if !to.state.Final() {
		c, d, err := s.decideOn(ctx, c.ID, Input{Kind: InAdvanced, To: Ending{State: to.state, Reason: to.reason}})
		if err == nil && !d.Moved && c.State == StateStarting && c.Ending == nil {
			return errNotInvited
		}
		if err == nil && stage == conversation.StageConnecting && c.relaying() {
			err = s.answered(ctx, c.ID, answer)
		}
		return err
	}
	if c.State == StateStarting && c.Ending == nil {
		return errNotInvited
	}
	end := Ending{State: to.state, Reason: to.reason}
	if to.state == StateFailed && cause != nil {
		end.Error = &Failure{TwilioCode: twiliocall.Code(cause), Detail: pii.Redact(cause.Error())}
	}
	if _, err := s.conclude(ctx, c, end); err != nil && errors.Is(err, conversation.ErrUnavailable) {
		return err
	}
	return nil
}

// Reasons a state event is ignored.
const (
	ReasonNotClosed = "state_not_closed"
	ReasonNoChat    = "no_chat"
)

// StateUpdated records that Twilio closed a chat's conversation: the chat takes the ending recorded
// before the close (declined, failed, ended) or, with none, is closed — expired when its timer ran out.
func (s *Service) StateUpdated(ctx context.Context, ev conversation.Event) (conversation.Decision, error) {
	if ev.StateTo != "closed" {
		return conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonNotClosed}, nil
	}
	c, err := s.store.ByConversation(ctx, ev.ConversationSid)
	switch {
	case errors.Is(err, ErrNotFound):
		return conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonNoChat}, nil
	case err != nil:
		return conversation.Decision{}, fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
	}
	reason := ReasonEnded
	if ev.StateReason == "TIMER" {
		reason = ReasonExpired
	}
	if _, err := s.closed(ctx, c.ID, Ending{State: StateClosed, Reason: reason}); err != nil {
		return conversation.Decision{}, fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
	}
	return conversation.Decision{Outcome: conversation.OutcomeAccepted}, nil
}
