package chat

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/twiliocall"
)

const smsNumber = "+15550109999"

// fallbackEnv is a relay env with an SMS pool, or without one when sms is false.
func fallbackEnv(t *testing.T, sms bool) (*relayEnv, *fakePool) {
	t.Helper()
	r := newRelayEnv(t)
	cfg := r.svc.cfg
	var pool *fakePool
	if sms {
		pool = &fakePool{number: smsNumber, leases: map[string][]string{}}
		cfg.SMS = pool
	}
	svc, err := NewService(r.tw, r.store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	svc.now = r.clock.now
	workNow(svc)
	r.svc = svc
	return r, pool
}

// notOnWhatsApp reports the invitation undelivered: the customer's number has no WhatsApp account.
func (r *relayEnv) notOnWhatsApp(c Chat, code int) conversation.Decision {
	r.t.Helper()
	d, err := r.svc.DeliveryUpdated(context.Background(), conversation.Event{Type: conversation.EventDeliveryUpdated, ConversationSid: c.ConversationSid,
		MessageSid: c.Steps[stepInvite], Status: "undelivered", ErrorCode: code})
	if err != nil {
		r.t.Fatal(err)
	}
	return d
}

func TestACustomerNotOnWhatsAppMovesToSMS(t *testing.T) {
	for _, code := range []int{codeNotOnWhatsApp, codeNotWhatsAppNum} {
		r, pool := fallbackEnv(t, true)
		c, _, err := r.svc.Start(context.Background(), request("order-1"))
		if err != nil {
			t.Fatal(err)
		}
		start := len(r.tw.sent(c.ConversationSid, 0))
		calls := len(r.tw.calls)
		if d := r.notOnWhatsApp(c, code); d.Outcome != conversation.OutcomeRelayed {
			t.Fatalf("%d: %+v", code, d)
		}
		r.notOnWhatsApp(c, code) // reported again: moved once
		got := r.chat("order-1")
		if got.State != StateInvited || got.Customer.Address != "+15550001111" || got.Customer.ProxyAddress != smsNumber || got.Fallback != nil {
			t.Fatalf("%d: chat %s customer %+v fallback %+v", code, got.State, got.Customer, got.Fallback)
		}
		if h := got.History[len(got.History)-1]; h.State != StateInvited || h.Channel != ChannelSMS {
			t.Errorf("%d: last history entry %+v", code, h)
		}
		if ev := got.Pending[len(got.Pending)-1]; ev.Type != EventChannelChanged {
			t.Errorf("%d: last event %s", code, ev.Type)
		}
		// The repeated report is known once its message is read (a report names no index): acted on once.
		if want := []string{"fetch_message", "remove_participant", "participant", "recent", "message", "fetch_message"}; !slices.Equal(r.tw.calls[calls:], want) {
			t.Errorf("%d: calls %v, want %v", code, r.tw.calls[calls:], want)
		}
		want := []string{rider + ": Hello Ana, your delivery is almost there but Bruno (your rider) needs help finding your door. Are you willing to chat with them? Reply YES or NO."}
		if sent := r.created(c, start); !reflect.DeepEqual(sent, want) {
			t.Errorf("%d: sent %q, want %q", code, sent, want)
		}
		r.tw.mu.Lock()
		parts := slices.Clone(r.tw.convs[c.ConversationSid].participants)
		r.tw.mu.Unlock()
		if !slices.Equal(parts, []string{rider, "+15550001111"}) {
			t.Errorf("%d: participants %v", code, parts)
		}
		if !pool.held("order-1") || r.obs.fallbacks != 1 {
			t.Errorf("%d: sms lease %v, fallbacks counted %d", code, pool.held("order-1"), r.obs.fallbacks)
		}
		if r.pool.leasedTo("order-1", customer) || !r.pool.leasedTo("order-1", rider) {
			t.Errorf("%d: the customer's WhatsApp pair is still leased, or the rider's was freed", code)
		}
		// The opt-in now reads the SMS address as the customer's.
		if cust, _, _, _ := r.svc.Parties(context.Background(), c.ConversationSid); cust != "+15550001111" {
			t.Errorf("%d: parties name the customer %s", code, cust)
		}
	}
}

func TestWithoutSMSTheChatFailsUnreachable(t *testing.T) {
	r, _ := fallbackEnv(t, false)
	c, _, err := r.svc.Start(context.Background(), request("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	r.notOnWhatsApp(c, codeNotOnWhatsApp)
	got := r.chat("order-1")
	if got.State != StateFailed || got.Reason != ReasonUnreachable || got.Error == nil || got.Error.TwilioCode != codeNotOnWhatsApp || got.Fallback != nil {
		t.Fatalf("chat %s %s %+v fallback %+v", got.State, got.Reason, got.Error, got.Fallback)
	}
	if open := r.tw.openWithParticipants(); len(open) != 0 || r.pool.held("order-1") {
		t.Fatalf("open conversations %v, numbers held %v", open, r.pool.held("order-1"))
	}
}

// A move cut off after the WhatsApp participant was removed is finished by the sweep, and the
// customer gets the invitation once.
func TestAnInterruptedMoveIsFinishedOnce(t *testing.T) {
	r, _ := fallbackEnv(t, true)
	c, _, err := r.svc.Start(context.Background(), request("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	start := len(r.tw.sent(c.ConversationSid, 0))
	failing := true
	r.tw.before = func(op, _ string) error {
		if op == "participant" && failing {
			return &twiliocall.CallError{Op: "add participant", Kind: twiliocall.Uncertain, Status: 500, Code: 20500, Err: errors.New("down")}
		}
		return nil
	}
	r.notOnWhatsApp(c, codeNotOnWhatsApp)
	if f := r.chat("order-1").Fallback; f == nil || !f.Removed || f.Added || f.Number != smsNumber {
		t.Fatalf("after the cut: %+v", f)
	}
	failing = false
	r.clock.advance(time.Minute)
	if _, err := r.svc.SweepOutbox(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := r.chat("order-1")
	if got.Fallback != nil || got.Customer.Address != "+15550001111" || len(r.created(c, start)) != 1 {
		t.Fatalf("after the sweep: fallback %+v customer %+v sent %q", got.Fallback, got.Customer, r.created(c, start))
	}
}

// The customer is reported unreachable while the chat is ended, in either order or at once: the chat
// ends closed, nothing stays leased in either pool, and no move is left pending.
func TestEndWhileMovingToSMS(t *testing.T) {
	for round := range 40 {
		r, sms := fallbackEnv(t, true)
		workAsync(r.svc)
		c, _, err := r.svc.Start(context.Background(), request("order-1"))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() { r.notOnWhatsApp(c, codeNotOnWhatsApp) })
		wg.Go(func() {
			if _, err := r.svc.End(context.Background(), "order-1"); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
		deadline := time.Now().Add(5 * time.Second)
		for {
			r.clock.advance(time.Minute) // leases of a cut-off run lapse
			if _, err := r.svc.SweepOutbox(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := r.chat("order-1")
			if got.State == StateClosed && got.Fallback == nil && !sms.held("order-1") && !r.pool.held("order-1") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %s fallback %+v sms held %v whatsapp held %v", round, got.State, got.Fallback, sms.held("order-1"), r.pool.held("order-1"))
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// Twilio refusing the SMS participant for good (the pair bound elsewhere) fails the chat as
// unreachable rather than trying again for ever.
func TestARefusedMoveFailsTheChat(t *testing.T) {
	r, sms := fallbackEnv(t, true)
	c, _, err := r.svc.Start(context.Background(), request("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	r.tw.before = func(op, _ string) error {
		if op == "participant" {
			return &twiliocall.CallError{Op: "add participant", Kind: twiliocall.Permanent, Status: 409, Code: codePairInUse, Err: errors.New("pair in use")}
		}
		return nil
	}
	r.notOnWhatsApp(c, codeNotOnWhatsApp)
	got := r.chat("order-1")
	if got.State != StateFailed || got.Reason != ReasonUnreachable || got.Fallback != nil || sms.held("order-1") || r.pool.held("order-1") {
		t.Fatalf("chat %s %s fallback %+v, sms held %v", got.State, got.Reason, got.Fallback, sms.held("order-1"))
	}
}

// A customer who starts on SMS gets the invitation as text (OPTIN_INVITE_SMS_BODY), not the WhatsApp
// template: each party gets the text of its own channel (issue 27).
func TestAnSMSCustomerIsInvitedByText(t *testing.T) {
	r, _ := fallbackEnv(t, true)
	req := request("order-1")
	req.Customer.Address = "+15550001111"
	c, _, err := r.svc.Start(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{rider + ": Hello Ana, your delivery is almost there but Bruno (your rider) needs help finding your door. Are you willing to chat with them? Reply YES or NO."}
	if got := r.created(c, 0); !reflect.DeepEqual(got, want) {
		t.Errorf("created %q, want %q", got, want)
	}
}

// A customer who answered (the chat connected on WhatsApp) is not moved to SMS when a late or passing
// 63003 comes: their WhatsApp participant stays, and so do their numbers (found by the simulation,
// seed 253: a move begun on a connected chat and refused half way left the customer out of it).
func TestAConnectedCustomerIsNotMoved(t *testing.T) {
	r, sms := fallbackEnv(t, true)
	c, _ := r.connected("order-1")
	calls := r.tw.opCount("remove_participant")
	r.notOnWhatsApp(c, codeNotOnWhatsApp)
	got := r.chat("order-1")
	if got.State != StateConnected || got.Customer.Address != customer || got.Fallback != nil || sms.held("order-1") ||
		r.tw.opCount("remove_participant") != calls || !r.pool.leasedTo("order-1", customer) {
		t.Errorf("connected chat after a 63003: %s, customer %s, fallback %+v, sms lease %v", got.State, got.Customer.Address, got.Fallback, sms.held("order-1"))
	}
}

// The customer answers while their move to SMS is half done (out of the WhatsApp conversation, not yet
// in on SMS), and SMS then refuses them for good: the chat cannot work, so it closes as unreachable and
// frees every number — it does not stay connected without its customer (found by the simulation,
// seed 7030).
func TestAHalfDoneMoveThatCannotFinishClosesTheChat(t *testing.T) {
	r, sms := fallbackEnv(t, true)
	c, _, err := r.svc.Start(context.Background(), request("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	refuse := twiliocall.Uncertain
	r.tw.before = func(op, _ string) error {
		if op == "participant" {
			return &twiliocall.CallError{Op: "add participant", Kind: refuse, Status: 500, Code: 20500, Err: errors.New("down")}
		}
		return nil
	}
	r.notOnWhatsApp(c, codeNotOnWhatsApp)
	if f := r.chat("order-1").Fallback; f == nil || !f.Removed || f.Added {
		t.Fatalf("after the cut: %+v", f)
	}
	for _, st := range []conversation.Stage{conversation.StageConnecting, conversation.StageConnected} {
		if err := r.svc.Advance(context.Background(), c.ConversationSid, st, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	refuse = twiliocall.Permanent
	r.clock.advance(time.Minute)
	if _, err := r.svc.SweepOutbox(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := r.chat("order-1")
	if got.State != StateClosed || got.Reason != ReasonUnreachable || got.Fallback != nil || sms.held("order-1") || r.pool.held("order-1") {
		t.Errorf("chat %s/%s, fallback %+v, sms lease %v, whatsapp lease %v", got.State, got.Reason, got.Fallback, sms.held("order-1"), r.pool.held("order-1"))
	}
	r.checkInvariant("order-1")
}

// The customer answers after their move to SMS leased a number but before it took them out of the
// WhatsApp conversation: they stay on WhatsApp, and the SMS number goes back (found by the simulation,
// fresh seed 7031: it stayed leased).
func TestAMoveNotMadeGivesItsSMSNumberBack(t *testing.T) {
	r, sms := fallbackEnv(t, true)
	c, _, err := r.svc.Start(context.Background(), request("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	down := true
	r.tw.before = func(op, _ string) error {
		if op == "remove_participant" && down {
			return &twiliocall.CallError{Op: "remove participant", Kind: twiliocall.Retryable, Status: 503, Code: 20503, Err: errors.New("down")}
		}
		return nil
	}
	r.notOnWhatsApp(c, codeNotOnWhatsApp)
	if f := r.chat("order-1").Fallback; f == nil || f.Number != smsNumber || f.Removed || !sms.held("order-1") {
		t.Fatalf("after the cut: %+v, sms lease %v", f, sms.held("order-1"))
	}
	for _, st := range []conversation.Stage{conversation.StageConnecting, conversation.StageConnected} {
		if err := r.svc.Advance(context.Background(), c.ConversationSid, st, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	down = false
	r.clock.advance(time.Minute)
	if _, err := r.svc.SweepOutbox(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := r.chat("order-1")
	if got.State != StateConnected || got.Fallback != nil || got.Customer.Address != customer || sms.held("order-1") || !r.pool.leasedTo("order-1", customer) {
		t.Errorf("chat %s, fallback %+v, customer %s, sms lease %v", got.State, got.Fallback, got.Customer.Address, sms.held("order-1"))
	}
}

// A move whose record of the WhatsApp participant's removal landed but was heard failed (its replicas
// did not acknowledge it) frees the customer's WhatsApp pair all the same: the run that recorded the
// removal stopped there, and the next one frees it before adding the SMS participant (the simulation,
// issue 24).
func TestAMoveWhoseRemovalRecordWasHeardFailedFreesTheWhatsAppPair(t *testing.T) {
	r, sms := fallbackEnv(t, true)
	c, _, err := r.svc.Start(context.Background(), request("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	failed := false
	r.store.landed = func(before, after Chat) error {
		if !failed && after.Fallback != nil && after.Fallback.Removed && (before.Fallback == nil || !before.Fallback.Removed) {
			failed = true
			return errors.New("0 of 1 replicas acknowledged the write")
		}
		return nil
	}
	r.notOnWhatsApp(c, codeNotOnWhatsApp)
	r.clock.advance(time.Minute)
	if _, err := r.svc.SweepOutbox(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := r.chat("order-1")
	if !failed || got.Fallback != nil || got.Customer.Address != "+15550001111" {
		t.Fatalf("failed %v, fallback %+v, customer %s", failed, got.Fallback, got.Customer.Address)
	}
	if r.pool.leasedTo("order-1", customer) || !sms.held("order-1") {
		t.Errorf("WhatsApp pair still leased %v, SMS lease %v", r.pool.leasedTo("order-1", customer), sms.held("order-1"))
	}
}

// An SMS number the move leased, its record lost in a failover, is freed before the move leases
// again: the chat holds one SMS pair, not its own lease as another chat's — with one SMS number, that
// lease would leave the customer unreachable (the simulation, issue 24).
func TestAMoveFreesAnSMSNumberLeasedUnrecorded(t *testing.T) {
	r, sms := fallbackEnv(t, true)
	ctx := context.Background()
	c, _, err := r.svc.Start(ctx, request("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sms.Lease(ctx, "order-1", []string{"+15550001111"}); err != nil { // the lost run's lease
		t.Fatal(err)
	}
	r.notOnWhatsApp(c, codeNotOnWhatsApp)
	got := r.chat("order-1")
	if got.Customer.Address != "+15550001111" || got.Customer.ProxyAddress != smsNumber {
		t.Fatalf("customer %+v", got.Customer)
	}
	if leases := sms.leases["order-1"]; len(leases) != 1 {
		t.Errorf("SMS leases %v, want one", leases)
	}
}

// A move given back (the customer answered on WhatsApp first) frees an SMS number it leased whose
// record a failover lost, as well as a recorded one (the simulation's long run, seed 215).
func TestAMoveGivenBackFreesAnSMSNumberLeasedUnrecorded(t *testing.T) {
	r, sms := fallbackEnv(t, true)
	ctx := context.Background()
	c, _, err := r.svc.Start(ctx, request("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sms.Lease(ctx, "order-1", []string{"+15550001111"}); err != nil { // the lost record's lease
		t.Fatal(err)
	}
	if _, err := r.store.Update(ctx, "order-1", func(c *Chat) error {
		c.Fallback = &Fallback{Code: codeNotOnWhatsApp, From: c.Customer.Address}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, st := range []conversation.Stage{conversation.StageConnecting, conversation.StageConnected} {
		if err := r.svc.Advance(ctx, c.ConversationSid, st, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	r.clock.advance(time.Minute)
	if _, err := r.svc.SweepOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.chat("order-1"); got.Fallback != nil || got.State != StateConnected || sms.held("order-1") {
		t.Errorf("fallback %+v, state %s, SMS lease %v", got.Fallback, got.State, sms.held("order-1"))
	}
}

// An SMS invitation falls back for a name that is only whitespace as for none, as the template's
// variables do: never "Hello   ," nor "the rider (your rider)".
func TestAnSMSInvitationWithoutNamesFallsBack(t *testing.T) {
	for _, names := range [][2]string{{"", ""}, {"   ", " \u00a0"}} {
		r, _ := fallbackEnv(t, true)
		req := request("order-1")
		req.Customer.Address, req.Customer.Name, req.Rider.Name = "+15550001111", names[0], names[1]
		c, _, err := r.svc.Start(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{rider + ": Hello there, your delivery is almost there but someone (your rider) needs help finding your door. Are you willing to chat with them? Reply YES or NO."}
		if got := r.created(c, 0); !reflect.DeepEqual(got, want) {
			t.Errorf("names %q: created %q, want %q", names, got, want)
		}
	}
}
