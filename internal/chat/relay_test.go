package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/twiliocall"
)

const (
	nudgeSid = "HX00000000000000000000000000000009"
	customer = "whatsapp:+15550001111"
	rider    = "whatsapp:+15550002222"
	number   = "whatsapp:+15550100000"
)

// relayEnv is an env whose service holds messages, with windows, a nudge template and an observer;
// what it starts in the background runs at once.
type relayEnv struct {
	*env
	windows *fakeWindows
	obs     *fakeObserver
}

func newRelayEnv(t *testing.T) *relayEnv {
	t.Helper()
	e := newEnv(t)
	r := &relayEnv{env: e, windows: &fakeWindows{last: map[string]time.Time{}}, obs: &fakeObserver{}}
	svc, err := NewService(e.tw, e.store, Config{
		WhatsApp: e.pool, WebhookURL: "https://optin.example.com/webhooks/conversations",
		InviteContentSid: "HX00000000000000000000000000000001", DefaultTTL: time.Hour,
		StartBudget: 2 * time.Second, Retry: fastRetry, Notifier: e.notes,
		Windows: r.windows, NudgeContentSid: nudgeSid, Observer: r.obs, HoldMax: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.now = e.clock.now
	workNow(svc)
	e.svc = svc
	return r
}

// connected starts chat id and takes it through the customer's yes; it returns the chat and the
// answer's SID.
func (r *relayEnv) connected(id string) (Chat, string) {
	r.t.Helper()
	ctx := context.Background()
	c, _, err := r.svc.Start(ctx, request(id))
	if err != nil {
		r.t.Fatal(err)
	}
	yes := r.write(c, customer, "yes")
	for _, st := range []conversation.Stage{conversation.StageConnecting, conversation.StageConnected} {
		if err := r.svc.Advance(ctx, c.ConversationSid, st, yes.Sid, nil); err != nil {
			r.t.Fatal(err)
		}
	}
	return r.chat(id), yes.Sid
}

// write is a party's message: in the conversation, then told to the service as Twilio's webhook.
func (r *relayEnv) write(c Chat, author, body string) Message {
	r.t.Helper()
	m := r.tw.write(c.ConversationSid, author, body)
	if _, _, err := r.svc.MessageAdded(context.Background(), conversation.Event{Type: conversation.EventMessageAdded,
		ConversationSid: c.ConversationSid, MessageSid: m.Sid, Author: author, Body: body, DateCreated: m.Created}); err != nil {
		r.t.Fatal(err)
	}
	return m
}

// failed reports that m did not reach its recipient because their window was closed.
func (r *relayEnv) failed(c Chat, m Message) conversation.Decision {
	r.t.Helper()
	r.tw.failDelivery(c.ConversationSid, m.Sid, codeWindowClosed)
	d, err := r.svc.DeliveryUpdated(context.Background(), conversation.Event{Type: conversation.EventDeliveryUpdated, ConversationSid: c.ConversationSid,
		MessageSid: m.Sid, ParticipantSid: "MB00000000000000000000000000000001", Status: "failed", ErrorCode: codeWindowClosed})
	if err != nil {
		r.t.Fatal(err)
	}
	return d
}

// created describes the messages the service created in the conversation from index from on.
func (r *relayEnv) created(c Chat, from int) []string {
	var out []string
	for _, m := range r.tw.sent(c.ConversationSid, from) {
		if m.ContentSid != "" {
			out = append(out, fmt.Sprintf("%s: template %s %s", m.Author, m.ContentSid, m.ContentVariables))
		} else {
			out = append(out, fmt.Sprintf("%s: %s", m.Author, m.Body))
		}
	}
	return out
}

func TestHeldMessagesReachTheRiderOnceInOrderAfterOneNudge(t *testing.T) {
	r := newRelayEnv(t)
	c, _ := r.connected("order-1")
	var written []Message
	for _, body := range []string{"gate code 4411", "I'm in the blue building", "third floor"} {
		m := r.write(c, customer, body)
		written = append(written, m)
		if d := r.failed(c, m); d.Outcome != conversation.OutcomeRelayed {
			t.Fatalf("failure of %q: %+v, want relayed", body, d)
		}
	}
	r.failed(c, written[0]) // Twilio reports a failure again: still held once
	held := r.chat("order-1").Rider.Held
	if len(held) != 3 || held[0].Body != "gate code 4411" || held[2].Body != "third floor" || held[0].Author != customer {
		t.Fatalf("held for the rider: %+v", held)
	}
	start := len(r.tw.sent(c.ConversationSid, 0))
	// One nudge, after the first message held, authored by the customer so that only the rider gets it.
	want := []string{customer + `: template ` + nudgeSid + ` {"1":"Ana"}`, customer + ": I'm in the blue building", customer + ": third floor"}
	if got := r.created(c, written[0].Index+1); !reflect.DeepEqual(got, want) {
		t.Fatalf("created before the rider wrote: %q, want %q", got, want)
	}
	r.write(c, rider, "on my way")
	want = []string{rider + ": on my way", customer + ": gate code 4411", customer + ": I'm in the blue building", customer + ": third floor"}
	if got := r.created(c, start); !reflect.DeepEqual(got, want) {
		t.Fatalf("created after the rider wrote: %q, want %q", got, want)
	}
	for i, m := range r.tw.sent(c.ConversationSid, start+1) {
		var marker map[string]map[string]string
		_ = json.Unmarshal([]byte(m.Attributes), &marker)
		if marker["optin"]["resend"] != written[i].Sid || marker["optin"]["chat"] != "order-1" {
			t.Errorf("copy %d marker %s, want the original %s", i, m.Attributes, written[i].Sid)
		}
	}
	if got := r.chat("order-1").Rider; len(got.Held) != 0 || got.Nudging {
		t.Fatalf("after the re-send the rider holds %+v", got)
	}
	if held, resent, nudges, dropped := r.obs.counts(); held != 3 || resent != 3 || nudges != 1 || len(dropped) != 0 {
		t.Fatalf("counted held %d resent %d nudges %d dropped %v, want 3 3 1 none", held, resent, nudges, dropped)
	}
	// A sweep finds nothing left to do.
	if _, err := r.svc.SweepOutbox(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.created(c, start+4); len(got) != 0 {
		t.Fatalf("a sweep after the re-send created %q", got)
	}
}

func TestNudgeOncePerClosedWindow(t *testing.T) {
	r := newRelayEnv(t)
	c, _ := r.connected("order-1")
	r.failed(c, r.write(c, customer, "one"))
	r.failed(c, r.write(c, customer, "two"))
	if _, _, nudges, _ := r.obs.counts(); nudges != 1 {
		t.Fatalf("nudges in one closed window: %d, want 1", nudges)
	}
	rider1 := r.write(c, rider, "hi") // the window opens: both are sent, no nudge
	// A day later the rider's window has closed again: the next held message nudges once more.
	later := r.tw.write(c.ConversationSid, customer, "still there?")
	r.tw.mu.Lock()
	r.tw.convs[c.ConversationSid].messages[later.Index].Created = rider1.Created.Add(25 * time.Hour)
	later = r.tw.convs[c.ConversationSid].messages[later.Index].Message
	r.tw.mu.Unlock()
	r.failed(c, later)
	if _, resent, nudges, _ := r.obs.counts(); nudges != 2 || resent != 2 {
		t.Fatalf("after a second closed window: nudges %d resent %d, want 2 and 2", nudges, resent)
	}
	if got := r.chat("order-1").Rider; !got.NudgedFor.Equal(rider1.Created) {
		t.Fatalf("second nudge recorded for window %v, want the one opened at %v", got.NudgedFor, rider1.Created)
	}
}

func TestTheCustomersAnswerIsNotSentAgain(t *testing.T) {
	r := newRelayEnv(t)
	ctx := context.Background()
	c, _, err := r.svc.Start(ctx, request("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	// The answer and a message right after it fail for the rider before the opt-in has run: both are
	// held early; once the opt-in names the answer, it is let go and the other counts.
	yes := r.write(c, customer, "yes")
	gate := r.write(c, customer, "gate code 4411")
	r.failed(c, yes)
	r.failed(c, gate)
	if held, _, nudges, _ := r.obs.counts(); held != 0 || nudges != 0 {
		t.Fatalf("before the opt-in ran: held %d nudges %d, want 0 0", held, nudges)
	}
	if err := r.svc.Advance(ctx, c.ConversationSid, conversation.StageConnecting, yes.Sid, nil); err != nil {
		t.Fatal(err)
	}
	got := r.chat("order-1")
	if len(got.Rider.Held) != 1 || got.Rider.Held[0].MessageSid != gate.Sid || got.Rider.Held[0].Early || got.Answer != yes.Sid {
		t.Fatalf("after the answer: held %+v answer %s", got.Rider.Held, got.Answer)
	}
	if held, _, nudges, _ := r.obs.counts(); held != 1 || nudges != 1 {
		t.Fatalf("after the answer: held %d nudges %d, want 1 1", held, nudges)
	}
	// The answer's failure reported once more, late: not held.
	r.failed(c, yes)
	if got := r.chat("order-1"); len(got.Rider.Held) != 1 || len(got.Undelivered) != 0 {
		t.Fatalf("the answer's late failure held: %+v, pending %+v", got.Rider.Held, got.Undelivered)
	}
}

func TestAnInterruptedResendFindsItsCopy(t *testing.T) {
	r := newRelayEnv(t)
	c, _ := r.connected("order-1")
	m := r.write(c, customer, "gate code 4411")
	r.failed(c, m)
	// A replica made the copy and died before it recorded it.
	ctx := context.Background()
	if _, err := r.store.Update(ctx, "order-1", func(c *Chat) error { c.Rider.Held[0].Sending = true; return nil }); err != nil {
		t.Fatal(err)
	}
	r.tw.mu.Lock()
	r.tw.convs[c.ConversationSid].add(conversation.Message{Author: customer, Body: "gate code 4411", Attributes: chatMarker("order-1", "resend", m.Sid)})
	r.tw.mu.Unlock()
	r.svc.cfg.Work = nil // only the sweep
	r.write(c, rider, "here")
	start := len(r.tw.sent(c.ConversationSid, 0))
	if _, err := r.svc.SweepOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.created(c, start); len(got) != 0 {
		t.Fatalf("the sweep created %q, want nothing: the copy exists", got)
	}
	if held := r.chat("order-1").Rider.Held; len(held) != 0 {
		t.Fatalf("still held: %+v", held)
	}
}

func TestHeldMessagesAreDropped(t *testing.T) {
	t.Run("past the hold max", func(t *testing.T) {
		r := newRelayEnv(t)
		c, _ := r.connected("order-1")
		r.failed(c, r.write(c, customer, "gate code 4411"))
		r.clock.advance(time.Hour)
		if _, err := r.svc.SweepOutbox(context.Background()); err != nil {
			t.Fatal(err)
		}
		if held := r.chat("order-1").Rider.Held; len(held) != 1 {
			t.Fatalf("held exactly the hold max: %+v, want still held", held)
		}
		r.clock.advance(time.Millisecond)
		if _, err := r.svc.SweepOutbox(context.Background()); err != nil {
			t.Fatal(err)
		}
		if held := r.chat("order-1").Rider.Held; len(held) != 0 {
			t.Fatalf("held past the hold max: %+v", held)
		}
		if _, _, _, dropped := r.obs.counts(); !reflect.DeepEqual(dropped, map[string]int{"expired": 1}) {
			t.Fatalf("dropped %v", dropped)
		}
		r.write(c, rider, "sorry, here now")
		if _, resent, _, _ := r.obs.counts(); resent != 0 {
			t.Fatalf("a dropped message was sent: %d", resent)
		}
	})
	t.Run("when the chat ends", func(t *testing.T) {
		r := newRelayEnv(t)
		c, _ := r.connected("order-1")
		r.failed(c, r.write(c, customer, "gate code 4411"))
		if _, err := r.svc.End(context.Background(), "order-1"); err != nil {
			t.Fatal(err)
		}
		if got := r.chat("order-1"); got.State != StateClosed || len(got.Rider.Held) != 0 {
			t.Fatalf("ended chat: %s held %+v", got.State, got.Rider.Held)
		}
		if _, _, _, dropped := r.obs.counts(); !reflect.DeepEqual(dropped, map[string]int{"closed": 1}) {
			t.Fatalf("dropped %v", dropped)
		}
	})
}

func TestWhatIsNotHeld(t *testing.T) {
	r := newRelayEnv(t)
	c, _ := r.connected("order-1")
	system := r.tw.write(c.ConversationSid, "", "Great! Just a moment while we connect you…")
	delivered := r.write(c, customer, "hello")
	for name, ev := range map[string]conversation.Event{
		"delivered":     {Status: "delivered", MessageSid: delivered.Sid},
		"read":          {Status: "read", MessageSid: delivered.Sid},
		"another error": {Status: "undelivered", ErrorCode: 30008, MessageSid: delivered.Sid},
	} {
		ev.Type, ev.ConversationSid = conversation.EventDeliveryUpdated, c.ConversationSid
		d, err := r.svc.DeliveryUpdated(context.Background(), ev)
		if err != nil || d.Outcome != conversation.OutcomeIgnored {
			t.Errorf("%s: %+v %v, want ignored", name, d, err)
		}
	}
	// A system message's failure is recorded (its author is known only once it is read), then let go.
	r.failed(c, Message{Sid: system.Sid})
	if got := r.chat("order-1"); len(got.Rider.Held)+len(got.Customer.Held)+len(got.Undelivered) != 0 {
		t.Fatalf("held: %+v %+v, pending %+v", got.Customer.Held, got.Rider.Held, got.Undelivered)
	}
}

func TestWindowEdges(t *testing.T) {
	last := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	w := Window{LastInbound: last}
	for _, tt := range []struct {
		name string
		at   time.Time
		open bool
	}{
		{"at the message", last, true},
		{"a millisecond before 24 h", last.Add(WindowLength - time.Millisecond), true},
		{"exactly 24 h", last.Add(WindowLength), false},
		{"after 24 h", last.Add(25 * time.Hour), false},
		// Another replica's clock a little behind Twilio's: the person has written, so it is open.
		{"before the message", last.Add(-2 * time.Second), true},
	} {
		if got := w.OpenAt(tt.at); got != tt.open {
			t.Errorf("%s: open %v, want %v", tt.name, got, tt.open)
		}
	}
	if (Window{}).OpenAt(last) {
		t.Error("a window never opened is open")
	}
	if !w.ReopenedAfter(last.Add(-time.Millisecond)) || !w.ReopenedAfter(last) || w.ReopenedAfter(last.Add(time.Second)) {
		t.Error("ReopenedAfter must hold for a message written at the failed message's time or after, not before")
	}
	if (Window{}).ReopenedAfter(time.Time{}) {
		t.Error("a window never opened reopened")
	}
}

// Replicas judge windows by Twilio's times only: two services whose clocks are an hour apart hold
// and send again alike.
func TestWindowsIgnoreReplicaClocks(t *testing.T) {
	r := newRelayEnv(t)
	c, _ := r.connected("order-1")
	other, err := NewService(r.tw, r.store, r.svc.cfg)
	if err != nil {
		t.Fatal(err)
	}
	other.now = func() time.Time { return r.clock.now().Add(-time.Hour) }
	workNow(other)
	m := r.write(c, customer, "gate code 4411")
	if _, err := other.DeliveryUpdated(context.Background(), conversation.Event{Type: conversation.EventDeliveryUpdated, ConversationSid: c.ConversationSid,
		MessageSid: m.Sid, Status: "failed", ErrorCode: codeWindowClosed}); err != nil {
		t.Fatal(err)
	}
	// The rider writes through the replica whose clock is ahead; the copy goes at once.
	r.write(c, rider, "here")
	if _, resent, _, _ := r.obs.counts(); resent != 1 {
		t.Fatalf("resent %d, want 1", resent)
	}
}

// A person's window is the pair's, not the chat's: the rider's message in one chat on a number is
// the window a later chat on that number nudges for.
func TestAWindowOutlivesItsChat(t *testing.T) {
	r := newRelayEnv(t)
	c1, _ := r.connected("order-1")
	hi := r.write(c1, rider, "hi")
	if _, err := r.svc.End(context.Background(), "order-1"); err != nil {
		t.Fatal(err)
	}
	c2, _ := r.connected("order-2")
	if c2.Rider.ProxyAddress != c1.Rider.ProxyAddress {
		t.Fatalf("the fake pool gave another number: %s", c2.Rider.ProxyAddress)
	}
	m := r.tw.write(c2.ConversationSid, customer, "gate code 4411")
	r.tw.mu.Lock()
	r.tw.convs[c2.ConversationSid].messages[m.Index].Created = hi.Created.Add(WindowLength)
	m = r.tw.convs[c2.ConversationSid].messages[m.Index].Message
	r.tw.mu.Unlock()
	r.failed(c2, m)
	if got := r.chat("order-2").Rider; !got.NudgedFor.Equal(hi.Created) || got.NudgedAt.IsZero() {
		t.Fatalf("nudged for %v at %v, want the window chat 1 saw open at %v", got.NudgedFor, got.NudgedAt, hi.Created)
	}
}

// The rider's message (their window opens) and the report that a message failed for them (it is held)
// come at the same time, in either order: one of the two sees the other — at the latest the sweep does
// — and the message is sent again exactly once.
func TestWindowOpensWhileAMessageIsHeld(t *testing.T) {
	for round := range 50 {
		r := newRelayEnv(t)
		workAsync(r.svc)
		c, _ := r.connected("order-1")
		m := r.write(c, customer, "gate code 4411")
		reply := r.tw.write(c.ConversationSid, rider, "here")
		var wg sync.WaitGroup
		wg.Go(func() { r.failed(c, m) })
		wg.Go(func() {
			if _, _, err := r.svc.MessageAdded(context.Background(), conversation.Event{Type: conversation.EventMessageAdded, ConversationSid: c.ConversationSid,
				MessageSid: reply.Sid, Author: rider, Body: "here", DateCreated: reply.Created}); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, err := r.svc.SweepOutbox(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !r.chat("order-1").needsTending() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: still held", round)
			}
			time.Sleep(time.Millisecond)
		}
		copies := 0
		for _, s := range r.created(c, 0) {
			if s == customer+": gate code 4411" {
				copies++
			}
		}
		if copies != 2 { // the original and one copy
			t.Fatalf("round %d: %d messages 'gate code 4411', want the original and one copy", round, copies)
		}
	}
}

// Ending a chat while its held messages are being sent: the chat ends closed, nothing stays held, and
// no copy is made after the conversation closed.
func TestEndWhileResending(t *testing.T) {
	for round := range 30 {
		r := newRelayEnv(t) // held first, one by one
		c, _ := r.connected("order-1")
		for k := range 3 {
			r.failed(c, r.write(c, customer, fmt.Sprintf("message %d", k)))
		}
		workAsync(r.svc)
		var wg sync.WaitGroup
		wg.Go(func() { r.write(c, rider, "here") })
		wg.Go(func() {
			if _, err := r.svc.End(context.Background(), "order-1"); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
		_, _ = r.svc.SweepOutbox(context.Background())
		got := r.chat("order-1")
		if got.State != StateClosed || len(got.Rider.Held) != 0 {
			t.Fatalf("round %d: %s, held %d", round, got.State, len(got.Rider.Held))
		}
		// The re-send started by the rider's message may still be finishing its last message.
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, resent, _, dropped := r.obs.counts()
			if resent+dropped["closed"] == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: resent %d + dropped %v, want 3 in all", round, resent, dropped)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// Twilio away when a failure is reported: the report is recorded and answered all the same, and the
// sweep holds the message once Twilio answers again.
func TestAFailureReportedWhileTwilioIsAwayIsHeldLater(t *testing.T) {
	r := newRelayEnv(t)
	c, _ := r.connected("order-1")
	m := r.write(c, customer, "gate code 4411")
	away := true
	r.tw.before = func(op, _ string) error {
		if op == "fetch_message" && away {
			return callErr("fetch message", twiliocall.Retryable, 503, 20503)
		}
		return nil
	}
	if d := r.failed(c, m); d.Outcome != conversation.OutcomeRelayed {
		t.Fatalf("report: %+v", d)
	}
	if got := r.chat("order-1"); len(got.Rider.Held) != 0 || len(got.Undelivered) != 1 {
		t.Fatalf("while Twilio is away: held %+v, pending %+v", got.Rider.Held, got.Undelivered)
	}
	away = false
	if _, err := r.svc.SweepOutbox(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.chat("order-1"); len(got.Rider.Held) != 1 || len(got.Undelivered) != 0 || got.Rider.NudgedAt.IsZero() {
		t.Fatalf("after the sweep: held %+v, pending %+v, nudged %v", got.Rider.Held, got.Undelivered, got.Rider.NudgedAt)
	}
}

// A failure whose report never came (Twilio calls a webhook once) is found by the reconciler, which
// reads the chat's newest messages and their receipts; what was acted on already is left alone.
func TestTheReconcilerFindsFailuresNoReportToldOf(t *testing.T) {
	r := newRelayEnv(t)
	c, _ := r.connected("order-1")
	reported := r.write(c, customer, "first")
	r.failed(c, reported) // reported, held
	lost := r.write(c, customer, "gate code 4411")
	r.tw.failDelivery(c.ConversationSid, lost.Sid, codeWindowClosed) // its report is lost
	rep, err := r.svc.Reconcile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := r.chat("order-1")
	if rep.Recovered != 1 || len(got.Rider.Held) != 2 || got.Rider.Held[1].MessageSid != lost.Sid {
		t.Fatalf("recovered %d, held %+v", rep.Recovered, got.Rider.Held)
	}
	r.write(c, rider, "here") // both sent again
	again, err := r.svc.Reconcile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, resent, _, _ := r.obs.counts(); again.Recovered != 0 || resent != 2 || len(r.chat("order-1").Rider.Held) != 0 {
		t.Fatalf("a second reconcile recovered %d; resent %d", again.Recovered, resent)
	}
}
