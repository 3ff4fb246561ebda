package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/conversation"
)

// Masked calls: a party of a connected chat calls the business number they know the chat by, and the
// call rings the other party from the business number that party knows it by. Neither sees the
// other's number. The rules are pure (decideCall, decideCallEnded); RouteCall and CallEnded read and
// write the chat once each.

// Call events the platform hears of.
const (
	EventCallStarted = "chat.call_started"
	EventCallEnded   = "chat.call_ended"
)

// Why a call is not connected (CallRefusedError.Reason).
const (
	CallWithheld     = "withheld"      // the caller's number is withheld
	CallUnknown      = "unknown"       // no chat of this caller on this business number
	CallNotConnected = "not_connected" // the chat is not connected (yet): the customer has not agreed
	CallChatEnded    = "ended"         // the chat is over
)

// maxCalls bounds the calls a chat keeps, the newest. An action callback for one trimmed meanwhile (20
// calls during one call) records it again, start and end, as for a call whose record was lost.
const maxCalls = 20

// PairIndex finds the chat that last leased a business number to an address, both read as bare
// E.164 whatever their channel (whatsapp:+1555… and +1555… are one person).
type PairIndex interface {
	// ChatOf returns that chat's id, "" when none within the retention.
	ChatOf(ctx context.Context, number, address string) (string, error)
}

// CallObserver, when the Config's Observer is one, counts calls.
type CallObserver interface {
	// CallStarted counts a call connected to the other party's phone; CallEnded its outcome.
	CallStarted()
	CallEnded(status string, d time.Duration)
	// CallRefused counts a call not connected, by reason.
	CallRefused(reason string)
}

// Call is a call between a chat's parties.
type Call struct {
	// Sid is Twilio's CallSid of the caller's leg.
	Sid string
	// From is the caller's role (customer, rider).
	From string
	At   time.Time
	// Status is the Dial's outcome (completed, busy, no-answer, failed, canceled), once known.
	Status  string    `json:",omitempty"`
	Seconds int       `json:",omitempty"`
	EndedAt time.Time `json:",omitzero"`
}

// CallRequest is a call Twilio asks the service to route.
type CallRequest struct {
	// Sid is the CallSid; From the caller as Twilio gives it (+E164, "anonymous", ""); To the
	// business number called.
	Sid, From, To string
}

// CallRoute says whom a call rings and as whom.
type CallRoute struct {
	ChatID string
	// Caller and Callee are roles (customer, rider).
	Caller, Callee string
	// CallerID is the business number the callee knows the chat by; Number the callee's phone, both
	// bare E.164.
	CallerID, Number string
}

// CallOutcome is what the Dial's action callback reports.
type CallOutcome struct {
	ChatID, Sid string
	// Caller is the caller's role as routed (the action URL carries it): a call whose record was lost
	// (its write not acknowledged, then a failover) is recorded from it.
	Caller string
	// Status is DialCallStatus; Duration DialCallDuration.
	Status   string
	Duration time.Duration
}

// CallRefusedError says a call is not connected, and why (one of the Call… reasons).
type CallRefusedError struct{ Reason string }

func (e *CallRefusedError) Error() string { return "call not connected: " + e.Reason }

// E164 is an address without its channel: whatsapp:+1555… → +1555….
func E164(address string) string {
	if i := strings.IndexByte(address, ':'); i >= 0 {
		return address[i+1:]
	}
	return address
}

// withheldWords are what a carrier sends for a withheld caller: Twilio passes them as written, or (as
// it long did) as the digits they spell on a phone's keypad, ANONYMOUS as +266696687.
var withheldWords = []string{"ANONYMOUS", "RESTRICTED", "BLOCKED", "UNKNOWN", "UNAVAILABLE", "PRIVATE"}

// keypad spells word in a phone keypad's digits.
func keypad(word string) string {
	const keys = "22233344455566677778889999"
	var b strings.Builder
	for _, r := range word {
		b.WriteByte(keys[r-'A'])
	}
	return b.String()
}

// withheld reports whether Twilio's From names no caller: empty, a word, or a word's keypad digits.
func withheld(from string) bool {
	f := strings.ToUpper(strings.TrimSpace(from))
	if f == "" || !strings.HasPrefix(f, "+") {
		return true
	}
	for _, w := range withheldWords {
		if f == "+"+keypad(w) {
			return true
		}
	}
	return false
}

// decideCall decides whether the call req, made to c's business number, rings the other party: only
// between the two parties of a connected chat, each on the business number they know the chat by. A
// call it connects is recorded, once per CallSid (a repeated webhook routes it again, silently), with
// the event the platform hears of.
func decideCall(c *Chat, req CallRequest, now time.Time, events bool) (CallRoute, Decision, error) {
	var caller string
	for _, role := range []string{roleCustomer, roleRider} {
		p := c.party(role)
		if p.ProxyAddress != "" && E164(p.Address) == req.From && E164(p.ProxyAddress) == req.To {
			caller = role
		}
	}
	switch {
	case caller == "":
		return CallRoute{}, Decision{}, &CallRefusedError{CallUnknown}
	case c.State.Final() || c.Ending != nil:
		return CallRoute{}, Decision{}, &CallRefusedError{CallChatEnded}
	case c.State != StateConnected:
		return CallRoute{}, Decision{}, &CallRefusedError{CallNotConnected}
	}
	callee := c.party(other(caller))
	route := CallRoute{ChatID: c.ID, Caller: caller, Callee: other(caller), CallerID: E164(callee.ProxyAddress), Number: E164(callee.Address)}
	if slices.ContainsFunc(c.Calls, func(x Call) bool { return x.Sid == req.Sid }) {
		return route, Decision{}, nil
	}
	c.Calls = append(c.Calls, Call{Sid: req.Sid, From: caller, At: now})
	if len(c.Calls) > maxCalls {
		c.Calls = slices.Delete(c.Calls, 0, len(c.Calls)-maxCalls)
	}
	d := Decision{Changed: true}
	if events {
		c.Pending = append(c.Pending, callEvent(*c, EventCallStarted, c.Calls[len(c.Calls)-1], now))
		d.Effects = append(d.Effects, EffectNotify)
	}
	return route, d, nil
}

// decideCallEnded records a call's outcome, once: a repeated callback changes nothing. A chat that
// ended during the call records it all the same (the call was allowed to finish), its state untouched.
// A call connected whose record is missing (its write was lost) is recorded now, start and end.
func decideCallEnded(c *Chat, o CallOutcome, now time.Time, events bool) Decision {
	d := Decision{Changed: true}
	i := slices.IndexFunc(c.Calls, func(x Call) bool { return x.Sid == o.Sid })
	switch {
	case i >= 0 && c.Calls[i].Status != "":
		return Decision{}
	case i < 0 && (o.Caller != roleCustomer && o.Caller != roleRider):
		return Decision{} // not a call of this chat's
	case i < 0:
		c.Calls = append(c.Calls, Call{Sid: o.Sid, From: o.Caller, At: now.Add(-o.Duration)})
		if len(c.Calls) > maxCalls {
			c.Calls = slices.Delete(c.Calls, 0, len(c.Calls)-maxCalls)
		}
		i = len(c.Calls) - 1
		if events {
			c.Pending = append(c.Pending, callEvent(*c, EventCallStarted, c.Calls[i], now))
		}
	}
	call := &c.Calls[i]
	call.Status, call.Seconds, call.EndedAt = o.Status, int(o.Duration/time.Second), now
	if events {
		c.Pending = append(c.Pending, callEvent(*c, EventCallEnded, *call, now))
		d.Effects = append(d.Effects, EffectNotify)
	}
	return d
}

// callEvent is a call's event: the chat as it stands, and the call — roles, status and duration, no
// number.
func callEvent(c Chat, typ string, call Call, at time.Time) Event {
	ev := newEvent(c, typ, at)
	ev.Data, _ = json.Marshal(struct {
		View
		Call CallView `json:"call"`
	}{c.View(), call.view()})
	return ev
}

// RouteCall decides where a call to a business number goes. A call that does not connect is a
// *CallRefusedError (the caller hears a short text); ErrUnavailable when the store failed.
func (s *Service) RouteCall(ctx context.Context, req CallRequest) (CallRoute, error) {
	route, err := s.routeCall(ctx, req)
	var refused *CallRefusedError
	switch {
	case errors.As(err, &refused):
		zerolog.Ctx(ctx).Info().Str("call_sid", req.Sid).Str("reason", refused.Reason).Msg("call not connected")
		s.observeCalls(func(o CallObserver) { o.CallRefused(refused.Reason) })
	case err == nil:
		zerolog.Ctx(ctx).Info().Str("chat_id", route.ChatID).Str("call_sid", req.Sid).Str("caller_role", route.Caller).Msg("call routed")
	}
	return route, err
}

func (s *Service) routeCall(ctx context.Context, req CallRequest) (CallRoute, error) {
	if withheld(req.From) {
		return CallRoute{}, &CallRefusedError{CallWithheld}
	}
	req.To = E164(req.To)
	if s.cfg.Pairs == nil || req.Sid == "" {
		return CallRoute{}, &CallRefusedError{CallUnknown}
	}
	id, err := s.cfg.Pairs.ChatOf(ctx, req.To, req.From)
	if err != nil {
		return CallRoute{}, fmt.Errorf("%w: finding the chat of a call: %w", conversation.ErrUnavailable, err)
	}
	if id == "" {
		return CallRoute{}, &CallRefusedError{CallUnknown}
	}
	var route CallRoute
	var decision Decision
	decided := false
	c, err := s.store.Update(ctx, id, func(c *Chat) error {
		var err error
		route, decision, err = decideCall(c, req, s.now(), s.cfg.Notifier != nil)
		decided = err == nil
		if err != nil {
			return err
		}
		if !decision.Changed {
			return errUnchanged
		}
		return nil
	})
	var refused *CallRefusedError
	switch {
	case errors.As(err, &refused):
		return CallRoute{}, err
	case errors.Is(err, ErrNotFound):
		return CallRoute{}, &CallRefusedError{CallUnknown}
	case errors.Is(err, errUnchanged):
		return route, nil // this call was routed before: Twilio asked again
	case err != nil && decided:
		// The chat as read allows the call; only its record failed (it may have landed). The call
		// connects all the same: its end records it, start and end, when the record is missing.
		// Counted when a record of it is written: this one's, if it landed, is not; its end's is.
		zerolog.Ctx(ctx).Warn().Err(err).Str("chat_id", id).Str("call_sid", req.Sid).Msg("recording a call; its end will")
		return route, nil
	case err != nil:
		return CallRoute{}, fmt.Errorf("%w: recording a call: %w", conversation.ErrUnavailable, err)
	}
	s.observeCalls(func(o CallObserver) { o.CallStarted() })
	if decision.Has(EffectNotify) {
		s.notify(ctx, c)
	}
	return route, nil
}

// CallEnded records the outcome of a call RouteCall connected, once however often Twilio reports it.
func (s *Service) CallEnded(ctx context.Context, o CallOutcome) error {
	var decision Decision
	missing := false
	c, err := s.store.Update(ctx, o.ChatID, func(c *Chat) error {
		missing = !slices.ContainsFunc(c.Calls, func(x Call) bool { return x.Sid == o.Sid })
		decision = decideCallEnded(c, o, s.now(), s.cfg.Notifier != nil)
		if !decision.Changed && !slices.ContainsFunc(c.Calls, func(x Call) bool { return x.Sid == o.Sid }) {
			return errUnchanged
		}
		// A repeated report of an end recorded is written again, unchanged: the record it found may be
		// one no replica acknowledged yet (its first writer heard a failure), and Twilio, answered
		// 200, will not report it again.
		return nil
	})
	switch {
	case errors.Is(err, errUnchanged):
		return nil
	case errors.Is(err, ErrNotFound):
		return err
	case err != nil:
		return fmt.Errorf("%w: recording a call's end: %w", conversation.ErrUnavailable, err)
	case !decision.Changed:
		return nil // recorded before, now acknowledged
	}
	zerolog.Ctx(ctx).Info().Str("chat_id", o.ChatID).Str("call_sid", o.Sid).Str("status", o.Status).Dur("duration", o.Duration).Msg("call ended")
	s.observeCalls(func(ob CallObserver) {
		if missing {
			ob.CallStarted() // its start recorded now: its own record was lost
		}
		ob.CallEnded(o.Status, o.Duration)
	})
	if decision.Has(EffectNotify) {
		s.notify(ctx, c)
	}
	return nil
}

func (s *Service) observeCalls(f func(CallObserver)) {
	if o, ok := s.cfg.Observer.(CallObserver); ok {
		f(o)
	}
}
