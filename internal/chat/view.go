package chat

import (
	"cmp"
	"encoding/json"
	"slices"
	"time"
)

// View is a chat as the platform sees it, in the API's answers and in the events it is sent.
type View struct {
	ID              string           `json:"id"`
	Mode            string           `json:"mode"`
	ConversationSid *string          `json:"conversation_sid"`
	State           State            `json:"state"`
	Reason          *string          `json:"reason"`
	Customer        PartyView        `json:"customer"`
	Rider           PartyView        `json:"rider"`
	CreatedAt       time.Time        `json:"created_at"`
	UpdatedAt       time.Time        `json:"updated_at"`
	ExpiresAt       time.Time        `json:"expires_at"`
	Metadata        json.RawMessage  `json:"metadata"`
	Error           *FailureView     `json:"error"`
	History         []TransitionView `json:"history"`
	// Parked, when present, says the chat's recorded work (held messages, nudges, a move to SMS, a
	// release) failed through all its runs; the upkeep keeps trying.
	Parked *ParkedView `json:"parked,omitempty"`
	// Calls are the parties' calls through the chat's numbers, oldest first (the newest 20).
	Calls []CallView `json:"calls"`
	// Guarded are the messages the guard changed or blocked, oldest first (the newest 20), and
	// GuardedCount how many there were in all.
	Guarded      []GuardedView `json:"guarded"`
	GuardedCount int           `json:"guarded_count"`
}

// GuardedView is a message the guard changed or blocked: who wrote it, what kinds it hid, what was
// done (redact, block) — never the body.
type GuardedView struct {
	At     time.Time `json:"at"`
	From   string    `json:"from"`
	Kinds  []string  `json:"kinds"`
	Action string    `json:"action"`
}

// AfterEndView is what a chat.message_after_end event says of the message: who wrote, when; the body
// stays with Twilio (the platform reopens by starting a new chat).
type AfterEndView struct {
	Party string    `json:"party"`
	At    time.Time `json:"at"`
}

func afterEndData(c Chat, role string, at time.Time) []byte {
	data, _ := json.Marshal(struct {
		View
		Message AfterEndView `json:"message"`
	}{c.View(), AfterEndView{Party: role, At: at}})
	return data
}

// CallView is one call of a View: who called whom, and how it ended — no number.
type CallView struct {
	Sid  string    `json:"sid"`
	From string    `json:"from"`
	To   string    `json:"to"`
	At   time.Time `json:"at"`
	// Status is the Dial's outcome (completed, busy, no-answer, failed, canceled); nil while ringing
	// or talking. Duration is the talk time in seconds.
	Status   *string    `json:"status"`
	Duration int        `json:"duration"`
	EndedAt  *time.Time `json:"ended_at"`
}

func (c Call) view() CallView {
	v := CallView{Sid: c.Sid, From: c.From, To: other(c.From), At: c.At, Duration: c.Seconds}
	if c.Status != "" {
		v.Status = &c.Status
	}
	if !c.EndedAt.IsZero() {
		v.EndedAt = &c.EndedAt
	}
	return v
}

// PartyView is one side of a View.
type PartyView struct {
	Address string `json:"address"`
	// ProxyAddress is nil until a number is leased (a chat ended before its start leased one).
	ProxyAddress *string `json:"proxy_address"`
	Name         *string `json:"name"`
	// Channel is whatsapp or sms.
	Channel string `json:"channel"`
	// Held counts the messages held for this party (their window closed); NudgedAt is their last nudge.
	Held     int        `json:"held"`
	NudgedAt *time.Time `json:"nudged_at"`
}

// FailureView is what made a chat fail.
type FailureView struct {
	TwilioCode int    `json:"twilio_code"`
	Detail     string `json:"detail"`
	// Step is the start step that failed; nil when the chat failed during the opt-in.
	Step *string `json:"step"`
}

// TransitionView is one entry of a View's history.
type TransitionView struct {
	State State     `json:"state"`
	At    time.Time `json:"at"`
	// Channel is set on the entry that moved the customer to another channel (sms).
	Channel string `json:"channel,omitempty"`
}

// View returns the chat as the platform sees it.
func (c Chat) View() View {
	v := View{
		ID: c.ID, Mode: cmp.Or(c.Mode, ModeOptIn), State: c.State, Customer: c.Customer.view(), Rider: c.Rider.view(),
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, ExpiresAt: c.ExpiresAt,
		Metadata: json.RawMessage("null"), History: make([]TransitionView, 0, len(c.History)),
		Calls: make([]CallView, 0, len(c.Calls)), Guarded: make([]GuardedView, 0, len(c.Guarded)), GuardedCount: c.GuardedCount,
	}
	for _, g := range c.Guarded {
		v.Guarded = append(v.Guarded, GuardedView{At: g.At, From: g.From, Kinds: slices.Clone(g.Kinds), Action: g.Action})
	}
	for _, call := range c.Calls {
		v.Calls = append(v.Calls, call.view())
	}
	if c.ConversationSid != "" {
		v.ConversationSid = &c.ConversationSid
	}
	if c.Reason != "" {
		v.Reason = &c.Reason
	}
	if len(c.Metadata) > 0 {
		v.Metadata = c.Metadata
	}
	if c.Parked != nil {
		v.Parked = &ParkedView{At: c.Parked.At, Reason: c.Parked.Reason}
	}
	if c.Error != nil {
		v.Error = &FailureView{TwilioCode: c.Error.TwilioCode, Detail: c.Error.Detail}
		if c.Error.Step != "" {
			v.Error.Step = &c.Error.Step
		}
	}
	for _, t := range c.History {
		v.History = append(v.History, TransitionView{State: t.State, At: t.At, Channel: t.Channel})
	}
	return v
}

func (p Party) view() PartyView {
	v := PartyView{Address: p.Address, Channel: p.Channel(), Held: len(p.Held)}
	if !p.NudgedAt.IsZero() {
		v.NudgedAt = &p.NudgedAt
	}
	if p.ProxyAddress != "" {
		v.ProxyAddress = &p.ProxyAddress
	}
	if p.Name != "" {
		v.Name = &p.Name
	}
	return v
}

// StepView is one start step as an operator sees it.
type StepView struct {
	Name string
	// Status is "done", "failed", "skipped" (a direct chat invites nobody) or "pending".
	Status string
	// Result is what a done step left behind: a SID, the numbers leased, "added".
	Result string
}

// startSteps are the start's steps in the order they run.
var startSteps = []string{stepNumbers, stepConversation, stepMessageWebhook, stepLifecycleWebhook, stepCustomer, stepRider, stepInvite}

// StartSteps returns the chat's start steps in order, each with its outcome.
func (c Chat) StartSteps() []StepView {
	out := make([]StepView, 0, len(startSteps))
	started := slices.ContainsFunc(c.History, func(t Transition) bool { return t.State == StateInvited || t.State == StateConnected })
	for _, name := range startSteps {
		v := StepView{Name: name, Status: "pending"}
		switch ref, done := c.Steps[name]; {
		case done:
			v.Status, v.Result = "done", ref
		case c.Mode == ModeDirect && name == stepInvite:
			v.Status = "skipped"
		case started:
			v.Status = "done" // a finished chat keeps no step results
		case c.Error != nil && c.Error.Step == name:
			v.Status = "failed"
		}
		out = append(out, v)
	}
	return out
}

// ParkedView is a chat's parked work: since when, and why (masked).
type ParkedView struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}
