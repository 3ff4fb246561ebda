package chat

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// notify hands the chat's pending events to the notifier. Handing one twice is harmless (the
// delivery drops an event no longer pending, and receivers drop a repeated webhook-id); one whose
// hand-over fails stays pending and is handed over by SweepOutbox.
func (s *Service) notify(ctx context.Context, c Chat) {
	if s.cfg.Notifier == nil {
		return
	}
	for _, ev := range c.Pending {
		if err := s.cfg.Notifier.Notify(ctx, c.ID, ev.ID); err != nil {
			zerolog.Ctx(ctx).Error().Err(err).Str("chat_id", c.ID).Str("event_id", ev.ID).Msg("queueing a chat event; the outbox sweep will")
		}
	}
}

// OutboxGrace is how old a pending event must be before a sweep hands it over again — the notify that
// follows its write has had its chance — unless chats are reconciled more often than that.
const OutboxGrace = 30 * time.Second

// outboxTimes are the sweep's interval and grace: OutboxInterval and OutboxGrace, or the reconcile
// interval when it is shorter.
func (s *Service) outboxTimes() (every, grace time.Duration) {
	return min(OutboxInterval, s.cfg.ReconcileInterval), min(OutboxGrace, s.cfg.ReconcileInterval)
}

// SweepOutbox hands every event pending longer than its grace (outboxTimes) to the notifier again: an event whose
// queueing failed (a Redis blip, a crash between the write and the queueing) is delivered all the
// same. It returns how many events it handed over.
//
// It also tends the chats (tend): it drops messages held too long, and finishes the re-sends, nudges,
// moves to SMS and releases of numbers that a crash, a failure or the pacing of re-sends left undone.
func (s *Service) SweepOutbox(ctx context.Context) (int, error) {
	ids, err := s.store.WithPending(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	now := s.now()
	_, grace := s.outboxTimes()
	var failed error
	var tending []string
	// Events first, for every chat: tending one chat (Twilio slow) never holds up another's events.
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		c, err := s.store.Get(ctx, id)
		if err != nil {
			continue // forgotten since, or a blip: the next sweep sees it
		}
		if c.needsTending() || c.Release {
			tending = append(tending, id)
		}
		if s.cfg.Notifier == nil {
			continue
		}
		for _, ev := range c.Pending {
			if now.Sub(ev.At) < grace {
				continue
			}
			if err := s.cfg.Notifier.Notify(ctx, c.ID, ev.ID); err != nil {
				// One chat's event refused does not hold up the others': the next sweep tries it again.
				failed = errors.Join(failed, fmt.Errorf("chat %s: %w", c.ID, err))
				continue
			}
			n++
		}
	}
	for _, id := range tending {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if err := s.tendAll(ctx, id); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Str("chat_id", id).Msg("tending a chat")
		}
	}
	return n, failed
}

func (s *Service) noFreeNumber() {
	if s.cfg.Observer != nil {
		s.cfg.Observer.NoFreeNumber()
	}
}
