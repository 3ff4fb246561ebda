package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/pii"
	"github.com/optinkit/optin/internal/twiliocall"
)

// ResendBurst is how many held messages one run sends a party, at most: a long hold reaches its party
// paced (the next run, a sweep or the party's next message, sends the next ones) rather than as one
// burst that WhatsApp's per-recipient limits would refuse. Each copy stays its own message, with its
// own marker, media and place in the order.
const ResendBurst = 10

// tendRounds bounds how often one later runs tend again for work recorded during its run.
const tendRounds = 5

// maxCopyAttempts is how many runs may fail to make a held message's copy (Twilio away, a timeout)
// before it is dropped.
const maxCopyAttempts = 5

// later has the chat's recorded work done after the caller's answer (a webhook answers Twilio first):
// queued (Config.Work) for a worker on any replica, retried with backoff. Without a queue, and for
// what a crash cuts off, the upkeep's sweep does it: no goroutine is started for it.
func (s *Service) later(ctx context.Context, id string) {
	if s.cfg.Work == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	if err := s.cfg.Work.Enqueue(ctx, id); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("chat_id", id).Msg("queueing a chat's work; the sweep will")
	}
}

// Worker is what the chat work queue (Config.Work) runs.
func (s *Service) Worker() ChatWorker { return ChatWorker{s} }

// ChatWorker does a chat's recorded work for a queue: Work runs it (an error runs it again later),
// GiveUp parks it once the queue stops retrying.
type ChatWorker struct{ s *Service }

// Work does the chat's recorded work, within the start budget; an error asks for another run.
func (w ChatWorker) Work(ctx context.Context, chatID string) error {
	ctx, cancel := context.WithTimeout(ctx, w.s.cfg.StartBudget+leaseMargin)
	defer cancel()
	err := w.s.tendAll(ctx, chatID)
	if errors.Is(err, ErrNotFound) {
		return nil // forgotten since
	}
	return err
}

// GiveUp records that the chat's work failed through all its runs (Chat.Parked): logged, counted and
// shown, and tried again by the sweep.
func (w ChatWorker) GiveUp(ctx context.Context, chatID string, cause error) error {
	_, err := w.s.store.Update(ctx, chatID, func(c *Chat) error {
		c.Parked = &Parked{At: w.s.now(), Reason: pii.Redact(cause.Error())}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: parking chat %s's work: %w", conversation.ErrUnavailable, chatID, err)
	}
	zerolog.Ctx(ctx).Error().Str("chat_id", chatID).Str("error", pii.Redact(cause.Error())).Msg("a chat's work failed through all its runs; parked, the sweep keeps trying")
	w.s.observe(func(o Observer) { o.WorkParked() })
	return nil
}

// tendAll runs tend until the chat records no work that came during a run. A caller that records work
// writes Chat.Work first and then tries the lease: either it takes the lease, or the run holding it
// reads Work after giving the lease back and sees the change.
func (s *Service) tendAll(ctx context.Context, id string) error {
	var errs error
	for range tendRounds {
		c, err := s.store.Get(ctx, id)
		if err != nil {
			return fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
		}
		ran, err := s.tend(ctx, id)
		errs = errors.Join(errs, err)
		if !ran {
			return errs // the holder runs again if it must
		}
		if err == nil && c.Parked != nil {
			if _, err := s.store.Update(ctx, id, func(c *Chat) error { c.Parked = nil; return nil }); err != nil {
				errs = errors.Join(errs, fmt.Errorf("%w: %w", conversation.ErrUnavailable, err))
			}
		}
		after, gerr := s.store.Get(ctx, id)
		if gerr != nil || after.Work == c.Work || !after.HasWork() {
			return errs
		}
	}
	// Work keeps coming: hand the chat on rather than run here for ever (a queue runs it next).
	s.later(ctx, id)
	return errs
}

// heldLease names the lease under which one replica at a time tends a chat.
func heldLease(id string) string { return "~held:" + id }

// tend does what the chat's recorded work calls for, under the chat's held lease, and reports whether
// it held the lease: failed deliveries are read and acted on; a move to SMS is carried out; numbers
// of a final chat are freed; messages held past HoldMax are dropped; those whose party has written
// since are sent again, in order, each once; a party with a closed window and a held message is
// nudged, once per closed window. One step failing does not stop the others.
func (s *Service) tend(ctx context.Context, id string) (bool, error) {
	owner := newOwner()
	locked, err := s.store.Lock(ctx, heldLease(id), owner, s.cfg.StartBudget+leaseMargin)
	if err != nil || !locked {
		return false, err // another replica tends it
	}
	defer func() { _ = s.store.Unlock(context.WithoutCancel(ctx), heldLease(id), owner) }()
	// The work ends well before the lease can lapse: another replica taking it then cannot overlap a
	// create still in flight here.
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartBudget)
	defer cancel()
	errs := s.resolve(ctx, id)
	errs = errors.Join(errs, s.settle(ctx, id))
	errs = errors.Join(errs, s.fallBack(ctx, id))
	errs = errors.Join(errs, s.freeNumbers(ctx, id))
	errs = errors.Join(errs, s.dropExpired(ctx, id))
	errs = errors.Join(errs, s.tell(ctx, id))
	if s.cfg.Windows == nil {
		return true, errs
	}
	for _, role := range []string{roleCustomer, roleRider} {
		errs = errors.Join(errs, s.resend(ctx, id, role))
		errs = errors.Join(errs, s.nudge(ctx, id, role))
	}
	return true, errs
}

// freeNumbers frees the numbers of a final chat whose release did not go through when it ended.
func (s *Service) freeNumbers(ctx context.Context, id string) error {
	c, err := s.store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
	}
	if !c.Release {
		return nil
	}
	return s.releaseRecorded(ctx, id)
}

// releaseRecorded frees the chat's numbers and then clears its Release mark.
func (s *Service) releaseRecorded(ctx context.Context, id string) error {
	if err := s.release(ctx, id); err != nil {
		return fmt.Errorf("freeing the numbers of chat %s: %w", id, err)
	}
	if _, err := s.store.Update(ctx, id, func(c *Chat) error { c.Release = false; return nil }); err != nil {
		return fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
	}
	return nil
}

// dropExpired drops the messages held longer than HoldMax.
func (s *Service) dropExpired(ctx context.Context, id string) error {
	dropped := 0
	_, err := s.store.Update(ctx, id, func(c *Chat) error {
		dropped = 0
		now := s.now()
		expired := func(h Held) bool { return !h.Sending && now.Sub(h.HeldAt) > s.cfg.HoldMax }
		if !slices.ContainsFunc(c.Customer.Held, expired) && !slices.ContainsFunc(c.Rider.Held, expired) {
			return errUnchanged // nothing to write
		}
		for _, role := range []string{roleCustomer, roleRider} {
			p := c.party(role)
			p.Held = slices.DeleteFunc(p.Held, func(h Held) bool {
				if expired(h) && !h.Early {
					dropped++
				}
				return expired(h)
			})
		}
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return fmt.Errorf("%w: dropping expired held messages: %w", conversation.ErrUnavailable, err)
	}
	if dropped > 0 {
		zerolog.Ctx(ctx).Warn().Str("chat_id", id).Int("dropped", dropped).Msg("held messages dropped: held too long")
		s.observe(func(o Observer) { o.MessagesDropped(DropExpired, dropped) })
	}
	return nil
}

// resend sends the party's held messages again, oldest first, at most ResendBurst, while the party
// has written since each was sent: authored by its author, so that only this party gets the copy, and
// marked with the original's SID, so that a run after a crash finds a copy already made rather than
// making another. A copy Twilio refuses for good is dropped, counted, and the next one goes.
func (s *Service) resend(ctx context.Context, id, role string) error {
	for range ResendBurst {
		c, err := s.store.Get(ctx, id)
		if err != nil {
			return fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
		}
		p := c.party(role)
		if !c.relaying() || len(p.Held) == 0 || p.Held[0].Early {
			return nil
		}
		w, err := s.cfg.Windows.Window(ctx, p.Address, p.ProxyAddress)
		if err != nil {
			return fmt.Errorf("%w: reading a window: %w", conversation.ErrUnavailable, err)
		}
		var h Held
		var look, due bool
		if _, err := s.store.Update(ctx, id, func(c *Chat) error {
			h, look, due = decideResend(c, role, w)
			if !due || look {
				return errUnchanged // nothing due, or marked already: nothing to write
			}
			return nil
		}); err != nil && !errors.Is(err, errUnchanged) {
			return fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
		}
		if !due {
			return nil
		}
		sid, err := s.sendCopy(ctx, c, h, look)
		outcome := copyOutcome(err)
		var counted string
		if _, uerr := s.store.Update(ctx, id, func(c *Chat) error {
			counted = decideCopied(c, role, h.MessageSid, outcome)
			return nil
		}); uerr != nil {
			return errors.Join(err, fmt.Errorf("%w: %w", conversation.ErrUnavailable, uerr))
		}
		log := zerolog.Ctx(ctx).With().Str("chat_id", id).Str("party", role).Str("message_sid", h.MessageSid).Logger()
		switch counted {
		case countResent:
			log.Info().Str("created_sid", sid).Msg("held message sent again")
			s.observe(func(o Observer) { o.MessagesResent(1) })
		case DropClosed:
			s.observe(func(o Observer) { o.MessagesDropped(DropClosed, 1) })
		case DropRefused:
			log.Error().Int("twilio_code", twiliocall.Code(err)).Msg("held message refused by Twilio (or failing run after run); dropped")
			s.observe(func(o Observer) { o.MessagesDropped(DropRefused, 1) })
		}
		switch {
		case outcome == copyFailed && counted == "":
			return err // left marked: the next run looks for the copy first
		case outcome == copyClosed:
			return nil // the chat's end drops the rest
		}
	}
	return nil
}

// copyOutcome reads the outcome of a copy's creation.
func copyOutcome(err error) CopyOutcome {
	switch {
	case err == nil:
		return copySent
	case twiliocall.Code(err) == twiliocall.CodeClosed:
		return copyClosed
	case twiliocall.Permanently(err):
		return copyRefused
	}
	return copyFailed
}

// removeHeld removes the message from hs, and reports whether it was there: whoever removes it counts it.
func removeHeld(hs *[]Held, messageSid string) bool {
	n := len(*hs)
	*hs = slices.DeleteFunc(*hs, func(x Held) bool { return x.MessageSid == messageSid })
	return len(*hs) < n
}

// recentOf reads the conversation's newest messages, for a marker search.
func (s *Service) recentOf(conv string) func(ctx context.Context, limit int) ([]twiliocall.Posted, error) {
	return func(ctx context.Context, limit int) ([]twiliocall.Posted, error) {
		return s.conv.RecentMessages(ctx, conv, limit)
	}
}

// settle counts the messages whose copy was being sent when the chat ended: sent again when the copy
// is found by its marker, dropped when it is not (the conversation is closed: none will be made now).
func (s *Service) settle(ctx context.Context, id string) error {
	c, err := s.store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
	}
	for _, h := range c.Settling {
		marker := chatMarker(id, "resend", h.MessageSid)
		sid, err := twiliocall.FindMarked(ctx, s.recentOf(c.ConversationSid), func(a string) bool { return a == marker })
		if err != nil && !twiliocall.IsNotFound(err) {
			return fmt.Errorf("looking for a copy: %w", err)
		}
		settled := false
		if _, err := s.store.Update(ctx, id, func(c *Chat) error {
			settled = removeHeld(&c.Settling, h.MessageSid)
			return nil
		}); err != nil {
			return fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
		}
		switch {
		case !settled:
		case sid != "":
			s.observe(func(o Observer) { o.MessagesResent(1) })
		default:
			s.observe(func(o Observer) { o.MessagesDropped(DropClosed, 1) })
		}
	}
	return nil
}

// sendCopy creates h's copy: its body with its first attachment, and one more message per further
// attachment (Twilio attaches one media to a message). Each part has its own marker, so that a run
// after a crash finds the parts made and makes only the rest. It returns the first part's SID.
func (s *Service) sendCopy(ctx context.Context, c Chat, h Held, look bool) (string, error) {
	parts := max(len(h.Media), 1)
	first := ""
	for i := range parts {
		value := h.MessageSid
		if i > 0 {
			value += "/" + strconv.Itoa(i)
		}
		m := conversation.Message{Author: h.Author, Attributes: chatMarker(c.ID, "resend", value)}
		if i == 0 {
			m.Body = h.Body
		}
		var media *Media
		if i < len(h.Media) {
			media = &h.Media[i]
		}
		sid, err := s.createCopy(ctx, c.ConversationSid, look, m, media)
		if err != nil {
			return "", err
		}
		if i == 0 {
			first = sid
		}
	}
	return first, nil
}

// createCopy creates m once, with a fresh copy of media attached when given: Twilio attaches a media
// to one message only, so the original's is copied first — only when no copy of m exists yet.
func (s *Service) createCopy(ctx context.Context, conv string, look bool, m conversation.Message, media *Media) (string, error) {
	return twiliocall.CreateOnce(ctx, s.cfg.Retry, nil, "resend", look, s.recentOf(conv),
		func(a string) bool { return a == m.Attributes },
		func(ctx context.Context) (string, error) {
			if media != nil && m.MediaSid == "" {
				sid, err := s.conv.CopyMedia(ctx, conv, *media)
				if err != nil {
					return "", err
				}
				m.MediaSid = sid
			}
			return s.conv.CreateMessage(ctx, conv, m)
		})
}

// nudge sends the party the nudge template, authored by the other party, when a message is held for
// them, their window is closed, and they were not nudged for this window yet.
func (s *Service) nudge(ctx context.Context, id, role string) error {
	if s.cfg.NudgeContentSid == "" {
		return nil
	}
	c, err := s.store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
	}
	p := c.party(role)
	w, err := s.cfg.Windows.Window(ctx, p.Address, p.ProxyAddress)
	if err != nil {
		return fmt.Errorf("%w: reading a window: %w", conversation.ErrUnavailable, err)
	}
	look := p.Nudging
	if !look {
		decided := false
		c, err = s.store.Update(ctx, id, func(c *Chat) error {
			if decided = decideNudge(c, role, w, s.now()); !decided {
				return errUnchanged
			}
			return nil
		})
		if err != nil && !errors.Is(err, errUnchanged) {
			return fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
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
		conversation.Message{Author: from.Address, ContentSid: s.cfg.NudgeContentSid, ContentVariables: string(vars), Attributes: marker})
	if err != nil && !twiliocall.Permanently(err) {
		return err
	}
	if _, uerr := s.store.Update(ctx, id, func(c *Chat) error {
		c.party(role).Nudging = false
		return nil
	}); uerr != nil {
		return fmt.Errorf("%w: %w", conversation.ErrUnavailable, uerr)
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
	if strings.TrimSpace(name) != "" {
		return name
	}
	return "your " + role
}

// createOnce creates m in the conversation once: with look, or after a failure whose effect is
// unknown, it first looks for m's marker among the newest messages.
func (s *Service) createOnce(ctx context.Context, conv, op string, look bool, m conversation.Message) (string, error) {
	return twiliocall.CreateOnce(ctx, s.cfg.Retry, nil, op, look, s.recentOf(conv),
		func(a string) bool { return a == m.Attributes },
		func(ctx context.Context) (string, error) { return s.conv.CreateMessage(ctx, conv, m) })
}

func (s *Service) observe(f func(Observer)) {
	if s.cfg.Observer != nil {
		f(s.cfg.Observer)
	}
}
