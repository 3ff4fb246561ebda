package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/codes"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/pii"
	"github.com/optinkit/optin/internal/twiliocall"
)

// Start starts the chat r asks for, or answers for the chat its id already names: created is true when
// this call made (or completed) the chat. The same id with another request is ErrConflict; a start that
// does not finish within the budget is ErrBusy and is resumed by the same call repeated; a permanent
// Twilio refusal is a *TwilioError; a chat ended before it was ever invited is ErrEnded.
//
// A start holds the chat's lease while it runs. End records its intent in the chat, which the start
// reads after each step: it then closes what it made and answers ErrEnded.
func (s *Service) Start(ctx context.Context, r StartRequest) (c Chat, created bool, err error) {
	c, err = r.validate(s.cfg, s.now())
	if err != nil {
		return Chat{}, false, err
	}
	existing, fresh, err := s.store.Create(ctx, c)
	if err != nil {
		return Chat{}, false, fmt.Errorf("%w: creating chat %s: %w", conversation.ErrUnavailable, c.ID, err)
	}
	if !fresh {
		if existing.Fingerprint != c.Fingerprint {
			return existing, false, ErrConflict
		}
		if existing.State != StateStarting {
			return startAnswer(existing)
		}
		c = existing
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartBudget)
	defer cancel()
	owner := newOwner()
	locked, err := s.store.Lock(ctx, c.ID, owner, s.cfg.StartBudget+leaseMargin)
	if err != nil {
		return Chat{}, false, fmt.Errorf("%w: locking chat %s: %w", conversation.ErrUnavailable, c.ID, err)
	}
	if !locked {
		return s.awaitStart(ctx, c.ID)
	}
	id := c.ID
	defer func() { _ = s.store.Unlock(context.WithoutCancel(ctx), id, owner) }()
	// The lease may have been taken after another call finished the start, or an end: read again.
	if c, err = s.store.Get(ctx, c.ID); err != nil {
		return Chat{}, false, fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
	}
	ctx = zerolog.Ctx(ctx).With().Str("chat_id", c.ID).Logger().WithContext(ctx)
	if c.State != StateStarting {
		return startAnswer(c)
	}
	if c.Ending != nil {
		_, err := s.abandon(ctx, c)
		return Chat{}, false, err
	}
	c, err = s.runStart(ctx, c, !fresh)
	return c, err == nil, err
}

// startAnswer is a start's answer for a chat past its start: the chat, unless it was ended before it
// was ever invited (or connected) — the caller never had it, so that is ErrEnded.
func startAnswer(c Chat) (Chat, bool, error) {
	if c.State == StateClosed && !slices.ContainsFunc(c.History, func(t Transition) bool {
		return t.State == StateInvited || t.State == StateConnected
	}) {
		return Chat{}, false, ErrEnded
	}
	if f := c.Error; c.State == StateFailed && f != nil && f.Step != "" {
		// Refused during its start: a repeat gets the answer the first call got.
		if f.TwilioCode == codePairInUse && (f.Step == stepCustomer || f.Step == stepRider) {
			return c, false, &NoNumberError{Party: f.Step, TwilioCode: f.TwilioCode, Err: errors.New(strings.TrimPrefix(f.Detail, f.Step+": "))}
		}
		return c, false, &TwilioError{Code: f.TwilioCode, Err: errors.New(f.Detail)}
	}
	return c, false, nil
}

// awaitStart waits for a start that another call runs, until it leaves starting or the budget ends.
func (s *Service) awaitStart(ctx context.Context, id string) (Chat, bool, error) {
	deadline := s.now().Add(s.cfg.StartBudget)
	for {
		c, err := s.store.Get(ctx, id)
		if err == nil && c.State != StateStarting {
			return startAnswer(c)
		}
		if errors.Is(err, ErrNotFound) {
			return Chat{}, false, err // the start was refused and forgot the chat
		}
		if !s.now().Before(deadline) || s.sleep(ctx, busyPoll) != nil {
			return Chat{}, false, ErrBusy
		}
	}
}

// abandon honours an end asked for during the start, which holds the lease: what was made is closed,
// the chat concluded, and the start answers ErrEnded (or, when the close failed, ErrBusy: the
// reconciler finishes the end).
func (s *Service) abandon(ctx context.Context, c Chat) (Chat, error) {
	zerolog.Ctx(ctx).Info().Msg("chat ended during its start; closing what the start made")
	// The end matters more than the caller's deadline.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StartBudget)
	defer cancel()
	c, err := s.conclude(ctx, c, c.ending(Ending{State: StateClosed, Reason: ReasonEnded}))
	if err != nil {
		return Chat{}, fmt.Errorf("%w: ending the chat: %w", ErrBusy, err)
	}
	return c, ErrEnded
}

// overtaken ends a start that ran past its lease (a paused process) while the chat was ended without
// it: what this start made after the end — a conversation the end did not see yet, the numbers it
// leased after the end freed them — is closed and freed, and the caller does not get the chat.
func (s *Service) overtaken(ctx context.Context, c Chat) (Chat, error) {
	zerolog.Ctx(ctx).Warn().Msg("chat ended while its start ran past its lease; closing what the start made")
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StartBudget)
	defer cancel()
	if c.ConversationSid != "" {
		if err := s.close(ctx, c.ConversationSid); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("closing the conversation of an overtaken start")
		}
	}
	if err := s.release(ctx, c.ID); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("freeing the numbers of an overtaken start")
	}
	return Chat{}, ErrEnded
}

// startStep is one Twilio step of a start: what it left behind, recorded once done. look says an
// earlier attempt may have taken effect: a create looks for it first.
type startStep struct {
	name string
	run  func(ctx context.Context, look bool) (string, error)
}

// startSteps lists a start's Twilio steps in order; each reads *c as it stands when it runs (the
// conversation's SID, a replaced number).
func (s *Service) startSteps(c *Chat) []startStep {
	return []startStep{
		{stepConversation, func(ctx context.Context, _ bool) (string, error) { return s.createConversation(ctx, *c) }},
		{stepMessageWebhook, func(ctx context.Context, look bool) (string, error) {
			return s.armWebhook(ctx, c.ConversationSid, messageFilters, look)
		}},
		{stepLifecycleWebhook, func(ctx context.Context, look bool) (string, error) {
			return s.armWebhook(ctx, c.ConversationSid, lifecycleFilters, look)
		}},
		{stepCustomer, func(ctx context.Context, _ bool) (string, error) {
			return "added", s.addParticipant(ctx, c, "customer")
		}},
		{stepRider, func(ctx context.Context, _ bool) (string, error) { return "added", s.addParticipant(ctx, c, "rider") }},
		{stepInvite, func(ctx context.Context, look bool) (string, error) { return s.invite(ctx, *c, look) }},
	}
}

// chatMarker is the Attributes of what the service creates for a chat — a start step's result, a held
// message's copy, a nudge — naming it by key and value, so that a repeat can find it.
func chatMarker(chatID, key, value string) string {
	return twiliocall.Marker(map[string]string{"chat": chatID, key: value})
}

// createConversation creates the chat's conversation, paced by the limiter, under the chat's id as
// its unique name; one an earlier attempt created (50353) is found by that name.
func (s *Service) createConversation(ctx context.Context, c Chat) (string, error) {
	if s.cfg.Limiter != nil {
		if err := s.cfg.Limiter.Wait(ctx); err != nil {
			return "", err
		}
	}
	sid, err := s.conv.CreateConversation(ctx, NewConversation{
		UniqueName: c.ID, FriendlyName: conversationNamePrefix + c.ID, Attributes: chatMarker(c.ID, "step", stepConversation), ClosedAfter: c.TTL})
	if twiliocall.Code(err) != codeUniqueNameTaken {
		return sid, err
	}
	// An earlier attempt created it — or an earlier chat of this id did, and closed it since.
	sid, closed, err := s.conv.FindConversation(ctx, c.ID)
	if err == nil && closed {
		return "", &twiliocall.CallError{Op: "find conversation", Kind: twiliocall.Permanent, Code: codeUniqueNameTaken,
			Err: errors.New("a closed conversation already has this id as its unique name")}
	}
	return sid, err
}

// invite sends the customer the invitation, authored by the rider so that only the customer gets it;
// with look set it first looks for the one an earlier attempt sent.
func (s *Service) invite(ctx context.Context, c Chat, look bool) (string, error) {
	m := conversation.Message{Author: c.Rider.Address, Attributes: chatMarker(c.ID, "step", stepInvite)}
	if c.Invite.ContentSid != "" && c.Customer.Channel() == ChannelSMS {
		// A WhatsApp template means nothing on SMS: an SMS customer gets the invitation as text.
		m.Body = s.smsInvite(c)
	} else if c.Invite.ContentSid != "" {
		m.ContentSid = c.Invite.ContentSid
		if len(c.Invite.ContentVariables) > 0 { // none: no ContentVariables, not the text "null"
			vars, _ := json.Marshal(c.Invite.ContentVariables)
			m.ContentVariables = string(vars)
		}
	} else {
		m.Body = c.Invite.Body
	}
	if look {
		sid, err := twiliocall.FindMarked(ctx, s.recentOf(c.ConversationSid), func(a string) bool { return a == m.Attributes })
		if err != nil || sid != "" {
			return sid, err
		}
	}
	return s.conv.CreateMessage(ctx, c.ConversationSid, m)
}

// runStart performs the start's steps that c has not done yet, each recorded once done. resumed says
// an earlier call may have been cut off mid-step: creates then look for their effect first.
func (s *Service) runStart(ctx context.Context, c Chat, resumed bool) (Chat, error) {
	if _, done := c.Steps[stepNumbers]; !done {
		var err error
		if c, err = s.leaseNumbers(ctx, c); err != nil {
			return Chat{}, err
		}
		if c.State.Final() {
			return s.overtaken(ctx, c)
		}
		if c.Ending != nil {
			return s.abandon(ctx, c)
		}
	}
	for _, party := range []string{roleCustomer, roleRider} {
		if c.party(party).ProxyAddress != "" {
			continue
		}
		// An earlier run found the party's pair bound elsewhere and no other number free (it holds
		// none now): one may be free since; without, the start is refused as it was.
		var err error
		if c, err = s.leaseFor(ctx, c, party); err != nil {
			if nn, ok := errors.AsType[*NoNumberError](err); ok {
				return s.refused(ctx, c, party, codePairInUse, nn)
			}
			return Chat{}, err
		}
	}
	steps := s.startSteps(&c)
	for _, st := range steps {
		if _, done := c.Steps[st.name]; done {
			continue
		}
		if c.Mode == ModeDirect && st.name == stepInvite {
			continue // no invitation, so no answer to wait for
		}
		look := resumed
		sctx, end := s.span(ctx, "chat.step "+st.name)
		ref, err := twiliocall.Retry(sctx, s.cfg.Retry, nil, "chat_"+st.name, func(ctx context.Context) (string, error) {
			ref, err := st.run(ctx, look)
			if err != nil && twiliocall.KindOf(err) != twiliocall.Retryable {
				look = true // the call may have taken effect: look before creating again
			}
			return ref, err
		})
		end(err)
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
			return Chat{}, fmt.Errorf("%w: recording step %s: %w", conversation.ErrUnavailable, name, err)
		}
		if c.State.Final() {
			return s.overtaken(ctx, c)
		}
		if c.Ending != nil {
			return s.abandon(ctx, c)
		}
	}
	c, d, err := s.decideOn(ctx, c.ID, Input{Kind: InStarted})
	if err != nil {
		return Chat{}, err
	}
	switch moved := d.Moved; {
	case !moved && c.Ending != nil:
		return s.abandon(ctx, c)
	case !moved && c.State.Final():
		// Ended by someone else while this start ran past its lease (a paused process): the caller
		// does not get the chat.
		return s.overtaken(ctx, c)
	}
	zerolog.Ctx(ctx).Info().Str("conversation_sid", c.ConversationSid).Str("state", string(c.State)).Msg("chat started")
	if c.Fallback != nil {
		s.later(ctx, c.ID) // the invitation failed before the start was recorded: move the customer now
	}
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
	ce, isCall := errors.AsType[*twiliocall.CallError](err)
	if !isCall || ce.Kind != twiliocall.Permanent {
		log.Warn().Err(err).Str("step", step).Msg("chat start incomplete; the call may be repeated")
		return Chat{}, fmt.Errorf("%w: step %s: %w", ErrBusy, step, err)
	}
	return s.refused(ctx, c, step, ce.Code, &TwilioError{Code: ce.Code, Status: ce.Status, Err: fmt.Errorf("step %s: %w", step, err)})
}

// errEndedMeanwhile stops a refused start's write when the chat ended while it ran.
var errEndedMeanwhile = errors.New("chat ended during its start")

// refused ends a start that cannot go on: the chat fails — its conversation closed, its numbers
// freed — or, when nothing exists at Twilio yet, is forgotten so that its id may be used again.
func (s *Service) refused(ctx context.Context, c Chat, step string, code int, terr error) (Chat, error) {
	log := zerolog.Ctx(ctx)
	log.Error().Str("error", pii.Redact(terr.Error())).Str("step", step).Int("twilio_code", code).Msg("chat start refused")
	// Recording the outcome matters more than the caller's deadline.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StartBudget)
	defer cancel()
	if c.ConversationSid == "" {
		// Its numbers are recorded as given back before they are: a release that fails half way (one
		// pool freed, the other not) leaves an open chat holding leases unrecorded, which its next run
		// frees, never one recording numbers it no longer holds. Forgotten only once it holds nothing: a
		// repeated start tries again. A chat ended meanwhile (this start ran past its lease) is the
		// end's: kept, and its start overtaken.
		_, uerr := s.store.Update(ctx, c.ID, func(c *Chat) error {
			if c.State.Final() {
				return errEndedMeanwhile
			}
			delete(c.Steps, stepNumbers)
			c.Customer.ProxyAddress, c.Rider.ProxyAddress = "", ""
			return nil
		})
		if errors.Is(uerr, errEndedMeanwhile) {
			ended, gerr := s.store.Get(ctx, c.ID)
			if gerr != nil {
				return Chat{}, fmt.Errorf("%w: %w", conversation.ErrUnavailable, gerr)
			}
			return s.overtaken(ctx, ended)
		}
		if uerr != nil && !errors.Is(uerr, ErrNotFound) {
			return Chat{}, fmt.Errorf("%w: recording the numbers of a refused start given back: %w", conversation.ErrUnavailable, uerr)
		}
		if rerr := s.release(ctx, c.ID); rerr != nil {
			return Chat{}, fmt.Errorf("%w: freeing the numbers of a refused start: %w", conversation.ErrUnavailable, rerr)
		}
		if derr := s.store.Delete(ctx, c.ID); derr != nil {
			return Chat{}, fmt.Errorf("%w: forgetting chat %s: %w", conversation.ErrUnavailable, c.ID, derr)
		}
		return Chat{}, terr
	}
	failed, err := s.conclude(ctx, c, Ending{State: StateFailed, Reason: ReasonFailed,
		Error: &Failure{TwilioCode: code, Detail: pii.Redact(terr.Error()), Step: step}})
	if err != nil {
		log.Error().Err(err).Msg("closing the conversation of a failed start; the reconciler will")
	}
	if failed.State == StateClosed {
		return Chat{}, ErrEnded // an end asked for during the start came first
	}
	return failed, terr
}

// The events a chat's two webhooks ask for: every message (the customer's answer, then what the
// parties write: windows, held messages), and the conversation's close and each message's delivery
// (failures for a closed window).
var (
	messageFilters   = []string{EventMessageAdded}
	lifecycleFilters = []string{EventStateUpdated, EventDeliveryUpdated}
)

// armWebhook makes sure the conversation has a scoped webhook at the service for filters; with look
// set it first looks for one an earlier attempt made.
func (s *Service) armWebhook(ctx context.Context, conv string, filters []string, look bool) (string, error) {
	if look {
		hooks, err := s.conv.ScopedWebhooks(ctx, conv)
		if err != nil {
			return "", err
		}
		for _, h := range hooks {
			if h.URL == s.cfg.WebhookURL && slices.Equal(h.Filters, filters) {
				return h.Sid, nil
			}
		}
	}
	return s.conv.CreateWebhook(ctx, conv, conversation.Webhook{URL: s.cfg.WebhookURL, Method: webhookMethod, Filters: filters})
}

// span starts a span named name under ctx's, when tracing is on; end records a failure and ends it.
func (s *Service) span(ctx context.Context, name string) (context.Context, func(error)) {
	if s.cfg.Tracer == nil {
		return ctx, func(error) {}
	}
	ctx, span := s.cfg.Tracer.Start(ctx, name)
	return ctx, func(err error) {
		if err != nil {
			span.SetStatus(codes.Error, "")
		}
		span.End()
	}
}
