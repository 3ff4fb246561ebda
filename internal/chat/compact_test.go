package chat

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// A finished chat reads back from its compact form with the same View, fingerprint and sequence; a
// failed start keeps its steps; an open chat, or one with events to deliver, is never compacted.
func TestFinishedRoundTrip(t *testing.T) {
	at := time.UnixMilli(1795408994627).UTC()
	base := Chat{ID: "order-1", ConversationSid: "CH00000000000000000000000000000001", Mode: ModeOptIn, State: StateClosed,
		Reason: ReasonExpired, Customer: Party{Address: "whatsapp:+15550001111", ProxyAddress: "whatsapp:+15550100000", Name: "Ana"},
		Rider: Party{Address: "whatsapp:+15550002222", ProxyAddress: "whatsapp:+15550100000"}, TTL: time.Hour,
		Metadata: []byte(`{"order":1}`), CreatedAt: at, UpdatedAt: at.Add(time.Minute), ExpiresAt: at.Add(time.Hour),
		Fingerprint: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Seq: 42,
		History: []Transition{{StateStarting, at, ""}, {StateInvited, at.Add(time.Second), ""}, {StateClosed, at.Add(time.Minute), ""}},
		Steps:   map[string]string{stepConversation: "CH1"}, Invite: Invite{ContentSid: "HX1"}}
	failed := base
	failed.State, failed.Reason, failed.History = StateFailed, ReasonFailed, []Transition{{StateStarting, at, ""}, {StateFailed, at.Add(time.Second), ""}}
	failed.Error = &Failure{TwilioCode: 50416, Detail: "step customer: pair in use", Step: stepCustomer}
	direct := base
	direct.Mode, direct.Metadata, direct.Fingerprint = ModeDirect, nil, "fp-not-hex"
	direct.Customer.ProxyAddress, direct.Customer.Name = "", ""
	moved := base // a customer moved to SMS, both parties nudged once
	moved.Customer.Address, moved.Customer.ProxyAddress = "+15550001111", "+15550109999"
	moved.History = []Transition{{StateStarting, at, ""}, {StateInvited, at.Add(time.Second), ""},
		{StateInvited, at.Add(2 * time.Second), ChannelSMS}, {StateClosed, at.Add(time.Minute), ""}}
	moved.Customer.NudgedAt, moved.Rider.NudgedAt = at.Add(3*time.Second), at.Add(4*time.Second)
	moved.Rider.Name = "Bruno da Silva ~ = " // spaces, and the packed forms' marks, in a name
	for name, c := range map[string]Chat{"closed": base, "failed start": failed, "direct": direct, "moved to sms and nudged": moved} {
		t.Run(name, func(t *testing.T) {
			raw, err := MarshalFinished(c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := UnmarshalFinished(raw)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(got.View())
			b, _ := json.Marshal(c.View())
			if string(a) != string(b) || got.Fingerprint != c.Fingerprint || got.Seq != c.Seq {
				t.Errorf("read back\n%s %s %d\nwant\n%s %s %d", a, got.Fingerprint, got.Seq, b, c.Fingerprint, c.Seq)
			}
			// A failed start keeps its steps (the console shows which one failed); the others drop them.
			wantSteps := map[string]string{}
			if c.Error != nil {
				wantSteps = c.Steps
			}
			if !reflect.DeepEqual(got.Steps, wantSteps) {
				t.Errorf("steps %v, want %v", got.Steps, wantSteps)
			}
			if c.Error != nil && !reflect.DeepEqual(got.StartSteps(), c.StartSteps()) {
				t.Errorf("start steps %v, want %v", got.StartSteps(), c.StartSteps())
			}
		})
	}
	open := base
	open.State = StateConnected
	pending := base
	pending.Pending = []Event{{ID: "msg_1"}}
	for _, c := range []Chat{open, pending} {
		if _, err := MarshalFinished(c); err == nil {
			t.Errorf("compacted a chat that is not finished: %s, %d pending", c.State, len(c.Pending))
		}
	}
}

// A finished chat written before the packed forms (a conversation SID and addresses in full) still
// reads back: stores keep records for the retention across an upgrade. Packed, the same chat is smaller.
func TestFinishedEarlierForm(t *testing.T) {
	at := time.UnixMilli(1795408994627).UTC()
	c := Chat{ID: "order-1", ConversationSid: "CH00000000000000000000000000000001", Mode: ModeOptIn, State: StateClosed,
		Reason: ReasonExpired, Customer: Party{Address: "whatsapp:+15550001111", ProxyAddress: "whatsapp:+15550100000", Name: "Ana"},
		Rider: Party{Address: "whatsapp:+15550002222", ProxyAddress: "whatsapp:+15550100001"}, Metadata: []byte(`{"order":1}`),
		CreatedAt: at, UpdatedAt: at.Add(time.Minute), ExpiresAt: at.Add(time.Hour), Seq: 42,
		Fingerprint: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		History:     []Transition{{StateStarting, at, ""}, {StateInvited, at.Add(time.Second), ""}, {StateClosed, at.Add(time.Minute), ""}}}
	earlier := `{"i":"order-1","v":"CH00000000000000000000000000000001","s":"closed","r":"expired",` +
		`"c":["whatsapp:+15550001111","whatsapp:+15550100000","Ana"],"d":["whatsapp:+15550002222","whatsapp:+15550100001"],` +
		`"t":[1795408994627,60000,3600000],"x":{"order":1},"h":"0:0,1:1000,6:60000","g":"n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg","q":42}`
	got, err := UnmarshalFinished([]byte(earlier))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(got.View())
	b, _ := json.Marshal(c.View())
	if string(a) != string(b) || got.Fingerprint != c.Fingerprint || got.Seq != c.Seq {
		t.Errorf("earlier form reads back as\n%s\nwant\n%s", a, b)
	}
	packed, err := MarshalFinished(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(packed) >= len(earlier)-30 {
		t.Errorf("packed %d bytes, the earlier form %d: %s", len(packed), len(earlier), packed)
	}
}

// A compacted chat's start steps show as done when it got past its start.
func TestStartStepsOfACompactedChat(t *testing.T) {
	c := Chat{Mode: ModeOptIn, State: StateClosed, History: []Transition{{State: StateStarting}, {State: StateInvited}, {State: StateClosed}}}
	for _, s := range c.StartSteps() {
		if s.Status != "done" {
			t.Errorf("step %s is %s", s.Name, s.Status)
		}
	}
	c.History = []Transition{{State: StateStarting}, {State: StateClosed}}
	if s := c.StartSteps(); s[0].Status != "pending" {
		t.Errorf("a chat ended during its start shows %s", s[0].Status)
	}
}
