package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/numberpool"
	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/twiliocall"
)

// clock is a test's time: the service's and the store's leases read it; tests move it on.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a Service on fakes.
type env struct {
	t     testing.TB
	svc   *Service
	tw    *fakeTwilio
	pool  *fakePool
	store *fakeStore
	notes *fakeNotifier
	clock *clock
}

var fastRetry = twiliocall.RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond, MaxAttempts: 3,
	MaxElapsed: time.Second, CallTimeout: time.Second}

func newEnv(t testing.TB) *env {
	t.Helper()
	clk := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	e := &env{t: t, tw: newFakeTwilio(), pool: newFakePool(), store: newFakeStore(clk.now), notes: &fakeNotifier{}, clock: clk}
	svc, err := NewService(e.tw, e.store, Config{
		WhatsApp: e.pool, WebhookURL: "https://optin.example.com/webhooks/conversations",
		InviteContentSid: "HX00000000000000000000000000000001", DefaultTTL: time.Hour,
		StartBudget: 2 * time.Second, Retry: fastRetry, Notifier: e.notes,
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.now = clk.now
	workAsync(svc)
	e.svc = svc
	return e
}

func request(id string) StartRequest {
	return StartRequest{ID: id, Customer: PartyRequest{Address: "whatsapp:+15550001111", Name: "Ana"},
		Rider: PartyRequest{Address: "whatsapp:+15550002222", Name: "Bruno"}}
}

func (e *env) chat(id string) Chat {
	e.t.Helper()
	c, err := e.store.Get(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func historyOf(c Chat) string {
	var out []string
	for _, h := range c.History {
		out = append(out, string(h.State))
	}
	return strings.Join(out, ",")
}

func eventTypesOf(c Chat) string {
	var out []string
	for _, ev := range c.Pending {
		out = append(out, ev.Type)
	}
	return strings.Join(out, ",")
}

// checkInvariant: a final chat has no active conversation with participants at Twilio and holds no
// number, and nothing follows a final state in its history.
func (e *env) checkInvariant(ids ...string) {
	e.t.Helper()
	open := e.tw.openWithParticipants()
	for _, id := range ids {
		c, err := e.store.Get(context.Background(), id)
		if errors.Is(err, ErrNotFound) {
			if slices.Contains(open, id) || e.pool.held(id) {
				e.t.Errorf("forgotten chat %s left an open conversation or a number", id)
			}
			continue
		}
		for i, h := range c.History {
			if h.State.Final() && i != len(c.History)-1 {
				e.t.Errorf("chat %s moved after a final state: %s", id, historyOf(c))
			}
		}
		if !c.State.Final() {
			continue
		}
		if slices.Contains(open, id) {
			e.t.Errorf("chat %s is %s but its conversation is active with participants", id, c.State)
		}
		if e.pool.held(id) {
			e.t.Errorf("chat %s is %s but holds its numbers", id, c.State)
		}
		if c.Ending != nil {
			e.t.Errorf("chat %s is final with an ending left: %+v", id, c.Ending)
		}
	}
}

// waitEnding polls until the chat records an ending.
func (e *env) waitEnding(id string) {
	poll.Until(e.t, "chat "+id+" to record its end", func() bool { c := e.chat(id); return c.Ending != nil || c.State.Final() })
}

func TestStartInvites(t *testing.T) {
	e := newEnv(t)
	c, created, err := e.svc.Start(t.Context(), request("order-1"))
	if err != nil || !created || c.State != StateInvited || historyOf(c) != "starting,invited" || eventTypesOf(c) != "chat.invited" {
		t.Fatalf("start: %+v %v %v", c, created, err)
	}
	if want := []string{"create", "webhook", "webhook", "participant", "participant", "message"}; !slices.Equal(e.tw.calls, want) {
		t.Errorf("calls %v, want %v", e.tw.calls, want)
	}
	if !e.pool.held("order-1") || e.notes.count() != 1 {
		t.Errorf("numbers held %v, events handed over %d", e.pool.held("order-1"), e.notes.count())
	}
}

// An end asked for while the start runs — at each of its Twilio calls — is honoured by the start: it
// closes what it made and answers ErrEnded; End answers the closed chat.
func TestEndDuringStart(t *testing.T) {
	for _, at := range []string{"create", "webhook", "participant", "message"} {
		t.Run(at, func(t *testing.T) {
			e := newEnv(t)
			var ended Chat
			var endErr error
			var wg sync.WaitGroup
			var once sync.Once
			e.tw.before = func(op, _ string) error {
				if op == at {
					once.Do(func() {
						wg.Go(func() { ended, endErr = e.svc.End(context.Background(), "order-1") })
						e.waitEnding("order-1")
					})
				}
				return nil
			}
			_, created, err := e.svc.Start(t.Context(), request("order-1"))
			wg.Wait()
			if !errors.Is(err, ErrEnded) || created {
				t.Errorf("start: %v %v, want ErrEnded", created, err)
			}
			c := e.chat("order-1")
			if endErr != nil || ended.State != StateClosed || c.State != StateClosed || c.Reason != ReasonEnded ||
				historyOf(c) != "starting,closed" || eventTypesOf(c) != "chat.closed" {
				t.Errorf("end: %+v %v; stored %s %s %s", ended.State, endErr, c.State, historyOf(c), eventTypesOf(c))
			}
			if at != "create" && e.tw.opCount("close") != 1 {
				t.Errorf("closes %d, want 1", e.tw.opCount("close"))
			}
			// The start stops after the step in flight: no invitation goes out after the end.
			if at != "message" && e.tw.opCount("message") != 0 {
				t.Errorf("the customer was invited to an ended chat: %v", e.tw.calls)
			}
			e.checkInvariant("order-1")
			// A repeated start says the same.
			if _, _, err := e.svc.Start(t.Context(), request("order-1")); !errors.Is(err, ErrEnded) {
				t.Errorf("repeated start: %v", err)
			}
		})
	}
}

// An end that takes the lease before the start does (the start's Create done, its Lock not yet):
// nothing is made at Twilio and the start answers ErrEnded.
func TestEndBeforeTheStartRuns(t *testing.T) {
	e := newEnv(t)
	c, _ := request("order-1").validate(e.svc.cfg, e.clock.now())
	if _, _, err := e.store.Create(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	ended, err := e.svc.End(t.Context(), "order-1")
	if err != nil || ended.State != StateClosed {
		t.Fatalf("end: %+v %v", ended, err)
	}
	if _, _, err := e.svc.Start(t.Context(), request("order-1")); !errors.Is(err, ErrEnded) {
		t.Errorf("start after the end: %v", err)
	}
	if len(e.tw.calls) != 0 {
		t.Errorf("Twilio calls %v, want none", e.tw.calls)
	}
	e.checkInvariant("order-1")
}

func TestEndAfterStart(t *testing.T) {
	e := newEnv(t)
	if _, _, err := e.svc.Start(t.Context(), request("order-1")); err != nil {
		t.Fatal(err)
	}
	c, err := e.svc.End(t.Context(), "order-1")
	if err != nil || c.State != StateClosed || historyOf(c) != "starting,invited,closed" || eventTypesOf(c) != "chat.invited,chat.closed" {
		t.Fatalf("end: %s %s %s %v", c.State, historyOf(c), eventTypesOf(c), err)
	}
	again, err := e.svc.End(t.Context(), "order-1")
	if err != nil || again.State != StateClosed || e.tw.opCount("close") != 1 {
		t.Errorf("second end: %v %v, closes %d", again.State, err, e.tw.opCount("close"))
	}
	// A start repeated after the chat was invited and then ended answers the chat as it is.
	if got, created, err := e.svc.Start(t.Context(), request("order-1")); err != nil || created || got.State != StateClosed {
		t.Errorf("repeated start: %v %v %v", got.State, created, err)
	}
	e.checkInvariant("order-1")
}

// Twilio reports the close of a declined (or failed) chat's conversation before the opt-in tells the
// chat — as the emulator does — or after: the chat ends declined (failed) either way, and a late or
// repeated report changes nothing.
func TestOutcomeNotOverwrittenByTheClose(t *testing.T) {
	for _, tt := range []struct {
		stage  conversation.Stage
		cause  error
		want   State
		reason string
	}{
		{conversation.StageDeclined, nil, StateDeclined, ReasonDeclined},
		{conversation.StageOptedOut, nil, StateDeclined, ReasonOptedOut},
		{conversation.StageFailed, callErr("create message", twiliocall.Permanent, 400, 63016), StateFailed, ReasonFailed},
	} {
		t.Run(string(tt.stage), func(t *testing.T) {
			e := newEnv(t)
			c, _, err := e.svc.Start(t.Context(), request("order-1"))
			if err != nil {
				t.Fatal(err)
			}
			report := func() {
				d, err := e.svc.StateUpdated(context.Background(), conversation.Event{Type: conversation.EventStateUpdated,
					ConversationSid: c.ConversationSid, StateTo: "closed", StateReason: "API"})
				if err != nil || d.Outcome != conversation.OutcomeAccepted {
					t.Errorf("state updated: %+v %v", d, err)
				}
			}
			// Twilio's report arrives while the close is still being answered.
			e.tw.before = func(op, _ string) error {
				if op == "close" {
					e.tw.closeByTwilio("order-1")
					report()
				}
				return nil
			}
			if err := e.svc.Advance(t.Context(), c.ConversationSid, tt.stage, "", tt.cause); err != nil {
				t.Fatal(err)
			}
			report() // late, and repeated
			got := e.chat("order-1")
			if got.State != tt.want || got.Reason != tt.reason || historyOf(got) != "starting,invited,"+string(tt.want) {
				t.Errorf("chat %s %s %s", got.State, got.Reason, historyOf(got))
			}
			if tt.cause != nil && (got.Error == nil || got.Error.TwilioCode != 63016) {
				t.Errorf("error %+v", got.Error)
			}
			e.checkInvariant("order-1")
		})
	}
}

// A failed chat whose conversation the opt-in never closed is closed by the chat.
func TestFailedChatClosesItsConversation(t *testing.T) {
	e := newEnv(t)
	c, _, _ := e.svc.Start(t.Context(), request("order-1"))
	if err := e.svc.Advance(t.Context(), c.ConversationSid, conversation.StageConnecting, "", nil); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Advance(t.Context(), c.ConversationSid, conversation.StageFailed, "", errors.New("gave up")); err != nil {
		t.Fatal(err)
	}
	if got := e.chat("order-1"); got.State != StateFailed || e.tw.opCount("close") != 1 {
		t.Errorf("chat %s, closes %d", got.State, e.tw.opCount("close"))
	}
	// A give-up after the chat connected (its record failed to be written) changes nothing: connected →
	// failed is refused, and the chat keeps its conversation.
	e2 := newEnv(t)
	c, _, _ = e2.svc.Start(t.Context(), request("order-2"))
	for _, st := range []conversation.Stage{conversation.StageConnecting, conversation.StageConnected, conversation.StageFailed} {
		if err := e2.svc.Advance(t.Context(), c.ConversationSid, st, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := e2.chat("order-2"); got.State != StateConnected || got.Ending != nil || e2.tw.opCount("close") != 0 {
		t.Errorf("connected chat after a late failure: %s %s, closes %d", got.State, historyOf(got), e2.tw.opCount("close"))
	}
	e.checkInvariant("order-1")
	e2.checkInvariant("order-2")
}

// The opt-in may read the customer's yes before the start recorded the invitation: it is asked to
// try again rather than skipping invited.
func TestAdvanceBeforeInvited(t *testing.T) {
	e := newEnv(t)
	var advErr error
	e.tw.before = func(op, conv string) error {
		if op == "message" {
			advErr = e.svc.Advance(context.Background(), conv, conversation.StageConnecting, "", nil)
		}
		return nil
	}
	if _, _, err := e.svc.Start(t.Context(), request("order-1")); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(advErr, errNotInvited) {
		t.Errorf("advance during the start: %v", advErr)
	}
	if got := e.chat("order-1"); historyOf(got) != "starting,invited" {
		t.Errorf("history %s", historyOf(got))
	}
}

// A close Twilio never reported (its timer, a lost webhook) is found by the reconciler.
func TestReconcileClosesWhatTwilioClosed(t *testing.T) {
	e := newEnv(t)
	if _, _, err := e.svc.Start(t.Context(), request("order-1")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Start(t.Context(), request("order-2")); err != nil {
		t.Fatal(err)
	}
	e.tw.closeByTwilio("order-1")
	rep, err := e.svc.Reconcile(t.Context())
	if err != nil || rep != (ReconcileReport{Checked: 2, Closed: 1}) {
		t.Fatalf("reconcile: %+v %v", rep, err)
	}
	if c := e.chat("order-1"); c.State != StateClosed || c.Reason != ReasonExpired {
		t.Errorf("chat %s %s", c.State, c.Reason)
	}
	if c := e.chat("order-2"); c.State != StateInvited {
		t.Errorf("open chat %s", c.State)
	}
	// The chat still open at Twilio keeps its numbers for another term.
	if !slices.Equal(e.pool.renewed, []string{"order-2"}) {
		t.Errorf("renewed %v, want [order-2]", e.pool.renewed)
	}
	e.checkInvariant("order-1", "order-2")
}

// An end whose close failed keeps its ending and its numbers; the reconciler concludes it.
func TestReconcileConcludesAnEndThatFailed(t *testing.T) {
	e := newEnv(t)
	if _, _, err := e.svc.Start(t.Context(), request("order-1")); err != nil {
		t.Fatal(err)
	}
	e.tw.before = func(op, _ string) error {
		if op == "close" {
			return callErr("close", twiliocall.Retryable, 503, 0)
		}
		return nil
	}
	if _, err := e.svc.End(t.Context(), "order-1"); !errors.Is(err, ErrBusy) {
		t.Fatalf("end with Twilio down: %v", err)
	}
	if c := e.chat("order-1"); c.State != StateInvited || c.Ending == nil || !e.pool.held("order-1") {
		t.Fatalf("after the failed end: %s %+v held %v", c.State, c.Ending, e.pool.held("order-1"))
	}
	e.tw.before = nil
	if rep, _ := e.svc.Reconcile(t.Context()); rep.Concluded != 0 {
		t.Errorf("concluded within the budget: %+v", rep)
	}
	e.clock.advance(time.Minute)
	if rep, err := e.svc.Reconcile(t.Context()); err != nil || rep.Concluded != 1 {
		t.Fatalf("reconcile: %+v %v", rep, err)
	}
	if c := e.chat("order-1"); c.State != StateClosed || c.Reason != ReasonEnded {
		t.Errorf("chat %s %s", c.State, c.Reason)
	}
	e.checkInvariant("order-1")
}

// A start cut off mid-way is resumed by the reconciler, or failed once it is StartGiveUp old.
func TestReconcileResumesOrFailsAStuckStart(t *testing.T) {
	e := newEnv(t)
	down := true
	e.tw.before = func(op, _ string) error {
		if op == "participant" && down {
			return callErr("participant", twiliocall.Retryable, 503, 0)
		}
		return nil
	}
	if _, _, err := e.svc.Start(t.Context(), request("order-1")); !errors.Is(err, ErrBusy) {
		t.Fatalf("start: %v", err)
	}
	if _, _, err := e.svc.Start(t.Context(), request("order-2")); !errors.Is(err, ErrBusy) {
		t.Fatal(err)
	}
	e.clock.advance(time.Minute)
	down = false
	if _, err := e.svc.End(t.Context(), "order-2"); err != nil {
		t.Fatal(err)
	}
	down = true
	if _, _, err := e.svc.Start(t.Context(), request("order-3")); !errors.Is(err, ErrBusy) {
		t.Fatal(err)
	}
	down = false
	e.clock.advance(time.Minute)
	rep, err := e.svc.Reconcile(t.Context())
	if err != nil || rep != (ReconcileReport{Checked: 2, Resumed: 2}) {
		t.Fatalf("reconcile: %+v %v", rep, err)
	}
	if c := e.chat("order-1"); c.State != StateInvited || historyOf(c) != "starting,invited" {
		t.Errorf("resumed chat %s", historyOf(c))
	}

	down = true
	if _, _, err := e.svc.Start(t.Context(), request("order-4")); !errors.Is(err, ErrBusy) {
		t.Fatal(err)
	}
	e.clock.advance(StartGiveUp + time.Minute)
	rep, err = e.svc.Reconcile(t.Context())
	if err != nil || rep.Failed != 1 {
		t.Fatalf("reconcile: %+v %v", rep, err)
	}
	if c := e.chat("order-4"); c.State != StateFailed || c.Error == nil || c.Error.Detail != "the start did not finish" {
		t.Errorf("stuck chat %s %+v", c.State, c.Error)
	}
	e.checkInvariant("order-1", "order-2", "order-3", "order-4")
}

// An event whose hand-over failed is handed over by the sweep once its grace has passed.
func TestOutboxSweep(t *testing.T) {
	e := newEnv(t)
	e.notes.fail = errors.New("redis down")
	if _, _, err := e.svc.Start(t.Context(), request("order-1")); err != nil {
		t.Fatal(err)
	}
	e.notes.fail = nil
	if n, err := e.svc.SweepOutbox(t.Context()); n != 0 || err != nil {
		t.Errorf("sweep within the grace: %d %v", n, err)
	}
	e.clock.advance(OutboxGrace)
	if n, err := e.svc.SweepOutbox(t.Context()); n != 1 || err != nil || e.notes.count() != 1 {
		t.Errorf("sweep: %d %v, handed %d", n, err, e.notes.count())
	}
}

// The reconciler keeps to its rate of conversation reads: n reads at r a second take at least (n-1)/r.
func TestReconcileKeepsToItsRate(t *testing.T) {
	e := newEnv(t)
	e.svc.cfg.ReconcileRate = 100
	const chats = 21
	for i := range chats {
		r := request(fmt.Sprintf("order-%d", i))
		r.Customer.Address = fmt.Sprintf("whatsapp:+1555300%04d", i)
		if _, _, err := e.svc.Start(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := e.svc.Reconcile(t.Context())
	if err != nil || rep.Checked != chats {
		t.Fatalf("reconcile: %+v %v", rep, err)
	}
	e.tw.mu.Lock()
	reads := slices.Clone(e.tw.fetched)
	e.tw.mu.Unlock()
	if len(reads) != chats {
		t.Fatalf("%d reads, want %d", len(reads), chats)
	}
	if span, least := reads[len(reads)-1].Sub(reads[0]), time.Duration(chats-1)*time.Second/100; span < least*9/10 {
		t.Errorf("%d reads in %v: faster than 100 a second (at least %v)", chats, span, least)
	}
}

// A start whose numbers cannot be recorded frees them — its own, not the zero chat's — so that the
// repeated start holds one pair per party (issue 24, defect 4).
func TestUnrecordedNumbersAreFreed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	failed := false
	e.store.failUpdate = func(before, after Chat) error {
		if !failed && before.Steps[stepNumbers] == "" && after.Steps[stepNumbers] != "" {
			failed = true
			return errors.New("store blip")
		}
		return nil
	}
	if _, _, err := e.svc.Start(ctx, request("order-1")); !errors.Is(err, conversation.ErrUnavailable) {
		t.Fatalf("start: %v, want unavailable", err)
	}
	if e.pool.held("order-1") {
		t.Errorf("numbers not recorded stay leased: %v", e.pool.leases["order-1"])
	}
	if _, _, err := e.svc.Start(ctx, request("order-1")); err != nil {
		t.Fatal(err)
	}
	if got := e.pool.leases["order-1"]; len(got) != 2 {
		t.Errorf("leases after the repeated start %v, want one per party", got)
	}
}

// A final chat whose numbers could not be freed when it ended keeps that to do: the upkeep frees
// them, rather than the leases lapsing after the retention (issue 24, defect 3).
func TestNumbersNotFreedAtTheEndAreFreedLater(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, _, err := e.svc.Start(ctx, request("order-1")); err != nil {
		t.Fatal(err)
	}
	e.pool.mu.Lock()
	e.pool.failRelease = errors.New("redis blip")
	e.pool.mu.Unlock()
	if c, err := e.svc.End(ctx, "order-1"); err != nil || c.State != StateClosed {
		t.Fatalf("end: %v %v", c.State, err)
	}
	if got := e.chat("order-1"); !got.Release || !got.HasWork() || !e.pool.held("order-1") {
		t.Fatalf("after a failed release: Release %v, work %v, held %v", got.Release, got.HasWork(), e.pool.held("order-1"))
	}
	e.pool.mu.Lock()
	e.pool.failRelease = nil
	e.pool.mu.Unlock()
	if _, err := e.svc.SweepOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.chat("order-1"); got.Release || e.pool.held("order-1") {
		t.Errorf("after the sweep: Release %v, numbers held %v", got.Release, e.pool.held("order-1"))
	}
	e.checkInvariant("order-1")
}

// Numbers whose record landed although the write reported a failure (its replicas did not acknowledge
// it) stay leased: the resumed start uses them, and holds one pair per party (review of issue 24).
func TestNumbersRecordedDespiteAnErrorStayLeased(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	failed := false
	e.store.landed = func(before, after Chat) error {
		if !failed && before.Steps[stepNumbers] == "" && after.Steps[stepNumbers] != "" {
			failed = true
			return errors.New("1 of 2 replicas acknowledged")
		}
		return nil
	}
	if _, _, err := e.svc.Start(ctx, request("order-1")); !errors.Is(err, conversation.ErrUnavailable) {
		t.Fatalf("start: %v, want unavailable", err)
	}
	if !e.pool.held("order-1") {
		t.Fatal("numbers recorded on the chat were freed")
	}
	if c, _, err := e.svc.Start(ctx, request("order-1")); err != nil || c.State != StateInvited {
		t.Fatalf("repeated start: %v %v", c.State, err)
	}
	if got := e.pool.leases["order-1"]; len(got) != 2 {
		t.Errorf("leases %v, want one per party", got)
	}
}

// Pairs the chat holds with no numbers recorded — an earlier run leased them and its record was lost
// (cut off, or its write lost in a failover) — are freed before the numbers step leases: the chat
// holds one pair per party, not its own pairs as another's (the simulation, issue 24).
func TestAStartFreesNumbersAnEarlierRunLeasedUnrecorded(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	req := request("order-1")
	if _, err := e.pool.Lease(ctx, "order-1", []string{req.Customer.Address, req.Rider.Address}); err != nil {
		t.Fatal(err)
	}
	if c, _, err := e.svc.Start(ctx, req); err != nil || c.State != StateInvited {
		t.Fatalf("start: %v %v", c.State, err)
	}
	if got := e.pool.leases["order-1"]; len(got) != 2 {
		t.Errorf("leases %v, want one per party", got)
	}
}

// withWhatsApp is a service like e's on another WhatsApp pool.
func (e *env) withWhatsApp(pool Pool) *Service {
	cfg := e.svc.cfg
	cfg.WhatsApp = pool
	svc, err := NewService(e.tw, e.store, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	svc.now = e.clock.now
	workAsync(svc)
	return svc
}

// noNumberPool takes the customer's number and finds none for the rider; its releases fail as told.
type noNumberPool struct {
	*fakePool
	releases, failRelease int
}

func (p *noNumberPool) Lease(ctx context.Context, chatID string, addresses []string) ([]string, error) {
	if _, err := p.fakePool.Lease(ctx, chatID, addresses[:1]); err != nil {
		return nil, err
	}
	return nil, &numberpool.ExhaustedError{Address: addresses[len(addresses)-1], Pool: "WhatsApp"}
}

func (p *noNumberPool) Release(ctx context.Context, chatID string) error {
	if p.releases++; p.releases == p.failRelease {
		return errors.New("redis: i/o timeout")
	}
	return p.fakePool.Release(ctx, chatID)
}

// A start that finds no number for the rider after taking the customer's is forgotten only once the
// chat holds nothing: when giving the customer's number back fails, the chat stays for a repeated
// start, which frees it and then forgets the chat (the simulation's store blips, issue 24).
func TestAStartWithNoNumberIsForgottenOnlyOnceItHoldsNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pool := &noNumberPool{fakePool: e.pool, failRelease: 2} // the first release frees what an earlier run left; the second fails
	svc := e.withWhatsApp(pool)
	if _, _, err := svc.Start(ctx, request("order-1")); !errors.Is(err, conversation.ErrUnavailable) {
		t.Fatalf("start: %v, want unavailable", err)
	}
	if _, err := e.store.Get(ctx, "order-1"); err != nil || !e.pool.held("order-1") {
		t.Fatalf("after a failed release: chat %v, numbers held %v; want the chat kept with its number", err, e.pool.held("order-1"))
	}
	var nn *NoNumberError
	if _, _, err := svc.Start(ctx, request("order-1")); !errors.As(err, &nn) {
		t.Fatalf("repeated start: %v, want no number", err)
	}
	if _, err := e.store.Get(ctx, "order-1"); !errors.Is(err, ErrNotFound) || e.pool.held("order-1") {
		t.Errorf("after the repeat: chat %v, numbers held %v; want it forgotten, holding nothing", err, e.pool.held("order-1"))
	}
}

// A start resumed with a party recorded without a number (its pair was found bound elsewhere, and the
// next was not recorded) leases that party one before adding them — never adding them with no proxy
// address (the simulation, issue 24).
func TestAResumedStartLeasesAPartyWithoutANumber(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cut := true
	e.tw.before = func(op, _ string) error {
		if op == "participant" && cut {
			return callErr("participant", twiliocall.Retryable, 503, 20503)
		}
		return nil
	}
	if _, _, err := e.svc.Start(ctx, request("order-1")); !errors.Is(err, ErrBusy) {
		t.Fatalf("cut start: %v, want busy", err)
	}
	if _, err := e.store.Update(ctx, "order-1", func(c *Chat) error { c.Rider.ProxyAddress = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := e.pool.ReleaseAddress(ctx, "order-1", request("order-1").Rider.Address); err != nil {
		t.Fatal(err)
	}
	cut = false
	c, _, err := e.svc.Start(ctx, request("order-1"))
	if err != nil || c.State != StateInvited {
		t.Fatalf("resumed start: %v %v", c.State, err)
	}
	if c.Rider.ProxyAddress != e.pool.number || !e.pool.leasedTo("order-1", request("order-1").Rider.Address) {
		t.Errorf("rider on %q, leased %v", c.Rider.ProxyAddress, e.pool.leases["order-1"])
	}
}

// replacingPool gives a party whose pair is bound elsewhere the same number again, and fails the leases
// after the first `ok` with a store error.
type replacingPool struct {
	*fakePool
	ok, leases int
}

func (p *replacingPool) Lease(ctx context.Context, chatID string, addresses []string) ([]string, error) {
	if p.leases++; p.leases > p.ok {
		return nil, errors.New("redis: i/o timeout")
	}
	return p.fakePool.Lease(ctx, chatID, addresses)
}

func (p *replacingPool) Replace(ctx context.Context, chatID, address, _ string) (string, error) {
	if err := p.fakePool.ReleaseAddress(ctx, chatID, address); err != nil {
		return "", err
	}
	numbers, err := p.fakePool.Lease(ctx, chatID, []string{address})
	if err != nil {
		return "", err
	}
	return numbers[0], nil
}

// A party's new number whose record landed though its writer heard it fail (a replica's WAIT) stays
// leased: the step's retry reads the stored chat rather than its own copy, which shows no number, and
// does not free the lease as one an earlier run left unrecorded; it writes the record again, so that
// the replicas hold it before Twilio adds the party on that number. Before, the retry freed it and, its
// own lease failing, left the chat recording a number it no longer held (the simulation, issue 24).
func TestARetryDoesNotFreeALeaseWhoseRecordLanded(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	participants := 0
	e.store.unacked = map[string][]byte{}
	e.tw.before = func(op, _ string) error {
		if op == "participant" {
			if participants++; participants == 2 { // the rider's pair is bound elsewhere
				return callErr("participant", twiliocall.Permanent, 409, codePairInUse)
			}
			e.store.mu.Lock()
			lost := e.store.lost("order-1")
			e.store.mu.Unlock()
			if lost {
				t.Errorf("participant %d added on a record the replicas do not hold yet", participants)
			}
		}
		return nil
	}
	heard := false
	e.store.landed = func(before, after Chat) error {
		if !heard && before.Steps[stepNumbers] != "" && before.Rider.ProxyAddress == "" && after.Rider.ProxyAddress != "" {
			heard = true
			return errors.New("replicas did not acknowledge the write")
		}
		return nil
	}
	pool := &replacingPool{fakePool: e.pool, ok: 1}
	svc := e.withWhatsApp(pool)
	c, _, err := svc.Start(ctx, request("order-1"))
	if !heard {
		t.Fatal("the rider's new number was never recorded")
	}
	stored, gerr := e.store.Get(ctx, "order-1")
	if gerr != nil {
		t.Fatal(gerr)
	}
	rider := request("order-1").Rider.Address
	if stored.Rider.ProxyAddress != "" && !e.pool.leasedTo("order-1", rider) {
		t.Errorf("the chat records the rider on %s but the pool holds no lease of it (start: %v %v)", stored.Rider.ProxyAddress, c.State, err)
	}
	if err != nil || c.State != StateInvited {
		t.Errorf("start: %v %v, want invited", c.State, err)
	}
}

// failingReleasePool refuses its releases after the first with a store error.
type failingReleasePool struct {
	*fakePool
	releases int
}

func (p *failingReleasePool) Release(ctx context.Context, chatID string) error {
	if p.releases++; p.releases > 1 {
		return errors.New("redis: i/o timeout")
	}
	return p.fakePool.Release(ctx, chatID)
}

// A start Twilio refuses before its conversation exists gives its numbers back; when that fails half
// way (the WhatsApp pool freed, the SMS pool's failing; its first release, of what an earlier run left,
// went through), the chat, kept for a repeated start,
// records no numbers it no longer holds: they are recorded given back first (the long run, seed 394).
func TestARefusedStartWhoseReleaseFailsHalfWayRecordsNoNumbers(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.svc.cfg
	cfg.SMS = &failingReleasePool{fakePool: &fakePool{number: "+15550109999", leases: map[string][]string{}}}
	svc, err := NewService(e.tw, e.store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	svc.now = e.clock.now
	e.tw.before = func(op, _ string) error {
		if op == "create" {
			return callErr("create conversation", twiliocall.Permanent, 400, 50353)
		}
		return nil
	}
	if _, _, err := svc.Start(ctx, request("order-1")); !errors.Is(err, conversation.ErrUnavailable) {
		t.Fatalf("start: %v, want unavailable (the release failed)", err)
	}
	c, err := e.store.Get(ctx, "order-1")
	if err != nil {
		t.Fatalf("the chat was forgotten though its release failed: %v", err)
	}
	if e.pool.held("order-1") {
		t.Errorf("the WhatsApp pool still holds the refused start's numbers")
	}
	if c.Steps[stepNumbers] != "" || c.Customer.ProxyAddress != "" || c.Rider.ProxyAddress != "" {
		t.Errorf("the kept chat records numbers it no longer holds: %q, %q, %q", c.Steps[stepNumbers], c.Customer.ProxyAddress, c.Rider.ProxyAddress)
	}
}

// A start that Twilio refuses before its conversation exists does not forget a chat that was ended
// while it ran (its start past its lease): the end's chat stays, and the start is told it was ended
// (a review, issue 24).
func TestARefusedStartKeepsAChatEndedMeanwhile(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.tw.before = func(op, _ string) error {
		if op == "create" {
			if _, err := e.store.Update(ctx, "order-1", func(c *Chat) error {
				c.State = StateClosed
				return nil
			}); err != nil {
				t.Error(err)
			}
			return callErr("create conversation", twiliocall.Permanent, 400, 50353)
		}
		return nil
	}
	if _, _, err := e.svc.Start(ctx, request("order-1")); !errors.Is(err, ErrEnded) {
		t.Fatalf("start: %v, want ended", err)
	}
	if c, err := e.store.Get(ctx, "order-1"); err != nil || c.State != StateClosed {
		t.Errorf("the ended chat: %v %v, want it kept, closed", c.State, err)
	}
	if e.pool.held("order-1") {
		t.Error("the overtaken start kept its numbers")
	}
}
