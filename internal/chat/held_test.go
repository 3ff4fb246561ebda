package chat

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/twiliocall"
)

// report reports m failed for a closed window, as Twilio's webhook would, without waiting for
// what the report starts.
func (r *relayEnv) report(c Chat, m Message) {
	r.t.Helper()
	r.tw.failDelivery(c.ConversationSid, m.Sid, codeWindowClosed)
	if _, err := r.svc.DeliveryUpdated(context.Background(), conversation.Event{Type: conversation.EventDeliveryUpdated, ConversationSid: c.ConversationSid,
		MessageSid: m.Sid, Status: "failed", ErrorCode: codeWindowClosed}); err != nil {
		r.t.Fatal(err)
	}
}

// A photo of the door sent while the rider's window was closed reaches the rider with its photo: the
// copy carries a copy of the media (Twilio attaches a media to one message only) (issue 24, defect 1).
func TestAHeldPhotoArrivesWithItsMedia(t *testing.T) {
	r := newRelayEnv(t)
	c, _ := r.connected("order-1")
	photo := r.tw.writeMedia(c.ConversationSid, customer)
	r.failed(c, photo)
	if held := r.chat("order-1").Rider.Held; len(held) != 1 || len(held[0].Media) != 1 || held[0].Media[0].Sid != photo.Media[0].Sid {
		t.Fatalf("held %+v, want the photo with its media", held)
	}
	start := len(r.tw.sent(c.ConversationSid, 0))
	r.write(c, rider, "here")
	copies := r.tw.sent(c.ConversationSid, start+1)
	if len(copies) != 1 {
		t.Fatalf("copies %+v, want one", copies)
	}
	got := copies[0]
	if got.Author != customer || got.Body != "" || len(got.Media) != 1 || got.Media[0].Sid == photo.Media[0].Sid ||
		got.Media[0].ContentType != "image/jpeg" || got.Media[0].Filename != "door.jpg" {
		t.Errorf("copy %+v, want the customer's photo as a new media", got)
	}
	if held := r.chat("order-1").Rider.Held; len(held) != 0 {
		t.Errorf("still held %+v", held)
	}
}

// A held message Twilio refuses for good is dropped and counted; the messages behind it and the other
// party's still go (issue 24, defect 1: it wedged the chat).
func TestARefusedCopyDoesNotWedgeTheChat(t *testing.T) {
	r := newRelayEnv(t)
	c, _ := r.connected("order-1")
	first := r.write(c, customer, "first")
	second := r.write(c, customer, "second")
	r.failed(c, first)
	r.failed(c, second)
	// The first copy is refused; the test lets the second through.
	refused := false
	r.tw.before = func(op, _ string) error {
		if op == "message" && !refused {
			refused = true
			return callErr("create message", twiliocall.Permanent, 400, 21610)
		}
		return nil
	}
	start := len(r.tw.sent(c.ConversationSid, 0))
	r.write(c, rider, "here")
	if got := r.created(c, start+1); !reflect.DeepEqual(got, []string{customer + ": second"}) {
		t.Fatalf("created %q, want the second message's copy", got)
	}
	if got := r.chat("order-1").Rider; len(got.Held) != 0 {
		t.Fatalf("still held %+v", got.Held)
	}
	if _, resent, _, dropped := r.obs.counts(); resent != 1 || !reflect.DeepEqual(dropped, map[string]int{DropRefused: 1}) {
		t.Errorf("resent %d dropped %v, want 1 and one refused", resent, dropped)
	}
}

// A failure reported while a tend holds the chat is acted on when that tend finishes, not by the next
// sweep (issue 24, defect 5: a 10-second stall).
func TestAFailureDuringATendIsNotLeftForTheSweep(t *testing.T) {
	r := newRelayEnv(t)
	c, _ := r.connected("order-1")
	workAsync(r.svc)
	inNudge := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	r.tw.before = func(op, _ string) error {
		if op == "message" {
			once.Do(func() { close(inNudge); <-release })
		}
		return nil
	}
	first := r.write(c, customer, "first")
	second := r.write(c, customer, "second")
	r.report(c, first) // held; its tend blocks in the nudge
	<-inNudge
	r.report(c, second) // recorded while the first tend holds the chat
	close(release)
	poll.Until(t, "the second failure held", func() bool {
		got := r.chat("order-1")
		return len(got.Undelivered) == 0 && len(got.Rider.Held) == 2
	})
}

// A party holds at most HoldLimit messages of HoldLimitBytes: the oldest go first, counted; failed
// deliveries waiting to be read are capped too (issue 24, defect 6).
func TestHoldsAreBounded(t *testing.T) {
	t.Run("count", func(t *testing.T) {
		r := newRelayEnv(t)
		r.svc.cfg.HoldLimit = 3
		c, _ := r.connected("order-1")
		for i := range 5 {
			r.failed(c, r.write(c, customer, fmt.Sprint("message ", i)))
		}
		var bodies []string
		for _, h := range r.chat("order-1").Rider.Held {
			bodies = append(bodies, h.Body)
		}
		if want := []string{"message 2", "message 3", "message 4"}; !reflect.DeepEqual(bodies, want) {
			t.Errorf("held %q, want %q", bodies, want)
		}
		if held, _, _, dropped := r.obs.counts(); held != 5 || !reflect.DeepEqual(dropped, map[string]int{DropOverflow: 2}) {
			t.Errorf("held %d dropped %v, want 5 held and 2 dropped for overflow", held, dropped)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		r := newRelayEnv(t)
		r.svc.cfg.HoldLimitBytes = 3000
		c, _ := r.connected("order-1")
		for i := range 3 {
			r.failed(c, r.write(c, customer, strings.Repeat(fmt.Sprint(i), 1200)))
		}
		if held := r.chat("order-1").Rider.Held; len(held) != 2 || held[0].Body[0] != '1' {
			t.Errorf("held %d messages, want the newest 2 within 3000 bytes", len(held))
		}
	})
	t.Run("reports waiting to be read", func(t *testing.T) {
		r := newRelayEnv(t)
		c, _ := r.connected("order-1")
		r.tw.before = func(op, _ string) error {
			if op == "fetch_message" {
				return callErr("fetch message", twiliocall.Retryable, 503, 20503)
			}
			return nil
		}
		for range maxUndelivered + 1 {
			m := r.tw.write(c.ConversationSid, customer, "x")
			r.report(c, m)
		}
		if got := r.chat("order-1"); len(got.Undelivered) != maxUndelivered {
			t.Errorf("waiting %d, want the cap %d", len(got.Undelivered), maxUndelivered)
		}
		if _, _, _, dropped := r.obs.counts(); len(dropped) != 0 {
			t.Errorf("dropped %v: reports not recorded are not held messages dropped", dropped)
		}
	})
}

// A long hold reaches its party paced: at most ResendBurst copies a run, the rest on the next runs,
// each once and in order (issue 24, defect 6: one burst of thousands).
func TestResendsArePaced(t *testing.T) {
	r := newRelayEnv(t)
	c, _ := r.connected("order-1")
	n := ResendBurst + 5
	for i := range n {
		r.failed(c, r.write(c, customer, fmt.Sprint("message ", i)))
	}
	start := len(r.tw.sent(c.ConversationSid, 0))
	r.write(c, rider, "here")
	if got := r.created(c, start+1); len(got) != ResendBurst || got[0] != customer+": message 0" {
		t.Fatalf("first run sent %d (%q...), want %d from the oldest", len(got), got[:min(len(got), 1)], ResendBurst)
	}
	if _, err := r.svc.SweepOutbox(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := r.created(c, start+1)
	if len(got) != n || got[n-1] != fmt.Sprintf("%s: message %d", customer, n-1) {
		t.Fatalf("after the next run: %d copies, want %d in order", len(got), n)
	}
}

// A delivery report replayed long after its message was held and sent again — past any list of recent
// ones — does not send it twice (issue 24, defect 7).
func TestAReplayedReportSendsNothingTwice(t *testing.T) {
	r := newRelayEnv(t)
	c, _ := r.connected("order-1")
	first := r.write(c, customer, "gate code 4411")
	r.failed(c, first)
	r.write(c, rider, "here") // the window opens: sent again
	for i := range 2*twiliocall.MarkerLookback + 1 {
		m := r.write(c, customer, fmt.Sprint("later ", i))
		r.failed(c, m) // the rider's window is open: sent again at once
	}
	r.failed(c, first) // replayed
	copies := 0
	for _, s := range r.created(c, 0) {
		if s == customer+": gate code 4411" {
			copies++
		}
	}
	if copies != 2 {
		t.Errorf("%d messages 'gate code 4411', want the original and one copy", copies)
	}
}

// A copy that finds the conversation closed at Twilio (the chat not ended yet) is counted dropped
// once, not again on every sweep (issue 24, defect 10).
func TestACopyIntoAClosedConversationIsCountedOnce(t *testing.T) {
	r := newRelayEnv(t)
	c, _ := r.connected("order-1")
	r.failed(c, r.write(c, customer, "gate code 4411"))
	r.write(c, rider, "here") // opens the window; the sweep will send
	r.tw.closeByTwilio("order-1")
	if _, err := r.store.Update(context.Background(), "order-1", func(c *Chat) error {
		c.Rider.Held = append(c.Rider.Held, Held{MessageSid: "IM" + strings.Repeat("9", 32), Author: customer, Body: "late", Index: 99,
			Created: fakeEpoch, HeldAt: r.clock.now()})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := r.svc.SweepOutbox(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, _, dropped := r.obs.counts(); dropped[DropClosed] != 1 {
		t.Errorf("dropped %v, want the one copy counted once", dropped)
	}
}

// The party writes in the same second as the message that failed for them (Twilio's times are to the
// second), and the failure is reported after: it is sent at once, not when they write next (issue 24,
// defect 11).
func TestAFailureInTheSameSecondAsThePartysMessageIsSentAtOnce(t *testing.T) {
	r := newRelayEnv(t)
	c, _ := r.connected("order-1")
	m := r.tw.write(c.ConversationSid, customer, "gate code 4411")
	reply := r.tw.write(c.ConversationSid, rider, "here")
	start := len(r.tw.sent(c.ConversationSid, 0))
	if _, _, err := r.svc.MessageAdded(context.Background(), conversation.Event{Type: conversation.EventMessageAdded, ConversationSid: c.ConversationSid,
		MessageSid: reply.Sid, Author: rider, DateCreated: m.Created}); err != nil { // the same second
		t.Fatal(err)
	}
	r.failed(c, m)
	if got := r.created(c, start); !reflect.DeepEqual(got, []string{customer + ": gate code 4411"}) {
		t.Errorf("created %q, want the copy at once", got)
	}
}

// A failure reported after the party has already written (their window open again) is sent at once,
// not when they write next.
func TestAFailureReportedAfterThePartyWroteIsSentAtOnce(t *testing.T) {
	r := newRelayEnv(t)
	c, _ := r.connected("order-1")
	m := r.tw.write(c.ConversationSid, customer, "gate code 4411") // fails for the rider…
	start := len(r.tw.sent(c.ConversationSid, 0))
	r.write(c, rider, "here") // …who writes before the report comes
	r.failed(c, m)
	if got := r.created(c, start+1); !reflect.DeepEqual(got, []string{customer + ": gate code 4411"}) {
		t.Errorf("created %q, want the copy at once", got)
	}
	if _, _, nudges, _ := r.obs.counts(); nudges != 0 {
		t.Errorf("nudged %d times a party whose window is open", nudges)
	}
}

// A party's message whose onMessageAdded was lost still opens their window: the reconciler reads the
// newest messages, and what was held for the party goes (issue 24, defect 10).
func TestALostMessageWebhookStillOpensTheWindow(t *testing.T) {
	r := newRelayEnv(t)
	c, _ := r.connected("order-1")
	r.failed(c, r.write(c, customer, "gate code 4411"))
	start := len(r.tw.sent(c.ConversationSid, 0))
	r.tw.write(c.ConversationSid, rider, "here") // its webhook is lost
	if _, err := r.svc.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.created(c, start+1); !reflect.DeepEqual(got, []string{customer + ": gate code 4411"}) {
		t.Errorf("created %q, want the held message sent again", got)
	}
}

// A window learned late (an onMessageAdded delayed, or found by the reconciler) that is older than the
// nudge is the same closed window: the party is not nudged a second time for it (issue 24, defect 11:
// the first nudge was recorded for the window never seen, zero, and the late one made a second).
func TestAWindowLearnedLateDoesNotNudgeAgain(t *testing.T) {
	r := newRelayEnv(t)
	c, _ := r.connected("order-1")
	r.failed(c, r.write(c, customer, "gate code 4411"))
	if _, _, nudges, _ := r.obs.counts(); nudges != 1 {
		t.Fatalf("nudges %d, want 1", nudges)
	}
	// The rider's message of two days ago is learned now: their window is still closed.
	if err := r.windows.Opened(context.Background(), rider, number, r.clock.now().Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	r.failed(c, r.write(c, customer, "third floor"))
	if _, err := r.svc.SweepOutbox(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, _, nudges, _ := r.obs.counts(); nudges != 1 {
		t.Errorf("nudges %d for one closed window, want 1", nudges)
	}
}

// A failure is held and recorded as acted on in one write: a store that refuses the write recording it
// leaves nothing held, and the next run holds it, once; the message is sent again once (review of
// issue 24: the hold and its record were two writes, and a refused second one sent it twice).
func TestAHoldIsRecordedActedOnInTheSameWrite(t *testing.T) {
	r := newRelayEnv(t)
	c, _ := r.connected("order-1")
	refused := false
	r.store.failUpdate = func(before, after Chat) error {
		if !refused && len(after.Handled) > len(before.Handled) {
			refused = true
			return errors.New("store blip")
		}
		return nil
	}
	m := r.write(c, customer, "gate code 4411")
	r.failed(c, m)
	r.write(c, rider, "here") // the window opens: sent now, or by the sweep
	for range 2 {
		if _, err := r.svc.SweepOutbox(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	r.failed(c, m) // reported again
	copies := 0
	for _, s := range r.created(c, 0) {
		if s == customer+": gate code 4411" {
			copies++
		}
	}
	if !refused || copies != 2 {
		t.Errorf("refused %v; %d messages 'gate code 4411', want the original and one copy", refused, copies)
	}
}

// A copy that fails run after run for a while (Twilio away for it) is dropped after maxCopyAttempts
// runs, counted, so that the messages behind it go (review of issue 24: it blocked the party's queue
// for the rest of the chat).
func TestACopyFailingForAWhileIsDroppedAfterItsAttempts(t *testing.T) {
	r := newRelayEnv(t)
	c, _ := r.connected("order-1")
	first := r.write(c, customer, "first")
	second := r.write(c, customer, "second")
	r.failed(c, first)
	r.failed(c, second)
	fails := maxCopyAttempts * fastRetry.MaxAttempts // the first message's copy: every try of each run
	r.tw.before = func(op, _ string) error {
		if op == "message" && fails > 0 {
			fails--
			return callErr("create message", twiliocall.Retryable, 503, 20503)
		}
		return nil
	}
	r.write(c, rider, "here")
	for range maxCopyAttempts {
		_, _ = r.svc.SweepOutbox(context.Background())
	}
	if got := r.chat("order-1").Rider.Held; len(got) != 0 {
		t.Fatalf("still held %+v", got)
	}
	if _, resent, _, dropped := r.obs.counts(); resent != 1 || dropped[DropRefused] != 1 {
		t.Errorf("resent %d dropped %v, want the second sent and the first dropped", resent, dropped)
	}
}
