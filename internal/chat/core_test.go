package chat

import (
	"fmt"
	"slices"
	"testing"
	"time"
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
