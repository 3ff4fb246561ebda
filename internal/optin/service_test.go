package optin

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/twiliocall"
)

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// Message SIDs of Twilio's shape (IM + 32 hex digits).
const (
	msg0 = "IM00000000000000000000000000000000"
	msg1 = "IM00000000000000000000000000000001"
	msg2 = "IM00000000000000000000000000000002"
	msg3 = "IM00000000000000000000000000000003"
)

const (
	conv     = "CH00000000000000000000000000000001"
	customer = "whatsapp:+15550001111"
	rider    = "whatsapp:+15550002222"
	wait     = "Great! Just a moment while we connect you…"
	riderMsg = "Your customer has agreed to chat to get this delivery sorted. You're now connected. Say hello!"
)

var fastRetry = twiliocall.RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond, MaxAttempts: 4, CallTimeout: time.Second}

const maxRuns = 3

// testService is a Service with its fakes.
type testService struct {
	*Service
	q *fakeQueue
}

func newTestService(t *testing.T, fc *fakeConversations, mutate ...func(*Config)) (*testService, *fakeStore) {
	t.Helper()
	cfg := Config{WaitMessage: wait, RiderOptIn: Template{Body: riderMsg}, Retry: fastRetry}
	for _, m := range mutate {
		m(&cfg)
	}
	st := &fakeStore{}
	q := &fakeQueue{maxRuns: maxRuns, active: map[string]bool{}}
	svc, err := NewService(fc, st, q, cfg)
	if err != nil {
		t.Fatal(err)
	}
	q.svc = svc
	return &testService{svc, q}, st
}

func reply(msgSid, author string) conversation.Event {
	return conversation.Event{Type: conversation.EventMessageAdded, ConversationSid: conv, MessageSid: msgSid, Author: author, Body: "Yes"}
}

func drain(t *testing.T, svc *testService) {
	t.Helper()
	svc.q.wg.Wait()
}

func mustHandle(t *testing.T, svc *testService, ev conversation.Event, want conversation.Decision) {
	t.Helper()
	got, err := svc.Handle(t.Context(), ev)
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if got != want {
		t.Fatalf("Handle = %+v, want %+v", got, want)
	}
}

func byStep(calls []createCall) map[string][]conversation.Message {
	out := map[string][]conversation.Message{}
	for _, c := range calls {
		out[stepOf(c.Message.Attributes)] = append(out[stepOf(c.Message.Attributes)], c.Message)
	}
	return out
}

func TestOptInPerformsTheThreeSteps(t *testing.T) {
	fc := &fakeConversations{webhooks: []string{"WH1", "WH2", "WH3", "WH4", "WH5", "WH6"}}
	svc, st := newTestService(t, fc)
	mustHandle(t, svc, reply(msg1, customer), conversation.Decision{Outcome: conversation.OutcomeAccepted})
	drain(t, svc)

	created, lists, deletes, _ := fc.snapshot()
	steps := byStep(created)
	wantWait := conversation.Message{Body: wait, Attributes: `{"optin":{"step":"wait","trigger":"IM00000000000000000000000000000001"}}`}
	wantRider := conversation.Message{Author: customer, Body: riderMsg, Attributes: `{"optin":{"step":"rider","trigger":"IM00000000000000000000000000000001"}}`}
	if !reflect.DeepEqual(steps[StepWait], []conversation.Message{wantWait}) {
		t.Errorf("wait messages = %+v, want %+v", steps[StepWait], wantWait)
	}
	if !reflect.DeepEqual(steps[StepRider], []conversation.Message{wantRider}) {
		t.Errorf("rider messages = %+v, want %+v", steps[StepRider], wantRider)
	}
	if len(created) != 2 || created[0].Conversation != conv || created[1].Conversation != conv {
		t.Errorf("creates = %+v", created)
	}
	if lists != 1 || !reflect.DeepEqual(deletes, fc.webhooks) {
		t.Errorf("lists = %d, deletes = %v; want 1 and %v", lists, deletes, fc.webhooks)
	}
	if f := st.get(conv); f.State != StateDone || f.Customer != customer || f.Trigger != msg1 {
		t.Errorf("flow = %+v", f)
	}
	// Step records serve later runs only: the flow's end would drop them, so a run that ends writes none.
	if r := st.stepRecords(); len(r) != 0 {
		t.Errorf("step records %v, want none", r)
	}
}

func TestContentTemplateReplacesBody(t *testing.T) {
	fc := &fakeConversations{}
	svc, _ := newTestService(t, fc, func(c *Config) {
		c.RiderOptIn = Template{Body: riderMsg, ContentSid: "HX0123456789abcdef0123456789abcdef", ContentVariables: `{"1":"Ana"}`}
	})
	mustHandle(t, svc, reply(msg1, customer), conversation.Decision{Outcome: conversation.OutcomeAccepted})
	drain(t, svc)
	created, _, _, _ := fc.snapshot()
	want := conversation.Message{Author: customer, ContentSid: "HX0123456789abcdef0123456789abcdef", ContentVariables: `{"1":"Ana"}`,
		Attributes: `{"optin":{"step":"rider","trigger":"IM00000000000000000000000000000001"}}`}
	if got := byStep(created)[StepRider]; !reflect.DeepEqual(got, []conversation.Message{want}) {
		t.Errorf("rider = %+v, want %+v", got, want)
	}
}

func TestDecisions(t *testing.T) {
	fc := &fakeConversations{}
	svc, st := newTestService(t, fc)
	mustHandle(t, svc, conversation.Event{Type: "onConversationUpdated", ConversationSid: conv}, conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonEventType})
	mustHandle(t, svc, reply(msg0, ""), conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonNoAuthor})
	mustHandle(t, svc, reply(msg0, "system"), conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonNoAuthor})
	if _, claimed := st.flows[conv]; claimed {
		t.Fatal("ignored events claimed the conversation")
	}
	mustHandle(t, svc, reply(msg1, customer), conversation.Decision{Outcome: conversation.OutcomeAccepted})
	mustHandle(t, svc, reply(msg1, customer), conversation.Decision{Outcome: conversation.OutcomeDuplicate})
	mustHandle(t, svc, reply(msg2, rider), conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonNotCustomer})
	drain(t, svc)
	mustHandle(t, svc, reply(msg3, customer), conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonCompleted})
	mustHandle(t, svc, reply(msg1, customer), conversation.Decision{Outcome: conversation.OutcomeDuplicate})
	created, lists, _, _ := fc.snapshot()
	if len(created) != 2 || lists != 1 {
		t.Errorf("creates = %d, lists = %d; want 2 and 1", len(created), lists)
	}
}

func TestInProgressIsIgnored(t *testing.T) {
	fc := &fakeConversations{block: make(chan struct{})}
	svc, _ := newTestService(t, fc)
	mustHandle(t, svc, reply(msg1, customer), conversation.Decision{Outcome: conversation.OutcomeAccepted})
	mustHandle(t, svc, reply(msg2, customer), conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonInProgress})
	close(fc.block)
	drain(t, svc)
}

func TestInvalidEvent(t *testing.T) {
	svc, _ := newTestService(t, &fakeConversations{})
	for _, ev := range []conversation.Event{
		{Type: conversation.EventMessageAdded, MessageSid: msg1, Author: customer},
		{Type: conversation.EventMessageAdded, ConversationSid: conv, Author: customer},
	} {
		if _, err := svc.Handle(t.Context(), ev); !errors.Is(err, conversation.ErrInvalidEvent) {
			t.Errorf("Handle(%+v) err = %v, want ErrInvalidEvent", ev, err)
		}
	}
}

func TestConcurrentDeliveriesOptInOnce(t *testing.T) {
	fc := &fakeConversations{webhooks: []string{"WH1"}}
	svc, _ := newTestService(t, fc)
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[conversation.Outcome]int{}
	for i := range 64 {
		wg.Go(func() {
			sid := msg1
			if i%2 == 1 {
				sid = msg2
			}
			d, err := svc.Handle(t.Context(), reply(sid, customer))
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			outcomes[d.Outcome]++
			mu.Unlock()
		})
	}
	wg.Wait()
	drain(t, svc)
	if outcomes[conversation.OutcomeAccepted] != 1 {
		t.Errorf("accepted %d times, want 1 (%v)", outcomes[conversation.OutcomeAccepted], outcomes)
	}
	created, lists, deletes, _ := fc.snapshot()
	if len(created) != 2 || lists != 1 || len(deletes) != 1 {
		t.Errorf("creates = %d, lists = %d, deletes = %d; want 2, 1, 1", len(created), lists, len(deletes))
	}
}

func callErr(kind twiliocall.FailureKind, status, code int) *twiliocall.CallError {
	return &twiliocall.CallError{Op: "test", Kind: kind, Status: status, Code: code, Err: errors.New("boom")}
}

func TestRetryableFailuresAreRetried(t *testing.T) {
	fc := &fakeConversations{
		webhooks:   []string{"WH1"},
		failCreate: map[string][]scripted{StepWait: {{err: callErr(twiliocall.Retryable, 429, 20429)}, {err: callErr(twiliocall.Retryable, 429, 20429)}}},
		failList:   []error{callErr(twiliocall.Retryable, 0, 0)},
		failDelete: map[string][]error{"WH1": {callErr(twiliocall.Uncertain, 503, 0)}},
	}
	svc, st := newTestService(t, fc)
	mustHandle(t, svc, reply(msg1, customer), conversation.Decision{Outcome: conversation.OutcomeAccepted})
	drain(t, svc)
	created, lists, deletes, recent := fc.snapshot()
	steps := byStep(created)
	if len(steps[StepWait]) != 3 || len(steps[StepRider]) != 1 {
		t.Errorf("wait attempts = %d, rider attempts = %d; want 3 and 1", len(steps[StepWait]), len(steps[StepRider]))
	}
	if lists != 2 || !reflect.DeepEqual(deletes, []string{"WH1", "WH1"}) {
		t.Errorf("lists = %d, deletes = %v", lists, deletes)
	}
	if recent != 0 {
		t.Errorf("looked for markers %d times after failures that certainly had no effect", recent)
	}
	if f := st.get(conv); f.State != StateDone {
		t.Errorf("flow = %+v, want done", f)
	}
}

// An ambiguous failure after the message was in fact created must not create it again.
func TestUncertainCreateIsNotRepeated(t *testing.T) {
	fc := &fakeConversations{failCreate: map[string][]scripted{StepRider: {{err: callErr(twiliocall.Uncertain, 0, 0), applied: true}}}}
	svc, st := newTestService(t, fc)
	mustHandle(t, svc, reply(msg1, customer), conversation.Decision{Outcome: conversation.OutcomeAccepted})
	drain(t, svc)
	created, _, _, recent := fc.snapshot()
	if n := len(byStep(created)[StepRider]); n != 1 {
		t.Errorf("rider created %d times, want 1", n)
	}
	if recent != 1 {
		t.Errorf("marker lookups = %d, want 1", recent)
	}
	if f := st.get(conv); f.State != StateDone {
		t.Errorf("flow = %+v, want done", f)
	}
}

// An ambiguous failure where nothing was created leads to a lookup and then a second create.
func TestUncertainCreateNotAppliedIsRetried(t *testing.T) {
	fc := &fakeConversations{failCreate: map[string][]scripted{StepWait: {{err: callErr(twiliocall.Uncertain, 502, 0)}}}}
	svc, _ := newTestService(t, fc)
	mustHandle(t, svc, reply(msg1, customer), conversation.Decision{Outcome: conversation.OutcomeAccepted})
	drain(t, svc)
	created, _, _, recent := fc.snapshot()
	if n := len(byStep(created)[StepWait]); n != 2 || recent != 1 {
		t.Errorf("wait creates = %d, lookups = %d; want 2 and 1", n, recent)
	}
}

// A lookup that fails for a moment is retried; one that cannot work at all lets the step create.
func TestMarkerLookupFailures(t *testing.T) {
	fc := &fakeConversations{
		failCreate: map[string][]scripted{StepWait: {{err: callErr(twiliocall.Uncertain, 0, 0)}}, StepRider: {{err: callErr(twiliocall.Uncertain, 0, 0)}}},
		failRecent: []error{callErr(twiliocall.Retryable, 429, 20429), callErr(twiliocall.Permanent, 404, 20404)},
	}
	svc, st := newTestService(t, fc)
	mustHandle(t, svc, reply(msg1, customer), conversation.Decision{Outcome: conversation.OutcomeAccepted})
	drain(t, svc)
	created, _, _, recent := fc.snapshot()
	steps := byStep(created)
	if len(steps[StepWait]) != 2 || len(steps[StepRider]) != 2 || recent < 2 {
		t.Errorf("wait creates = %d, rider creates = %d, lookups = %d", len(steps[StepWait]), len(steps[StepRider]), recent)
	}
	if f := st.get(conv); f.State != StateDone {
		t.Errorf("flow = %+v, want done", f)
	}
}

func TestPermanentFailureFailsTheFlow(t *testing.T) {
	fc := &fakeConversations{
		webhooks:   []string{"WH1", "WH2"},
		failCreate: map[string][]scripted{StepRider: {{err: callErr(twiliocall.Permanent, 400, 63016)}}},
	}
	svc, st := newTestService(t, fc)
	mustHandle(t, svc, reply(msg1, customer), conversation.Decision{Outcome: conversation.OutcomeAccepted})
	drain(t, svc)
	created, _, deletes, _ := fc.snapshot()
	if n := len(byStep(created)[StepRider]); n != 1 {
		t.Errorf("rider attempts = %d, want 1 (no retry of a permanent error)", n)
	}
	if len(deletes) != 2 {
		t.Errorf("deletes = %v: the other steps still run", deletes)
	}
	f := st.get(conv)
	if f.State != StateFailed || !strings.Contains(f.Detail, "step rider") {
		t.Errorf("flow = %+v, want failed naming the rider step", f)
	}
	mustHandle(t, svc, reply(msg2, customer), conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonFailed})
}

func TestMissingWebhookCountsAsDeleted(t *testing.T) {
	fc := &fakeConversations{
		webhooks:   []string{"WH1", "WH2"},
		failDelete: map[string][]error{"WH1": {callErr(twiliocall.Permanent, 404, 20404)}},
	}
	svc, st := newTestService(t, fc)
	mustHandle(t, svc, reply(msg1, customer), conversation.Decision{Outcome: conversation.OutcomeAccepted})
	drain(t, svc)
	if _, _, deletes, _ := fc.snapshot(); !reflect.DeepEqual(deletes, []string{"WH1", "WH2"}) {
		t.Errorf("deletes = %v", deletes)
	}
	if f := st.get(conv); f.State != StateDone {
		t.Errorf("flow = %+v, want done", f)
	}
}

func TestRetriesAreBounded(t *testing.T) {
	fails := make([]error, 100)
	for i := range fails {
		fails[i] = callErr(twiliocall.Retryable, 429, 20429)
	}
	fc := &fakeConversations{failList: fails}
	svc, st := newTestService(t, fc)
	mustHandle(t, svc, reply(msg1, customer), conversation.Decision{Outcome: conversation.OutcomeAccepted})
	drain(t, svc)
	if _, lists, _, _ := fc.snapshot(); lists != int(fastRetry.MaxAttempts)*maxRuns {
		t.Errorf("list attempts = %d, want %d per run for %d runs", lists, fastRetry.MaxAttempts, maxRuns)
	}
	f := st.get(conv)
	if f.State != StateFailed || !strings.HasPrefix(f.Detail, "gave up: ") || f.Runs != maxRuns {
		t.Errorf("flow = %+v, want failed after %d runs", f, maxRuns)
	}
	// The messages went out in the first run and were not sent again.
	created, _, _, _ := fc.snapshot()
	if len(created) != 2 || f.Steps[StepWait] == "" || f.Steps[StepRider] == "" {
		t.Errorf("creates = %d, steps = %v", len(created), f.Steps)
	}
}

// A later run skips the steps an earlier one finished and looks before creating the others.
func TestRerunResumes(t *testing.T) {
	fc := &fakeConversations{
		webhooks:   []string{"WH1"},
		failCreate: map[string][]scripted{StepRider: {{err: callErr(twiliocall.Uncertain, 0, 0), applied: true}, {err: callErr(twiliocall.Uncertain, 0, 0)}, {err: callErr(twiliocall.Uncertain, 0, 0)}, {err: callErr(twiliocall.Uncertain, 0, 0)}}},
	}
	svc, st := newTestService(t, fc, func(c *Config) { c.Retry.MaxAttempts = 1 })
	mustHandle(t, svc, reply(msg1, customer), conversation.Decision{Outcome: conversation.OutcomeAccepted})
	drain(t, svc)
	created, lists, deletes, recent := fc.snapshot()
	steps := byStep(created)
	if len(steps[StepWait]) != 1 || len(steps[StepRider]) != 1 || lists != 1 || len(deletes) != 1 {
		t.Errorf("wait %d, rider %d, lists %d, deletes %d; want 1 each", len(steps[StepWait]), len(steps[StepRider]), lists, len(deletes))
	}
	if recent != 1 {
		t.Errorf("lookups = %d, want 1 (the second run finds the rider message)", recent)
	}
	var riderSid string
	for _, m := range fc.messages {
		if hasMarker(m.Attributes, StepRider, msg1) {
			riderSid = m.Sid
		}
	}
	if f := st.get(conv); f.State != StateDone || f.Runs != 2 {
		t.Errorf("flow = %+v", f)
	}
	// The first run recorded what it did in one write; the second, which ended the flow, wrote nothing.
	waitSid := ""
	for _, m := range fc.messages {
		if hasMarker(m.Attributes, StepWait, msg1) {
			waitSid = m.Sid
		}
	}
	if r, want := st.stepRecords(), []map[string]string{{StepWait: waitSid, StepWebhooks: "done"}}; !reflect.DeepEqual(r, want) || riderSid == "" {
		t.Errorf("step records %v, want %v (rider %q)", r, want, riderSid)
	}
}

func TestEnqueuedAgainWhileRunning(t *testing.T) {
	fc := &fakeConversations{block: make(chan struct{})}
	svc, _ := newTestService(t, fc)
	mustHandle(t, svc, reply(msg1, customer), conversation.Decision{Outcome: conversation.OutcomeAccepted})
	mustHandle(t, svc, reply(msg1, customer), conversation.Decision{Outcome: conversation.OutcomeDuplicate})
	mustHandle(t, svc, reply(msg2, rider), conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: ReasonNotCustomer})
	close(fc.block)
	drain(t, svc)
	mustHandle(t, svc, reply(msg1, customer), conversation.Decision{Outcome: conversation.OutcomeDuplicate})
	if svc.q.enqueued != 2 {
		t.Errorf("enqueued %d times, want 2: the claim and the customer's duplicate while running", svc.q.enqueued)
	}
}

type failingQueue struct{}

func (failingQueue) Enqueue(context.Context, string) error {
	return errors.New("redis: connection refused")
}

func TestQueueFailureIsUnavailable(t *testing.T) {
	svc, err := NewService(&fakeConversations{}, &fakeStore{}, failingQueue{}, Config{WaitMessage: wait, RiderOptIn: Template{Body: riderMsg}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Handle(t.Context(), reply(msg1, customer)); !errors.Is(err, conversation.ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	ra := 150 * time.Millisecond
	fc := &fakeConversations{failList: []error{&twiliocall.CallError{Op: "list", Kind: twiliocall.Retryable, Status: 429, RetryAfter: ra}}}
	svc, _ := newTestService(t, fc)
	start := time.Now()
	mustHandle(t, svc, reply(msg1, customer), conversation.Decision{Outcome: conversation.OutcomeAccepted})
	drain(t, svc)
	// A lower bound only: the backoff alone would retry after about a millisecond.
	if el := time.Since(start); el < ra {
		t.Errorf("retried after %v, before Retry-After %v", el, ra)
	}
}

func TestNewServiceChecksDeps(t *testing.T) {
	ok := Config{WaitMessage: wait, RiderOptIn: Template{Body: riderMsg}}
	q := &fakeQueue{}
	cases := map[string]func() (Conversations, Store, Queue, Config){
		"nil conversations": func() (Conversations, Store, Queue, Config) { return nil, &fakeStore{}, q, ok },
		"nil store":         func() (Conversations, Store, Queue, Config) { return &fakeConversations{}, nil, q, ok },
		"nil queue":         func() (Conversations, Store, Queue, Config) { return &fakeConversations{}, &fakeStore{}, nil, ok },
		"no wait": func() (Conversations, Store, Queue, Config) {
			c := ok
			c.WaitMessage = ""
			return &fakeConversations{}, &fakeStore{}, q, c
		},
		"no rider": func() (Conversations, Store, Queue, Config) {
			c := ok
			c.RiderOptIn = Template{}
			return &fakeConversations{}, &fakeStore{}, q, c
		},
	}
	for name, build := range cases {
		conv, st, qq, cfg := build()
		if _, err := NewService(conv, st, qq, cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestMarker(t *testing.T) {
	m := marker(StepWait, msg1)
	if m != `{"optin":{"step":"wait","trigger":"IM00000000000000000000000000000001"}}` {
		t.Fatalf("marker = %s", m)
	}
	for attrs, want := range map[string]bool{
		m: true,
		`{"optin":{"step":"wait","trigger":"IM00000000000000000000000000000002"}}`:  false,
		`{"optin":{"step":"rider","trigger":"IM00000000000000000000000000000001"}}`: false,
		`{}`:       false,
		`not json`: false,
		``:         false,
	} {
		if got := hasMarker(attrs, StepWait, msg1); got != want {
			t.Errorf("hasMarker(%q) = %v, want %v", attrs, got, want)
		}
	}
}

// zeroOnWin is a Store that keeps its contract but says nothing of the flow on a won claim.
type zeroOnWin struct{ *fakeStore }

func (z zeroOnWin) Claim(ctx context.Context, f Flow) (Flow, bool, error) {
	existing, claimed, err := z.fakeStore.Claim(ctx, f)
	if claimed {
		return Flow{}, true, err
	}
	return existing, claimed, err
}

// The winner of a claim is enqueued because it won, not because of what the store returns with the win.
func TestWonClaimIsEnqueuedWhateverTheStoreReturns(t *testing.T) {
	fc := &fakeConversations{webhooks: []string{"WH1"}}
	st := zeroOnWin{&fakeStore{}}
	q := &fakeQueue{maxRuns: maxRuns, active: map[string]bool{}}
	svc, err := NewService(fc, st, q, Config{WaitMessage: wait, RiderOptIn: Template{Body: riderMsg}, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	q.svc = svc
	ts := &testService{svc, q}
	mustHandle(t, ts, reply(msg1, customer), conversation.Decision{Outcome: conversation.OutcomeAccepted})
	drain(t, ts)
	if q.enqueued != 1 {
		t.Fatalf("enqueued %d times, want 1", q.enqueued)
	}
	if f, err := st.Flow(t.Context(), conv); err != nil || f.State != StateDone {
		t.Errorf("flow %+v %v, want done", f, err)
	}
}

// fakeChats knows one chat, on conv, and notes the stages it is told of.
type fakeChats struct {
	mu     sync.Mutex
	stages []conversation.Stage
	// fail makes this many Advance calls fail first.
	fail int
}

func (c *fakeChats) Parties(_ context.Context, conversationSid string) (string, string, bool, error) {
	return customer, rider, conversationSid == conv, nil
}

func (c *fakeChats) Advance(_ context.Context, _ string, stage conversation.Stage, _ string, _ error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail > 0 {
		c.fail--
		return errors.New("chat store unavailable")
	}
	c.stages = append(c.stages, stage)
	return nil
}

// A declined chat's flow has two phases; when the second (the chat told of the decline, which closes
// its conversation) fails for a whole run, the first is recorded in one write and the next run only
// tells the chat. The flow never closes a chat's conversation itself, nor removes its webhooks (the
// chat relays what is written after the opt-in).
func TestDeclineResumesAfterItsFirstPhase(t *testing.T) {
	fc := &fakeConversations{webhooks: []string{"WH1", "WH2"}, lifecycle: map[string]bool{"WH2": true}}
	chats := &fakeChats{fail: 1}
	svc, st := newTestService(t, fc, func(c *Config) { c.Chats = chats })
	ev := reply(msg1, customer)
	ev.Body = "No thanks"
	mustHandle(t, svc, ev, conversation.Decision{Outcome: conversation.OutcomeAccepted})
	drain(t, svc)

	created, lists, deletes, recent := fc.snapshot()
	var decline string
	for _, c := range created {
		if !hasMarker(c.Message.Attributes, StepDecline, msg1) || c.Message.Body != DefaultDeclineMessage {
			t.Errorf("created %+v, want only the decline message", c.Message)
		}
	}
	for _, m := range fc.messages {
		decline = m.Sid
	}
	if len(created) != 1 || lists != 0 || len(deletes) != 0 || recent != 0 || fc.closes != 0 {
		t.Errorf("creates %d, lists %d, deletes %v, lookups %d, closes %d", len(created), lists, deletes, recent, fc.closes)
	}
	if r, want := st.stepRecords(), []map[string]string{{StepDecline: decline}}; !reflect.DeepEqual(r, want) {
		t.Errorf("step records %v, want %v", r, want)
	}
	if f := st.get(conv); f.State != StateDone || f.Runs != 2 || f.Answer != AnswerDecline {
		t.Errorf("flow = %+v", f)
	}
	// Told once to close, once at the flow's end (which changes nothing in a final chat).
	if !reflect.DeepEqual(chats.stages, []conversation.Stage{conversation.StageDeclined, conversation.StageDeclined}) {
		t.Errorf("stages %v", chats.stages)
	}
}
