package chat

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/optin"
)

// Random interleavings of start, end, the opt-in's stages, Twilio's close and the reconciler — some
// one after the other, some at once, some in the middle of a start's Twilio calls — never leave a
// final chat with an active conversation or a number, never move a chat after a final state, and a
// start that answered a chat answered one that was invited.
func FuzzLifecycle(f *testing.F) {
	f.Add([]byte{0, 1})
	f.Add([]byte{0x80, 0x81, 4, 5})
	f.Add([]byte{0, 3, 4, 1})
	f.Add([]byte{0, 2, 6, 4, 5})
	f.Add([]byte{0x80, 0x84, 0x83, 0x81, 0x85})
	f.Add([]byte{0, 0x10 | 1, 0x20 | 4, 0x30 | 3})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 12 {
			ops = ops[:12]
		}
		e := newEnv(t)
		e.svc.cfg.StartBudget = 500 * time.Millisecond
		ctx := context.Background()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var startedWith []Chat
		run := func(op byte) {
			switch op % 7 {
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
		e.checkInvariant("order-1")
		for _, c := range startedWith {
			if c.State != StateInvited && c.State != StateConnecting && c.State != StateConnected && c.State != StateDeclined {
				t.Errorf("a start answered a chat that was %s (%s)", c.State, historyOf(c))
			}
		}
	})
}
