package optin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/pii"
	"github.com/optinkit/optin/internal/twiliocall"
)

// Step names, as they appear in logs and in the Attributes marker of each message the flow creates.
const (
	StepWait     = "wait"
	StepRider    = "rider"
	StepWebhooks = "webhooks"
	StepDecline  = "decline"
	StepClose    = "close"
)

// DefaultDeclineMessage is what a customer who said no sees.
const DefaultDeclineMessage = "No problem — we won't connect you. Your delivery is on its way."

// Template is a message's content: a Body, or a Content template that works outside WhatsApp's 24-hour window.
type Template struct {
	Body             string
	ContentSid       string
	ContentVariables string
}

// Config is what the flow sends and how hard it tries.
type Config struct {
	// WaitMessage is the system message the customer sees once they agree.
	WaitMessage string
	// RiderOptIn is authored by the customer and delivered to the rider.
	RiderOptIn Template
	Retry      twiliocall.RetryPolicy
	// Observer, when set, is told of steps, flows and retries.
	Observer Observer
	// Chats, when set, names the parties of chats started through the API and is told how they advance.
	Chats Chats
	// Consent reads a chat customer's reply; nil means the default keywords.
	Consent *Consent
	// DeclineMessage is the system message a chat customer who declined sees; empty means the default.
	DeclineMessage string
	// SMSRiderMessage is the rider's opt-in when a chat's rider is on SMS, where no window applies and
	// no template is needed; empty means RiderOptIn.Body.
	SMSRiderMessage string
}

// Service runs opt-ins. Handle decides and hands the work to the Queue; Work, called by the queue's
// workers, performs it and may run again after a crash or a transient failure.
type Service struct {
	conv  Conversations
	store Store
	queue Queue
	cfg   Config
	now   func() time.Time
}

// NewService checks its dependencies and returns a Service.
func NewService(conv Conversations, store Store, queue Queue, cfg Config) (*Service, error) {
	switch {
	case conv == nil:
		return nil, errors.New("optin: nil Conversations")
	case store == nil:
		return nil, errors.New("optin: nil Store")
	case queue == nil:
		return nil, errors.New("optin: nil Queue")
	case cfg.WaitMessage == "":
		return nil, errors.New("optin: empty wait message")
	case cfg.RiderOptIn.Body == "" && cfg.RiderOptIn.ContentSid == "":
		return nil, errors.New("optin: rider opt-in needs a body or a content sid")
	}
	cfg.Retry = cfg.Retry.WithDefaults()
	if cfg.Observer == nil {
		cfg.Observer = noObserver{}
	}
	if cfg.Consent == nil {
		cfg.Consent = NewConsent(nil, nil)
	}
	if cfg.DeclineMessage == "" {
		cfg.DeclineMessage = DefaultDeclineMessage
	}
	return &Service{conv: conv, store: store, queue: queue, cfg: cfg, now: time.Now}, nil
}

// Handle decides what ev means and, when it is the customer's first reply, starts the opt-in.
// A nil error means the decision is durable: accepted work will be done.
func (s *Service) Handle(ctx context.Context, ev conversation.Event) (conversation.Decision, error) {
	if err := ev.Validate(); err != nil {
		return conversation.Decision{}, err
	}
	if ev.Type != conversation.EventMessageAdded {
		return conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonEventType}, nil
	}
	if ev.Author == "" || ev.Author == "system" {
		return conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonNoAuthor}, nil
	}
	f := Flow{
		ConversationSid: ev.ConversationSid,
		Customer:        ev.Author,
		Trigger:         ev.MessageSid,
		State:           StateRunning,
		StartedAt:       s.now(),
		Answer:          AnswerConsent,
	}
	if s.cfg.Chats != nil {
		customer, _, ok, err := s.cfg.Chats.Parties(ctx, ev.ConversationSid)
		if err != nil {
			return conversation.Decision{}, fmt.Errorf("looking up the chat of %s: %w: %w", ev.ConversationSid, conversation.ErrUnavailable, err)
		}
		if ok {
			// The service knows the customer: only their reply advances the chat, and it says yes or no.
			if ev.Author != customer {
				zerolog.Ctx(ctx).Info().Str("conversation_sid", ev.ConversationSid).Msg("a chat's rider wrote before the customer answered; ignored")
				return conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonNotYet}, nil
			}
			f.Chat, f.Answer = true, s.cfg.Consent.Read(ev.Body)
		}
	}
	existing, claimed, err := s.store.Claim(ctx, f)
	if err != nil {
		return conversation.Decision{}, fmt.Errorf("claiming conversation %s: %w: %w", ev.ConversationSid, conversation.ErrUnavailable, err)
	}
	if claimed {
		if err := s.enqueue(ctx, ev.ConversationSid); err != nil {
			return conversation.Decision{}, err
		}
		// Answered 2xx, Twilio does not deliver again: the claim and its work must outlive a failover.
		if err := s.store.Sync(ctx); err != nil {
			return conversation.Decision{}, fmt.Errorf("making conversation %s durable: %w: %w", ev.ConversationSid, conversation.ErrUnavailable, err)
		}
		return conversation.Decision{Outcome: conversation.OutcomeAccepted}, nil
	}
	d := decideExisting(existing, ev)
	// The claim may have outlived an enqueue that never happened (a crash in between); enqueuing again
	// for a running flow is harmless and makes every answer for it durable.
	if existing.State == StateRunning && existing.Customer == ev.Author {
		if err := s.enqueue(ctx, ev.ConversationSid); err != nil {
			return conversation.Decision{}, err
		}
	}
	return d, nil
}

func (s *Service) enqueue(ctx context.Context, conversationSid string) error {
	if err := s.queue.Enqueue(ctx, conversationSid); err != nil {
		return fmt.Errorf("queueing conversation %s: %w: %w", conversationSid, conversation.ErrUnavailable, err)
	}
	return nil
}

func decideExisting(f Flow, ev conversation.Event) conversation.Decision {
	switch {
	case f.Trigger == ev.MessageSid:
		return conversation.Decision{Outcome: conversation.OutcomeDuplicate}
	case f.Customer != ev.Author:
		return conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonNotCustomer}
	case f.State == StateDone:
		return conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonCompleted}
	case f.State == StateFailed:
		return conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonFailed}
	default:
		return conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonInProgress}
	}
}

// ErrRetryLater is returned by Work when a step failed transiently after its retries: the queue should
// run the work again later. Its chain carries the last *CallError, so a Retry-After can be honoured.
var ErrRetryLater = errors.New("opt-in incomplete, retry later")

// Work performs whatever the conversation's opt-in still lacks: the three steps run concurrently, each
// recorded when done. A nil error means the flow is finished, done or permanently failed.
func (s *Service) Work(ctx context.Context, conversationSid string) error {
	f, err := s.store.Begin(ctx, conversationSid)
	if err != nil {
		return fmt.Errorf("%w: loading flow: %w", ErrRetryLater, err)
	}
	log := zerolog.Ctx(ctx).With().Str("conversation_sid", f.ConversationSid).Str("message_sid", f.Trigger).Int("run", f.Runs).Logger()
	ctx = log.WithContext(ctx)
	if f.State != StateRunning {
		log.Info().Str("state", string(f.State)).Msg("flow already finished")
		return nil
	}
	start := s.now()
	if f.Chat && f.Answer == AnswerConsent {
		if err := s.advance(ctx, f, conversation.StageConnecting, nil); err != nil {
			return err
		}
	}
	smsRider, err := s.riderOnSMS(ctx, f)
	if err != nil {
		return err
	}
	phases := s.phases(f, smsRider)
	for i, phase := range phases {
		done, err := s.runPhase(ctx, f, phase)
		if err != nil && twiliocall.Permanently(err) {
			return s.finish(ctx, f, StateFailed, err, start)
		}
		if err == nil && i == len(phases)-1 {
			break
		}
		// A later phase, or a later run, skips what this phase did: one write records it. The last
		// phase's steps need none (the flow's end drops them). A run cut off before its record, or
		// whose end fails to be recorded, is safe too: the next one looks for each message's marker
		// before creating it, and removing webhooks or closing again changes nothing.
		if len(done) > 0 {
			if rerr := s.store.StepsDone(ctx, f.ConversationSid, done); rerr != nil {
				err = errors.Join(err, fmt.Errorf("recording steps: %w", rerr))
			}
		}
		if err != nil {
			log.Warn().Err(err).Msg("opt-in incomplete; will run again")
			return fmt.Errorf("%w: %w", ErrRetryLater, err)
		}
	}
	return s.finish(ctx, f, StateDone, nil, start)
}

// step is one piece of an opt-in's work: it returns what it left behind, recorded once it is done.
type step struct {
	name string
	run  func(context.Context) (string, error)
}

// phases lists the steps the flow's answer calls for; the steps of a phase run concurrently, a phase
// only after the one before it succeeded.
func (s *Service) phases(f Flow, smsRider bool) [][]step {
	// A run after the first may follow one cut off mid-call: look before creating.
	cutOff := f.Runs > 1
	webhooks := step{StepWebhooks, func(ctx context.Context) (string, error) { return "done", s.removeWebhooks(ctx, f) }}
	// Closing comes last: a closed conversation takes no message and no change. A chat's conversation
	// is closed by its chat, told of the outcome first, so that Twilio's report of the close cannot
	// pass for another ending.
	closing := []step{{StepClose, func(ctx context.Context) (string, error) { return "done", s.closeConversation(ctx, f) }}}
	if f.Chat {
		stage := map[Answer]conversation.Stage{AnswerDecline: conversation.StageDeclined, AnswerOptOut: conversation.StageOptedOut}[f.Answer]
		closing = []step{{StepClose, func(ctx context.Context) (string, error) {
			return "done", s.advance(ctx, f, stage, nil)
		}}}
	}
	// A chat keeps its message webhook: the chat relays what the parties write after the opt-in
	// (held messages, windows), and its claim, not the webhook's removal, makes the opt-in run once.
	var unhook []step
	if !f.Chat {
		unhook = []step{webhooks}
	}
	switch f.Answer {
	case AnswerDecline:
		decline := step{StepDecline, func(ctx context.Context) (string, error) {
			return s.createOnce(ctx, f, StepDecline, conversation.Message{Body: s.cfg.DeclineMessage}, cutOff)
		}}
		return [][]step{append([]step{decline}, unhook...), closing}
	case AnswerOptOut:
		// Someone who asked for no more messages gets none, not even a goodbye.
		if f.Chat {
			return [][]step{closing}
		}
		return [][]step{unhook, closing}
	}
	rider := s.cfg.RiderOptIn
	riderMsg := conversation.Message{Author: f.Customer}
	if smsRider {
		riderMsg.Body = cmp.Or(s.cfg.SMSRiderMessage, rider.Body)
	} else if rider.ContentSid != "" {
		riderMsg.ContentSid, riderMsg.ContentVariables = rider.ContentSid, rider.ContentVariables
	} else {
		riderMsg.Body = rider.Body
	}
	return [][]step{append([]step{
		{StepWait, func(ctx context.Context) (string, error) {
			return s.createOnce(ctx, f, StepWait, conversation.Message{Body: s.cfg.WaitMessage}, cutOff)
		}},
		{StepRider, func(ctx context.Context) (string, error) { return s.createOnce(ctx, f, StepRider, riderMsg, cutOff) }},
	}, unhook...)}
}

// riderOnSMS reports whether the flow's chat has its rider on SMS.
func (s *Service) riderOnSMS(ctx context.Context, f Flow) (bool, error) {
	if !f.Chat || s.cfg.Chats == nil {
		return false, nil
	}
	_, rider, _, err := s.cfg.Chats.Parties(ctx, f.ConversationSid)
	if err != nil {
		return false, fmt.Errorf("%w: looking up the chat's rider: %w", ErrRetryLater, err)
	}
	return rider != "" && !strings.HasPrefix(rider, "whatsapp:"), nil
}

// runPhase runs the steps not done in an earlier run, concurrently, and returns what those that
// succeeded left behind, by step.
func (s *Service) runPhase(ctx context.Context, f Flow, steps []step) (map[string]string, error) {
	log := zerolog.Ctx(ctx)
	errs := make([]error, len(steps))
	refs := make([]string, len(steps))
	var wg sync.WaitGroup
	for i, st := range steps {
		if ref, done := f.Steps[st.name]; done {
			log.Info().Str("step", st.name).Str("ref", ref).Msg("step done in an earlier run")
			continue
		}
		wg.Go(func() {
			began := s.now()
			refs[i], errs[i] = st.run(ctx)
			outcome := "ok"
			if errs[i] != nil {
				outcome = "failed"
			}
			s.cfg.Observer.StepFinished(st.name, outcome, s.now().Sub(began))
		})
	}
	wg.Wait()
	done := map[string]string{}
	for i, st := range steps {
		if _, before := f.Steps[st.name]; !before && errs[i] == nil {
			done[st.name] = refs[i]
		}
	}
	return done, errors.Join(errs...)
}

// advance tells the conversation's chat, if it has one, where it stands; a failure to tell it leaves
// the flow unfinished, so that the next run tells it again.
func (s *Service) advance(ctx context.Context, f Flow, stage conversation.Stage, cause error) error {
	if s.cfg.Chats == nil {
		return nil
	}
	if err := s.cfg.Chats.Advance(ctx, f.ConversationSid, stage, f.Trigger, cause); err != nil {
		return fmt.Errorf("%w: telling the chat it is %s: %w", ErrRetryLater, stage, err)
	}
	return nil
}

// closeConversation closes the conversation; one already closed counts as closed.
func (s *Service) closeConversation(ctx context.Context, f Flow) error {
	err := twiliocall.Close(ctx, s.cfg.Retry, s.cfg.Observer, StepClose, func(ctx context.Context) error {
		return s.conv.CloseConversation(ctx, f.ConversationSid)
	})
	logStep(ctx, StepClose, err).Msg("step finished")
	if err != nil {
		return fmt.Errorf("step %s: %w", StepClose, err)
	}
	return nil
}

// GiveUp records a flow as failed once its queue stops retrying it.
func (s *Service) GiveUp(ctx context.Context, conversationSid string, cause error) error {
	f := Flow{ConversationSid: conversationSid}
	ctx = zerolog.Ctx(ctx).With().Str("conversation_sid", conversationSid).Logger().WithContext(ctx)
	return s.finish(ctx, f, StateFailed, fmt.Errorf("gave up: %w", cause), s.now())
}

// finish records the flow's outcome: done, or failed because of cause.
func (s *Service) finish(ctx context.Context, f Flow, state State, cause error, start time.Time) error {
	detail := ""
	if cause != nil {
		detail = pii.Redact(cause.Error())
	}
	log := zerolog.Ctx(ctx)
	// The run's context may be ending (shutdown); recording the outcome still matters.
	finishCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	stage := map[Answer]conversation.Stage{AnswerConsent: conversation.StageConnected, AnswerDecline: conversation.StageDeclined, AnswerOptOut: conversation.StageOptedOut}[f.Answer]
	if state == StateFailed {
		stage = conversation.StageFailed
	}
	if stage != "" {
		if err := s.advance(finishCtx, f, stage, cause); err != nil {
			return err
		}
	}
	if err := s.store.Finish(finishCtx, f.ConversationSid, state, detail); err != nil {
		return fmt.Errorf("%w: recording flow outcome: %w", ErrRetryLater, err)
	}
	s.cfg.Observer.FlowFinished(state)
	ev := log.Info()
	if state == StateFailed {
		ev = log.Error().Str("error", detail)
	}
	ev.Str("step", "flow").Str("outcome", string(state)).Dur("duration", s.now().Sub(start)).Msg("opt-in finished")
	return nil
}

// marker is the Attributes JSON that names a message's step and trigger, so a retry can find it.
func marker(step, trigger string) string {
	return twiliocall.Marker(map[string]string{"step": step, "trigger": trigger})
}

func hasMarker(attributes, step, trigger string) bool {
	return twiliocall.HasMarker(attributes, map[string]string{"step": step, "trigger": trigger})
}

// createOnce creates m with the step's marker, once: after a failure whose effect is unknown — in this
// run or, when lookFirst is set, in an earlier one — it first looks for the marker among recent messages.
func (s *Service) createOnce(ctx context.Context, f Flow, step string, m conversation.Message, lookFirst bool) (string, error) {
	m.Attributes = marker(step, f.Trigger)
	recent := func(ctx context.Context, limit int) ([]conversation.PostedMessage, error) {
		return s.conv.RecentMessages(ctx, f.ConversationSid, limit)
	}
	sid, err := twiliocall.CreateOnce(ctx, s.cfg.Retry, s.cfg.Observer, step, lookFirst, recent,
		func(attributes string) bool { return hasMarker(attributes, step, f.Trigger) },
		func(ctx context.Context) (string, error) { return s.conv.CreateMessage(ctx, f.ConversationSid, m) })
	logStep(ctx, step, err).Str("created_sid", sid).Msg("step finished")
	if err != nil {
		return "", fmt.Errorf("step %s: %w", step, err)
	}
	return sid, nil
}

// removeWebhooks lists every scoped webhook of a conversation armed by hand, then deletes each, as in
// the guide; a webhook already gone counts as deleted.
func (s *Service) removeWebhooks(ctx context.Context, f Flow) error {
	hooks, err := twiliocall.Retry(ctx, s.cfg.Retry, s.cfg.Observer, "list_webhooks", func(ctx context.Context) ([]conversation.Webhook, error) {
		return s.conv.ScopedWebhooks(ctx, f.ConversationSid)
	})
	sids := make([]string, 0, len(hooks))
	for _, h := range hooks {
		sids = append(sids, h.Sid)
	}
	if err != nil {
		logStep(ctx, StepWebhooks, err).Msg("step finished")
		return fmt.Errorf("step %s: listing: %w", StepWebhooks, err)
	}
	var errs []error
	for _, sid := range sids {
		_, err := twiliocall.Retry(ctx, s.cfg.Retry, s.cfg.Observer, "delete_webhook", func(ctx context.Context) (struct{}, error) {
			err := s.conv.DeleteWebhook(ctx, f.ConversationSid, sid)
			if twiliocall.IsNotFound(err) {
				return struct{}{}, nil
			}
			return struct{}{}, err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("deleting %s: %w", sid, err))
		}
	}
	err = errors.Join(errs...)
	logStep(ctx, StepWebhooks, err).Int("deleted", len(sids)-len(errs)).Int("listed", len(sids)).Msg("step finished")
	if err != nil {
		return fmt.Errorf("step %s: %w", StepWebhooks, err)
	}
	return nil
}

func logStep(ctx context.Context, step string, err error) *zerolog.Event {
	log := zerolog.Ctx(ctx)
	if err == nil {
		return log.Info().Str("step", step).Str("outcome", "ok")
	}
	ev := log.Error().Str("step", step).Str("outcome", "failed").Err(err)
	if ce, ok := errors.AsType[*twiliocall.CallError](err); ok {
		ev = ev.Int("http_status", ce.Status).Int("twilio_code", ce.Code)
	}
	return ev
}
