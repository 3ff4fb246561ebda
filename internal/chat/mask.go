package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/guard"
	"github.com/optinkit/optin/internal/twiliocall"
)

// The mask holding: contact data a party types into a chat is hidden (or the message blocked, its
// author told why, seen by them alone), and a party who writes to a chat's number after the chat
// ended is answered, at most once per period. The rules are pure (decideGuard, decideAfterEnd).

// EventMessageAfterEnd is the event of a party writing to a chat's number after the chat ended.
const EventMessageAfterEnd = "chat.message_after_end"

// DefaultAfterEndEvery is how often, at most, a party writing after the end is answered (and the
// platform told).
const DefaultAfterEndEvery = time.Hour

// maxGuarded bounds the guarded messages a chat keeps a record of, the newest; maxNotices the notices
// waiting to be sent (a party blocked again and again is told of the newest).
const (
	maxGuarded = 20
	maxNotices = 5
)

// Guarded records a message the guard changed or blocked: who wrote it, what kinds it hid, what it
// did — never the body.
type Guarded struct {
	At     time.Time
	From   string
	Kinds  []string
	Action string
}

// Notice is a message for one party alone (a blocked message's reason), sent by tend: authored by the
// other party, so that Twilio delivers it to this one only, and marked, so that it goes once.
type Notice struct {
	// ID is random: a failover that takes back a count never makes two notices one marker.
	ID   string
	To   string
	Body string
	// Attempts counts the runs whose send failed for a while: past maxCopyAttempts it is dropped.
	Attempts int `json:",omitempty"`
}

// GuardRequest is a message Twilio asks about before publishing it (the onMessageAdd pre-event).
type GuardRequest struct {
	ConversationSid, Author, Body string
}

// GuardAnswer says what to publish: ChatID is empty when the conversation is no chat's (publish as
// written); otherwise Result says (Blocked, or Body when Changed).
type GuardAnswer struct {
	ChatID string
	Result guard.Result
}

// decideGuard records what the guard did with a party's message in c: nothing for a message it found
// nothing in, of no party, or in a final chat; otherwise a record (the newest maxGuarded) and, for a
// blocked message, a notice to its author.
func decideGuard(c *Chat, author string, res guard.Result, now time.Time, noticeID string) Decision {
	role := c.roleOf(author)
	if role == "" || c.State.Final() || len(res.Found) == 0 {
		return Decision{}
	}
	kinds := make([]string, 0, len(res.Found))
	for _, k := range res.Kinds() {
		kinds = append(kinds, string(k))
	}
	c.GuardedCount++
	c.Guarded = append(c.Guarded, Guarded{At: now, From: role, Kinds: kinds, Action: string(res.Action)})
	if len(c.Guarded) > maxGuarded {
		c.Guarded = slices.Delete(c.Guarded, 0, len(c.Guarded)-maxGuarded)
	}
	if !res.Blocked {
		return Decision{Changed: true}
	}
	c.Notices = append(c.Notices, Notice{ID: noticeID, To: role, Body: res.Reason})
	if extra := len(c.Notices) - maxNotices; extra > 0 {
		c.Notices = slices.Delete(c.Notices, 0, extra)
		c.NoticesDropped += extra
	}
	c.Work++
	return Decision{Changed: true, Effects: []Effect{EffectTell}}
}

// GuardMessage decides what Twilio publishes of a message written in a conversation: for a party of
// a chat, what the guard makes of it (recorded in the chat when it found something). A conversation of
// no chat, or a guard that is off, publishes it as written.
func (s *Service) GuardMessage(ctx context.Context, req GuardRequest) (GuardAnswer, error) {
	if s.cfg.Guard.Mode == guard.Off {
		return GuardAnswer{Result: guard.Result{Body: req.Body}}, nil
	}
	c, err := s.store.ByConversation(ctx, req.ConversationSid)
	switch {
	case errors.Is(err, ErrNotFound):
		return GuardAnswer{Result: guard.Result{Body: req.Body}}, nil
	case err != nil:
		return GuardAnswer{}, fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
	}
	if c.roleOf(req.Author) == "" {
		return GuardAnswer{ChatID: c.ID, Result: guard.Result{Body: req.Body}}, nil
	}
	// A final chat's conversation that still takes messages (its close not through yet) is masked
	// all the same; only the record is the open chat's.
	res := s.cfg.Guard.Check(req.Body, guard.Region(req.Author))
	if len(res.Found) == 0 || c.State.Final() {
		return GuardAnswer{ChatID: c.ID, Result: res}, nil
	}
	var d Decision
	if _, err := s.store.Update(ctx, c.ID, func(c *Chat) error {
		d = decideGuard(c, req.Author, res, s.now(), "n"+newOwner())
		if !d.Changed {
			return errUnchanged
		}
		return nil
	}); err != nil && !errors.Is(err, errUnchanged) {
		// What to publish does not depend on the record: the message is guarded all the same, its
		// record (and a block's notice) lost.
		zerolog.Ctx(ctx).Warn().Err(err).Str("chat_id", c.ID).Msg("recording a guarded message")
		return GuardAnswer{ChatID: c.ID, Result: res}, nil
	}
	zerolog.Ctx(ctx).Info().Str("chat_id", c.ID).Str("action", string(res.Action)).Strs("kinds", kindStrings(res)).Msg("message guarded")
	if d.Has(EffectTell) {
		s.later(ctx, c.ID)
	}
	return GuardAnswer{ChatID: c.ID, Result: res}, nil
}

func kindStrings(res guard.Result) []string {
	out := make([]string, 0, len(res.Found))
	for _, k := range res.Kinds() {
		out = append(out, string(k))
	}
	return out
}

// tell sends the chat's notices, each to its party alone, once (found by its marker after a crash).
func (s *Service) tell(ctx context.Context, id string) error {
	for {
		c, err := s.store.Get(ctx, id)
		if err != nil {
			return fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
		}
		if len(c.Notices) == 0 || c.State.Final() {
			return nil
		}
		n := c.Notices[0]
		// Authored by the other party: Twilio delivers a message to every participant but its author.
		m := conversation.Message{Author: c.party(other(n.To)).Address, Body: n.Body, Attributes: chatMarker(id, "notice", n.ID)}
		_, err = s.createOnce(ctx, c.ConversationSid, "notice", true, m)
		outcome := copyOutcome(err)
		var kept bool
		if _, uerr := s.store.Update(ctx, id, func(c *Chat) error {
			kept = decideTold(c, n.ID, outcome)
			return nil
		}); uerr != nil {
			return errors.Join(err, fmt.Errorf("%w: %w", conversation.ErrUnavailable, uerr))
		}
		switch {
		case kept:
			return fmt.Errorf("telling a party their message was blocked: %w", err) // the next run tries again
		case outcome == copyClosed:
			return nil
		case outcome != copySent:
			zerolog.Ctx(ctx).Warn().Str("chat_id", id).Int("twilio_code", twiliocall.Code(err)).Msg("a blocked message's notice refused by Twilio; dropped")
		}
	}
}

// decideTold records how a notice's send went: sent, refused for good, the conversation closed, or
// failing past maxCopyAttempts runs, it leaves the chat (one notice Twilio refuses never holds up the
// next); failing for a while, it counts an attempt and stays. It reports whether it stayed.
func decideTold(c *Chat, id string, outcome CopyOutcome) bool {
	i := slices.IndexFunc(c.Notices, func(n Notice) bool { return n.ID == id })
	if i < 0 {
		return false
	}
	if outcome == copyFailed {
		if c.Notices[i].Attempts++; c.Notices[i].Attempts < maxCopyAttempts {
			return true
		}
	}
	c.Notices = slices.Delete(c.Notices, i, i+1)
	return false
}

// AfterEndRequest is a message Twilio hands to a business number's own webhook: no active
// conversation holds its pair.
type AfterEndRequest struct {
	From, To, Body string
}

// AfterEndAnswer says whether to answer the message (Reply), and whose chat it was: ChatID is empty
// when the pair never had a chat within the retention.
type AfterEndAnswer struct {
	ChatID, Party string
	Reply         bool
}

// optOutWords are the keywords carriers and Twilio answer themselves: never answered here.
var optOutWords = map[string]bool{
	"STOP": true, "STOPALL": true, "UNSUBSCRIBE": true, "CANCEL": true, "END": true, "QUIT": true,
	"HELP": true, "INFO": true, "START": true, "UNSTOP": true, "REVOKE": true, "OPTOUT": true,
}

// IsKeyword reports whether body is one of the opt-out or help keywords (as carriers read them: the
// whole message, any case, punctuation around it ignored).
func IsKeyword(body string) bool {
	w := strings.ToUpper(strings.Trim(strings.TrimSpace(body), ".!?,;:'\" "))
	return optOutWords[w]
}

// decideAfterEnd decides whether a party's message to their chat's number, after the chat ended, is
// answered: once per party per every, never a keyword, only for a chat that ended; an answer is
// recorded with the event the platform hears of (no body).
func decideAfterEnd(c *Chat, role, body string, now time.Time, every time.Duration, events bool) Decision {
	p := c.party(role)
	if !c.State.Final() || IsKeyword(body) || (!p.AfterEndAt.IsZero() && now.Sub(p.AfterEndAt) < every) {
		return Decision{}
	}
	p.AfterEndAt = now
	d := Decision{Changed: true}
	if events {
		ev := newEvent(*c, EventMessageAfterEnd, now)
		ev.Data = afterEndData(*c, role, now)
		c.Pending = append(c.Pending, ev)
		d.Effects = append(d.Effects, EffectNotify)
	}
	return d
}

// partyOn returns the role of the party of c who is address on number (both read as bare E.164), ""
// when none.
func partyOn(c *Chat, address, number string) string {
	for _, role := range []string{roleCustomer, roleRider} {
		p := c.party(role)
		if p.ProxyAddress != "" && E164(p.Address) == E164(address) && E164(p.ProxyAddress) == E164(number) {
			return role
		}
	}
	return ""
}

// MessageAfterEnd decides the answer to a message written to a business number with no active
// conversation on its pair: the pair's last chat (by the pair index), if it ended, is answered.
func (s *Service) MessageAfterEnd(ctx context.Context, req AfterEndRequest) (AfterEndAnswer, error) {
	if s.cfg.Pairs == nil {
		return AfterEndAnswer{}, nil
	}
	id, err := s.cfg.Pairs.ChatOf(ctx, E164(req.To), E164(req.From))
	if err != nil {
		return AfterEndAnswer{}, fmt.Errorf("%w: finding the chat of a message: %w", conversation.ErrUnavailable, err)
	}
	if id == "" {
		return AfterEndAnswer{}, nil
	}
	every := s.cfg.AfterEndEvery
	if every <= 0 {
		every = DefaultAfterEndEvery
	}
	var ans AfterEndAnswer
	var d Decision
	c, err := s.store.Update(ctx, id, func(c *Chat) error {
		ans = AfterEndAnswer{ChatID: c.ID, Party: partyOn(c, req.From, req.To)}
		d = Decision{}
		if ans.Party == "" {
			return errUnchanged
		}
		d = decideAfterEnd(c, ans.Party, req.Body, s.now(), every, s.cfg.Notifier != nil)
		if !d.Changed {
			return errUnchanged
		}
		return nil
	})
	switch {
	case errors.Is(err, errUnchanged):
		return ans, nil
	case errors.Is(err, ErrNotFound):
		return AfterEndAnswer{}, nil // forgotten since
	case err != nil && d.Changed:
		// The chat as read calls for an answer; only its record failed, and it may have landed. The
		// person is answered all the same: unanswered with the record landed, they would hear nothing
		// for the whole period. Should a failover lose the record, the platform is not told of this
		// one, and the next message within the period is answered again.
		zerolog.Ctx(ctx).Warn().Err(err).Str("chat_id", id).Msg("recording a message after the end")
		ans.Reply = true
		return ans, nil
	case err != nil:
		return AfterEndAnswer{}, fmt.Errorf("%w: recording a message after the end: %w", conversation.ErrUnavailable, err)
	}
	ans.Reply = true
	zerolog.Ctx(ctx).Info().Str("chat_id", id).Str("party", ans.Party).Msg("message after the end answered")
	if d.Has(EffectNotify) {
		s.notify(ctx, c)
	}
	return ans, nil
}
