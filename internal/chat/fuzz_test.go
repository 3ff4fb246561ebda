package chat

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/optin"
)

// Random interleavings of start, end, the opt-in's stages, Twilio's close, the reconciler, messages
// held for a closed window, the party writing, the customer found not on WhatsApp and the upkeep's
// sweep — some one after the other, some at once, some in the middle of another's Twilio calls —
// never leave a final chat with an active conversation, a number, a held message or a move pending,
// never move a chat after a final state, never send a held message twice, and a start that answered
// a chat answered one that was invited.
func FuzzLifecycle(f *testing.F) {
	f.Add([]byte{0, 1})
	f.Add([]byte{0x80, 0x81, 4, 5})
	f.Add([]byte{0, 3, 4, 1})
	f.Add([]byte{0, 2, 6, 4, 5})
	f.Add([]byte{0x80, 0x84, 0x83, 0x81, 0x85})
	f.Add([]byte{0, 0x10 | 1, 0x20 | 4, 0x30 | 3})
	f.Add([]byte{0, 2, 7, 7, 8, 1})
	f.Add([]byte{0, 2, 7, 0x80 | 8, 0x80 | 1, 10})
	f.Add([]byte{0, 9, 0x80 | 1, 10, 2})
	f.Add([]byte{0, 0x10 | 9, 2, 7, 0x20 | 8, 10})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 12 {
			ops = ops[:12]
		}
		r, sms := fallbackEnv(t, true)
		e := r.env
		e.svc.cfg.StartBudget = 500 * time.Millisecond
		ctx := context.Background()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var startedWith []Chat
		run := func(op byte) {
			switch op % 11 {
			case 0:
				c, created, err := e.svc.Start(ctx, request("order-1"))
				if err == nil && created {
					mu.Lock()
					startedWith = append(startedWith, c)
					mu.Unlock()
				}
			case 1:
				_, _ = e.svc.End(ctx, "order-1")
			case 2:
				if c, err := e.store.Get(ctx, "order-1"); err == nil && c.ConversationSid != "" {
					_ = e.svc.Advance(ctx, c.ConversationSid, optin.StageConnecting, "", nil)
					_ = e.svc.Advance(ctx, c.ConversationSid, optin.StageConnected, "", nil)
				}
			case 3:
				if c, err := e.store.Get(ctx, "order-1"); err == nil && c.ConversationSid != "" {
					_ = e.svc.Advance(ctx, c.ConversationSid, optin.StageDeclined, "", nil)
				}
			case 4:
				if sid, ok := e.tw.closeByTwilio("order-1"); ok {
					_, _ = e.svc.StateUpdated(ctx, optin.Event{Type: optin.EventStateUpdated, ConversationSid: sid, StateTo: "closed", StateReason: "TIMER"})
				}
			case 5:
				e.clock.advance(time.Minute)
				_, _ = e.svc.Reconcile(ctx)
			case 6:
				if c, err := e.store.Get(ctx, "order-1"); err == nil && c.ConversationSid != "" {
					_ = e.svc.Advance(ctx, c.ConversationSid, optin.StageFailed, "", errors.New("gave up"))
				}
			case 7: // the customer writes; it fails for the rider, whose window is closed
				if c, err := e.store.Get(ctx, "order-1"); err == nil && e.tw.isOpen(c.ConversationSid) {
					m := e.tw.write(c.ConversationSid, c.Customer.Address, "gate code 4411")
					_, _ = e.svc.DeliveryUpdated(ctx, optin.Event{Type: optin.EventDeliveryUpdated, ConversationSid: c.ConversationSid,
						MessageSid: m.Sid, Status: "failed", ErrorCode: codeWindowClosed})
				}
			case 8: // the rider writes: their window opens
				if c, err := e.store.Get(ctx, "order-1"); err == nil && e.tw.isOpen(c.ConversationSid) {
					m := e.tw.write(c.ConversationSid, rider, "here")
					_, _, _ = e.svc.MessageAdded(ctx, optin.Event{Type: optin.EventMessageAdded, ConversationSid: c.ConversationSid,
						MessageSid: m.Sid, Author: rider, DateCreated: m.Created})
				}
			case 9: // the invitation is undelivered: the customer is not on WhatsApp
				if c, err := e.store.Get(ctx, "order-1"); err == nil && c.Steps[stepInvite] != "" {
					_, _ = e.svc.DeliveryUpdated(ctx, optin.Event{Type: optin.EventDeliveryUpdated, ConversationSid: c.ConversationSid,
						MessageSid: c.Steps[stepInvite], Status: "undelivered", ErrorCode: codeNotOnWhatsApp})
				}
			case 10:
				_, _ = e.svc.SweepOutbox(ctx)
			}
		}
		// The high nibble of an op, when set, runs it in the middle of the start's next Twilio call.
		var injected []byte
		var injectMu sync.Mutex
		e.tw.before = func(string, string) error {
			injectMu.Lock()
			var op byte
			ok := len(injected) > 0
			if ok {
				op, injected = injected[0], injected[1:]
			}
			injectMu.Unlock()
			if ok {
				wg.Go(func() { run(op) })
			}
			return nil
		}
		for _, op := range ops {
			switch {
			case op&0x70 != 0:
				injectMu.Lock()
				injected = append(injected, op)
				injectMu.Unlock()
			case op&0x80 != 0:
				wg.Go(func() { run(op) })
			default:
				run(op)
			}
		}
		wg.Wait()
		e.tw.before = nil
		// Whatever was left undone, the reconciler finishes once the budgets have passed.
		e.clock.advance(time.Minute)
		if _, err := e.svc.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.SweepOutbox(ctx); err != nil {
			t.Fatal(err)
		}
		e.checkInvariant("order-1")
		if c, err := e.store.Get(ctx, "order-1"); err == nil && c.State.Final() {
			if len(c.Customer.Held)+len(c.Rider.Held) != 0 || c.Fallback != nil || sms.held("order-1") {
				t.Errorf("final chat holds messages %d, a move %+v, an SMS number %v", len(c.Customer.Held)+len(c.Rider.Held), c.Fallback, sms.held("order-1"))
			}
		}
		if c, err := e.store.Get(ctx, "order-1"); err == nil && c.ConversationSid != "" {
			copies := map[string]int{}
			for _, m := range e.tw.sent(c.ConversationSid, 0) {
				var marker map[string]map[string]string
				if json.Unmarshal([]byte(m.Attributes), &marker) == nil && marker["optin"]["resend"] != "" {
					copies[marker["optin"]["resend"]]++
				}
			}
			for orig, n := range copies {
				if n > 1 {
					t.Errorf("held message %s sent again %d times", orig, n)
				}
			}
		}
		for _, c := range startedWith {
			if c.State != StateInvited && c.State != StateConnecting && c.State != StateConnected && c.State != StateDeclined {
				t.Errorf("a start answered a chat that was %s (%s)", c.State, historyOf(c))
			}
		}
	})
}
