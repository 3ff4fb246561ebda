package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/console"
)

// The demo's cast: fictional numbers and the guide's two templates, registered in the emulator.
const (
	demoBusiness  = "whatsapp:+15550100000"
	demoCustomer  = "whatsapp:+15550100001"
	demoRider     = "whatsapp:+15550100002"
	demoTemplate1 = "HX0000000000000000000000000000d001"
	demoTemplate2 = "HX0000000000000000000000000000d002"
	demoNudge     = "HX0000000000000000000000000000d003"
	// demoMoreNumbers join demoBusiness in the demo's pool, so that the rider can carry several orders.
	demoMoreNumbers = "whatsapp:+15550100091,whatsapp:+15550100092,whatsapp:+15550100093,whatsapp:+15550100094"
	demoInvite      = "Hello {{1}}, your food delivery is almost there but {{2}} (your rider) needs help finding your door. Are you willing to chat with them?"
	demoNudgeText   = "You have a new message about your delivery from {{1}}. Reply to read it."
)

// demo is the embedded default: an in-process emulator stands in for Twilio, so nothing leaves the machine.
type demo struct {
	emu        *emulator.Emulator
	api        *emulator.Client
	srv        *http.Server
	url        string
	sid, token string
	// serviceURL is where the service listens, known once it does.
	serviceURL string
	// adminToken is generated for the chats API the demo starts its chat through, and the console.
	adminToken string
	// deliveries counts the deliveries started from the console.
	deliveries atomic.Int32
}

// startDemo starts the emulator on a loopback port with generated credentials.
func startDemo(riderText string) (*demo, error) {
	d := &demo{}
	d.sid, d.token = emulator.NewCredentials()
	d.adminToken = newAdminToken()
	emu, err := emulator.New(emulator.Options{
		AccountSid: d.sid,
		AuthToken:  d.token,
		Contents:   map[string]string{demoTemplate1: demoInvite, demoTemplate2: riderText, demoNudge: demoNudgeText},
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo emulator: %w", err)
	}
	d.emu, d.url = emu, "http://"+ln.Addr().String()
	d.api = emulator.NewClient(d.url, d.sid, d.token)
	d.srv = &http.Server{Handler: emu, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = d.srv.Serve(ln) }()
	return d, nil
}

// configure points the service at the emulator, whatever the environment says: the emulator calls the
// service directly, so no public URL or proxy header stands between them. The rider's opt-in and the
// nudge go as Content templates, as they must on real WhatsApp, unless others were configured.
func (d *demo) configure(c *config) {
	c.AccountSid, c.AuthToken, c.AuthTokenSecondary, c.APIKey, c.APISecret = d.sid, d.token, "", "", ""
	// The emulator's account has one Conversation Service, its default: a real account's does not exist there.
	c.TwilioAPIURL, c.ConversationsSvc = d.url, ""
	c.PublicURL, c.TrustProxy = "", false
	if c.RiderContentSid == "" {
		c.RiderContentSid, c.RiderContentVar = demoTemplate2, ""
	}
	if c.NudgeContentSid == "" {
		c.NudgeContentSid = demoNudge
	}
	// The chats API, on the main listener; the chat's webhooks point at the service's own address.
	c.AdminTokens, c.AdminAddr, c.WhatsAppNumber, c.InviteContentSid = d.adminToken, "", demoBusiness, demoTemplate1
	c.WhatsAppNumbers, c.SMSNumbers = demoMoreNumbers, demoSMSNumber
	c.RedisURL, c.CallbackURL, c.CallbackSecret = "", "", ""
	if c.Addr == ":8080" {
		c.Addr = "127.0.0.1:8080"
	}
	c.Demo = true
	// stdout tells the story; the log goes to stderr, readable.
	c.LogFormat = "console"
}

// close stops the emulator. A webhook it fired as the service stopped may hang until its timeout: the
// demo does not wait for that.
func (d *demo) close(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_ = d.srv.Shutdown(ctx)
	_ = d.emu.Close(ctx)
}

// play runs the guide's story through the chats API of the service at serviceURL and prints what each
// phone saw.
func (d *demo) play(ctx context.Context, serviceURL string, out io.Writer) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	say("\noptin demo — nothing leaves this machine: Twilio is an emulator at %s with generated credentials.", d.url)
	say("The service is at %s; its chats API takes the token %s.", serviceURL, d.adminToken)
	say("Watch it in a browser: %s/console/ — log in with that token; the Demo tab shows both phones.\n", serviceURL)

	d.wireNumbers(serviceURL)
	start := fmt.Sprintf(`{"id":%q,"customer":{"address":%q,"name":"Ana"},"rider":{"address":%q,"name":"Bruno"},"metadata":{"order":1042}}`,
		demoChat, demoCustomer, demoRider)
	c, err := d.chatAPI(ctx, http.MethodPost, "/v1/chats", start)
	if err != nil {
		return err
	}
	say("1. POST /v1/chats: the service created conversation %s, added customer %s and rider %s on", c.conversation(), demoCustomer, demoRider)
	say("   business number %s, armed its webhooks and sent template 1 to the customer. Chat %s is %s.", demoBusiness, demoChat, c.State)
	if _, err := d.api.Inbound(ctx, demoCustomer, demoBusiness, "Yes"); err != nil {
		return err
	}
	say("2. The customer replies \"Yes\" — the emulator calls the service's webhook, signed.")
	if c, err = d.waitForChat(ctx, func(c chatAnswer) bool { return c.State == "connected" }); err != nil {
		return err
	}
	hooks, err := d.api.Webhooks(ctx, c.conversation())
	if err != nil {
		return err
	}
	say("3. The service sent the wait message and the rider's template, and keeps the chat's %d webhooks (its messages;", len(hooks))
	say("   its close and each delivery) to relay what follows. Chat %s is %s: %s.", demoChat, c.State, c.history())
	for _, text := range []string{"Gate code 4411", "Blue building, third floor"} {
		if _, err := d.api.Inbound(ctx, demoCustomer, demoBusiness, text); err != nil {
			return err
		}
	}
	if c, err = d.waitForChat(ctx, func(c chatAnswer) bool { return c.Rider.Held == 2 && c.Rider.NudgedAt != nil }); err != nil {
		return err
	}
	say("4. The customer writes twice before the rider answers. WhatsApp refuses both for the rider, whose 24-hour window")
	say("   is closed (63016): the service holds them and nudges the rider once with a template.")
	if _, err := d.api.Inbound(ctx, demoRider, demoBusiness, "On my way up"); err != nil {
		return err
	}
	if _, err = d.waitForChat(ctx, func(c chatAnswer) bool { return c.Rider.Held == 0 }); err != nil {
		return err
	}
	say("5. The rider answers: their window opens, and the service sends both held messages again, in order, once.\n")
	printSideBySide(out, "Customer "+demoCustomer, d.emu.Transcript(demoCustomer), "Rider "+demoRider, d.emu.Transcript(demoRider))
	say("\n✗ marks a message WhatsApp would not deliver: free-form text to someone outside their 24-hour window (63016).")
	if err := d.playCall(ctx, serviceURL, out); err != nil {
		return err
	}
	if err := d.playGuard(ctx, out); err != nil {
		return err
	}
	if err := d.playSMS(ctx, out); err != nil {
		return err
	}
	if err := d.playAfterEnd(ctx, out); err != nil {
		return err
	}
	say("\nStill serving until Ctrl-C. Play further — the customer writes, the rider receives it:")
	say("  curl -s -X POST %s/emulator/inbound --data-urlencode From=%s --data-urlencode To=%s --data-urlencode 'Body=Thank you!'", d.url, demoCustomer, demoBusiness)
	say("  curl -s '%s/emulator/transcripts'", d.url)
	say("  curl -s -H 'Authorization: Bearer %s' %s/v1/chats/%s", d.adminToken, serviceURL, demoChat)
	say("  curl -s -H 'Authorization: Bearer %s' -X DELETE %s/v1/chats/%s", d.adminToken, serviceURL, demoChat)
	say("  curl -s %s/healthz", serviceURL)
	say("\nREADME's whole delivery, for this demo (a second chat; the customer's answer is the emulator's phone):")
	for _, line := range walkthrough(serviceURL, d.url, d.adminToken) {
		say("  %s", line)
	}
	return nil
}

// playCall is the rider at the door calling the business number the chat came from: the customer's
// phone rings showing that number, never the rider's. The pool's numbers send their calls to the
// service, as docs/TWILIO.md has an operator set them.
func (d *demo) playCall(ctx context.Context, serviceURL string, out io.Writer) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	if err := d.emu.SetPhone(demoCustomer, emulator.Phone{TalkFor: emulator.Duration(35 * time.Second)}); err != nil {
		return err
	}
	call, err := d.emu.Call(demoRider, demoBusiness)
	if err != nil {
		return err
	}
	if len(call.Dials) != 1 {
		return fmt.Errorf("the rider's call rang nobody: %v", call.Log)
	}
	ring := call.Dials[0]
	if chat.E164(ring.CallerID) == chat.E164(demoRider) || ring.CallerID != chat.E164(demoBusiness) {
		return fmt.Errorf("the customer's phone showed %s, not the business number", ring.CallerID)
	}
	say("\n6. The rider calls %s, the number the chat came from. The customer's phone %s rings showing %s —", chat.E164(demoBusiness), ring.To, ring.CallerID)
	say("   the business number, never the rider's — and hears %q on answering.", strings.Join(ring.Heard, " "))
	d.emu.Advance(time.Minute) // they talk 35 s; the emulator's clock runs the call to its end
	c, err := d.waitForChat(ctx, func(c chatAnswer) bool { return len(c.Calls) == 1 && c.Calls[0].Status != nil })
	if err != nil {
		return err
	}
	say("   They talk %d s. The chat records the call: %s called %s, %s, %d s (GET /v1/chats/%s, \"calls\"); with", c.Calls[0].Duration, c.Calls[0].From, c.Calls[0].To, *c.Calls[0].Status, c.Calls[0].Duration, demoChat)
	say("   OPTIN_CALLBACK_URL set the platform gets chat.call_started and chat.call_ended. A stranger calling hears the")
	say("   text of OPTIN_CALL_UNAVAILABLE_TEXT and is hung up on.")
	return nil
}

// wireNumbers sets the emulated account up as docs/TWILIO.md has an operator set a real one: the
// Conversation Service sends each phone's message to the guard first (optinctl guard hook), and the
// pool's numbers send their calls and the messages no conversation takes to the service.
func (d *demo) wireNumbers(serviceURL string) {
	d.emu.SetServiceWebhooks(emulator.WebhookConfiguration{PreURL: serviceURL + "/webhooks/conversations", Method: http.MethodPost,
		Filters: []string{"onMessageAdd"}})
	for _, n := range append([]string{demoBusiness, demoSMSNumber}, strings.Split(demoMoreNumbers, ",")...) {
		d.emu.SetNumber(emulator.PhoneNumber{Number: n, SMS: true, Voice: true, VoiceURL: serviceURL + "/webhooks/voice", VoiceMethod: http.MethodPost,
			SMSURL: serviceURL + "/webhooks/messaging", SMSMethod: http.MethodPost})
	}
}

// demoTyped is what the rider types into the chat: his own number, which the guard hides.
const demoTyped = "The gate is locked, call me on +44 7911 123456"

// playGuard is the rider typing his own number: the customer reads it hidden.
func (d *demo) playGuard(ctx context.Context, out io.Writer) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	if _, err := d.api.Inbound(ctx, demoRider, demoBusiness, demoTyped); err != nil {
		return err
	}
	c, err := d.waitForChat(ctx, func(c chatAnswer) bool { return c.GuardedCount == 1 })
	if err != nil {
		return err
	}
	got := ""
	for _, e := range d.emu.Transcript(demoCustomer) {
		if e.Direction == "received" && strings.HasPrefix(e.Text, "The gate is locked") {
			got = e.Text
		}
	}
	say("\n7. The rider types %q. Twilio asks the service before it", demoTyped)
	say("   publishes it (the onMessageAdd pre-event), and the customer reads %q.", got)
	say("   The chat records that the %s typed a %s the guard hid (\"guarded\"), never the number itself;", c.Guarded[0].From, strings.Join(c.Guarded[0].Kinds, ", "))
	say("   OPTIN_GUARD=block would keep the message from her and tell the rider why.")
	return nil
}

// playAfterEnd ends the second story's chat, and its customer writes again: the business number
// answers her once, and the platform would hear chat.message_after_end.
func (d *demo) playAfterEnd(ctx context.Context, out io.Writer) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	if _, err := d.chatAPI(ctx, http.MethodDelete, "/v1/chats/"+demoSMSChat, ""); err != nil {
		return err
	}
	if _, err := d.waitFor(ctx, demoSMSChat, func(c chatAnswer) bool { return c.State == "closed" }); err != nil {
		return err
	}
	m, err := d.api.Inbound(ctx, demoSMSCustomer, demoSMSNumber, "Thanks! Can I still add a tip?")
	if err != nil {
		return err
	}
	again, err := d.api.Inbound(ctx, demoSMSCustomer, demoSMSNumber, "Hello?")
	if err != nil {
		return err
	}
	say("\n10. DELETE /v1/chats/%s ends Carla's chat. She writes again, \"Thanks! Can I still add a tip?\": no", demoSMSChat)
	say("   conversation holds the pair now, so Twilio asks %s's incoming-message webhook, and she gets", demoSMSNumber)
	say("   %q. Her \"Hello?\" right after gets %s: one answer per hour", strings.Join(m.Replies, " "), orNothing(again.Replies))
	say("   (OPTIN_AFTER_END_EVERY); with OPTIN_CALLBACK_URL set the platform hears chat.message_after_end.")
	return nil
}

func orNothing(replies []string) string {
	if len(replies) == 0 {
		return "nothing"
	}
	return fmt.Sprintf("%q", strings.Join(replies, " "))
}

// The parties of README's walk-through when it is played against the demo.
const (
	walkCustomer = "whatsapp:+15550100011"
	walkRider    = "whatsapp:+15550100012"
)

// walkthrough is README's "A whole delivery" for a service at service and the emulator at emu: the
// same commands, with the customer's answer sent from the emulator's phone. The first line sets the
// shell variables the others use.
func walkthrough(service, emu, token string) []string {
	return []string{
		fmt.Sprintf(`T="Authorization: Bearer %s"; S=%s; E=%s`, token, service, emu),
		fmt.Sprintf(`curl -s -H "$T" -H 'Content-Type: application/json' -X POST $S/v1/chats -d '{"id":"order-8812","customer":{"address":"%s","name":"Ana"},"rider":{"address":"%s","name":"Bruno"},"ttl":"2h","metadata":{"order":8812}}'`, walkCustomer, walkRider),
		fmt.Sprintf(`curl -s -X POST $E/emulator/inbound --data-urlencode From=%s --data-urlencode To=%s --data-urlencode Body=Yes`, walkCustomer, demoBusiness),
		`curl -s -H "$T" $S/v1/chats/order-8812`,
		`curl -s -H "$T" "$S/v1/chats?state=connected&limit=20"`,
		`curl -s -H "$T" -X DELETE $S/v1/chats/order-8812`,
	}
}

// demoChat is the id of the demo's chat.
const demoChat = "order-1042"

// The second story: a customer whose number has no WhatsApp account, and the demo's SMS number.
const (
	demoSMSChat     = "order-1042-sms"
	demoSMSCustomer = "+15550100003"
	demoSMSNumber   = "+15550100090"
)

// playSMS tells the second story: the invitation cannot reach a customer not on WhatsApp, the service
// moves them to SMS, and their answer there connects the chat.
func (d *demo) playSMS(ctx context.Context, out io.Writer) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	d.emu.SetNotOnWhatsApp(demoSMSCustomer)
	start := fmt.Sprintf(`{"id":%q,"customer":{"address":"whatsapp:%s","name":"Carla"},"rider":{"address":%q,"name":"Bruno"}}`,
		demoSMSChat, demoSMSCustomer, demoRider)
	if _, err := d.chatAPI(ctx, http.MethodPost, "/v1/chats", start); err != nil {
		return err
	}
	if _, err := d.waitFor(ctx, demoSMSChat, func(c chatAnswer) bool { return c.Customer.Channel == "sms" }); err != nil {
		return err
	}
	say("\nSecond story: a customer not on WhatsApp.")
	say("8. POST /v1/chats for Carla, whatsapp:%s. WhatsApp cannot deliver the invitation: the number has no", demoSMSCustomer)
	say("   WhatsApp account (63003). The service moves her to SMS: the WhatsApp participant removed, an SMS one")
	say("   added on %s, the invitation sent again as text; the platform hears chat.channel_changed.", demoSMSNumber)
	if _, err := d.api.Inbound(ctx, demoSMSCustomer, demoSMSNumber, "YES"); err != nil {
		return err
	}
	c, err := d.waitFor(ctx, demoSMSChat, func(c chatAnswer) bool { return c.State == "connected" })
	if err != nil {
		return err
	}
	say("9. She answers YES by SMS, and the opt-in goes on there. Chat %s is %s: %s.\n", demoSMSChat, c.State, c.history())
	customer := append(d.emu.Transcript("whatsapp:"+demoSMSCustomer), d.emu.Transcript(demoSMSCustomer)...)
	slices.SortStableFunc(customer, func(a, b emulator.Entry) int { return a.At.Compare(b.At) })
	rider := slices.DeleteFunc(d.emu.Transcript(demoRider), func(e emulator.Entry) bool { return e.ConversationSid != c.conversation() })
	printSideBySide(out, "Customer "+demoSMSCustomer+" (WhatsApp, then SMS)", customer, "Rider "+demoRider, rider)
	say("\n✗ on the customer's side: WhatsApp could not deliver to a number with no account (63003).")
	return nil
}

// demoNames are the customers of the deliveries started from the console.
var demoNames = []string{"Carla", "Deepa", "Emeka", "Fumiko", "Gustavo", "Hana", "Ines", "Jonas"}

// Start begins another delivery for the same rider, to a new customer (the console's button).
func (d *demo) Start(ctx context.Context) (string, error) {
	n := int(d.deliveries.Add(1))
	id := fmt.Sprintf("order-%d", 1042+n)
	customer := fmt.Sprintf("whatsapp:+155501001%02d", n%100)
	start := fmt.Sprintf(`{"id":%q,"customer":{"address":%q,"name":%q},"rider":{"address":%q,"name":"Bruno"},"metadata":{"order":%d}}`,
		id, customer, demoNames[(n-1)%len(demoNames)], demoRider, 1042+n)
	if _, err := d.chatAPI(ctx, http.MethodPost, "/v1/chats", start); err != nil {
		if strings.Contains(err.Error(), "no-free-number") {
			return "", errors.New("the rider already carries one order per business number; end a chat first")
		}
		return "", errors.New("the chats API refused the start; see the service's log")
	}
	return id, nil
}

// Thread is what the phone at address exchanged with the business number proxy: its messages, and
// the calls it placed to the number or took from it.
func (d *demo) Thread(address, proxy string) []console.Message {
	var out []console.Message
	for _, e := range d.emu.Transcript(address) {
		if e.Peer == proxy {
			out = append(out, console.Message{Sent: e.Direction == "sent", Text: e.Text, At: e.At, Undelivered: e.Status == "failed" || e.Status == "undelivered"})
		}
	}
	phone, number := chat.E164(address), chat.E164(proxy)
	for _, c := range d.emu.Calls() {
		for _, dial := range c.Dials {
			switch {
			case c.From == phone && c.To == number:
				out = append(out, console.Message{Sent: true, Text: "📞 Called " + number + ": " + dialOutcome(dial), At: c.Started})
			case dial.To == phone && dial.CallerID == number:
				out = append(out, console.Message{Text: "📞 Call from " + number + ": " + dialOutcome(dial), At: dial.Ringing})
			}
		}
		if len(c.Dials) == 0 && c.From == phone && c.To == number {
			out = append(out, console.Message{Sent: true, Text: "📞 Called " + number + ": " + strings.Join(c.Heard, " "), At: c.Started})
		}
	}
	slices.SortStableFunc(out, func(a, b console.Message) int { return a.At.Compare(b.At) })
	return out
}

func dialOutcome(d emulator.Dial) string {
	switch d.Status {
	case "ringing":
		return "ringing"
	case "in-progress":
		return "talking"
	case "completed":
		return fmt.Sprintf("talked %d s", d.Duration)
	}
	return d.Status
}

// demoCallLength is how long a call placed from the console's phones lasts on the emulator's clock.
const demoCallLength = 20 * time.Second

// Call has the phone at address call the business number proxy, as a person would: the other party's
// phone rings showing that number, they talk a little, and the caller hangs up.
func (d *demo) Call(_ context.Context, address, proxy string) error {
	c, err := d.emu.Call(chat.E164(address), chat.E164(proxy))
	if err != nil {
		return errors.New("the emulator could not place the call")
	}
	if len(c.Dials) == 0 || c.Dials[0].Status == "ringing" || c.Dials[0].Status == "in-progress" {
		d.emu.Advance(demoCallLength)
	}
	if c, ok := d.emu.CallByID(c.Sid); ok && c.Status == "in-progress" {
		_, _ = d.emu.Hangup(c.Sid, "caller")
	}
	return nil
}

// Say sends text from the phone at address to the business number, as the emulator's inbound
// endpoint does for a person typing.
func (d *demo) Say(ctx context.Context, address, proxy, text string) error {
	if _, err := d.emu.Inbound(address, proxy, text); err != nil {
		return errors.New("this phone has no conversation on that number any more")
	}
	return nil
}

// chatAnswer is what the demo reads of the API's chat.
type chatAnswer struct {
	State           string  `json:"state"`
	ConversationSid *string `json:"conversation_sid"`
	Customer        struct {
		Channel string `json:"channel"`
	} `json:"customer"`
	Rider struct {
		Held     int        `json:"held"`
		NudgedAt *time.Time `json:"nudged_at"`
	} `json:"rider"`
	History []struct {
		State   string `json:"state"`
		Channel string `json:"channel"`
	} `json:"history"`
	Calls []struct {
		From, To string
		Status   *string `json:"status"`
		Duration int     `json:"duration"`
	} `json:"calls"`
	Guarded []struct {
		From  string   `json:"from"`
		Kinds []string `json:"kinds"`
	} `json:"guarded"`
	GuardedCount int `json:"guarded_count"`
}

func (c chatAnswer) conversation() string {
	if c.ConversationSid == nil {
		return ""
	}
	return *c.ConversationSid
}

func (c chatAnswer) history() string {
	var s []string
	for _, h := range c.History {
		if h.Channel != "" {
			s = append(s, "(moved to "+h.Channel+")")
			continue
		}
		s = append(s, h.State)
	}
	return strings.Join(s, " → ")
}

// chatAPI calls the service's chats API as a platform would.
func (d *demo) chatAPI(ctx context.Context, method, url, body string) (chatAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, method, d.serviceURL+url, strings.NewReader(body))
	if err != nil {
		return chatAnswer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+d.adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return chatAnswer{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return chatAnswer{}, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, raw)
	}
	var c chatAnswer
	return c, json.Unmarshal(raw, &c)
}

// waitForChat polls the demo's chat until ok holds.
func (d *demo) waitForChat(ctx context.Context, ok func(chatAnswer) bool) (chatAnswer, error) {
	return d.waitFor(ctx, demoChat, ok)
}

// waitFor polls chat id until ok holds.
func (d *demo) waitFor(ctx context.Context, id string, ok func(chatAnswer) bool) (chatAnswer, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := d.chatAPI(ctx, http.MethodGet, "/v1/chats/"+id, "")
		if err == nil && ok(c) {
			return c, nil
		}
		if time.Now().After(deadline) {
			return c, fmt.Errorf("the chat did not get there within 15 s (%v, %s); see the service's log", err, c.State)
		}
		select {
		case <-ctx.Done():
			return c, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

const column = 48

func printSideBySide(out io.Writer, leftTitle string, left []emulator.Entry, rightTitle string, right []emulator.Entry) {
	render := func(entries []emulator.Entry) []string {
		var lines []string
		for _, e := range entries {
			mark := "← "
			switch {
			case e.Direction == "sent":
				mark = "→ "
			case e.Status == "failed" || e.Status == "undelivered":
				mark = "✗ "
			}
			for i, l := range wrap(e.Text, column-2) {
				if i == 0 {
					lines = append(lines, mark+l)
				} else {
					lines = append(lines, "  "+l)
				}
			}
			lines = append(lines, "")
		}
		return lines
	}
	l, r := render(left), render(right)
	fmt.Fprintf(out, "%s │ %s\n", pad(leftTitle), rightTitle)
	fmt.Fprintf(out, "%s─┼─%s\n", strings.Repeat("─", column), strings.Repeat("─", column))
	for i := range max(len(l), len(r)) {
		var a, b string
		if i < len(l) {
			a = l[i]
		}
		if i < len(r) {
			b = r[i]
		}
		fmt.Fprintf(out, "%s │ %s\n", pad(a), b)
	}
}

func pad(s string) string {
	return s + strings.Repeat(" ", max(column-utf8.RuneCountInString(s), 0))
}

func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && utf8.RuneCountInString(line)+1+utf8.RuneCountInString(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}

// newAdminToken makes a token as the docs tell operators to: 32 random bytes in hex.
func newAdminToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
