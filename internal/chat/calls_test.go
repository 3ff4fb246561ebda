package chat

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/guard"
	"github.com/optinkit/optin/internal/twiliocall"
)

// pairsOf is a PairIndex over one chat's pair of numbers.
type pairsOf struct{ chat Chat }

func (p pairsOf) ChatOf(_ context.Context, number, address string) (string, error) {
	if partyOn(&p.chat, address, number) != "" {
		return p.chat.ID, nil
	}
	return "", nil
}

// A repeated report of a call's end, after the first one's record landed unacknowledged (its writer
// heard a failure), makes that record durable: a failover after it keeps the end, which Twilio,
// answered 200, would never report again (the simulation, issue 25).
func TestARepeatedCallEndMakesItsRecordDurable(t *testing.T) {
	r := newRelayEnv(t)
	ctx := context.Background()
	c, _ := r.connected("order-1")
	r.svc.cfg.Pairs = pairsOf{c}
	route, err := r.svc.RouteCall(ctx, CallRequest{Sid: "CA1", From: E164(c.Rider.Address), To: E164(c.Rider.ProxyAddress)})
	if err != nil || route.Callee != roleCustomer {
		t.Fatalf("route %+v, %v", route, err)
	}
	r.store.unacked = map[string][]byte{}
	unacknowledged := true
	r.store.landed = func(Chat, Chat) error {
		if unacknowledged {
			unacknowledged = false
			return errors.New("0 of 1 replicas acknowledged the write")
		}
		return nil
	}
	end := CallOutcome{ChatID: "order-1", Caller: roleRider, Sid: "CA1", Status: "completed", Duration: 42 * time.Second}
	if err := r.svc.CallEnded(ctx, end); !errors.Is(err, conversation.ErrUnavailable) {
		t.Fatalf("first report: %v, want unavailable", err)
	}
	if err := r.svc.CallEnded(ctx, end); err != nil {
		t.Fatalf("repeated report: %v", err)
	}
	r.store.failover()
	calls := r.chat("order-1").Calls
	if len(calls) != 1 || calls[0].Status != "completed" || calls[0].Seconds != 42 {
		t.Errorf("after a failover: calls %+v", calls)
	}
	if n := r.obs.callsEnded; n != 0 {
		t.Errorf("%d ends counted; the one recorded was heard failed", n)
	}
}

// A notice Twilio refuses for good is dropped: the next blocked message's notice still goes (a refused
// notice held up every later one — the chat's work failed run after run; review of issue 26).
func TestARefusedNoticeDoesNotHoldUpTheNext(t *testing.T) {
	r := newRelayEnv(t)
	ctx := context.Background()
	c, _ := r.connected("order-1")
	r.svc.cfg.Guard = guard.Guard{Mode: guard.Block}
	refused := false
	r.tw.before = func(op, _ string) error {
		if op == "message" && !refused {
			refused = true
			return callErr("message", twiliocall.Permanent, 400, 21610)
		}
		return nil
	}
	for range 2 {
		ans, err := r.svc.GuardMessage(ctx, GuardRequest{ConversationSid: c.ConversationSid, Author: c.Rider.Address, Body: "call me on +1 415 555 0123"})
		if err != nil || !ans.Result.Blocked {
			t.Fatalf("guard: %+v %v", ans, err)
		}
	}
	if _, err := r.svc.SweepOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	told := 0
	for _, m := range r.tw.sent(c.ConversationSid, 0) {
		if twiliocall.HasMarker(m.Attributes, map[string]string{"chat": "order-1"}) && strings.Contains(m.Attributes, `"notice"`) {
			told++
			if m.Author != c.Customer.Address {
				t.Errorf("notice authored by %s, want the other party (so that only its author gets it)", m.Author)
			}
		}
	}
	if !refused || told != 1 || len(r.chat("order-1").Notices) != 0 {
		t.Errorf("refused %v, notices sent %d, left %+v", refused, told, r.chat("order-1").Notices)
	}
}
