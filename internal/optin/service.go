package optin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Step names, as they appear in logs and in the Attributes marker of each message the flow creates.
const (
	StepWait     = "wait"
	StepRider    = "rider"
	StepWebhooks = "webhooks"
)

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
	Retry      RetryPolicy
	// MarkerLookback is how many recent messages are searched for a step's marker after an uncertain failure.
	MarkerLookback int
}

// Service runs opt-ins. Handle decides synchronously; the REST work runs in the background so that the
// webhook's answer never waits on Twilio. Wait drains that work at shutdown.
type Service struct {
	conv  Conversations
	store Store
	cfg   Config
	now   func() time.Time

	// base outlives requests; cancelling it abandons in-flight flows.
	base context.Context
	wg   sync.WaitGroup
}

// NewService checks its dependencies and returns a Service whose background work lives within base.
func NewService(base context.Context, conv Conversations, store Store, cfg Config) (*Service, error) {
	switch {
	case conv == nil:
		return nil, errors.New("optin: nil Conversations")
	case store == nil:
		return nil, errors.New("optin: nil Store")
	case cfg.WaitMessage == "":
		return nil, errors.New("optin: empty wait message")
	case cfg.RiderOptIn.Body == "" && cfg.RiderOptIn.ContentSid == "":
		return nil, errors.New("optin: rider opt-in needs a body or a content sid")
	}
	if cfg.MarkerLookback <= 0 {
		cfg.MarkerLookback = 50
	}
	cfg.Retry = cfg.Retry.withDefaults()
	return &Service{conv: conv, store: store, cfg: cfg, now: time.Now, base: base}, nil
}

// Handle decides what ev means and, when it is the customer's first reply, starts the opt-in.
func (s *Service) Handle(ctx context.Context, ev Event) (Decision, error) {
	if err := ev.Validate(); err != nil {
		return Decision{}, err
	}
	if ev.Type != EventMessageAdded {
		return Decision{Outcome: OutcomeIgnored, Reason: ReasonEventType}, nil
	}
	if ev.Author == "" || ev.Author == "system" {
		return Decision{Outcome: OutcomeIgnored, Reason: ReasonNoAuthor}, nil
	}
	f := Flow{
		ConversationSid: ev.ConversationSid,
		Customer:        ev.Author,
		Trigger:         ev.MessageSid,
		State:           StateRunning,
		StartedAt:       s.now(),
	}
	existing, claimed, err := s.store.Claim(ctx, f)
	if err != nil {
		return Decision{}, fmt.Errorf("claiming conversation %s: %w", ev.ConversationSid, err)
	}
	if !claimed {
		return decideExisting(existing, ev), nil
	}
	s.start(zerolog.Ctx(ctx), f)
	return Decision{Outcome: OutcomeAccepted}, nil
}

func decideExisting(f Flow, ev Event) Decision {
	switch {
	case f.Trigger == ev.MessageSid:
		return Decision{Outcome: OutcomeDuplicate}
	case f.Customer != ev.Author:
		return Decision{Outcome: OutcomeIgnored, Reason: ReasonNotCustomer}
	case f.State == StateDone:
		return Decision{Outcome: OutcomeIgnored, Reason: ReasonCompleted}
	case f.State == StateFailed:
		return Decision{Outcome: OutcomeIgnored, Reason: ReasonFailed}
	default:
		return Decision{Outcome: OutcomeIgnored, Reason: ReasonInProgress}
	}
}

// start runs the flow detached from the request, keeping the request's logger.
func (s *Service) start(log *zerolog.Logger, f Flow) {
	flowLog := log.With().Str("conversation_sid", f.ConversationSid).Str("message_sid", f.Trigger).Logger()
	ctx := flowLog.WithContext(s.base)
	s.wg.Go(func() { s.run(ctx, f) })
}

// Wait blocks until every started flow has finished or ctx ends.
func (s *Service) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for in-flight flows: %w", ctx.Err())
	}
}

// run performs the three steps concurrently and records the outcome.
func (s *Service) run(ctx context.Context, f Flow) {
	log := zerolog.Ctx(ctx)
	start := s.now()
	rider := s.cfg.RiderOptIn
	var wg sync.WaitGroup
	var errWait, errRider, errHooks error
	wg.Go(func() {
		errWait = s.createOnce(ctx, f, StepWait, Message{Body: s.cfg.WaitMessage})
	})
	wg.Go(func() {
		m := Message{Author: f.Customer}
		if rider.ContentSid != "" {
			m.ContentSid, m.ContentVariables = rider.ContentSid, rider.ContentVariables
		} else {
			m.Body = rider.Body
		}
		errRider = s.createOnce(ctx, f, StepRider, m)
	})
	wg.Go(func() { errHooks = s.removeWebhooks(ctx, f) })
	wg.Wait()

	state, detail := StateDone, ""
	if err := errors.Join(errWait, errRider, errHooks); err != nil {
		state, detail = StateFailed, err.Error()
	}
	// The flow's own context may be ending (shutdown); recording the outcome still matters.
	finishCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.store.Finish(finishCtx, f.ConversationSid, state, detail); err != nil {
		log.Error().Err(err).Msg("recording flow outcome")
	}
	ev := log.Info()
	if state == StateFailed {
		ev = log.Error().Str("error", detail)
	}
	ev.Str("step", "flow").Str("outcome", string(state)).Dur("duration", s.now().Sub(start)).Msg("opt-in finished")
}

// marker is the Attributes JSON that names a message's step and trigger, so a retry can find it.
func marker(step, trigger string) string {
	b, _ := json.Marshal(markerDoc{OptIn: markerBody{Step: step, Trigger: trigger}})
	return string(b)
}

type markerDoc struct {
	OptIn markerBody `json:"optin"`
}

type markerBody struct {
	Step    string `json:"step"`
	Trigger string `json:"trigger"`
}

func hasMarker(attributes, step, trigger string) bool {
	var d markerDoc
	if json.Unmarshal([]byte(attributes), &d) != nil {
		return false
	}
	return d.OptIn.Step == step && d.OptIn.Trigger == trigger
}

// createOnce creates m with the step's marker. After a failure whose effect is unknown it first looks
// for the marker among recent messages, so an ambiguous failure never produces a second message.
func (s *Service) createOnce(ctx context.Context, f Flow, step string, m Message) error {
	m.Attributes = marker(step, f.Trigger)
	lookFirst := false
	sid, err := retry(ctx, s.cfg.Retry, step, func(ctx context.Context) (string, error) {
		if lookFirst {
			sid, err := s.findMarked(ctx, f, step)
			if err != nil || sid != "" {
				return sid, err
			}
		}
		sid, err := s.conv.CreateMessage(ctx, f.ConversationSid, m)
		var ce *CallError
		if err != nil && (!errors.As(err, &ce) || ce.Kind == Uncertain) {
			lookFirst = true
		}
		return sid, err
	})
	logStep(ctx, step, err).Str("created_sid", sid).Msg("step finished")
	if err != nil {
		return fmt.Errorf("step %s: %w", step, err)
	}
	return nil
}

// findMarked looks for the step's message among the newest ones. When the lookup itself fails
// permanently it reports nothing found: the step is then created rather than failed.
func (s *Service) findMarked(ctx context.Context, f Flow, step string) (string, error) {
	msgs, err := s.conv.RecentMessages(ctx, f.ConversationSid, s.cfg.MarkerLookback)
	if ce := (*CallError)(nil); errors.As(err, &ce) && ce.Kind == Permanent {
		zerolog.Ctx(ctx).Warn().Err(err).Str("step", step).Msg("cannot look for an earlier attempt; creating")
		return "", nil
	}
	if err != nil {
		return "", err
	}
	for _, m := range msgs {
		if hasMarker(m.Attributes, step, f.Trigger) {
			zerolog.Ctx(ctx).Info().Str("step", step).Str("found_sid", m.Sid).Msg("step already done by an earlier attempt")
			return m.Sid, nil
		}
	}
	return "", nil
}

// removeWebhooks lists every scoped webhook, then deletes each; a webhook already gone counts as deleted.
func (s *Service) removeWebhooks(ctx context.Context, f Flow) error {
	sids, err := retry(ctx, s.cfg.Retry, "list webhooks", func(ctx context.Context) ([]string, error) {
		return s.conv.ListWebhooks(ctx, f.ConversationSid)
	})
	if err != nil {
		logStep(ctx, StepWebhooks, err).Msg("step finished")
		return fmt.Errorf("step %s: listing: %w", StepWebhooks, err)
	}
	var errs []error
	for _, sid := range sids {
		_, err := retry(ctx, s.cfg.Retry, "delete webhook", func(ctx context.Context) (struct{}, error) {
			err := s.conv.DeleteWebhook(ctx, f.ConversationSid, sid)
			if ce := (*CallError)(nil); errors.As(err, &ce) && ce.NotFound() {
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
	if ce := (*CallError)(nil); errors.As(err, &ce) {
		ev = ev.Int("http_status", ce.Status).Int("twilio_code", ce.Code)
	}
	return ev
}
