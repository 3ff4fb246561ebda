package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/redistest"
)

const (
	nudgeSid      = "HX0000000000000000000000000000b001"
	riderOptInSid = "HX0000000000000000000000000000b002"
	nudgeText     = "You have a new message about your delivery from {{1}}. Reply to read it."
)

// relayWorld is the real server on the emulator, with held messages and nudges on: the emulator's
// phones show what each person received, and with what status.
type relayWorld struct {
	t   *testing.T
	emu *emulator.Emulator
	srv *server
}

// newRelayWorld runs one replica with env on top; ctx carries test seams (a clock).
func newRelayWorld(t *testing.T, ctx context.Context, env map[string]string) *relayWorld {
	t.Helper()
	emu, err := emulator.New(emulator.Options{AccountSid: accountSid, AuthToken: authToken, Contents: map[string]string{
		inviteSid: "Hello {{1}}, can {{2}} message you?", nudgeSid: nudgeText, riderOptInSid: "Your customer agreed to chat. Say hello!"}})
	if err != nil {
		t.Fatal(err)
	}
	apiSrv := httptest.NewServer(emu)
	t.Cleanup(apiSrv.Close)
	t.Cleanup(func() { _ = emu.Close(context.Background()) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	e := adminEnv(map[string]string{"OPTIN_PUBLIC_URL": base, "OPTIN_TWILIO_API_URL": apiSrv.URL,
		"OPTIN_NUDGE_CONTENT_SID": nudgeSid, "OPTIN_RIDER_OPTIN_CONTENT_SID": riderOptInSid, "OPTIN_RECONCILE_INTERVAL": "1s"})
	maps.Copy(e, env)
	srv := startRunCtx(t, withListener(ctx, ln), baseEnv(newFake(t), e), "optin-server")
	return &relayWorld{t: t, emu: emu, srv: srv}
}

// connect starts a chat whose conversation lasts ttl and takes it through the customer's yes.
func (w *relayWorld) connect(id, ttl string) {
	w.t.Helper()
	body := fmt.Sprintf(`{"id":%q,"customer":{"address":%q,"name":"Ana"},"rider":{"address":%q,"name":"Bruno"},"ttl":%q}`, id, customer, rider, ttl)
	if code, _, b := w.srv.api("POST", "/v1/chats", adminToken1, body); code != 201 {
		w.t.Fatalf("start: %d %s", code, b)
	}
	w.write(customer, "Yes")
	w.await(id, "connected", func(c map[string]any) bool { return c["state"] == "connected" })
}

// write is what a phone sends to the business number.
func (w *relayWorld) write(from, body string) {
	w.t.Helper()
	if _, err := w.emu.Inbound(from, business, body); err != nil {
		w.t.Fatal(err)
	}
}

// await polls the chat until ok holds; if it gives up, it shows the chat.
func (w *relayWorld) await(id, what string, ok func(map[string]any) bool) map[string]any {
	w.t.Helper()
	var c map[string]any
	var body string
	defer func() {
		if c == nil || !ok(c) {
			w.t.Logf("%s: %s", id, body)
		}
	}()
	poll.Until(w.t, id+" "+what, func() bool {
		_, _, body = w.srv.api("GET", "/v1/chats/"+id, adminToken1, "")
		c = chatOf(w.t, body)
		return ok(c)
	})
	return c
}

// awaitReceived polls until phone has received n messages from entry from on (a nudge is recorded on
// the chat just before it is sent).
func (w *relayWorld) awaitReceived(phone string, from, n int) {
	w.t.Helper()
	defer func() {
		if got := w.received(phone, from); len(got) < n {
			w.t.Logf("%s received %q", phone, got)
		}
	}()
	poll.Until(w.t, fmt.Sprintf("%s to receive %d messages", phone, n), func() bool { return len(w.received(phone, from)) >= n })
}

// held reads a party's held count from a chat.
func held(c map[string]any, party string) float64 { return c[party].(map[string]any)["held"].(float64) }

// received lists what phone got, from entry from on: text and status.
func (w *relayWorld) received(phone string, from int) []string {
	var out []string
	for _, e := range w.emu.Transcript(phone)[from:] {
		if e.Direction == "received" {
			out = append(out, e.Text+" ["+e.Status+"]")
		}
	}
	return out
}

// (a) and (b) of the issue: the customer writes three messages before the rider answers; the rider is
// nudged once, answers, and receives all three once, in order. 25 hours later the rider writes; the
// customer's window has closed: the customer is nudged, answers, and receives it.
func TestHeldMessagesArriveAfterTheWindowOpens(t *testing.T) {
	w := newRelayWorld(t, context.Background(), nil)
	w.connect("order-1", "72h")
	riderFrom := len(w.emu.Transcript(rider))
	for _, body := range []string{"gate code 4411", "I'm in the blue building", "third floor, door on the left"} {
		w.write(customer, body)
	}
	c := w.await("order-1", "three held for the rider", func(c map[string]any) bool {
		return held(c, "rider") == 3 && c["rider"].(map[string]any)["nudged_at"] != nil
	})
	if c["rider"].(map[string]any)["channel"] != "whatsapp" || held(c, "customer") != 0 {
		t.Errorf("chat while held: %v", c)
	}
	w.awaitReceived(rider, riderFrom, 4)
	// The three fail (the rider's window is closed); the nudge, once, whenever the first was held.
	nudge := "You have a new message about your delivery from Ana. Reply to read it. [delivered]"
	got := w.received(rider, riderFrom)
	want := []string{"gate code 4411 [failed]", "I'm in the blue building [failed]", "third floor, door on the left [failed]"}
	if n := len(got); slices.Index(got, nudge) < 1 || !slices.Equal(slices.DeleteFunc(got, func(s string) bool { return s == nudge }), want) || n != 4 {
		t.Fatalf("rider before answering:\n%s\nwant once the nudge after\n%s", strings.Join(w.received(rider, riderFrom), "\n"), strings.Join(want, "\n"))
	}
	riderFrom = len(w.emu.Transcript(rider))
	w.write(rider, "On my way up")
	w.await("order-1", "the held messages sent", func(c map[string]any) bool { return held(c, "rider") == 0 })
	want = []string{"gate code 4411 [delivered]", "I'm in the blue building [delivered]", "third floor, door on the left [delivered]"}
	if got := w.received(rider, riderFrom); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rider after answering:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := w.received(customer, 0); strings.Contains(strings.Join(got, "\n"), "gate code") {
		t.Errorf("the customer received their own message again: %q", got)
	}

	// (b) A day and an hour later both windows have closed; the rider writes first.
	w.emu.Advance(25 * time.Hour)
	customerFrom := len(w.emu.Transcript(customer))
	w.write(rider, "Left it with the concierge")
	c = w.await("order-1", "held for the customer", func(c map[string]any) bool {
		return held(c, "customer") == 1 && c["customer"].(map[string]any)["nudged_at"] != nil
	})
	w.awaitReceived(customer, customerFrom, 2)
	want = []string{"Left it with the concierge [failed]", "You have a new message about your delivery from Bruno. Reply to read it. [delivered]"}
	if got := w.received(customer, customerFrom); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("customer before answering:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	customerFrom = len(w.emu.Transcript(customer))
	w.write(customer, "ok?")
	w.await("order-1", "the held message sent", func(c map[string]any) bool { return held(c, "customer") == 0 })
	if got := w.received(customer, customerFrom); strings.Join(got, "\n") != "Left it with the concierge [delivered]" {
		t.Fatalf("customer after answering: %q", got)
	}
	m := scrape(t, w.srv.base)
	for name, want := range map[string]float64{"optin_messages_held_total{}": 4, "optin_messages_resent_total{}": 4, "optin_nudges_total{}": 2} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
}

// testClock is a clock a test moves forward.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// (e) of the issue: messages held past OPTIN_HOLD_MAX are dropped and counted, and never sent.
func TestHeldMessagesPastTheHoldMaxAreDropped(t *testing.T) {
	clk := &testClock{}
	w := newRelayWorld(t, withClock(context.Background(), clk.now), map[string]string{"OPTIN_HOLD_MAX": "1m"})
	w.connect("order-1", "4h")
	w.write(customer, "gate code 4411")
	w.await("order-1", "held", func(c map[string]any) bool { return held(c, "rider") == 1 })
	clk.advance(61 * time.Second)
	w.await("order-1", "dropped", func(c map[string]any) bool { return held(c, "rider") == 0 })
	if m := scrape(t, w.srv.base); m[`optin_messages_dropped_total{reason=expired}`] != 1 {
		t.Errorf("dropped counted %v, want 1", m[`optin_messages_dropped_total{reason=expired}`])
	}
	riderFrom := len(w.emu.Transcript(rider))
	m, err := w.emu.Inbound(rider, business, "here")
	if err != nil {
		t.Fatal(err)
	}
	// Once the service has answered for the rider's message, nothing was sent to the rider.
	poll.Until(t, "the service to answer for the rider's message", func() bool {
		return slices.ContainsFunc(w.emu.WebhookCalls(), func(c emulator.WebhookCall) bool {
			return c.MessageSid == m.Sid && c.EventType == "onMessageAdded" && c.Status == 200
		})
	})
	if got := w.received(rider, riderFrom); len(got) > 0 {
		t.Fatalf("the rider received %q after the drop", got)
	}
	if m := scrape(t, w.srv.base); m["optin_messages_resent_total{}"] != 0 {
		t.Errorf("resent %v after the drop", m["optin_messages_resent_total{}"])
	}
}

// (c) of the issue: a customer not on WhatsApp gets the invitation over SMS, and their "yes" there
// connects the chat.
func TestACustomerNotOnWhatsAppIsInvitedOverSMS(t *testing.T) {
	const smsNumber, smsCustomer = "+15550109999", "+15550001111"
	w := newRelayWorld(t, context.Background(), map[string]string{"OPTIN_SMS_NUMBERS": smsNumber})
	w.emu.SetNotOnWhatsApp(smsCustomer)
	body := fmt.Sprintf(`{"id":"order-1","customer":{"address":%q,"name":"Ana"},"rider":{"address":%q,"name":"Bruno"}}`, customer, rider)
	if code, _, b := w.srv.api("POST", "/v1/chats", adminToken1, body); code != 201 {
		t.Fatalf("start: %d %s", code, b)
	}
	c := w.await("order-1", "moved to SMS", func(c map[string]any) bool { return c["customer"].(map[string]any)["channel"] == "sms" })
	cust := c["customer"].(map[string]any)
	hist := c["history"].([]any)
	last := hist[len(hist)-1].(map[string]any)
	if c["state"] != "invited" || cust["address"] != smsCustomer || cust["proxy_address"] != smsNumber || last["channel"] != "sms" || last["state"] != "invited" {
		t.Fatalf("chat after the move: %v", c)
	}
	// The chat records the move before it sends the text invitation (so that a quick answer finds the
	// new address): wait for the invitation to arrive.
	w.awaitReceived(smsCustomer, 0, 1)
	want := []string{"Hello Ana, can Bruno message you? [undelivered]",
		"Hello Ana, your delivery is almost there but Bruno (your rider) needs help finding your door. Are you willing to chat with them? Reply YES or NO. [delivered]"}
	if got := append(w.received(customer, 0), w.received(smsCustomer, 0)...); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("customer's phones:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := w.emu.Inbound(smsCustomer, smsNumber, "YES"); err != nil {
		t.Fatal(err)
	}
	w.await("order-1", "connected over SMS", func(c map[string]any) bool { return c["state"] == "connected" })
	if got := w.received(smsCustomer, 0); len(got) != 2 || got[1] != waitText+" [delivered]" {
		t.Errorf("customer's SMS phone: %q", got)
	}
	if got := w.received(rider, 0); !slices.Contains(got, "Your customer agreed to chat. Say hello! [delivered]") {
		t.Errorf("rider's phone: %q", got)
	}
	if m := scrape(t, w.srv.base); m["optin_channel_fallbacks_total{}"] != 1 {
		t.Errorf("fallbacks counted %v", m["optin_channel_fallbacks_total{}"])
	}
	// The customer's WhatsApp pair was freed with its participant: the rider's and the SMS pair remain.
	// (The public listener's /metrics sums the pairs of each channel over its numbers.)
	if m := scrape(t, w.srv.base); m[`optin_pool_pairs_in_use{channel=whatsapp}`] != 1 || m[`optin_pool_pairs_in_use{channel=sms}`] != 1 {
		t.Errorf("pairs in use: whatsapp %v, sms %v", m[`optin_pool_pairs_in_use{channel=whatsapp}`], m[`optin_pool_pairs_in_use{channel=sms}`])
	}
}

// On two replicas sharing Redis, the rider writes (their held messages start going out through one
// replica) while the chat is ended through the other: each chat ends closed, with nothing held, and no
// rider receives a message twice; every held message is counted sent or dropped, once.
func TestEndRacesResendAcrossTwoReplicas(t *testing.T) {
	rs := redistest.Start(t)
	replicas, emu := emulatorReplicas(t, 2, map[string]string{"OPTIN_RECONCILE_INTERVAL": "1s", "OPTIN_TWILIO_CREATE_RATE": "1000",
		"OPTIN_REDIS_URL": rs.URL()})
	const chats = 20
	cust := func(i int) string { return fmt.Sprintf("whatsapp:+1555070%04d", i) }
	rid := func(i int) string { return fmt.Sprintf("whatsapp:+1555080%04d", i) }
	get := func(i int) map[string]any {
		_, _, body := replicas[1].api("GET", fmt.Sprintf("/v1/chats/race-%02d", i), adminToken1, "")
		return chatOf(t, body)
	}
	await := func(what string, ok func(map[string]any) bool) {
		t.Helper()
		i := 0 // the first chat not yet there
		defer func() {
			if i < chats {
				t.Logf("race-%02d: %v", i, get(i))
			}
		}()
		poll.Until(t, "every chat "+what, func() bool {
			for i < chats && ok(get(i)) {
				i++
			}
			return i == chats
		})
	}
	for i := range chats {
		body := fmt.Sprintf(`{"id":"race-%02d","customer":{"address":%q,"name":"Ana"},"rider":{"address":%q,"name":"Bruno"}}`, i, cust(i), rid(i))
		if code, _, p := replicas[0].api("POST", "/v1/chats", adminToken1, body); code != 201 {
			t.Fatalf("start %d: %d %s", i, code, p)
		}
		if _, err := emu.Inbound(cust(i), business, "Yes"); err != nil {
			t.Fatal(err)
		}
	}
	await("connected", func(c map[string]any) bool { return c["state"] == "connected" })
	for i := range chats {
		for k := 1; k <= 3; k++ {
			if _, err := emu.Inbound(cust(i), business, fmt.Sprintf("chat %d message %d", i, k)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Four each: the three, and the rider's opt-in — sent as a body here (no template configured), it
	// fails for the rider's closed window too, and is held like any message of the customer's.
	await("held", func(c map[string]any) bool { return held(c, "rider") == 4 })
	var wg sync.WaitGroup
	for i := range chats {
		wg.Go(func() {
			if _, err := emu.Inbound(rid(i), business, "here"); err != nil && !errors.Is(err, emulator.ErrNoBinding) {
				t.Error(err)
			}
		})
		wg.Go(func() {
			time.Sleep(time.Duration(i%5) * 3 * time.Millisecond)
			if code, _, body := replicas[1].api("DELETE", fmt.Sprintf("/v1/chats/race-%02d", i), adminToken1, ""); code != 200 {
				t.Errorf("end %d: %d %s", i, code, body)
			}
		})
	}
	wg.Wait()
	await("closed with nothing held", func(c map[string]any) bool { return c["state"] == "closed" && held(c, "rider") == 0 })
	sent := 0
	for i := range chats {
		seen := map[string]int{}
		for _, e := range emu.Transcript(rid(i)) {
			if e.Direction == "received" && e.Status == "delivered" && strings.HasPrefix(e.Text, "chat ") {
				seen[e.Text]++
				sent++
			}
		}
		for text, n := range seen {
			if n > 1 {
				t.Errorf("rider %d received %q %d times", i, text, n)
			}
		}
	}
	// Every held message is accounted for once: sent again, or let go with its chat.
	accounted := func() (total float64) {
		for _, r := range replicas {
			m := scrape(t, r.base)
			total += m["optin_messages_resent_total{}"] + m["optin_messages_dropped_total{reason=closed}"]
		}
		return total
	}
	poll.Until(t, fmt.Sprintf("the %d held messages counted sent or dropped", 4*chats), func() bool { return accounted() >= 4*chats })
	if total := accounted(); total != 4*chats {
		t.Errorf("held messages counted sent or dropped: %v, want %d", total, 4*chats)
	}
	t.Logf("%d of the customers' %d held messages reached their rider before the end", sent, 3*chats)
}

// A delivery report that never comes (Twilio calls a webhook once): the reconciler reads the chat's
// newest messages and their receipts, finds the failure, and the message is held, the rider nudged,
// and the message sent again once they write — against the emulator, through the real adapter.
func TestAFailureWhoseReportIsLostIsFoundByTheReconciler(t *testing.T) {
	w := newRelayWorld(t, context.Background(), nil)
	w.connect("order-1", "4h")
	c := w.await("order-1", "connected", func(c map[string]any) bool { return c["state"] == "connected" })
	conv := c["conversation_sid"].(string)
	view, _ := w.emu.Conversation(conv)
	if len(view.Webhooks) != 2 {
		t.Fatalf("webhooks %v", view.Webhooks)
	}
	// The lifecycle webhook goes: the failure below is reported to nobody.
	if err := w.emu.RemoveWebhook(conv, view.Webhooks[1]); err != nil {
		t.Fatal(err)
	}
	riderFrom := len(w.emu.Transcript(rider))
	w.write(customer, "gate code 4411")
	w.await("order-1", "held by the reconciler", func(c map[string]any) bool {
		return held(c, "rider") == 1 && c["rider"].(map[string]any)["nudged_at"] != nil
	})
	w.awaitReceived(rider, riderFrom, 2) // the failed message, and the nudge
	riderFrom = len(w.emu.Transcript(rider))
	w.write(rider, "coming")
	w.await("order-1", "sent again", func(c map[string]any) bool { return held(c, "rider") == 0 })
	if got := w.received(rider, riderFrom); strings.Join(got, "|") != "gate code 4411 [delivered]" {
		t.Fatalf("rider after writing: %q", got)
	}
	if m := scrape(t, w.srv.base); m["optin_chats_reconciled_total{outcome=delivery_recovered}"] != 1 {
		t.Errorf("recovered counted %v", m["optin_chats_reconciled_total{outcome=delivery_recovered}"])
	}
}
