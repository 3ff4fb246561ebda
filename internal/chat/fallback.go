package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/numberpool"
	"github.com/optinkit/optin/internal/pii"
	"github.com/optinkit/optin/internal/twiliocall"
)

// Twilio's errors for a WhatsApp message to a number that has no WhatsApp account.
const (
	codeNotOnWhatsApp  = 63003 // the channel could not find the To address
	codeNotWhatsAppNum = 63024 // invalid message recipient
)

// ReasonUnreachable: the customer is not on WhatsApp and no SMS number could take them.
const ReasonUnreachable = "unreachable"

// EventChannelChanged is the event of a customer moved to another channel.
const EventChannelChanged = "chat.channel_changed"

// DefaultSMSInvite is the invitation a customer moved to SMS is sent: template 1 in plain text, with
// {{1}} the customer's name and {{2}} the rider's.
const DefaultSMSInvite = "Hello {{1}}, your delivery is almost there but {{2}} (your rider) needs help finding your door. Are you willing to chat with them? Reply YES or NO."

// Fallback is a customer's move from WhatsApp to SMS, recorded before it is made: each step is
// recorded once done, so that a run after a crash resumes it.
type Fallback struct {
	// Code is Twilio's error that showed the customer is not on WhatsApp (63003, 63024).
	Code int
	// From is the customer's WhatsApp address; Number the SMS number leased, once it is.
	From, Number string
	// Removed and Added say the WhatsApp participant is gone and the SMS one is in.
	Removed, Added bool
}

// unreachable records, for a message of the rider's that did not reach the customer because their
// number is not on WhatsApp, the customer's move to SMS (or, without SMS numbers, the chat's failure),
// which fallBack then carries out.
func (s *Service) unreachable(ctx context.Context, id string, m Message, code int) error {
	recorded := false
	_, err := s.store.Update(ctx, id, func(c *Chat) error {
		recorded = decideUnreachable(c, m, code)
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: recording the customer unreachable: %w", conversation.ErrUnavailable, err)
	}
	if recorded {
		zerolog.Ctx(ctx).Warn().Str("chat_id", id).Int("twilio_code", code).Msg("the customer's number is not on WhatsApp")
	}
	return nil
}

// fallBack carries out the chat's recorded fallback, under the chat's lease (a start or an end holding
// it goes first; the sweep comes back), one step at a time as decideMove names it, each recorded once
// done: the customer gets an SMS number, loses the WhatsApp participant, gains an SMS one, and — while
// invited — the invitation again as text. Without SMS numbers, an invited chat fails as unreachable.
func (s *Service) fallBack(ctx context.Context, id string) error {
	owner := newOwner()
	locked, err := s.store.Lock(ctx, id, owner, s.cfg.StartBudget+leaseMargin)
	if err != nil || !locked {
		return err
	}
	defer func() { _ = s.store.Unlock(context.WithoutCancel(ctx), id, owner) }()
	for range 8 { // a move has five steps at most
		c, err := s.store.Get(ctx, id)
		if err != nil {
			return fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
		}
		if done, err := s.moveStep(ctx, c, decideMove(c, s.cfg.SMS != nil)); done || err != nil {
			return err
		}
	}
	return nil
}

// moveStep carries out one step of c's move; done says the move stopped (finished, given up, or left
// for a later run).
func (s *Service) moveStep(ctx context.Context, c Chat, step MoveStep) (done bool, err error) {
	id := c.ID
	f := Fallback{}
	if c.Fallback != nil {
		f = *c.Fallback
	}
	bare := strings.TrimPrefix(f.From, "whatsapp:")
	switch step {
	case moveLease:
		// An SMS lease the chat holds for the customer with none recorded is an earlier run's whose
		// record was lost (a failover): freed first, or it would count as another chat's.
		if err := s.cfg.SMS.ReleaseAddress(ctx, id, bare); err != nil {
			return true, fmt.Errorf("%w: freeing an SMS number leased unrecorded: %w", conversation.ErrUnavailable, err)
		}
		numbers, err := s.cfg.SMS.Lease(ctx, id, []string{bare})
		if ex, ok := errors.AsType[*numberpool.ExhaustedError](err); ok {
			return true, s.cannotFallBack(ctx, c, "the customer's number is not on WhatsApp and no SMS number is free: "+ex.Error())
		}
		if err != nil {
			return true, fmt.Errorf("%w: leasing an SMS number: %w", conversation.ErrUnavailable, err)
		}
		f.Number = numbers[0]
		// A chat that ended meanwhile (the customer's answer ends one without its lease) records its
		// numbers to be freed instead: the next step forgets the move.
		return false, s.recordFallback(ctx, id, f)
	case moveRemove:
		if _, err := twiliocall.Retry(ctx, s.cfg.Retry, nil, "remove_participant", func(ctx context.Context) (struct{}, error) {
			return struct{}{}, s.conv.RemoveParticipant(ctx, c.ConversationSid, f.From)
		}); err != nil {
			return true, s.stepFailed(ctx, c, "removing the customer's WhatsApp participant", err)
		}
		f.Removed = true
		return false, s.recordFallback(ctx, id, f)
	case moveAdd:
		// The WhatsApp pair is bound no more: another chat with this number may take it. Freed by
		// every run until the SMS participant is in: a run cut off after recording the removal (or
		// whose record was heard failed but landed) leaves it to the next.
		if err := s.cfg.WhatsApp.ReleaseAddress(ctx, id, f.From); err != nil {
			return true, fmt.Errorf("%w: freeing the customer's WhatsApp number: %w", conversation.ErrUnavailable, err)
		}
		if _, err := twiliocall.Retry(ctx, s.cfg.Retry, nil, "add_participant", func(ctx context.Context) (struct{}, error) {
			err := s.conv.AddParticipant(ctx, c.ConversationSid, bare, f.Number)
			if code := twiliocall.Code(err); code == codeAlreadyPresent || code == codeSameBinding {
				err = nil
			}
			return struct{}{}, err
		}); err != nil {
			return true, s.stepFailed(ctx, c, "adding the customer on SMS", err)
		}
		f.Added = true
		_, err := s.moved(ctx, id, f, bare)
		return err != nil, err
	case moveInvite:
		// Found by its marker if an earlier run sent it: the customer gets it once.
		m := conversation.Message{Author: c.Rider.Address, Body: s.smsInvite(c), Attributes: chatMarker(id, "step", "sms_invite")}
		if _, err := s.createOnce(ctx, c.ConversationSid, "sms_invite", true, m); err != nil {
			return true, s.stepFailed(ctx, c, "sending the invitation by SMS", err)
		}
		return true, s.fallbackDone(ctx, id)
	case moveDone:
		return true, s.fallbackDone(ctx, id)
	case moveForget:
		// The chat ended: fallbackDone records the release (the move may have leased after the end
		// freed the rest); freeNumbers carries it out, now or on a later run.
		if err := s.fallbackDone(ctx, id); err != nil {
			return true, err
		}
		return true, s.freeNumbers(ctx, id)
	case moveGiveBack:
		// What the move leased — recorded, or leased and its record lost (a failover) — goes back.
		if s.cfg.SMS != nil {
			if err := s.cfg.SMS.ReleaseAddress(ctx, id, bare); err != nil {
				return true, fmt.Errorf("%w: freeing the SMS number of a move not made: %w", conversation.ErrUnavailable, err)
			}
		}
		return true, s.fallbackDone(ctx, id)
	case moveFail:
		return true, s.cannotFallBack(ctx, c, "the customer's number is not on WhatsApp and no SMS number is configured")
	}
	return true, nil // moveWait
}

// moved records the customer on SMS: the chat's address and number, a history entry, and the event
// — unless the chat ended meanwhile, which it is returned as.
func (s *Service) moved(ctx context.Context, id string, f Fallback, address string) (Chat, error) {
	var final *Chat
	c, err := s.store.Update(ctx, id, func(c *Chat) error {
		final = nil
		if c.State.Final() {
			final = c
			return errUnchanged
		}
		c.Fallback = &f
		if c.Customer.Address == address {
			return nil
		}
		now := s.now()
		c.Customer.Address, c.Customer.ProxyAddress, c.UpdatedAt = address, f.Number, now
		c.History = append(c.History, Transition{State: c.State, At: now, Channel: ChannelSMS})
		if s.cfg.Notifier != nil {
			c.Pending = append(c.Pending, newEvent(*c, EventChannelChanged, now))
		}
		return nil
	})
	if errors.Is(err, errUnchanged) && final != nil {
		return *final, nil
	}
	if err != nil {
		return Chat{}, fmt.Errorf("%w: recording the customer on SMS: %w", conversation.ErrUnavailable, err)
	}
	zerolog.Ctx(ctx).Info().Str("chat_id", id).Str("proxy_address", f.Number).Msg("customer moved to SMS")
	s.observe(func(o Observer) { o.ChannelFallback() })
	s.notify(ctx, c)
	return c, nil
}

// cannotFallBack fails an invited (or connecting) chat whose customer no channel reaches; a connected
// one stays as it is (the customer wrote to it on WhatsApp, so this is a passing failure).
func (s *Service) cannotFallBack(ctx context.Context, c Chat, detail string) error {
	zerolog.Ctx(ctx).Error().Str("chat_id", c.ID).Msg("customer unreachable: " + detail)
	end := Ending{State: StateFailed, Reason: ReasonUnreachable, Error: &Failure{TwilioCode: c.Fallback.Code, Detail: detail}}
	if c.Fallback.Removed && !Allowed(c.State, end.State, end.Reason) {
		// The customer answered meanwhile but is out of the conversation already, and SMS cannot take
		// them: the chat cannot work any more, so it ends (closed, unreachable) and frees its numbers.
		end = Ending{State: StateClosed, Reason: ReasonUnreachable, Error: end.Error}
	}
	if Allowed(c.State, end.State, end.Reason) {
		if _, err := s.conclude(ctx, c, end); err != nil {
			return err
		}
	}
	return s.fallbackDone(ctx, c.ID)
}

// stepFailed ends a move whose Twilio step was refused for good — trying again changes nothing — as
// an unreachable customer; a transient failure is left for the next run.
func (s *Service) stepFailed(ctx context.Context, c Chat, step string, err error) error {
	if !twiliocall.Permanently(err) {
		return err
	}
	return s.cannotFallBack(ctx, c, step+": "+pii.Redact(err.Error()))
}

// recordFallback records how far the move got — on an open chat: a chat that ended meanwhile records
// instead that its numbers are to be freed (the move may have leased one after the end freed the rest).
func (s *Service) recordFallback(ctx context.Context, id string, f Fallback) error {
	if _, err := s.store.Update(ctx, id, func(c *Chat) error {
		if c.State.Final() {
			c.Fallback, c.Release = nil, true
			return nil
		}
		c.Fallback = &f
		return nil
	}); err != nil {
		return fmt.Errorf("%w: recording the fallback: %w", conversation.ErrUnavailable, err)
	}
	return nil
}

// fallbackDone forgets the move; on a chat that ended, it records that its numbers are to be freed.
func (s *Service) fallbackDone(ctx context.Context, id string) error {
	if _, err := s.store.Update(ctx, id, func(c *Chat) error {
		if c.State.Final() {
			c.Release = true // what the move leased after the chat's own release went is freed too
		}
		c.Fallback = nil
		return nil
	}); err != nil {
		return fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
	}
	return nil
}

// smsInvite is the invitation as text, with the parties' names or, without one, what the default
// template's variables say instead (nameOrThe).
func (s *Service) smsInvite(c Chat) string {
	body := s.cfg.SMSInvite
	if body == "" {
		body = DefaultSMSInvite
	}
	return strings.NewReplacer("{{1}}", nameOrThe(c.Customer.Name, noCustomerName), "{{2}}", nameOrThe(c.Rider.Name, noRiderName)).Replace(body)
}

// newEvent is the event of type typ about c as it stands at at.
func newEvent(c Chat, typ string, at time.Time) Event {
	data, _ := json.Marshal(c.View())
	return Event{ID: "msg_" + newOwner() + newOwner(), Type: typ, At: at, Data: data}
}
