package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/signature"
)

// Masked calls end to end: the real server, the emulator placing calls to the business number and
// playing the TwiML it gets, and a platform receiving the signed events.

const (
	businessPhone = "+15550100000"
	unavailable   = "Sorry, this number can only connect you to a delivery chat that is active. Please use the app."
	whisperText   = "A call about your delivery."
)

// callEvent is a call event as the platform received it.
type callEvent struct {
	ID, Type string
	Call     map[string]any
}

// callPlatform is the platform receiving the chats' events (an eventSink), read for its call events.
type callPlatform struct{ *eventSink }

func newCallPlatform(t *testing.T) (*callPlatform, string) {
	sink, url := newEventSink(t)
	return &callPlatform{sink}, url
}

func (p *callPlatform) calls() []callEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []callEvent
	for _, e := range p.events {
		if strings.HasPrefix(e.Type, "chat.call_") {
			call, _ := e.Data["call"].(map[string]any)
			out = append(out, callEvent{e.ID, e.Type, call})
		}
	}
	return out
}

// awaitCalls polls until the platform holds n call events; if it gives up, it lists those it holds.
func (p *callPlatform) awaitCalls(t *testing.T, n int) []callEvent {
	t.Helper()
	defer func() {
		if got := p.calls(); len(got) < n {
			t.Logf("%d call events: %+v", len(got), got)
		}
	}()
	poll.Until(t, fmt.Sprintf("%d call events", n), func() bool { return len(p.calls()) >= n })
	return p.calls()
}

// callWorld is one replica on the emulator whose business number's voice URL is the service's.
type callWorld struct {
	t        *testing.T
	srv      *server
	emu      *emulator.Emulator
	platform *callPlatform
}

func newCallWorld(t *testing.T) *callWorld {
	t.Helper()
	p, hook := newCallPlatform(t)
	srv, emu := onEmulator(t, map[string]string{"OPTIN_CALLBACK_URL": hook, "OPTIN_CALLBACK_SECRET": callbackSecret})
	emu.SetNumber(emulator.PhoneNumber{Number: businessPhone, SMS: true, Voice: true, VoiceURL: srv.base + "/webhooks/voice"})
	return &callWorld{t: t, srv: srv, emu: emu, platform: p}
}

// start starts a chat between the two and, with answer set, has the customer answer it.
func (w *callWorld) start(id, customer, rider, answer, state string) {
	w.t.Helper()
	body := fmt.Sprintf(`{"id":%q,"customer":{"address":%q,"name":"Ana"},"rider":{"address":%q,"name":"Bruno"}}`, id, customer, rider)
	if code, _, b := w.srv.api("POST", "/v1/chats", adminToken1, body); code != 201 {
		w.t.Fatalf("start %s: %d %s", id, code, b)
	}
	if answer != "" {
		if _, err := w.emu.Inbound(customer, business, answer); err != nil {
			w.t.Fatal(err)
		}
	}
	w.srv.waitChat(id, state)
}

// call has the phone at from call the business number.
func (w *callWorld) call(from string) emulator.Call {
	w.t.Helper()
	c, err := w.emu.Call(from, businessPhone)
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

// chatCalls reads a chat's calls.
func (w *callWorld) chatCalls(id string) []any {
	w.t.Helper()
	_, _, body := w.srv.api("GET", "/v1/chats/"+id, adminToken1, "")
	calls, _ := chatOf(w.t, body)["calls"].([]any)
	return calls
}

// awaitEnded polls until the chat's call i has its status.
func (w *callWorld) awaitEnded(id string, i int) map[string]any {
	w.t.Helper()
	var calls []any
	ended := func() bool { return len(calls) > i && calls[i].(map[string]any)["status"] != nil }
	defer func() {
		if !ended() {
			w.t.Logf("the calls of %s: %v", id, calls)
		}
	}()
	poll.Until(w.t, fmt.Sprintf("call %d of %s to end", i, id), func() bool {
		calls = w.chatCalls(id)
		return ended()
	})
	return calls[i].(map[string]any)
}

// assertRefused checks that a call heard the text, was hung up and rang nobody.
func assertRefused(t *testing.T, what string, c emulator.Call) {
	t.Helper()
	if c.Status != "completed" || len(c.Dials) != 0 || len(c.Heard) != 1 || c.Heard[0] != unavailable {
		t.Errorf("%s: %+v, want the text, a hangup, no dial", what, c)
	}
}

// The rider calls the customer, and the customer the rider, on a connected chat: each phone rings
// showing the business number, never the other's; the outcomes reach the chat and the platform once.
func TestMaskedCallsBetweenTheParties(t *testing.T) {
	w := newCallWorld(t)
	w.start("order-1", customer, rider, "Yes", "connected")
	if err := w.emu.SetPhone(customer, emulator.Phone{TalkFor: emulator.Duration(42 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := w.emu.SetPhone(rider, emulator.Phone{Answer: "no-answer"}); err != nil {
		t.Fatal(err)
	}

	// The rider calls: the customer's phone rings from the business number, hears the whisper, talks 42 s.
	c := w.call(rider)
	if len(c.Dials) != 1 || c.Dials[0].To != "+15550001111" || c.Dials[0].CallerID != businessPhone || c.Dials[0].TimeLimit != 600 ||
		len(c.Dials[0].Heard) != 1 || c.Dials[0].Heard[0] != whisperText || c.Dials[0].Status != "in-progress" {
		t.Fatalf("the rider's call: %+v", c)
	}
	w.emu.Advance(time.Minute)
	got := w.awaitEnded("order-1", 0)
	if got["from"] != "rider" || got["to"] != "customer" || got["status"] != "completed" || got["duration"] != float64(42) || got["sid"] != c.Sid {
		t.Errorf("the rider's call as recorded: %v", got)
	}

	// The customer calls: the rider's phone rings from the business number and is not answered.
	c2 := w.call(customer)
	if len(c2.Dials) != 1 || c2.Dials[0].To != "+15550002222" || c2.Dials[0].CallerID != businessPhone {
		t.Fatalf("the customer's call: %+v", c2)
	}
	w.emu.Advance(31 * time.Second)
	got = w.awaitEnded("order-1", 1)
	if got["from"] != "customer" || got["to"] != "rider" || got["status"] != "no-answer" || got["duration"] != float64(0) {
		t.Errorf("the customer's call as recorded: %v", got)
	}
	for _, ring := range append(w.emu.Rings(customer), w.emu.Rings(rider)...) {
		if ring.CallerID != businessPhone {
			t.Errorf("a phone saw caller id %s", ring.CallerID)
		}
	}

	// Twilio repeats the first action: recorded once, heard of once.
	if _, err := w.emu.ReplayDialAction(c.Sid); err != nil {
		t.Fatal(err)
	}
	if n := len(w.chatCalls("order-1")); n != 2 {
		t.Errorf("%d calls recorded, want 2", n)
	}
	w.platform.awaitCalls(t, 4)
	w.srv.stop() // every event delivered or given up: nothing more arrives
	events := w.platform.calls()
	want := []struct{ typ, sid, from, status string }{
		{"chat.call_started", c.Sid, "rider", ""}, {"chat.call_ended", c.Sid, "rider", "completed"},
		{"chat.call_started", c2.Sid, "customer", ""}, {"chat.call_ended", c2.Sid, "customer", "no-answer"},
	}
	if len(events) != len(want) {
		t.Fatalf("call events %+v, want %d", events, len(want))
	}
	for i, ev := range events {
		status, _ := ev.Call["status"].(string)
		if ev.Type != want[i].typ || ev.Call["sid"] != want[i].sid || ev.Call["from"] != want[i].from || status != want[i].status {
			t.Errorf("event %d: %+v, want %+v", i, ev, want[i])
		}
		b, _ := json.Marshal(ev.Call)
		if strings.Contains(string(b), "+1555") {
			t.Errorf("a call event names a number: %s", b)
		}
	}
}

// Nobody is connected who is not a party of a connected chat on that number: an unknown caller, a
// withheld number, the parties of an invited, a declined and a closed chat hear the text.
func TestMaskedCallsRefused(t *testing.T) {
	w := newCallWorld(t)
	w.start("invited", "whatsapp:+15550003333", "whatsapp:+15550004444", "", "invited")
	w.start("declined", "whatsapp:+15550005555", "whatsapp:+15550006666", "No", "declined")
	w.start("closed", customer, rider, "Yes", "connected")
	if code, _, b := w.srv.api("DELETE", "/v1/chats/closed", adminToken1, ""); code != 200 {
		t.Fatalf("end: %d %s", code, b)
	}
	w.srv.waitChat("closed", "closed")
	for what, from := range map[string]string{
		"unknown caller":           "+15550009999",
		"withheld number":          "anonymous",
		"invited chat's customer":  "+15550003333",
		"invited chat's rider":     "+15550004444",
		"declined chat's rider":    "+15550006666",
		"declined chat's customer": "+15550005555",
		"closed chat's rider":      "+15550002222",
	} {
		assertRefused(t, what, w.call(from))
	}
	for _, id := range []string{"invited", "declined", "closed"} {
		if calls := w.chatCalls(id); len(calls) != 0 {
			t.Errorf("%s recorded calls %v", id, calls)
		}
	}
	if n := len(w.emu.Rings(customer)) + len(w.emu.Rings("+15550003333")) + len(w.emu.Rings("+15550005555")); n != 0 {
		t.Errorf("%d phones rang", n)
	}
}

// A forged voice webhook is refused and records nothing; the real server answers the exact TwiML to a
// signed one.
func TestMaskedCallWebhookSigned(t *testing.T) {
	w := newCallWorld(t)
	w.start("order-1", customer, rider, "Yes", "connected")
	params := url.Values{"CallSid": {"CA0000000000000000000000000000c001"}, "AccountSid": {accountSid}, "From": {"+15550002222"},
		"To": {businessPhone}, "CallStatus": {"ringing"}, "Direction": {"inbound"}}
	post := func(token string) (int, string, string) {
		u := w.srv.base + "/webhooks/voice"
		r, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(params.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("X-Twilio-Signature", signature.Compute(token, u, params))
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	if code, _, _ := post("forgedtoken000000000000000000001"); code != 403 {
		t.Errorf("forged: %d", code)
	}
	if calls := w.chatCalls("order-1"); len(calls) != 0 {
		t.Errorf("a forged webhook recorded %v", calls)
	}
	code, ctype, body := post(authToken)
	want := `<?xml version="1.0" encoding="UTF-8"?><Response><Dial callerId="+15550100000" timeLimit="600" action="` + w.srv.base +
		`/webhooks/voice/status?chat=order-1&amp;caller=rider" method="POST"><Number url="` + w.srv.base + `/webhooks/voice/whisper">+15550001111</Number></Dial></Response>`
	if code != 200 || ctype != "text/xml" || body != want {
		t.Errorf("signed: %d %s\n%s\nwant\n%s", code, ctype, body, want)
	}
	if calls := w.chatCalls("order-1"); len(calls) != 1 {
		t.Errorf("calls %v, want the signed one", calls)
	}
}

// A chat ended during a call: the call goes on, its end is recorded; a new call is refused.
func TestMaskedCallOutlivesTheChat(t *testing.T) {
	w := newCallWorld(t)
	w.start("order-1", customer, rider, "Yes", "connected")
	if err := w.emu.SetPhone(customer, emulator.Phone{TalkFor: emulator.Duration(90 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	c := w.call(rider)
	if len(c.Dials) != 1 || c.Dials[0].Status != "in-progress" {
		t.Fatalf("call %+v", c)
	}
	if code, _, b := w.srv.api("DELETE", "/v1/chats/order-1", adminToken1, ""); code != 200 {
		t.Fatalf("end: %d %s", code, b)
	}
	w.srv.waitChat("order-1", "closed")
	w.emu.Advance(2 * time.Minute)
	if got := w.awaitEnded("order-1", 0); got["status"] != "completed" || got["duration"] != float64(90) {
		t.Errorf("the call's end as recorded: %v", got)
	}
	assertRefused(t, "a call after the end", w.call(rider))
	if n := len(w.chatCalls("order-1")); n != 1 {
		t.Errorf("%d calls recorded, want the one before the end", n)
	}
	events := w.platform.awaitCalls(t, 2)
	if events[1].Type != "chat.call_ended" || events[1].Call["status"] != "completed" {
		t.Errorf("events %+v", events)
	}
}

// Behind a proxy that asks for basic auth (its user and password in OPTIN_PUBLIC_URL and in the
// number's voice URL), the Dial's action and the whisper pass it too: Twilio requests the URLs of the
// answer with the credentials they carry, and nothing else. The call is whispered, connected and
// recorded as it is without a proxy.
func TestMaskedCallsBehindABasicAuthProxy(t *testing.T) {
	var target atomic.Pointer[url.URL]
	var refused atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "proxyuser" || p != "proxypass" {
			refused.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="optin"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		httputil.NewSingleHostReverseProxy(target.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	public := strings.Replace(proxy.URL, "http://", "http://proxyuser:proxypass@", 1)
	p, hook := newCallPlatform(t)
	srv, emu := onEmulator(t, map[string]string{"OPTIN_PUBLIC_URL": public, "OPTIN_CALLBACK_URL": hook, "OPTIN_CALLBACK_SECRET": callbackSecret})
	u, _ := url.Parse(srv.base)
	target.Store(u)
	emu.SetNumber(emulator.PhoneNumber{Number: businessPhone, SMS: true, Voice: true, VoiceURL: public + "/webhooks/voice"})
	w := &callWorld{t: t, srv: srv, emu: emu, platform: p}
	w.start("order-1", customer, rider, "Yes", "connected")
	if err := emu.SetPhone(customer, emulator.Phone{TalkFor: emulator.Duration(42 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	c := w.call(rider)
	if len(c.Dials) != 1 || len(c.Dials[0].Heard) != 1 || c.Dials[0].Heard[0] != whisperText || c.Dials[0].Status != "in-progress" {
		t.Fatalf("the rider's call through the proxy: %+v", c)
	}
	emu.Advance(time.Minute)
	if got := w.awaitEnded("order-1", 0); got["status"] != "completed" || got["duration"] != float64(42) {
		t.Errorf("the call as recorded: %v", got)
	}
	if c, _ := emu.CallByID(c.Sid); c.Status != "completed" || c.ErrorCode != 0 {
		t.Errorf("the caller's leg: %+v", c)
	}
	if n := refused.Load(); n != 0 {
		t.Errorf("the proxy refused %d requests without credentials", n)
	}
}
