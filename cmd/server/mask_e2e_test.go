package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/guard"
	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/signature"
)

// The mask holding, end to end: the real server, the emulator asking its pre-event hook before it
// publishes a phone's message and handing a message on a pair with no active conversation to the
// number's SmsUrl, and a platform receiving the signed events.

const afterEndDefault = "This delivery chat has ended. Please use the app to contact us."

// maskEvent is a chat event as the platform received it: its webhook-id, type and data.
type maskEvent struct {
	ID   string `json:"-"`
	Type string
	Data map[string]any
}

// eventSink receives the chats' events, checking each signature.
type eventSink struct {
	mu     sync.Mutex
	events []maskEvent
}

func newEventSink(t *testing.T) (*eventSink, string) {
	p := &eventSink{}
	wh, err := standardwebhooks.NewWebhook(callbackSecret)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := wh.Verify(body, r.Header); err != nil {
			t.Errorf("event signature: %v", err)
			w.WriteHeader(400)
			return
		}
		ev := maskEvent{ID: r.Header.Get("webhook-id")}
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("event body %s: %v", body, err)
		}
		p.mu.Lock()
		p.events = append(p.events, ev)
		p.mu.Unlock()
		w.WriteHeader(204)
	}))
	t.Cleanup(srv.Close)
	return p, srv.URL + "/hooks"
}

func (p *eventSink) ofType(typ string) []maskEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []maskEvent
	for _, e := range p.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// maskWorld is one replica on an emulated account whose Conversation Service sends onMessageAdd to
// the service, and whose business number sends what no conversation takes to /webhooks/messaging.
type maskWorld struct {
	t      *testing.T
	srv    *server
	emu    *emulator.Emulator
	events *eventSink
	clock  *testClock
}

// newMaskWorld starts it; hook false leaves the service's webhook configuration empty.
func newMaskWorld(t *testing.T, env map[string]string, hook bool) *maskWorld {
	t.Helper()
	w := &maskWorld{t: t, clock: &testClock{}}
	sink, sinkURL := newEventSink(t)
	w.events = sink
	emu, err := emulator.New(emulator.Options{AccountSid: accountSid, AuthToken: authToken,
		Contents: map[string]string{inviteSid: "Hello {{1}}, can {{2}} message you?"}})
	if err != nil {
		t.Fatal(err)
	}
	w.emu = emu
	// WithAccount: the account's reads (/v1/Configuration) for the start's check of the hook.
	api := httptest.NewServer(emu.WithAccount(emulator.Account{}))
	t.Cleanup(api.Close)
	t.Cleanup(func() { _ = emu.Close(context.Background()) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	if hook {
		emu.SetServiceWebhooks(emulator.WebhookConfiguration{PreURL: base + "/webhooks/conversations", Method: "POST", Filters: []string{"onMessageAdd"}})
	}
	emu.SetNumber(emulator.PhoneNumber{Number: "+15550100000", SMS: true, SMSURL: base + "/webhooks/messaging", SMSMethod: "POST"})
	e := adminEnv(map[string]string{"OPTIN_PUBLIC_URL": base, "OPTIN_TWILIO_API_URL": api.URL,
		"OPTIN_CALLBACK_URL": sinkURL, "OPTIN_CALLBACK_SECRET": callbackSecret})
	maps.Copy(e, env)
	ctx := withGuardHookCheck(withClock(withListener(context.Background(), ln), w.clock.now))
	w.srv = startRunCtx(t, ctx, baseEnv(newFake(t), e), "optin-server")
	return w
}

// connect starts a chat between customer and rider and has the customer agree.
func (w *maskWorld) connect(id string) string {
	w.t.Helper()
	body := fmt.Sprintf(`{"id":%q,"customer":{"address":%q,"name":"Ana"},"rider":{"address":%q,"name":"Bruno"}}`, id, customer, rider)
	code, _, b := w.srv.api("POST", "/v1/chats", adminToken1, body)
	if code != 201 {
		w.t.Fatalf("start %s: %d %s", id, code, b)
	}
	w.write(customer, "Yes")
	c := w.srv.waitChat(id, "connected")
	return c["conversation_sid"].(string)
}

func (w *maskWorld) write(from, text string) emulator.Message {
	w.t.Helper()
	m, err := w.emu.Inbound(from, business, text)
	if err != nil {
		w.t.Fatal(err)
	}
	return m
}

func (w *maskWorld) chat(id string) map[string]any {
	w.t.Helper()
	_, _, body := w.srv.api("GET", "/v1/chats/"+id, adminToken1, "")
	return chatOf(w.t, body)
}

// A number, an e-mail address and a wa.me link typed by either party arrive hidden at the other, the
// message's attributes saying what kind; ordinary digits arrive as written; the chat records each,
// without the body.
func TestGuardHidesContactData(t *testing.T) {
	w := newMaskWorld(t, nil, true)
	conv := w.connect("order-1")
	for _, m := range []struct{ from, to, text, want string }{
		{rider, customer, "call me on +1 415 555 0123", "call me on [number hidden]"},
		{customer, rider, "mail me at ana.silva@example.com please", "mail me at [email hidden] please"},
		{rider, customer, "or here: wa.me/447911123456", "or here: [link hidden]"},
		{customer, rider, "my other phone is +44 7911 123456", "my other phone is [number hidden]"},
		{rider, customer, "or mail bruno.rider@example.com", "or mail [email hidden]"},
		{customer, rider, "text me: t.me/ana_silva", "text me: [link hidden]"},
		{customer, rider, "gate code 4411, order #100234", "gate code 4411, order #100234"},
	} {
		if msg := w.write(m.from, m.text); msg.Dropped {
			t.Fatalf("%q dropped", m.text)
		}
		if text, status := lastReceived(w.emu, m.to); text != m.want || status != "delivered" {
			t.Errorf("%s received %q (%s), want %q", m.to, text, status, m.want)
		}
	}
	// The author's own phone keeps what they wrote; Twilio keeps what was published, with attributes.
	if tr := w.emu.Transcript(rider); tr[len(tr)-1].Text != "gate code 4411, order #100234" {
		t.Errorf("rider's transcript ends %+v", tr[len(tr)-1])
	}
	view, _ := w.emu.Conversation(conv)
	var attrs []string
	for _, m := range view.Messages {
		if strings.Contains(m.Body, "hidden]") {
			attrs = append(attrs, m.Attributes)
		}
		if strings.Contains(m.Body, "555 0123") || strings.Contains(m.Body, "ana.silva@") || strings.Contains(m.Body, "wa.me") ||
			strings.Contains(m.Body, "bruno.rider@") || strings.Contains(m.Body, "t.me") {
			t.Errorf("Twilio published %q", m.Body)
		}
	}
	wantAttrs := []string{`{"optin":{"guarded":["number"]}}`, `{"optin":{"guarded":["email"]}}`, `{"optin":{"guarded":["link"]}}`, `{"optin":{"guarded":["number"]}}`,
		`{"optin":{"guarded":["email"]}}`, `{"optin":{"guarded":["link"]}}`}
	if !reflect.DeepEqual(attrs, wantAttrs) {
		t.Errorf("attributes %v, want %v", attrs, wantAttrs)
	}
	c := w.chat("order-1")
	guarded, _ := c["guarded"].([]any)
	wantFrom := []string{"rider", "customer", "rider", "customer", "rider", "customer"}
	if c["guarded_count"] != float64(6) || len(guarded) != 6 {
		t.Fatalf("guarded %v (%v)", guarded, c["guarded_count"])
	}
	for i, g := range guarded {
		g := g.(map[string]any)
		if g["from"] != wantFrom[i] || g["action"] != "redact" || g["at"] == nil {
			t.Errorf("guarded %d: %v", i, g)
		}
	}
	m := scrape(t, w.srv.base)
	if m[`optin_messages_guarded_total{action=redact,kind=number}`] != 2 || m[`optin_messages_guarded_total{action=redact,kind=email}`] != 2 ||
		m[`optin_messages_guarded_total{action=redact,kind=link}`] != 2 {
		t.Errorf("guarded metrics %v", m)
	}
	if logs := w.srv.logs.String(); strings.Contains(logs, "555 0123") || strings.Contains(logs, "ana.silva") || strings.Contains(logs, "bruno.rider") {
		t.Error("a body is in the logs")
	}
}

// block keeps the message from the other party and tells its author alone why.
func TestGuardBlocks(t *testing.T) {
	w := newMaskWorld(t, map[string]string{"OPTIN_GUARD": "block"}, true)
	w.connect("order-1")
	w.write(rider, "At your gate")
	const typed = "call me on +1 415 555 0123"
	if msg := w.write(rider, typed); !msg.Dropped {
		t.Fatalf("the blocked message was published: %+v", msg)
	}
	c := w.chat("order-1")
	if g, _ := c["guarded"].([]any); len(g) != 1 || g[0].(map[string]any)["action"] != "block" || g[0].(map[string]any)["from"] != "rider" {
		t.Errorf("guarded %v", c["guarded"])
	}
	reason := guard.Guard{Mode: guard.Block}.Check(typed, "US").Reason
	told := func() (n int) {
		for _, e := range w.emu.Transcript(rider) {
			if e.Direction == "received" && e.Text == reason && e.Status == "delivered" {
				n++
			}
		}
		return n
	}
	defer func() {
		if told() == 0 {
			t.Logf("the rider's phone: %+v", w.emu.Transcript(rider))
		}
	}()
	poll.Until(t, "the rider to hear why", func() bool { return told() > 0 })
	w.srv.stop() // the chat's worker done: the notice went once
	if n := told(); n != 1 {
		t.Errorf("the rider was told %d times", n)
	}
	if text, _ := lastReceived(w.emu, customer); text != "At your gate" {
		t.Errorf("the customer received %q", text)
	}
	for _, e := range w.emu.Transcript(customer) {
		if e.Text == reason || strings.Contains(e.Text, "555") {
			t.Errorf("the customer received %q", e.Text)
		}
	}
}

// off changes nothing.
func TestGuardOff(t *testing.T) {
	w := newMaskWorld(t, map[string]string{"OPTIN_GUARD": "off"}, true)
	w.connect("order-1")
	w.write(rider, "call me on +1 415 555 0123")
	if text, _ := lastReceived(w.emu, customer); text != "call me on +1 415 555 0123" {
		t.Errorf("customer received %q", text)
	}
	if c := w.chat("order-1"); c["guarded_count"] != float64(0) {
		t.Errorf("guarded %v", c["guarded"])
	}
}

// A party writing to the chat's number after the end is answered once within OPTIN_AFTER_END_EVERY,
// the platform hears chat.message_after_end once per answer, and STOP gets nothing.
func TestMessageAfterTheEnd(t *testing.T) {
	w := newMaskWorld(t, nil, true)
	w.connect("order-1")
	if code, _, b := w.srv.api("DELETE", "/v1/chats/order-1", adminToken1, ""); code != 200 {
		t.Fatalf("end: %d %s", code, b)
	}
	w.srv.waitChat("order-1", "closed")
	replies := func(text string) []string { return w.write(customer, text).Replies }
	if got := replies("hello? the food was cold"); !reflect.DeepEqual(got, []string{afterEndDefault}) {
		t.Fatalf("replies %v", got)
	}
	if text, _ := lastReceived(w.emu, customer); text != afterEndDefault {
		t.Errorf("the customer's phone got %q", text)
	}
	if got := replies("anyone?"); len(got) != 0 {
		t.Errorf("a second message within the hour got %v", got)
	}
	w.clock.advance(61 * time.Minute)
	w.emu.Advance(61 * time.Minute)
	if got := replies("STOP"); len(got) != 0 {
		t.Errorf("STOP got %v", got)
	}
	if got := replies("still there?"); !reflect.DeepEqual(got, []string{afterEndDefault}) {
		t.Errorf("after the hour: %v", got)
	}
	defer func() {
		if got := w.events.ofType("chat.message_after_end"); len(got) < 2 {
			t.Logf("events %+v", got)
		}
	}()
	poll.Until(t, "two chat.message_after_end events", func() bool { return len(w.events.ofType("chat.message_after_end")) >= 2 })
	w.srv.stop()
	events := w.events.ofType("chat.message_after_end")
	if len(events) != 2 {
		t.Fatalf("%d events, want 2: %+v", len(events), events)
	}
	for _, ev := range events {
		msg, _ := ev.Data["message"].(map[string]any)
		if msg["party"] != "customer" || msg["at"] == nil || len(msg) != 2 || ev.Data["id"] != "order-1" || ev.Data["state"] != "closed" {
			t.Errorf("event %+v", ev)
		}
		if b, _ := json.Marshal(ev.Data); strings.Contains(string(b), "cold") || strings.Contains(string(b), "still there") {
			t.Errorf("an event carries the body: %s", b)
		}
	}
	// A number that never had a chat on the pair: nothing.
	if m, err := w.emu.Inbound("whatsapp:+15550009999", business, "hi"); err != nil || len(m.Replies) != 0 {
		t.Errorf("a stranger: %+v %v", m, err)
	}
}

// Forged pre-events and messaging webhooks are refused and change nothing.
func TestMaskWebhooksForged(t *testing.T) {
	w := newMaskWorld(t, nil, true)
	conv := w.connect("order-1")
	post := func(path string, params url.Values, token string) (int, string) {
		u := w.srv.base + path
		r, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(params.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("X-Twilio-Signature", signature.Compute(token, u, params))
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	pre := url.Values{"AccountSid": {accountSid}, "ConversationSid": {conv}, "EventType": {"onMessageAdd"}, "Author": {rider},
		"Body": {"call me on +1 415 555 0123"}, "Attributes": {"{}"}, "Source": {"WHATSAPP"}}
	incoming := url.Values{"AccountSid": {accountSid}, "MessageSid": {"SM00000000000000000000000000000001"}, "From": {customer}, "To": {business}, "Body": {"hi"}}
	const forged = "forgedtoken000000000000000000001"
	if code, _ := post("/webhooks/conversations", pre, forged); code != 403 {
		t.Errorf("forged pre-event: %d", code)
	}
	if code, _ := post("/webhooks/messaging", incoming, forged); code != 403 {
		t.Errorf("forged messaging: %d", code)
	}
	if c := w.chat("order-1"); c["guarded_count"] != float64(0) {
		t.Errorf("a forged pre-event recorded %v", c["guarded"])
	}
	// Signed, the same pre-event is guarded.
	if code, body := post("/webhooks/conversations", pre, authToken); code != 200 || body != `{"body":"call me on [number hidden]","attributes":"{\"optin\":{\"guarded\":[\"number\"]}}"}` {
		t.Errorf("signed: %d %s", code, body)
	}
}

// The start reads Twilio's webhook configuration once: a guard Twilio does not call is a warning, a
// metric and /readyz's guard_hook.
func TestGuardHookCheckedAtStart(t *testing.T) {
	for _, tt := range []struct {
		hook   bool
		state  string
		metric float64
	}{{false, "not_called", 0}, {true, "called", 1}} {
		w := newMaskWorld(t, nil, tt.hook)
		var body map[string]string // the last /readyz answer
		ready := func() bool { return body["guard_hook"] == tt.state && body["status"] == "ready" }
		defer func() {
			if !ready() {
				t.Logf("readyz %v", body)
			}
		}()
		poll.Until(t, "readyz to be ready with guard_hook "+tt.state, func() bool {
			resp, err := http.Get(w.srv.base + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			body = nil
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			return ready()
		})
		if m, ok := scrape(t, w.srv.base)["optin_guard_hook_configured{}"]; !ok || m != tt.metric {
			t.Errorf("optin_guard_hook_configured %v, want %v", m, tt.metric)
		}
		warned := strings.Contains(w.srv.logs.String(), "Twilio does not send onMessageAdd to the guard")
		if warned == tt.hook {
			t.Errorf("hook %v: warned %v\n%s", tt.hook, warned, w.srv.logs)
		}
	}
}
