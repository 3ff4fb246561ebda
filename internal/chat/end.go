package chat

import (
	"context"
	"errors"
	"fmt"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/twiliocall"
)

// close closes a conversation, retried; one already closed or gone counts as closed.
func (s *Service) close(ctx context.Context, conv string) error {
	return twiliocall.Close(ctx, s.cfg.Retry, nil, "chat_close", func(ctx context.Context) error {
		return s.conv.CloseConversation(ctx, conv)
	})
}

// End ends the chat: its conversation closed at Twilio, its numbers freed, the chat closed (reason
// ended). A chat already final is answered as it is. End and a running start are serialized by the
// chat's lease: End records the end in the chat, which the start honours after its current step, and
// waits for it (within the start budget; ErrBusy past it, the end still recorded and carried out by the
// start or the reconciler).
func (s *Service) End(ctx context.Context, key string) (Chat, error) {
	c, err := s.Get(ctx, key)
	if err != nil {
		return Chat{}, err
	}
	if c.State.Final() {
		return c, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartBudget)
	defer cancel()
	end := Ending{State: StateClosed, Reason: ReasonEnded}
	if c, err = s.intend(ctx, c.ID, end); err != nil || c.State.Final() {
		return c, err
	}
	owner := newOwner()
	deadline := s.now().Add(s.cfg.StartBudget)
	for {
		locked, err := s.store.Lock(ctx, c.ID, owner, s.cfg.StartBudget+leaseMargin)
		if err != nil {
			return Chat{}, fmt.Errorf("%w: locking chat %s: %w", conversation.ErrUnavailable, c.ID, err)
		}
		if locked {
			defer func() { _ = s.store.Unlock(context.WithoutCancel(ctx), c.ID, owner) }()
			return s.endLocked(ctx, c.ID, end)
		}
		// A start holds the lease: it reads the end after its current step.
		if !s.now().Before(deadline) || s.sleep(ctx, busyPoll) != nil {
			return Chat{}, fmt.Errorf("%w: the chat's start still runs; its end is recorded", ErrBusy)
		}
		if c, err = s.store.Get(ctx, c.ID); err != nil {
			return Chat{}, fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
		}
		if c.State.Final() {
			return c, nil
		}
	}
}

// endLocked concludes a chat whose lease the caller holds.
func (s *Service) endLocked(ctx context.Context, id string, end Ending) (Chat, error) {
	c, err := s.store.Get(ctx, id)
	if err != nil {
		return Chat{}, fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
	}
	c, err = s.conclude(ctx, c, end)
	if err == nil {
		return c, nil
	}
	if ce, ok := errors.AsType[*twiliocall.CallError](err); ok && ce.Kind == twiliocall.Permanent {
		return Chat{}, &TwilioError{Code: ce.Code, Status: ce.Status, Err: err}
	}
	if errors.Is(err, conversation.ErrUnavailable) {
		return Chat{}, err
	}
	return Chat{}, fmt.Errorf("%w: closing the conversation: %w", ErrBusy, err)
}
