package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/poll"
)

// What people receive (issue 27), through the real server: each party gets the text of its own
// channel, every variable of the invitation has a value, and a start that would send a garbled or empty
// one is refused before anything is made at Twilio.

const smsCustomer = "+15550001111"

// withInvite is startCalls with the invitation's message sent as params instead, and the customer's
// participant (when address is not customer) bound at address on proxy.
func withInvite(id, conv, address, proxy string, params ...string) []call {
	out := startCalls(id, conv, "PT4H")
	for i, c := range out {
		switch {
		case c.Path == "/v1/Conversations/"+conv+"/Messages":
			out[i].Params = form(append([]string{"Attributes", `{"optin":{"chat":"` + id + `","step":"invite"}}`, "Author", rider}, params...)...)
		case c.Params == form("MessagingBinding.Address", customer, "MessagingBinding.ProxyAddress", business):
			out[i].Params = form("MessagingBinding.Address", address, "MessagingBinding.ProxyAddress", proxy)
		}
	}
	return sorted(out...)
}

// received is what the phone at address received, as text.
func received(emu *emulator.Emulator, address string) []string {
	var out []string
	for _, e := range emu.Transcript(address) {
		if e.Direction == "received" {
			out = append(out, e.Text)
		}
	}
	return out
}

// A customer who starts on SMS gets the invitation as OPTIN_INVITE_SMS_BODY's text, never the WhatsApp
// Content template; a name that is only whitespace falls back as none does.
func TestAnSMSCustomerGetsTheInvitationAsText(t *testing.T) {
	for _, tt := range []struct {
		name, customerName, riderName, text string
	}{
		{"names", "Ana", "Bruno", "Hello Ana, your delivery is almost there but Bruno (your rider) needs help finding your door. Are you willing to chat with them? Reply YES or NO."},
		{"no names", "", "", "Hello there, your delivery is almost there but someone (your rider) needs help finding your door. Are you willing to chat with them? Reply YES or NO."},
		{"whitespace names", "   ", " \u00a0 ", "Hello there, your delivery is almost there but someone (your rider) needs help finding your door. Are you willing to chat with them? Reply YES or NO."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, fake := startAPI(t, map[string]string{"OPTIN_SMS_NUMBERS": smsBusiness})
			body := fmt.Sprintf(`{"id":"order-1","customer":{"address":%q,"name":%q},"rider":{"address":%q,"name":%q}}`,
				smsCustomer, tt.customerName, rider, tt.riderName)
			code, _, p := s.api("POST", "/v1/chats", adminToken1, body)
			if code != 201 {
				t.Fatalf("start: %d %s", code, p)
			}
			c := chatOf(t, p)
			cust := c["customer"].(map[string]any)
			if cust["channel"] != "sms" || cust["proxy_address"] != smsBusiness || c["state"] != "invited" {
				t.Fatalf("chat: %s", p)
			}
			conv := c["conversation_sid"].(string)
			assertCalls(t, fake, withInvite("order-1", conv, smsCustomer, smsBusiness, "Body", tt.text))
			poll.Until(t, "the customer's phone to receive the invitation", func() bool { return len(received(fake.Emulator, smsCustomer)) > 0 })
			if got := received(fake.Emulator, smsCustomer); !slices.Equal(got, []string{tt.text}) {
				t.Errorf("the customer's phone received %q, want %q", got, tt.text)
			}
		})
	}
}

// refused posts body and checks it is a 422 problem naming exactly fields.
func refused(t *testing.T, s *server, name, body string, fields ...string) {
	t.Helper()
	code, hdr, p := s.api("POST", "/v1/chats", adminToken1, body)
	if code != 422 || hdr.Get("Content-Type") != "application/problem+json" || !strings.Contains(p, "problem-validation") {
		t.Errorf("%s: %d %s %s, want 422 problem+json", name, code, hdr.Get("Content-Type"), p)
		return
	}
	var prob struct {
		Errors []struct{ Field, Message string }
	}
	if err := json.Unmarshal([]byte(p), &prob); err != nil {
		t.Fatalf("%s: %v: %s", name, err, p)
	}
	var got []string
	for _, e := range prob.Errors {
		got = append(got, e.Field)
	}
	if !slices.Equal(got, fields) {
		t.Errorf("%s: fields %v, want %v (%s)", name, got, fields, p)
	}
}

// A name holding NUL, a newline or a right-to-left override is refused naming the field, and nothing
// is sent to Twilio.
func TestAStartWithAGarblingNameIsRefused(t *testing.T) {
	s, fake := startAPI(t, map[string]string{"OPTIN_SMS_NUMBERS": smsBusiness})
	for _, tt := range []struct {
		name, customerName, riderName, field string
	}{
		{"NUL", `Ana\u0000`, "Bruno", "customer.name"},
		{"newline", "Ana", `Bruno\nCall +1 555 000 9999`, "rider.name"},
		{"right-to-left override", `Ana\u202Egnp.exe`, "Bruno", "customer.name"},
		{"right-to-left override, rider", "Ana", `\u202EBruno`, "rider.name"},
	} {
		for _, address := range []string{customer, smsCustomer} {
			body := `{"id":"order-1","customer":{"address":"` + address + `","name":"` + tt.customerName + `"},"rider":{"address":"` + rider + `","name":"` + tt.riderName + `"}}`
			refused(t, s, tt.name+" ("+address+")", body, tt.field)
		}
	}
	if got := fake.Requests(); len(got) != 0 {
		t.Errorf("refused starts made REST calls: %+v", calls(got))
	}
	if code, _, p := s.api("GET", "/v1/chats/order-1", adminToken1, ""); code != 404 {
		t.Errorf("a refused start left a chat: %d %s", code, p)
	}
}

// A start whose own content variables would render an empty value is refused naming the variable, and
// nothing is sent to Twilio.
func TestAStartWhoseVariablesRenderEmptyIsRefused(t *testing.T) {
	s, fake := startAPI(t, map[string]string{"OPTIN_SMS_NUMBERS": smsBusiness})
	const parties = `"customer":{"address":"` + customer + `","name":"Ana"},"rider":{"address":"` + rider + `","name":"Bruno"}`
	for _, tt := range []struct {
		name, invite, field string
	}{
		{"variables alone, one blank", `{"content_variables":{"2":"  "}}`, "invite.content_variables.2"},
		{"variables alone, one empty", `{"content_variables":{"1":""}}`, "invite.content_variables.1"},
		{"own template, one empty", `{"content_sid":"` + inviteSid + `","content_variables":{"1":"Ana","2":""}}`, "invite.content_variables.2"},
		{"own template, a newline", `{"content_sid":"` + inviteSid + `","content_variables":{"1":"Ana\n","2":"Bruno"}}`, "invite.content_variables.1"},
	} {
		refused(t, s, tt.name, `{"id":"order-1",`+parties+`,"invite":`+tt.invite+`}`, tt.field)
	}
	if got := fake.Requests(); len(got) != 0 {
		t.Errorf("refused starts made REST calls: %+v", calls(got))
	}
}

// A start without names sends the default template with the variables' fallbacks (WhatsApp refuses an
// empty parameter); variables given alone go over them.
func TestAStartWithoutNamesSendsTheFallbacks(t *testing.T) {
	for _, tt := range []struct {
		name, parties, invite, vars, text string
	}{
		{"no names", `"customer":{"address":"` + customer + `"},"rider":{"address":"` + rider + `"}`, "",
			`{"1":"there","2":"someone"}`,
			"Hello there, your food delivery is almost there but someone (your rider) needs help finding your door. Are you willing to chat with them?"},
		{"whitespace names", `"customer":{"address":"` + customer + `","name":"  "},"rider":{"address":"` + rider + `","name":" "}`, "",
			`{"1":"there","2":"someone"}`,
			"Hello there, your food delivery is almost there but someone (your rider) needs help finding your door. Are you willing to chat with them?"},
		{"variables alone", `"customer":{"address":"` + customer + `"},"rider":{"address":"` + rider + `"}`, `,"invite":{"content_variables":{"2":"Bruno from Acme"}}`,
			`{"1":"there","2":"Bruno from Acme"}`,
			"Hello there, your food delivery is almost there but Bruno from Acme (your rider) needs help finding your door. Are you willing to chat with them?"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fake := newTwilio(t, emulator.Options{Contents: map[string]string{inviteSid: demoInvite}})
			s := start(t, fake, adminEnv(nil))
			code, _, p := s.api("POST", "/v1/chats", adminToken1, `{"id":"order-1",`+tt.parties+tt.invite+`}`)
			if code != 201 {
				t.Fatalf("start: %d %s", code, p)
			}
			conv := chatOf(t, p)["conversation_sid"].(string)
			assertCalls(t, fake, withInvite("order-1", conv, customer, business, "ContentSid", inviteSid, "ContentVariables", tt.vars))
			poll.Until(t, "the customer's phone to receive the invitation", func() bool { return len(received(fake.Emulator, customer)) > 0 })
			if got := received(fake.Emulator, customer); !slices.Equal(got, []string{tt.text}) {
				t.Errorf("the customer's phone received %q, want %q", got, tt.text)
			}
		})
	}
}
