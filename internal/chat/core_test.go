package chat

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/guard"
)

// What happens to a chat in each state when each input arrives: the core as a table, no fakes.
func TestCoreDecides(t *testing.T) {
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	closedEnded := Ending{State: StateClosed, Reason: ReasonEnded}
	declined := Ending{State: StateDeclined, Reason: ReasonDeclined}
	failed := Ending{State: StateFailed, Reason: ReasonFailed, Error: &Failure{Detail: "gave up"}}
	expired := Ending{State: StateClosed, Reason: ReasonExpired}
	started := Input{Kind: InStarted}
	advance := func(s State) Input { return Input{Kind: InAdvanced, To: Ending{State: s}} }
	ask := func(e Ending) Input { return Input{Kind: InEndAsked, To: e} }
	closedBy := func(e Ending) Input { return Input{Kind: InClosed, To: e} }
	final := []Effect{EffectRelease, EffectNotify}
	for _, tt := range []struct {
		state   State
		mode    string
		ending  *Ending
		in      Input
		want    State
		reason  string
		ends    *Ending // the ending recorded after
		effects []Effect
	}{
		{StateStarting, ModeOptIn, nil, started, StateInvited, "", nil, []Effect{EffectNotify}},
		{StateStarting, ModeDirect, nil, started, StateConnected, "", nil, []Effect{EffectNotify}},
		{StateStarting, ModeOptIn, &closedEnded, started, StateStarting, "", &closedEnded, nil},
		{StateStarting, ModeOptIn, nil, advance(StateConnecting), StateStarting, "", nil, nil},
		{StateStarting, ModeOptIn, nil, ask(closedEnded), StateStarting, "", &closedEnded, []Effect{EffectClose}},
		{StateStarting, ModeOptIn, nil, ask(declined), StateStarting, "", nil, nil},
		{StateStarting, ModeOptIn, nil, closedBy(expired), StateClosed, ReasonExpired, nil, final},
		{StateStarting, ModeOptIn, &declined, closedBy(expired), StateClosed, ReasonEnded, nil, final},
		{StateInvited, ModeOptIn, nil, started, StateInvited, "", nil, nil},
		{StateInvited, ModeOptIn, nil, advance(StateConnecting), StateConnecting, "", nil, nil},
		{StateInvited, ModeOptIn, nil, advance(StateConnected), StateInvited, "", nil, nil},
		{StateInvited, ModeOptIn, nil, ask(declined), StateInvited, "", &declined, []Effect{EffectClose}},
		{StateInvited, ModeOptIn, &declined, ask(closedEnded), StateInvited, "", &declined, nil},
		{StateInvited, ModeOptIn, &declined, advance(StateConnecting), StateInvited, "", &declined, nil},
		{StateInvited, ModeOptIn, &declined, closedBy(expired), StateDeclined, ReasonDeclined, nil, final},
		{StateInvited, ModeOptIn, nil, closedBy(expired), StateClosed, ReasonExpired, nil, final},
		{StateConnecting, ModeOptIn, nil, advance(StateConnected), StateConnected, "", nil, []Effect{EffectNotify}},
		{StateConnecting, ModeOptIn, nil, ask(failed), StateConnecting, "", &failed, []Effect{EffectClose}},
		{StateConnecting, ModeOptIn, &failed, closedBy(closedEnded), StateFailed, ReasonFailed, nil, final},
		{StateConnected, ModeOptIn, nil, ask(failed), StateConnected, "", nil, nil},
		{StateConnected, ModeOptIn, nil, ask(declined), StateConnected, "", nil, nil},
		{StateConnected, ModeOptIn, nil, ask(closedEnded), StateConnected, "", &closedEnded, []Effect{EffectClose}},
		{StateConnected, ModeOptIn, nil, closedBy(expired), StateClosed, ReasonExpired, nil, final},
		{StateDeclined, ModeOptIn, nil, closedBy(expired), StateDeclined, "", nil, nil},
		{StateClosed, ModeOptIn, nil, ask(closedEnded), StateClosed, "", nil, nil},
		{StateFailed, ModeOptIn, nil, started, StateFailed, "", nil, nil},
	} {
		name := fmt.Sprintf("%s(%s, ending %v) + %v", tt.state, tt.mode, tt.ending, tt.in)
		c := Chat{ID: "order-1", Mode: tt.mode, State: tt.state, Ending: tt.ending, History: []Transition{{State: tt.state}}}
		d := decide(&c, tt.in, at, true)
		if c.State != tt.want || c.Reason != tt.reason {
			t.Errorf("%s: %s/%s, want %s/%s", name, c.State, c.Reason, tt.want, tt.reason)
		}
		if fmt.Sprint(c.Ending) != fmt.Sprint(tt.ends) {
			t.Errorf("%s: ending %v, want %v", name, c.Ending, tt.ends)
		}
		if !slices.Equal(d.Effects, tt.effects) {
			t.Errorf("%s: effects %v, want %v", name, d.Effects, tt.effects)
		}
		moved := c.State != tt.state
		if d.Moved != moved || d.Changed != (moved || tt.ends != nil && tt.ending == nil) {
			t.Errorf("%s: moved %v changed %v", name, d.Moved, d.Changed)
		}
		if moved && (len(c.History) != 2 || c.History[1] != (Transition{State: c.State, At: at}) || !c.UpdatedAt.Equal(at)) {
			t.Errorf("%s: history %+v", name, c.History)
		}
		if moved && c.State.Final() != c.Release {
			t.Errorf("%s: release %v", name, c.Release)
		}
		if wantEvent := moved && eventTypes[c.State] != ""; wantEvent != (len(c.Pending) == 1) {
			t.Errorf("%s: events %v", name, eventTypesOf(c))
		}
	}
}

// A final move lets go of what the chat holds: held messages are dropped and counted, those being sent
// settle (counted once their copy is looked for), a move to SMS stops; the recorded failure is kept.
func TestCoreLetsGoAtTheEnd(t *testing.T) {
	c := Chat{ID: "order-1", State: StateConnected,
		Rider:    Party{Held: []Held{{MessageSid: "IMa"}, {MessageSid: "IMb", Sending: true}}, Nudging: true},
		Customer: Party{Held: []Held{{MessageSid: "IMc", Early: true}}},
		Fallback: &Fallback{Code: 63003}, Undelivered: []Undelivered{{MessageSid: "IMd"}}, Handled: Indexes{}.With(3)}
	d := decide(&c, Input{Kind: InClosed, To: Ending{State: StateClosed, Reason: ReasonEnded}}, time.Now(), false)
	if c.State != StateClosed || d.Dropped != 1 || !d.Has(EffectSettle) || !d.Has(EffectRelease) || d.Has(EffectNotify) {
		t.Fatalf("state %s dropped %d effects %v", c.State, d.Dropped, d.Effects)
	}
	if len(c.Rider.Held)+len(c.Customer.Held) != 0 || c.Rider.Nudging || c.Fallback != nil || c.Undelivered != nil || c.Handled != nil {
		t.Errorf("final chat keeps %+v", c)
	}
	if len(c.Settling) != 1 || c.Settling[0].MessageSid != "IMb" || c.Work != 1 || !c.Release {
		t.Errorf("settling %+v work %d release %v", c.Settling, c.Work, c.Release)
	}
}

// What is held, for whom, and when a party is nudged: the running chat's rules as tables, no fakes.
func TestCoreHoldsAndNudges(t *testing.T) {
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	cust, rid := "whatsapp:+15550001111", "whatsapp:+15550002222"
	msg := func(sid, author string) Message {
		return Message{Sid: sid, Author: author, Body: "gate code 4411", Index: 7, Created: at.Add(-time.Minute)}
	}
	for _, tt := range []struct {
		name    string
		state   State
		answer  string
		m       Message
		want    HoldDecision
		early   bool
		handled bool
	}{
		{"the customer's message, connected", StateConnected, "", msg("IMa", cust), HoldDecision{Added: true, Counted: true, For: roleRider}, false, true},
		{"the rider's message, connected", StateConnected, "", msg("IMa", rid), HoldDecision{Added: true, Counted: true, For: roleCustomer}, false, true},
		{"the customer's, invited: early", StateInvited, "", msg("IMa", cust), HoldDecision{Added: true, For: roleRider}, true, true},
		{"the rider's, invited: never", StateInvited, "", msg("IMa", rid), HoldDecision{}, false, true},
		{"the answer", StateConnecting, "IMa", msg("IMa", cust), HoldDecision{}, false, true},
		{"a system message", StateConnected, "", msg("IMa", ""), HoldDecision{}, false, true},
		{"a final chat", StateClosed, "", msg("IMa", cust), HoldDecision{}, false, false},
		{"a starting chat", StateStarting, "", msg("IMa", cust), HoldDecision{}, false, true},
	} {
		c := Chat{State: tt.state, Answer: tt.answer, Customer: Party{Address: cust}, Rider: Party{Address: rid},
			Undelivered: []Undelivered{{MessageSid: "IMa", Code: codeWindowClosed}}}
		d := decideHold(&c, tt.m, "IMa", at, 50, 64<<10)
		if d != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, d, tt.want)
		}
		if len(c.Undelivered) != 0 || c.Handled.Has(7) != tt.handled {
			t.Errorf("%s: failure left %v, handled %v", tt.name, c.Undelivered, c.Handled.Has(7))
		}
		if d.Added {
			h := c.party(d.For).Held
			if len(h) != 1 || h[0].Early != tt.early || !h[0].HeldAt.Equal(at) {
				t.Errorf("%s: held %+v", tt.name, h)
			}
			if again := decideHold(&c, tt.m, "IMa", at, 50, 64<<10); again.Added {
				t.Errorf("%s: held twice", tt.name)
			}
			// Sent again and out of the hold, a late repeat of its failure holds nothing.
			c.party(d.For).Held = nil
			if again := decideHold(&c, tt.m, "IMa", at, 50, 64<<10); again.Added {
				t.Errorf("%s: held again after it was acted on", tt.name)
			}
		}
	}
	// The bound: the oldest go first, early ones not counted.
	c := Chat{State: StateConnected, Customer: Party{Address: cust}, Rider: Party{Address: rid,
		Held: []Held{{MessageSid: "IM1", Index: 1, Early: true}, {MessageSid: "IM2", Index: 2}}}}
	if d := decideHold(&c, Message{Sid: "IM3", Author: cust, Index: 3}, "IM3", at, 2, 64<<10); d.Dropped != 0 || len(c.Rider.Held) != 2 || c.Rider.Held[0].MessageSid != "IM2" {
		t.Errorf("bound: %+v held %+v", d, c.Rider.Held)
	}

	held := []Held{{MessageSid: "IMa", Created: at}}
	for _, tt := range []struct {
		name      string
		state     State
		p         Party
		last      time.Time
		want      bool
		nudgedFor time.Time
	}{
		{"held, window never seen", StateConnected, Party{Held: held}, time.Time{}, true, time.Time{}},
		{"held, window closed", StateConnected, Party{Held: held}, at.Add(-25 * time.Hour), true, at.Add(-25 * time.Hour)},
		{"the party wrote after the message", StateConnected, Party{Held: held}, at.Add(time.Second), false, time.Time{}},
		{"nothing held", StateConnected, Party{}, time.Time{}, false, time.Time{}},
		{"only early ones", StateConnected, Party{Held: []Held{{MessageSid: "IMa", Created: at, Early: true}}}, time.Time{}, false, time.Time{}},
		{"a nudge under way", StateConnected, Party{Held: held, Nudging: true}, time.Time{}, false, time.Time{}},
		{"nudged, not written since", StateConnected, Party{Held: held, NudgedAt: at.Add(-time.Hour)}, at.Add(-48 * time.Hour), false, time.Time{}},
		{"nudged, written since, closed again", StateConnected, Party{Held: held, NudgedAt: at.Add(-50 * time.Hour)}, at.Add(-48 * time.Hour), true, at.Add(-48 * time.Hour)},
		{"invited", StateInvited, Party{Held: held}, time.Time{}, false, time.Time{}},
	} {
		c := Chat{State: tt.state, Rider: tt.p}
		got := decideNudge(&c, roleRider, Window{LastInbound: tt.last}, at)
		if got != tt.want {
			t.Errorf("%s: nudge %v, want %v", tt.name, got, tt.want)
		}
		if got && (!c.Rider.Nudging || !c.Rider.NudgedAt.Equal(at) || !c.Rider.NudgedFor.Equal(tt.nudgedFor)) {
			t.Errorf("%s: recorded %+v", tt.name, c.Rider)
		}
	}
}

// Who may call whom: only the two parties of a connected chat, each on the business number they know
// the chat by, each reaching the other from the other's; a call is recorded and told once.
func TestCoreRoutesCalls(t *testing.T) {
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	const cust, rid, custNum, ridNum = "whatsapp:+447700900001", "+447700900002", "whatsapp:+15550000001", "+15550000002"
	toRider := CallRoute{ChatID: "order-1", Caller: roleCustomer, Callee: roleRider, CallerID: "+15550000002", Number: "+447700900002"}
	toCustomer := CallRoute{ChatID: "order-1", Caller: roleRider, Callee: roleCustomer, CallerID: "+15550000001", Number: "+447700900001"}
	ended := &Ending{State: StateClosed, Reason: ReasonEnded}
	for _, tt := range []struct {
		name     string
		state    State
		ending   *Ending
		from, to string
		calls    []Call
		want     CallRoute
		refused  string
		recorded bool
	}{
		{"the customer calls the rider", StateConnected, nil, "+447700900001", "+15550000001", nil, toRider, "", true},
		{"the rider calls the customer", StateConnected, nil, "+447700900002", "+15550000002", nil, toCustomer, "", true},
		{"the customer on the rider's number", StateConnected, nil, "+447700900001", "+15550000002", nil, CallRoute{}, CallUnknown, false},
		{"a stranger", StateConnected, nil, "+447700900999", "+15550000001", nil, CallRoute{}, CallUnknown, false},
		{"invited: the customer has not agreed", StateInvited, nil, "+447700900002", "+15550000002", nil, CallRoute{}, CallNotConnected, false},
		{"connecting", StateConnecting, nil, "+447700900001", "+15550000001", nil, CallRoute{}, CallNotConnected, false},
		{"declined", StateDeclined, nil, "+447700900002", "+15550000002", nil, CallRoute{}, CallChatEnded, false},
		{"closed", StateClosed, nil, "+447700900001", "+15550000001", nil, CallRoute{}, CallChatEnded, false},
		{"ending", StateConnected, ended, "+447700900002", "+15550000002", nil, CallRoute{}, CallChatEnded, false},
		{"the same call asked again", StateConnected, nil, "+447700900002", "+15550000002", []Call{{Sid: "CA1", From: roleRider, At: at}}, toCustomer, "", false},
	} {
		c := Chat{ID: "order-1", State: tt.state, Ending: tt.ending, Calls: slices.Clone(tt.calls),
			Customer: Party{Address: cust, ProxyAddress: custNum}, Rider: Party{Address: rid, ProxyAddress: ridNum}}
		route, d, err := decideCall(&c, CallRequest{Sid: "CA1", From: tt.from, To: tt.to}, at, true)
		var refused *CallRefusedError
		switch {
		case tt.refused != "" && (!errors.As(err, &refused) || refused.Reason != tt.refused):
			t.Errorf("%s: err %v, want refused %s", tt.name, err, tt.refused)
		case tt.refused == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		}
		if route != tt.want {
			t.Errorf("%s: route %+v, want %+v", tt.name, route, tt.want)
		}
		if d.Changed != tt.recorded || d.Has(EffectNotify) != tt.recorded {
			t.Errorf("%s: decision %+v, want recorded %v", tt.name, d, tt.recorded)
		}
		if tt.recorded && (len(c.Calls) != 1 || c.Calls[0] != (Call{Sid: "CA1", From: route.Caller, At: at}) ||
			len(c.Pending) != 1 || c.Pending[0].Type != EventCallStarted) {
			t.Errorf("%s: calls %+v, pending %d", tt.name, c.Calls, len(c.Pending))
		}
		if !tt.recorded && len(c.Pending) != 0 {
			t.Errorf("%s: %d events, want none", tt.name, len(c.Pending))
		}
	}
}

// A call's outcome is recorded once, also on a chat that ended during the call (the call may finish;
// the state stays final).
func TestCoreRecordsACallOnce(t *testing.T) {
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	c := Chat{ID: "order-1", State: StateClosed, Reason: ReasonEnded, Calls: []Call{{Sid: "CA1", From: roleRider, At: at}}}
	o := CallOutcome{ChatID: "order-1", Sid: "CA1", Status: "completed", Duration: 42 * time.Second}
	d := decideCallEnded(&c, o, at.Add(time.Minute), true)
	want := Call{Sid: "CA1", From: roleRider, At: at, Status: "completed", Seconds: 42, EndedAt: at.Add(time.Minute)}
	if !d.Changed || !d.Has(EffectNotify) || c.Calls[0] != want || c.State != StateClosed {
		t.Fatalf("decision %+v, call %+v, state %s", d, c.Calls[0], c.State)
	}
	if len(c.Pending) != 1 || c.Pending[0].Type != EventCallEnded ||
		!strings.Contains(string(c.Pending[0].Data), `"call":{"sid":"CA1","from":"rider","to":"customer","at":"2026-12-04T09:00:00Z","status":"completed","duration":42,"ended_at":"2026-12-04T09:01:00Z"}`) {
		t.Fatalf("pending %+v", c.Pending)
	}
	if d := decideCallEnded(&c, CallOutcome{ChatID: "order-1", Sid: "CA1", Status: "failed"}, at.Add(2*time.Minute), true); d.Changed || c.Calls[0] != want || len(c.Pending) != 1 {
		t.Fatalf("a repeated callback changed the call: %+v, %+v", d, c.Calls[0])
	}
	if d := decideCallEnded(&c, CallOutcome{ChatID: "order-1", Sid: "CA9", Status: "completed"}, at, true); d.Changed {
		t.Fatalf("a callback for a call never routed was recorded")
	}
}

// The guard's record: a party's message it found something in is recorded without its body; a
// blocked one owes its author a notice, sent to them alone (authored by the other party).
func TestCoreGuards(t *testing.T) {
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	const cust, rid = "whatsapp:+447911000001", "whatsapp:+15550002222"
	found := guard.Result{Body: "call me on [number hidden]", Changed: true, Action: guard.Redact, Found: map[guard.Kind]int{guard.Number: 1}}
	blocked := guard.Result{Body: "call me on +44 7911 123456", Blocked: true, Reason: "not sent: it had a phone number", Action: guard.Block,
		Found: map[guard.Kind]int{guard.Number: 1, guard.Email: 1}}
	for _, tt := range []struct {
		name    string
		state   State
		author  string
		res     guard.Result
		record  *Guarded
		notice  *Notice
		effects []Effect
	}{
		{"redacted", StateConnected, rid, found, &Guarded{At: at, From: roleRider, Kinds: []string{"number"}, Action: "redact"}, nil, nil},
		{"blocked", StateConnected, cust, blocked, &Guarded{At: at, From: roleCustomer, Kinds: []string{"email", "number"}, Action: "block"},
			&Notice{ID: "g1", To: roleCustomer, Body: "not sent: it had a phone number"}, []Effect{EffectTell}},
		{"blocked while invited", StateInvited, cust, blocked, &Guarded{At: at, From: roleCustomer, Kinds: []string{"email", "number"}, Action: "block"},
			&Notice{ID: "g1", To: roleCustomer, Body: "not sent: it had a phone number"}, []Effect{EffectTell}},
		{"nothing found", StateConnected, rid, guard.Result{Body: "gate code 4411"}, nil, nil, nil},
		{"no party's", StateConnected, "whatsapp:+15550009999", found, nil, nil, nil},
		{"final", StateClosed, rid, blocked, nil, nil, nil},
	} {
		c := Chat{ID: "order-1", State: tt.state, Customer: Party{Address: cust}, Rider: Party{Address: rid}}
		d := decideGuard(&c, tt.author, tt.res, at, "g1")
		if d.Changed != (tt.record != nil) || !slices.Equal(d.Effects, tt.effects) {
			t.Errorf("%s: decision %+v", tt.name, d)
		}
		if tt.record == nil {
			if len(c.Guarded) != 0 || len(c.Notices) != 0 || c.GuardedCount != 0 {
				t.Errorf("%s: recorded %+v %+v", tt.name, c.Guarded, c.Notices)
			}
			continue
		}
		if len(c.Guarded) != 1 || !reflect.DeepEqual(c.Guarded[0], *tt.record) || c.GuardedCount != 1 {
			t.Errorf("%s: guarded %+v, want %+v", tt.name, c.Guarded, *tt.record)
		}
		if tt.notice == nil && len(c.Notices) != 0 || tt.notice != nil && (len(c.Notices) != 1 || c.Notices[0] != *tt.notice) {
			t.Errorf("%s: notices %+v, want %+v", tt.name, c.Notices, tt.notice)
		}
	}
}

// A party writing to the chat's number after the end is answered once per period, never for a
// keyword carriers answer, never while the chat is open; each answer is told to the platform.
func TestCoreAnswersAfterTheEnd(t *testing.T) {
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		state  State
		last   time.Time
		body   string
		answer bool
	}{
		{"ended", StateClosed, time.Time{}, "hello?", true},
		{"declined", StateDeclined, time.Time{}, "sorry, yes after all", true},
		{"open", StateConnected, time.Time{}, "hello?", false},
		{"answered 59 minutes ago", StateClosed, at.Add(-59 * time.Minute), "hello?", false},
		{"answered an hour ago", StateClosed, at.Add(-time.Hour), "hello?", true},
		{"STOP", StateClosed, time.Time{}, "STOP", false},
		{"stop.", StateClosed, time.Time{}, " stop. ", false},
		{"Help!", StateClosed, time.Time{}, "Help!", false},
		{"stop sending me these", StateClosed, time.Time{}, "stop sending me these", true},
	} {
		c := Chat{ID: "order-1", State: tt.state, Rider: Party{Address: "+15550002222", AfterEndAt: tt.last}}
		d := decideAfterEnd(&c, roleRider, tt.body, at, time.Hour, true)
		if d.Changed != tt.answer || d.Has(EffectNotify) != tt.answer {
			t.Errorf("%s: decision %+v, want answered %v", tt.name, d, tt.answer)
			continue
		}
		if !tt.answer {
			if c.Rider.AfterEndAt != tt.last || len(c.Pending) != 0 {
				t.Errorf("%s: changed the chat", tt.name)
			}
			continue
		}
		if c.Rider.AfterEndAt != at || len(c.Pending) != 1 || c.Pending[0].Type != EventMessageAfterEnd ||
			!strings.Contains(string(c.Pending[0].Data), `"message":{"party":"rider","at":"2026-12-04T09:00:00Z"}`) {
			t.Errorf("%s: after %v, pending %+v", tt.name, c.Rider.AfterEndAt, c.Pending)
		}
	}
}

// The move to SMS, step by step: what comes next for each record of the move in each state.
func TestCoreMovesToSMS(t *testing.T) {
	ending := &Ending{State: StateClosed, Reason: ReasonEnded}
	none := &Fallback{Code: 63003, From: customer}
	leased := &Fallback{Code: 63003, From: customer, Number: "+15550109001"}
	removed := &Fallback{Code: 63003, From: customer, Number: "+15550109001", Removed: true}
	added := &Fallback{Code: 63003, From: customer, Number: "+15550109001", Removed: true, Added: true}
	for _, tt := range []struct {
		f      *Fallback
		state  State
		ending *Ending
		sms    bool
		want   MoveStep
	}{
		{nil, StateInvited, nil, true, moveWait},
		{none, StateStarting, nil, true, moveWait},
		{leased, StateInvited, ending, true, moveWait},
		{none, StateClosed, nil, true, moveForget},
		{added, StateFailed, nil, true, moveForget},
		{none, StateInvited, nil, true, moveLease},
		{none, StateInvited, nil, false, moveFail},
		{none, StateConnected, nil, true, moveGiveBack},
		{leased, StateConnecting, nil, true, moveGiveBack},
		{leased, StateInvited, nil, true, moveRemove},
		{removed, StateInvited, nil, true, moveAdd},
		{removed, StateConnected, nil, true, moveAdd},
		{added, StateInvited, nil, true, moveInvite},
		{added, StateConnected, nil, true, moveDone},
	} {
		c := Chat{ID: "order-1", State: tt.state, Ending: tt.ending, Fallback: tt.f}
		if got := decideMove(c, tt.sms); got != tt.want {
			t.Errorf("%+v in %s (ending %v, sms %v): step %d, want %d", tt.f, tt.state, tt.ending, tt.sms, got, tt.want)
		}
	}
}

// Re-sending: which held message goes (the oldest, once the party's window reopened after it), marked
// before its copy; how its copy went decides whether it leaves the hold, counted once.
func TestCoreResends(t *testing.T) {
	at := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	held := func() []Held {
		return []Held{{MessageSid: "IM1", Index: 3, Created: at}, {MessageSid: "IM2", Index: 4, Created: at.Add(time.Minute)}}
	}
	open := Window{LastInbound: at.Add(2 * time.Minute)}
	closedWin := Window{LastInbound: at.Add(-time.Hour)}
	c := Chat{State: StateConnected, Customer: Party{Held: held()}}
	if _, _, due := decideResend(&c, roleCustomer, closedWin); due || c.Customer.Held[0].Sending {
		t.Fatal("a message went out to a closed window")
	}
	h, look, due := decideResend(&c, roleCustomer, open)
	if !due || look || h.MessageSid != "IM1" || !c.Customer.Held[0].Sending {
		t.Fatalf("first: %+v look %v due %v", h, look, due)
	}
	if h, look, _ = decideResend(&c, roleCustomer, open); !look || h.MessageSid != "IM1" {
		t.Fatalf("again: %+v look %v: a message marked is looked for first", h, look)
	}
	invited := Chat{State: StateInvited, Customer: Party{Held: held()}}
	if _, _, due := decideResend(&invited, roleCustomer, open); due {
		t.Fatal("re-sent before the chat relays")
	}
	for _, tt := range []struct {
		name     string
		outcome  CopyOutcome
		attempts int
		counted  string
		left     int
	}{
		{"sent", copySent, 0, countResent, 1},
		{"closed", copyClosed, 0, DropClosed, 1},
		{"refused", copyRefused, 0, DropRefused, 1},
		{"failed once", copyFailed, 0, "", 2},
		{"failed the last time", copyFailed, maxCopyAttempts - 1, DropRefused, 1},
	} {
		c := Chat{State: StateConnected, Customer: Party{Held: held()}}
		c.Customer.Held[0].Attempts, c.Customer.Held[0].Sending = tt.attempts, true
		if got := decideCopied(&c, roleCustomer, "IM1", tt.outcome); got != tt.counted || len(c.Customer.Held) != tt.left {
			t.Errorf("%s: counted %q, %d left; want %q, %d", tt.name, got, len(c.Customer.Held), tt.counted, tt.left)
		}
		if tt.left == 2 && c.Customer.Held[0].Attempts != tt.attempts+1 {
			t.Errorf("%s: attempts %d", tt.name, c.Customer.Held[0].Attempts)
		}
		if again := decideCopied(&c, roleCustomer, "IM1", copySent); tt.left == 1 && again != "" {
			t.Errorf("%s: counted twice (%q)", tt.name, again)
		}
	}
}

// Failure reports are recorded once each, never for a message acted on, and at most maxUndelivered
// wait; a customer not on WhatsApp is moved only while they have not answered; the answer is recorded
// once, its early hold let go and the others counted.
func TestCoreReadsFailuresAndTheAnswer(t *testing.T) {
	c := Chat{State: StateConnected, Handled: Indexes(nil).With(7)}
	n, over := decideFailed(&c, []Undelivered{{MessageSid: "IM1", Code: 63016}, {MessageSid: "IM1", Code: 63016},
		{MessageSid: "IM7", Code: 63016, Index: 7, Indexed: true}})
	if n != 1 || over != 0 || len(c.Undelivered) != 1 || c.Work != 1 {
		t.Errorf("recorded %d (over %d): %+v, work %d", n, over, c.Undelivered, c.Work)
	}
	full := Chat{State: StateConnected, Undelivered: make([]Undelivered, maxUndelivered)}
	if n, over := decideFailed(&full, []Undelivered{{MessageSid: "IMx"}}); n != 0 || over != 1 {
		t.Errorf("past the bound: recorded %d, over %d", n, over)
	}
	if n, _ := decideFailed(&Chat{State: StateClosed}, []Undelivered{{MessageSid: "IM1"}}); n != 0 {
		t.Error("a final chat recorded a failure")
	}
	riderMsg := Message{Sid: "IM2", Author: "whatsapp:+15550002222"}
	for _, tt := range []struct {
		state State
		m     Message
		moved bool
	}{
		{StateInvited, riderMsg, true},
		{StateStarting, riderMsg, true},
		{StateConnected, riderMsg, false},
		{StateInvited, Message{Sid: "IM3", Author: customer}, false},
	} {
		c := Chat{State: tt.state, Customer: Party{Address: customer}, Rider: Party{Address: "whatsapp:+15550002222"}}
		if got := decideUnreachable(&c, tt.m, 63003); got != tt.moved || (c.Fallback != nil) != tt.moved {
			t.Errorf("%s, author %s: moved %v, want %v", tt.state, tt.m.Author, got, tt.moved)
		}
		if tt.moved && *c.Fallback != (Fallback{Code: 63003, From: customer}) {
			t.Errorf("%s: fallback %+v", tt.state, *c.Fallback)
		}
	}
	a := Chat{State: StateConnecting, Rider: Party{Held: []Held{{MessageSid: "IMyes", Early: true}, {MessageSid: "IMmore", Early: true}}}}
	if n := decideAnswered(&a, "IMyes"); n != 1 || a.Answer != "IMyes" || len(a.Rider.Held) != 1 || a.Rider.Held[0].Early {
		t.Errorf("answered: promoted %d, %+v", n, a.Rider.Held)
	}
	if n := decideAnswered(&a, "IMother"); n != 0 || a.Answer != "IMyes" {
		t.Errorf("a second answer changed the first: %d %s", n, a.Answer)
	}
}

// A withheld caller is told apart from a stranger: empty, a word, or the keypad digits Twilio long sent
// for one (ANONYMOUS as +266696687).
func TestWithheldCallers(t *testing.T) {
	for from, want := range map[string]bool{
		"": true, "anonymous": true, "Restricted": true, "+266696687": true, "+7378742833": true, "+2562533": true,
		"+86282452253": true, "+8656696": true, "+7748283": true,
		"+15550001111": false, "+447911123456": false,
	} {
		if got := withheld(from); got != want {
			t.Errorf("withheld(%q) = %v, want %v", from, got, want)
		}
	}
}

// A notice leaves the chat once sent, refused for good, its conversation closed, or failing past its
// attempts — one Twilio refuses never holds up the next — and at most maxNotices wait.
func TestCoreTellsOnce(t *testing.T) {
	for _, tt := range []struct {
		name     string
		outcome  CopyOutcome
		attempts int
		kept     bool
	}{
		{"sent", copySent, 0, false},
		{"refused", copyRefused, 0, false},
		{"closed", copyClosed, 0, false},
		{"failed once", copyFailed, 0, true},
		{"failed the last time", copyFailed, maxCopyAttempts - 1, false},
	} {
		c := Chat{Notices: []Notice{{ID: "n1", Attempts: tt.attempts}, {ID: "n2"}}}
		if got := decideTold(&c, "n1", tt.outcome); got != tt.kept || (len(c.Notices) == 2) != tt.kept || c.Notices[len(c.Notices)-1].ID != "n2" {
			t.Errorf("%s: kept %v, notices %+v", tt.name, got, c.Notices)
		}
	}
	blocked := guard.Result{Blocked: true, Reason: "not sent", Action: guard.Block, Found: map[guard.Kind]int{guard.Number: 1}}
	c := Chat{State: StateConnected, Rider: Party{Address: "+15550002222"}}
	for i := range maxNotices + 2 {
		decideGuard(&c, "+15550002222", blocked, time.Time{}, fmt.Sprintf("n%d", i))
	}
	if len(c.Notices) != maxNotices || c.Notices[0].ID != "n2" || c.GuardedCount != maxNotices+2 || c.NoticesDropped != 2 {
		t.Errorf("notices %+v (count %d, %d dropped), want the newest %d, 2 dropped", c.Notices, c.GuardedCount, c.NoticesDropped, maxNotices)
	}
}
