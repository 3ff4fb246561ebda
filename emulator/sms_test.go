package emulator

import (
	"errors"
	"net/url"
	"slices"
	"testing"

	"github.com/twilio/twilio-go/twiml"
)

// A message on a pair no active conversation holds goes to the number's SMS URL, signed, and each
// <Message> of the answer reaches the phone from the number.
func TestMessageAfterTheEnd(t *testing.T) {
	answer := ""
	svc := newService(t, func(string, url.Values) (int, string, string) { return 200, "text/xml", answer })
	h := newHarness(t)
	conv := h.story()
	if _, err := h.emu.Inbound(customer, business, "Thanks"); err != nil {
		t.Fatal(err)
	}
	if err := h.emu.CloseConversation(conv, "API"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.emu.Inbound(customer, business, "Hello?"); !errors.Is(err, ErrNoBinding) {
		t.Fatalf("a number without an SMS URL: %v", err)
	}
	h.emu.SetNumber(PhoneNumber{Number: business, SMSURL: svc.url("/webhooks/messaging")})
	if err := h.emu.SetPhone(customer, Phone{ProfileName: "Ana"}); err != nil {
		t.Fatal(err)
	}

	bodyForm, err := twiml.Messages([]twiml.Element{&twiml.MessagingMessage{InnerElements: []twiml.Element{&twiml.MessagingBody{Message: "Please use the app."}}}})
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		answer string
		want   []string
	}{
		{`<Response><Message>This delivery chat has ended.</Message></Response>`, []string{"This delivery chat has ended."}},
		{bodyForm, []string{"Please use the app."}},
		{`<Response/>`, nil},
		{`<Response><Message>One</Message><Message>Two</Message></Response>`, []string{"One", "Two"}},
	} {
		answer = tc.answer
		before := len(h.emu.Transcript(customer))
		m, err := h.emu.Inbound(customer, business, "Where is my order?")
		if err != nil {
			t.Fatal(err)
		}
		if m.ConversationSid != "" || len(m.Sid) != 34 || m.Sid[:2] != "SM" || !slices.Equal(m.Replies, tc.want) {
			t.Errorf("%d: message %+v", i, m)
		}
		reqs := svc.requests()
		wantForm(t, "incoming message", reqs[i].form, vals("MessageSid", m.Sid, "SmsSid", m.Sid, "SmsMessageSid", m.Sid, "AccountSid", sid,
			"From", customer, "To", business, "Body", "Where is my order?", "NumMedia", "0", "NumSegments", "1", "SmsStatus", "received",
			"ApiVersion", "2010-04-01", "WaId", "15550001111", "ProfileName", "Ana"))
		lines := h.emu.Transcript(customer)[before:]
		if len(lines) != 1+len(tc.want) || lines[0].Direction != "sent" || lines[0].Text != "Where is my order?" {
			t.Fatalf("%d: transcript %+v", i, lines)
		}
		for j, want := range tc.want {
			if l := lines[1+j]; l.Direction != "received" || l.Peer != business || l.Text != want || l.Status != "delivered" || l.ConversationSid != "" {
				t.Errorf("%d: reply %+v", i, l)
			}
		}
	}

	// SMS: no WhatsApp fields, the Messaging Service when the number has one.
	h.emu.SetNumber(PhoneNumber{Number: "+15550000003", SMSURL: svc.url("/webhooks/messaging"), MessagingServiceSid: "MG0123456789abcdef0123456789abcdef"})
	answer = `<Response/>`
	m, err := h.emu.Inbound("+15550001111", "+15550000003", "STOP")
	if err != nil {
		t.Fatal(err)
	}
	reqs := svc.requests()
	wantForm(t, "incoming SMS", reqs[len(reqs)-1].form, vals("MessageSid", m.Sid, "SmsSid", m.Sid, "SmsMessageSid", m.Sid, "AccountSid", sid,
		"From", "+15550001111", "To", "+15550000003", "Body", "STOP", "NumMedia", "0", "NumSegments", "1", "SmsStatus", "received",
		"ApiVersion", "2010-04-01", "MessagingServiceSid", "MG0123456789abcdef0123456789abcdef"))
	if calls := h.emu.WebhookCalls(); calls[len(calls)-1].EventType != "incoming-message" || calls[len(calls)-1].MessageSid != m.Sid {
		t.Errorf("webhook calls %+v", calls)
	}
}
