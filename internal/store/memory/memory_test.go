package memory

import (
	"context"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/numberpool"
	"github.com/optinkit/optin/internal/optin"
	"github.com/optinkit/optin/internal/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(*testing.T) (optin.Store, optin.Store) {
		s := New(time.Hour)
		return s, s
	})
}

// has reports whether the store still remembers conv.
func has(s *Store, conv string) bool {
	_, err := s.Flow(context.Background(), conv)
	return err == nil
}

func TestFinishedFlowsAreForgottenAfterRetention(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New(time.Hour)
	s.now = func() time.Time { return now }
	ctx := t.Context()
	for _, conv := range []string{"CHdone", "CHrunning"} {
		_, _, _ = s.Claim(ctx, optin.Flow{ConversationSid: conv, State: optin.StateRunning})
	}
	_ = s.Finish(ctx, "CHdone", optin.StateDone, "")
	now = now.Add(30 * time.Minute)
	_, _, _ = s.Claim(ctx, optin.Flow{ConversationSid: "CHother"})
	if !has(s, "CHdone") {
		t.Fatal("forgotten within the retention")
	}
	now = now.Add(31 * time.Minute)
	_, _, _ = s.Claim(ctx, optin.Flow{ConversationSid: "CHother"})
	if has(s, "CHdone") {
		t.Error("finished flow kept after the retention")
	}
	if !has(s, "CHrunning") {
		t.Error("a running flow was forgotten")
	}
}

// A claimed flow keeps copies of its strings, not the webhook body they were cut from: the retained
// heap per finished flow stays small whatever the body's size.
func TestFlowsDoNotRetainTheWebhookBody(t *testing.T) {
	const flows = 200
	s := New(time.Hour)
	body := func(i int) string { // a 64 KiB Body around the SIDs, as url.ParseQuery would leave them
		return fmt.Sprintf("ConversationSid=CH%032d&MessageSid=IM%032d&Author=whatsapp%%3A%%2B15550001111&Body=", i, i) + strings.Repeat("x", 64<<10)
	}
	before := liveHeap()
	for i := range flows {
		q, err := url.ParseQuery(body(i))
		if err != nil {
			t.Fatal(err)
		}
		f := optin.Flow{ConversationSid: q.Get("ConversationSid"), Customer: q.Get("Author"), Trigger: q.Get("MessageSid"), State: optin.StateRunning, StartedAt: time.Now()}
		if _, claimed, err := s.Claim(t.Context(), f); !claimed || err != nil {
			t.Fatal(claimed, err)
		}
		if err := s.Finish(t.Context(), f.ConversationSid, optin.StateDone, ""); err != nil {
			t.Fatal(err)
		}
	}
	perFlow := (int64(liveHeap()) - int64(before)) / flows
	t.Logf("retained heap per finished flow: %d bytes", perFlow)
	if perFlow > 1<<10 { // a guard against keeping the body (about 64 KiB); the size target is a benchmark's

		t.Errorf("each finished flow keeps %d bytes alive: the webhook body is retained", perFlow)
	}
	runtime.KeepAlive(s)
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func TestChatsContract(t *testing.T) {
	storetest.RunChats(t, func(*testing.T) (chat.Store, chat.Store) {
		s := NewChats(time.Hour)
		return s, s
	})
}

func TestEndedChatsAreForgottenAfterRetention(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewChats(time.Hour)
	s.now = func() time.Time { return now }
	ctx := t.Context()
	for _, id := range []string{"ended", "open"} {
		_, _, _ = s.Create(ctx, chat.Chat{ID: id, ConversationSid: "CH" + id, State: chat.StateInvited, UpdatedAt: now})
	}
	_, _ = s.Update(ctx, "ended", func(c *chat.Chat) error { c.State, c.UpdatedAt = chat.StateClosed, now; return nil })
	now = now.Add(61 * time.Minute)
	_, _, _ = s.Create(ctx, chat.Chat{ID: "later"})
	if _, err := s.Get(ctx, "ended"); err == nil {
		t.Error("an ended chat was kept past the retention")
	}
	if _, err := s.ByConversation(ctx, "CHended"); err == nil {
		t.Error("an ended chat's conversation index was kept")
	}
	if _, err := s.Get(ctx, "open"); err != nil {
		t.Errorf("an open chat was forgotten: %v", err)
	}
}

func TestPairsContract(t *testing.T) {
	storetest.RunPairs(t, func(_ *testing.T, retention time.Duration) (numberpool.Store, numberpool.Store) {
		s := NewPairs(retention)
		return s, s
	})
}

// What lapsed — leases, blocks, each address's last number — is pruned: the store holds only what
// is live.
func TestPairsArePruned(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewPairs(time.Hour)
	s.now = func() time.Time { return now }
	ctx := t.Context()
	for i := range 100 {
		p := numberpool.Pair{Address: fmt.Sprintf("whatsapp:+1555000%04d", i), Number: "whatsapp:+15550100000"}
		if ok, _ := s.Take(ctx, fmt.Sprint("chat-", i), []numberpool.Pair{p}); !ok {
			t.Fatal("take")
		}
		if i%2 == 0 {
			_ = s.Block(ctx, numberpool.Pair{Address: p.Address, Number: "whatsapp:+15550100001"}, time.Minute)
		}
	}
	if n := s.size(); n < 300 {
		t.Fatalf("size %d before the leases lapse", n)
	}
	now = now.Add(2 * time.Hour)
	if ok, _ := s.Take(ctx, "chat-new", []numberpool.Pair{{Address: "whatsapp:+15550009999", Number: "whatsapp:+15550100000"}}); !ok {
		t.Fatal("take after the lapse")
	}
	// One lease: its pair, its chat, its address's last number.
	if n := s.size(); n != 3 {
		t.Errorf("size %d after the lapse, want 3", n)
	}
}

// BenchmarkFinishedFlowHeap reports the heap a finished flow keeps for the retention (target: ≤ 300 B).
func BenchmarkFinishedFlowHeap(b *testing.B) {
	const flows = 10_000
	for b.Loop() {
		s := New(time.Hour)
		before := liveHeap()
		for i := range flows {
			f := optin.Flow{ConversationSid: fmt.Sprintf("CH%032x", i), Customer: fmt.Sprintf("whatsapp:+1555%07d", i),
				Trigger: fmt.Sprintf("IM%032x", i), State: optin.StateRunning, StartedAt: time.Now(), Answer: optin.AnswerConsent}
			_, _, _ = s.Claim(b.Context(), f)
			// A run cut off in its last phase leaves step records behind: the flow's end drops them.
			_ = s.StepsDone(b.Context(), f.ConversationSid, map[string]string{optin.StepWait: f.Trigger, optin.StepRider: f.Trigger, optin.StepWebhooks: "done"})
			_ = s.Finish(b.Context(), f.ConversationSid, optin.StateDone, "")
		}
		b.ReportMetric(float64(int64(liveHeap())-int64(before))/flows, "B/finished-flow")
		runtime.KeepAlive(s)
	}
}

// BenchmarkFinishedChatHeap reports the heap a finished chat keeps for the retention (target: ≤ 1 KB).
func BenchmarkFinishedChatHeap(b *testing.B) {
	const chats = 5_000
	for b.Loop() {
		s := NewChats(time.Hour)
		before := liveHeap()
		for i := range chats {
			c := storetest.FinishedChat(i)
			open := c
			open.State, open.Reason, open.History = chat.StateStarting, "", c.History[:1]
			_, _, _ = s.Create(b.Context(), open)
			_, _ = s.Update(b.Context(), c.ID, func(stored *chat.Chat) error {
				seq := stored.Seq
				*stored = c
				stored.Seq = seq
				return nil
			})
		}
		b.ReportMetric(float64(int64(liveHeap())-int64(before))/chats, "B/finished-chat")
		runtime.KeepAlive(s)
	}
}

func TestRevocationsContract(t *testing.T) {
	storetest.RunRevocations(t, func(*testing.T) (storetest.Revocations, storetest.Revocations) {
		s := NewRevocations()
		return s, s
	})
}

func TestWindowsContract(t *testing.T) {
	storetest.RunWindows(t, func(*testing.T) (chat.Windows, chat.Windows) {
		s := NewWindows()
		return s, s
	})
}

// A finished flow reads back as it finished, whether its trigger and customer have packed forms or
// not; its strings are forgotten with it.
func TestFinishedFlowsReadBack(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New(time.Hour)
	s.now = func() time.Time { return now }
	ctx := t.Context()
	flows := []optin.Flow{
		{ConversationSid: "CH0123456789abcdef0123456789abcdef", Customer: "whatsapp:+15550001111", Trigger: "IM0123456789abcdef0123456789abcdef", State: optin.StateDone},
		{ConversationSid: "CH0123456789abcdef0123456789abcde0", Customer: "+447911123456", Trigger: "IMnothex", State: optin.StateFailed, Detail: "twilio: 400"},
		{ConversationSid: "CHshort", Customer: "messenger:12345", Trigger: "IM0123456789abcdef0123456789abcdef", State: optin.StateDone},
	}
	for _, f := range flows {
		if _, ok, err := s.Claim(ctx, optin.Flow{ConversationSid: f.ConversationSid, Customer: f.Customer, Trigger: f.Trigger, State: optin.StateRunning}); !ok || err != nil {
			t.Fatalf("claim %s: %v %v", f.ConversationSid, ok, err)
		}
		if _, err := s.Begin(ctx, f.ConversationSid); err != nil {
			t.Fatal(err)
		}
		if err := s.Finish(ctx, f.ConversationSid, f.State, f.Detail); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range flows {
		got, err := s.Flow(ctx, want.ConversationSid)
		if err != nil {
			t.Fatal(err)
		}
		want.Runs, want.FinishedAt = 1, now
		if got.Customer != want.Customer || got.Trigger != want.Trigger || got.State != want.State || got.Detail != want.Detail ||
			got.Runs != want.Runs || !got.FinishedAt.Equal(want.FinishedAt) || len(got.Steps) != 0 {
			t.Errorf("finished flow reads %+v, want %+v", got, want)
		}
	}
	if n := s.doneText.len(); n != 2 {
		t.Errorf("%d finished flows keep strings, want 2 (the failed one, the one with a Messenger customer)", n)
	}
	now = now.Add(2 * time.Hour)
	_, _, _ = s.Claim(ctx, optin.Flow{ConversationSid: "CHother"})
	if n, m := s.done.len(), s.doneText.len(); n != 0 || m != 0 {
		t.Errorf("%d finished flows and %d of their strings kept after the retention", n, m)
	}
}
