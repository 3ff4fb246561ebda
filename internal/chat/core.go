package chat

import (
	"slices"
	"time"
)

// The core: what happens to a chat in each state when each input arrives, decided in one pure
// function. decide reads only the chat as stored and the input, writes only the chat it is given, and
// names the effects the change calls for; the caller writes the chat (one store write, one version
// check) and then carries the effects out. Every effect is recorded in the chat by the same write —
// the ending (close the conversation), Pending (tell the platform), Release (free the numbers),
// Settling (count the copies in flight) — so that one lost with a crash is found and done again by
// the upkeep, and doing one twice is harmless.
//
//	state \ input  Started     Advanced(to)        EndAsked(end)           Closed(fallback)
//	starting       →invited    (wait: not invited) record end; Close      →end or fallback
//	               (direct:    -                   -                       -
//	               →connected)
//	invited        -           →connecting         record end; Close       →end or fallback
//	connecting     -           →connected          record end; Close       →end or fallback
//	connected      -           -                   record closed; Close    →end or fallback
//	ending (any)   -           -                   (first end wins)        →the recorded end
//	final          -           -                   -                       -
//
// A move to a final state lets go of what the chat holds (held messages dropped and counted; those
// being sent settle), and calls for Release, Notify and, when any copy was in flight, Settle. An end
// the state does not allow (a decline of a chat not yet invited) closes the chat as ended instead.
//
// The rules of a running chat, each a pure function — below, and the calls' and the mask's in calls.go
// and mask.go (tend, the webhooks and the upkeep read, call Twilio and count; these decide):
//
//	what happened                        rule               what the chat records (and wants done)
//	a delivery failed (report, reconcile) decideFailed       Undelivered, once per message (tend reads it)
//	  read: a closed window              decideHold         held for the other party, bounded (tend resends)
//	  read: not on WhatsApp              decideUnreachable  a move to SMS while starting or invited (tend moves)
//	the customer answered                decideAnswered     the answer; early holds now count
//	the party's window reopened          decideResend       the oldest held message marked, then copied
//	  its copy went (or did not)         decideCopied       out of the hold, counted once; or an attempt
//	a held message, the window closed    decideNudge        a nudge, once per closed window
//	a move to SMS recorded               decideMove         its next step (lease, remove, add, invite, …)
//	a party calls the chat's number      decideCall         the call, routed only on a connected chat
//	  the Dial ended                     decideCallEnded    its outcome, once
//	a party types contact data           decideGuard        what was hidden (no body); a block's notice
//	  the notice went (or did not)       decideTold         out of the chat (sent, refused, closed); or an attempt
//	a party writes after the end         decideAfterEnd     answered once per period, never a keyword

// InputKind names what happened to a chat.
type InputKind int

const (
	// InStarted: the start's steps are done; the chat is invited (connected, for a direct chat).
	InStarted InputKind = iota + 1
	// InAdvanced: the opt-in reached a stage short of the end (To.State: connecting, connected).
	InAdvanced
	// InEndAsked: an end is asked for (To): the platform's DELETE, a final stage of the opt-in, a
	// start refused for good, a start given up. It is recorded, then carried out by the close.
	InEndAsked
	// InClosed: the chat's conversation is closed (or never existed): by the service, by Twilio's
	// timer, as the reconciler found it. To is what the chat ends as when it recorded no end.
	InClosed
)

// Input is one thing that happened to a chat.
type Input struct {
	Kind InputKind
	To   Ending
}

// Effect is what a decision calls for beyond its write.
type Effect int

const (
	// EffectClose closes the conversation (then InClosed); with none, InClosed follows at once.
	EffectClose Effect = iota + 1
	// EffectNotify hands the chat's pending events to the notifier.
	EffectNotify
	// EffectRelease frees the chat's numbers (then clears Release).
	EffectRelease
	// EffectSettle counts the copies that were in flight when the chat ended (tend).
	EffectSettle
	// EffectTell sends the chat's notices, each to its party alone (tend).
	EffectTell
)

// Decision is the core's answer to one input.
type Decision struct {
	// Changed says the chat was changed and must be written; Moved that its state changed.
	Changed, Moved bool
	// Dropped counts the held messages the move let go (counted dropped, reason closed).
	Dropped int
	Effects []Effect
}

// Has reports whether the decision calls for e.
func (d Decision) Has(e Effect) bool {
	for _, x := range d.Effects {
		if x == e {
			return true
		}
	}
	return false
}

// decide changes c as in reaction to in at now; events says whether the platform hears of
// transitions (a notifier is configured).
func decide(c *Chat, in Input, now time.Time, events bool) Decision {
	if c.State.Final() {
		return Decision{} // final is final
	}
	switch in.Kind {
	case InStarted:
		to := StateInvited
		if c.Mode == ModeDirect {
			to = StateConnected
		}
		if c.Ending != nil || !Allowed(c.State, to, "") {
			return Decision{}
		}
		return moveTo(c, Ending{State: to}, now, events)
	case InAdvanced:
		if c.Ending != nil || in.To.State.Final() || !Allowed(c.State, in.To.State, in.To.Reason) {
			return Decision{}
		}
		return moveTo(c, in.To, now, events)
	case InEndAsked:
		if c.Ending != nil || !Allowed(c.State, in.To.State, in.To.Reason) {
			return Decision{}
		}
		end := in.To
		c.Ending = &end
		return Decision{Changed: true, Effects: []Effect{EffectClose}}
	case InClosed:
		end := c.ending(in.To)
		if !Allowed(c.State, end.State, end.Reason) {
			end = Ending{State: StateClosed, Reason: ReasonEnded}
		}
		return moveTo(c, end, now, events)
	}
	return Decision{}
}

// moveTo records the transition to end: state, reason, history, the event the platform hears of, and,
// for a final state, what the chat lets go of and what is left to do.
func moveTo(c *Chat, end Ending, now time.Time, events bool) Decision {
	d := Decision{Changed: true, Moved: true}
	if end.Error != nil && c.Error == nil {
		c.Error = end.Error
	}
	c.State, c.Reason, c.UpdatedAt = end.State, end.Reason, now
	c.History = append(c.History, Transition{State: end.State, At: now})
	if end.State.Final() {
		c.Ending = nil
		// No copy reaches anyone through a closed conversation.
		d.Dropped = c.letGo()
		if len(c.Settling) > 0 {
			c.Work++ // a tend under way settles them when it is done
			d.Effects = append(d.Effects, EffectSettle)
		}
		c.Release = true
		d.Effects = append(d.Effects, EffectRelease)
	}
	if events && eventTypes[end.State] != "" {
		c.Pending = append(c.Pending, newEvent(*c, eventTypes[end.State], now))
		d.Effects = append(d.Effects, EffectNotify)
	}
	return d
}

// The rules of a running chat's messages, pure as decide is: what is held for whom, and when a party
// is nudged. tend carries them out.

// HoldDecision is what decideHold did with a failed message.
type HoldDecision struct {
	// Added: held for For ("customer" or "rider"); Counted: it counts as held now (not early);
	// Dropped: how many counted messages the bound let go.
	Added, Counted bool
	For            string
	Dropped        int
}

// decideFailed records the failed deliveries us for tend to read and act on — each once: one recorded
// already, or whose message was acted on since the caller looked, is skipped; past maxUndelivered
// waiting, the rest are not recorded (over: logged; the reconciler finds them again while they are
// among the newest). A final chat records none.
func decideFailed(c *Chat, us []Undelivered) (n, over int) {
	if c.State.Final() {
		return 0, 0
	}
	for _, u := range us {
		switch {
		case slices.ContainsFunc(c.Undelivered, func(x Undelivered) bool { return x.MessageSid == u.MessageSid }),
			u.Indexed && c.Handled.Has(u.Index):
			continue
		case len(c.Undelivered) >= maxUndelivered:
			over++
			continue
		}
		c.Undelivered = append(c.Undelivered, u)
		n++
	}
	if n > 0 {
		c.Work++
	}
	return n, over
}

// decideUnreachable records, for a rider's message that did not reach the customer because their
// number is not on WhatsApp (code), the customer's move to SMS — only while the customer has not
// answered: one who answered on WhatsApp is on WhatsApp (the failure is WhatsApp's passing trouble),
// and moving them would take them out of a chat that works.
func decideUnreachable(c *Chat, m Message, code int) bool {
	if (c.State != StateInvited && c.State != StateStarting) || c.Fallback != nil || c.Customer.Channel() != ChannelWhatsApp ||
		c.roleOf(m.Author) != roleRider {
		return false
	}
	c.Fallback = &Fallback{Code: code, From: c.Customer.Address}
	return true
}

// decideAnswered records the customer's answer (its message SID), once: an early hold of it is let go
// (the rider gets the opt-in template instead), and the customer's other early holds now count — it
// returns how many.
func decideAnswered(c *Chat, answer string) int {
	if c.Answer != "" || answer == "" {
		return 0
	}
	c.Answer = answer
	p := &c.Rider
	p.Held = slices.DeleteFunc(p.Held, func(h Held) bool { return h.MessageSid == answer })
	promoted := 0
	for i := range p.Held {
		if p.Held[i].Early {
			p.Held[i].Early = false
			promoted++
		}
	}
	if promoted > 0 {
		c.Work++
	}
	return promoted
}

// decideHold takes a message that failed for a closed window (its failure recorded as failure): the
// failure is marked acted on, in the same change; the message is held for the party it missed — the
// other party than its author's — unless it is no party's (a system message), the customer's answer,
// or written before the customer answered by anyone but the customer (held early: it counts once the
// answer is known and it is not the answer). A party holds at most limit messages of limitBytes: the
// oldest go first.
func decideHold(c *Chat, m Message, failure string, now time.Time, limit, limitBytes int) HoldDecision {
	c.Undelivered = slices.DeleteFunc(c.Undelivered, func(x Undelivered) bool { return x.MessageSid == failure })
	if c.Handled.Has(m.Index) {
		return HoldDecision{} // acted on already (the caller read an older chat)
	}
	if !c.State.Final() {
		c.Handled = c.Handled.With(m.Index)
	}
	from := c.roleOf(m.Author)
	early := c.State == StateInvited
	switch {
	case from == "" || c.State.Final() || c.State == StateStarting || m.Sid == c.Answer:
		return HoldDecision{}
	case early && from != roleCustomer:
		return HoldDecision{}
	}
	to := other(from)
	p := c.party(to)
	if slices.ContainsFunc(p.Held, func(h Held) bool { return h.MessageSid == m.Sid }) {
		return HoldDecision{}
	}
	p.Held = append(p.Held, Held{MessageSid: m.Sid, Index: m.Index, Author: m.Author, Body: m.Body,
		Media: slices.Clone(m.Media), Created: m.Created, HeldAt: now, Early: early})
	slices.SortStableFunc(p.Held, func(a, b Held) int { return a.Index - b.Index })
	return HoldDecision{Added: true, Counted: !early, For: to, Dropped: p.trim(limit, limitBytes)}
}

// MoveStep names the next step of a customer's move from WhatsApp to SMS.
type MoveStep int

const (
	moveWait     MoveStep = iota // nothing now: no move, or the start or an end decides first
	moveLease                    // lease the customer an SMS number
	moveRemove                   // take the customer's WhatsApp participant out
	moveAdd                      // free the WhatsApp pair, add the SMS participant, record the customer on SMS
	moveInvite                   // the invitation again, as text (a chat still invited); then done
	moveDone                     // forget the move: it is made
	moveForget                   // the chat ended: forget the move, free what it leased
	moveGiveBack                 // the customer answered on WhatsApp before being taken out: the SMS lease goes back
	moveFail                     // no SMS numbers: the customer is unreachable
)

// decideMove names the next step of c's recorded move to SMS (sms: SMS numbers are configured). Each
// step is recorded once done, so that a run after a crash resumes where the last one stopped:
//
//	move recorded \ chat      starting, ending  final   invited               connecting, connected
//	no SMS number yet          wait              forget  lease (no SMS: fail)  give back
//	SMS number leased          wait              forget  remove                give back
//	WhatsApp participant out   wait              forget  add                   add
//	SMS participant in         wait              forget  invite, then done     done
func decideMove(c Chat, sms bool) MoveStep {
	f := c.Fallback
	switch {
	case f == nil || c.State == StateStarting || c.Ending != nil:
		return moveWait
	case c.State.Final():
		return moveForget
	case c.relaying() && !f.Removed:
		// The customer answered (on WhatsApp) before the move took them out of it: they stay there.
		return moveGiveBack
	case f.Number == "" && !sms:
		return moveFail
	case f.Number == "":
		return moveLease
	case !f.Removed:
		return moveRemove
	case !f.Added:
		return moveAdd
	case c.State == StateInvited:
		return moveInvite
	}
	return moveDone
}

// CopyOutcome is how a held message's copy went.
type CopyOutcome int

const (
	copySent    CopyOutcome = iota + 1
	copyClosed              // the conversation closed meanwhile
	copyRefused             // Twilio refused it for good
	copyFailed              // Twilio away, or the call's outcome unknown: the next run looks for it
)

// countResent is decideCopied's answer for a message sent again; the drop reasons for the others.
const countResent = "resent"

// decideResend picks the party's next held message to send again — the oldest, once the chat relays,
// it is not early, and the party's window, w, reopened after it was written — and marks it Sending
// before its copy is made; look says it was marked already (an earlier run may have made the copy:
// looked for by its marker first). due is false when none is to go now.
func decideResend(c *Chat, role string, w Window) (h Held, look, due bool) {
	p := c.party(role)
	if !c.relaying() || len(p.Held) == 0 || p.Held[0].Early || !w.ReopenedAfter(p.Held[0].Created) {
		return Held{}, false, false
	}
	look = p.Held[0].Sending
	p.Held[0].Sending = true
	return p.Held[0], look, true
}

// decideCopied records how the copy of the party's held message sid went: sent, or dropped (the
// conversation closed, Twilio refused it, or it failed maxCopyAttempts runs), it leaves the hold and
// is counted — once, by whoever takes it out: an end that came meanwhile moved it to Settling, which
// counts it then. A copy that failed for a while counts an attempt and stays marked. It returns what
// to count: countResent, a drop reason, or "".
func decideCopied(c *Chat, role, sid string, outcome CopyOutcome) string {
	hs := &c.party(role).Held
	if outcome == copyFailed {
		i := slices.IndexFunc(*hs, func(h Held) bool { return h.MessageSid == sid })
		if i < 0 {
			return ""
		}
		if (*hs)[i].Attempts++; (*hs)[i].Attempts < maxCopyAttempts {
			return ""
		}
		// Failed run after run: dropped as refused, so that the messages behind it go (a copy that
		// went through after all is found by its marker no more: counted dropped).
		outcome = copyRefused
	}
	if !removeHeld(hs, sid) {
		return ""
	}
	switch outcome {
	case copySent:
		return countResent
	case copyClosed:
		return DropClosed
	}
	return DropRefused
}

// decideNudge reports whether the party is to be nudged now, and records it (Nudging, NudgedAt,
// NudgedFor) when so: a message waits for them that their window, w, does not reach, the chat relays,
// no nudge is under way, and they were not nudged since they last wrote — once per closed window.
func decideNudge(c *Chat, role string, w Window, now time.Time) bool {
	p := c.party(role)
	waiting := slices.ContainsFunc(p.Held, func(h Held) bool { return !h.Early && !w.ReopenedAfter(h.Created) })
	nudged := !p.NudgedAt.IsZero() && !w.LastInbound.After(p.NudgedAt)
	if !c.relaying() || !waiting || p.Nudging || nudged {
		return false
	}
	p.Nudging, p.NudgedAt, p.NudgedFor = true, now, w.LastInbound
	return true
}
