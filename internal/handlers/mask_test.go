package handlers

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/guard"
	"github.com/optinkit/optin/internal/metrics"
	"github.com/optinkit/optin/internal/signature"
)

const (
	convURL      = "https://optin.example.com/webhooks/conversations"
	messagingURL = "https://optin.example.com/webhooks/messaging"
	afterEndText = "This delivery chat has ended. Please use the app to contact us."
)

// fakeMask answers as a chat service would: the real guard on a chat's messages, the answer after the
// end it is told.
type fakeMask struct {
	mu       sync.Mutex
	g        guard.Guard
	chatID   string // "" : the conversation is no chat's
	err      error
	wait     bool // GuardMessage waits for its context to end
	panics   bool // GuardMessage panics
	guarded  []chat.GuardRequest
	afterEnd []chat.AfterEndRequest
	answer   chat.AfterEndAnswer
}

func (f *fakeMask) GuardMessage(ctx context.Context, req chat.GuardRequest) (chat.GuardAnswer, error) {
	f.mu.Lock()
	f.guarded = append(f.guarded, req)
	f.mu.Unlock()
	if f.panics {
		panic("index out of range [7] with length 7")
	}
	if f.wait {
		<-ctx.Done()
		return chat.GuardAnswer{}, ctx.Err()
	}
	if f.err != nil {
		return chat.GuardAnswer{}, f.err
	}
	if f.chatID == "" {
		return chat.GuardAnswer{Result: guard.Result{Body: req.Body}}, nil
	}
	return chat.GuardAnswer{ChatID: f.chatID, Result: f.g.Check(req.Body, guard.Region(req.Author))}, nil
}

func (f *fakeMask) MessageAfterEnd(_ context.Context, req chat.AfterEndRequest) (chat.AfterEndAnswer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.afterEnd = append(f.afterEnd, req)
	return f.answer, f.err
}

// maskCounts records what the mask counts, as "guarded number redact", "skipped error", "after_end answered".
type maskCounts struct {
	mu   sync.Mutex
	seen []string
}

func (m *maskCounts) add(s string) { m.mu.Lock(); m.seen = append(m.seen, s); m.mu.Unlock() }
func (m *maskCounts) MessageGuarded(kind, action string) {
	m.add("guarded " + kind + " " + action)
}
func (m *maskCounts) GuardSkipped(reason string) { m.add("skipped " + reason) }
func (m *maskCounts) AfterEnd(outcome string)    { m.add("after_end " + outcome) }
func (m *maskCounts) take() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.seen
	m.seen = nil
	return out
}

type maskEnv struct {
	mask   *fakeMask
	flows  *fakeFlows
	counts *maskCounts
	rec    *outcomes
	logs   *bytes.Buffer
	h      http.Handler
}

func newMaskEnv(t *testing.T, mode guard.Mode, neverChatted string) *maskEnv {
	t.Helper()
	e := &maskEnv{mask: &fakeMask{g: guard.Guard{Mode: mode}, chatID: "order-1"}, flows: &fakeFlows{}, counts: &maskCounts{}, rec: &outcomes{}, logs: &bytes.Buffer{}}
	public, _ := url.Parse("https://optin.example.com")
	h, err := NewRouter(zerolog.New(e.logs), e.flows, signature.New(token), SignedURL{Public: public}, func(context.Context) error { return nil },
		Options{Metrics: e.rec, Mask: &Mask{Chats: e.mask, AccountSid: account, AfterEndText: afterEndText, NeverChattedText: neverChatted,
			Metrics: e.counts, Budget: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	return e
}

func (e *maskEnv) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

// preEventParams is Twilio's onMessageAdd for a phone's message.
func preEventParams(author, body, attributes string) url.Values {
	return url.Values{"AccountSid": {account}, "ChatServiceSid": {"IS00000000000000000000000000000001"},
		"ConversationSid": {"CH00000000000000000000000000000001"}, "EventType": {"onMessageAdd"}, "Author": {author},
		"Body": {body}, "Attributes": {attributes}, "ParticipantSid": {"MB00000000000000000000000000000001"},
		"Source": {"WHATSAPP"}, "RetryCount": {"0"}}
}

func assertJSON(t *testing.T, what string, w *httptest.ResponseRecorder, status int, body string) {
	t.Helper()
	if w.Code != status || w.Header().Get("Content-Type") != "application/json" || strings.TrimSpace(w.Body.String()) != body {
		t.Errorf("%s: %d %s %s, want %d %s", what, w.Code, w.Header().Get("Content-Type"), w.Body.String(), status, body)
	}
}

// The guard's answers: a number, an e-mail and a link hidden, with the attributes saying what kind;
// ordinary digits published as written; the request's attributes kept.
func TestPreEventRedacts(t *testing.T) {
	e := newMaskEnv(t, guard.Redact, "")
	for _, tt := range []struct {
		name, author, body, attrs, want string
		counted                         []string
	}{
		{"number", "whatsapp:+15550002222", "call me on +1 415 555 0123", "{}",
			`{"body":"call me on [number hidden]","attributes":"{\"optin\":{\"guarded\":[\"number\"]}}"}`, []string{"guarded number redact"}},
		{"e-mail and link, attributes kept", "whatsapp:+447911123456", "ana@example.com or wa.me/447911123456", `{"order":8812,"optin":{"x":1}}`,
			`{"body":"[email hidden] or [link hidden]","attributes":"{\"optin\":{\"guarded\":[\"email\",\"link\"],\"x\":1},\"order\":8812}"}`,
			[]string{"guarded email redact", "guarded link redact"}},
		{"attributes no object", "whatsapp:+15550002222", "tel:+14155550123", `"text"`,
			`{"body":"[link hidden]","attributes":"{\"optin\":{\"guarded\":[\"link\"]}}"}`, []string{"guarded link redact"}},
		{"nothing to hide", "whatsapp:+15550002222", "gate code 4411, order #100234", "{}", `{}`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := e.do(signedVoice(convURL, preEventParams(tt.author, tt.body, tt.attrs)))
			assertJSON(t, tt.name, w, 200, tt.want)
			if got := e.counts.take(); !reflect.DeepEqual(got, tt.counted) {
				t.Errorf("counted %v, want %v", got, tt.counted)
			}
			if e.rec.last() != metrics.Processed {
				t.Errorf("webhook outcome %q", e.rec.last())
			}
		})
	}
	if n := len(e.flows.reset()); n != 0 {
		t.Errorf("the opt-in saw %d pre-events", n)
	}
	if strings.Contains(e.logs.String(), "555 0123") || strings.Contains(e.logs.String(), "ana@") {
		t.Errorf("a body is in the logs:\n%s", e.logs)
	}
}

// A blocked message is dropped with 422; off publishes everything as written.
func TestPreEventBlocksAndOff(t *testing.T) {
	e := newMaskEnv(t, guard.Block, "")
	w := e.do(signedVoice(convURL, preEventParams("whatsapp:+15550002222", "call me on +1 415 555 0123", "{}")))
	assertJSON(t, "blocked", w, 422, `{"outcome":"blocked"}`)
	if got := e.counts.take(); !reflect.DeepEqual(got, []string{"guarded number block"}) {
		t.Errorf("counted %v", got)
	}
	e = newMaskEnv(t, guard.Off, "")
	assertJSON(t, "off", e.do(signedVoice(convURL, preEventParams("whatsapp:+15550002222", "call me on +1 415 555 0123", "{}"))), 200, `{}`)
}

// Whatever keeps the guard from answering publishes the message as written, counted: no chat, another
// pre-event, an error, the budget running out. A forged pre-event is 403 and asks nothing.
func TestPreEventFailsOpen(t *testing.T) {
	for _, tt := range []struct {
		name    string
		set     func(*fakeMask, url.Values)
		counted string
		asked   int
	}{
		{"no chat", func(f *fakeMask, _ url.Values) { f.chatID = "" }, "skipped no_chat", 1},
		{"other pre-event", func(_ *fakeMask, p url.Values) { p.Set("EventType", "onConversationUpdate") }, "skipped other_event", 0},
		{"error", func(f *fakeMask, _ url.Values) { f.err = errors.New("store down") }, "skipped error", 1},
		{"timeout", func(f *fakeMask, _ url.Values) { f.wait = true }, "skipped timeout", 1},
		{"panic", func(f *fakeMask, _ url.Values) { f.panics = true }, "skipped error", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newMaskEnv(t, guard.Redact, "")
			p := preEventParams("whatsapp:+15550002222", "call me on +1 415 555 0123", "{}")
			tt.set(e.mask, p)
			assertJSON(t, tt.name, e.do(signedVoice(convURL, p)), 200, `{}`)
			if got := e.counts.take(); !reflect.DeepEqual(got, []string{tt.counted}) {
				t.Errorf("counted %v, want %s", got, tt.counted)
			}
			if len(e.mask.guarded) != tt.asked {
				t.Errorf("asked the chats %d times, want %d", len(e.mask.guarded), tt.asked)
			}
		})
	}
	e := newMaskEnv(t, guard.Redact, "")
	r := signedVoice(convURL, preEventParams("whatsapp:+15550002222", "call me on +1 415 555 0123", "{}"))
	r.Header.Set("X-Twilio-Signature", signature.Compute("forgedtoken", convURL, preEventParams("whatsapp:+15550002222", "call me on +1 415 555 0123", "{}")))
	if w := e.do(r); w.Code != 403 || len(e.mask.guarded) != 0 || len(e.counts.take()) != 0 {
		t.Errorf("forged: %d, asked %d", w.Code, len(e.mask.guarded))
	}
}

// Without the mask, a pre-event publishes as written and the post-events go to the opt-in as before.
func TestPreEventWithoutMask(t *testing.T) {
	public, _ := url.Parse("https://optin.example.com")
	e := newEnv(t, SignedURL{Public: public})
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, signedVoice(convURL, preEventParams("whatsapp:+15550002222", "call me on +1 415 555 0123", "{}")))
	assertJSON(t, "no mask", w, 200, `{}`)
	if n := len(e.flows.reset()); n != 0 {
		t.Errorf("the opt-in saw %d pre-events", n)
	}
	if code, body := e.do(signedVoice(convURL, event)); code != 200 || body != `{"outcome":"accepted"}` || len(e.flows.reset()) != 1 {
		t.Errorf("a post-event: %d %s", code, body)
	}
}

func incomingMessage(from, body string) url.Values {
	return url.Values{"MessageSid": {"SM00000000000000000000000000000001"}, "SmsSid": {"SM00000000000000000000000000000001"},
		"AccountSid": {account}, "From": {from}, "To": {"whatsapp:+15550100000"}, "Body": {body}, "NumMedia": {"0"},
		"NumSegments": {"1"}, "SmsStatus": {"received"}, "ApiVersion": {"2010-04-01"}}
}

const emptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`

// A message after the end: the text when the chats say reply, <Response/> otherwise, a configured text
// to a pair of no chat (never to a keyword), <Response/> on an error; forged and foreign requests 403.
func TestMessagingAfterEnd(t *testing.T) {
	e := newMaskEnv(t, guard.Redact, "")
	e.mask.answer = chat.AfterEndAnswer{ChatID: "order-1", Party: "customer", Reply: true}
	assertTwiML(t, e.do(signedVoice(messagingURL, incomingMessage("whatsapp:+15550001111", "hello?"))),
		`<?xml version="1.0" encoding="UTF-8"?><Response><Message>`+afterEndText+`</Message></Response>`)
	want := []chat.AfterEndRequest{{From: "whatsapp:+15550001111", To: "whatsapp:+15550100000", Body: "hello?"}}
	if !reflect.DeepEqual(e.mask.afterEnd, want) {
		t.Errorf("asked %+v, want %+v", e.mask.afterEnd, want)
	}
	e.mask.answer = chat.AfterEndAnswer{ChatID: "order-1", Party: "customer"}
	assertTwiML(t, e.do(signedVoice(messagingURL, incomingMessage("whatsapp:+15550001111", "hello again"))), emptyTwiML)
	e.mask.answer = chat.AfterEndAnswer{}
	assertTwiML(t, e.do(signedVoice(messagingURL, incomingMessage("whatsapp:+15550009999", "hi"))), emptyTwiML)
	e.mask.err = errors.New("store down")
	assertTwiML(t, e.do(signedVoice(messagingURL, incomingMessage("whatsapp:+15550001111", "hi"))), emptyTwiML)
	if got := e.counts.take(); !reflect.DeepEqual(got, []string{"after_end answered", "after_end silenced", "after_end no_chat", "after_end error"}) {
		t.Errorf("counted %v", got)
	}

	e = newMaskEnv(t, guard.Redact, "This number is for delivery chats <only> & nothing else.")
	assertTwiML(t, e.do(signedVoice(messagingURL, incomingMessage("whatsapp:+15550009999", "hi"))),
		`<?xml version="1.0" encoding="UTF-8"?><Response><Message>This number is for delivery chats &lt;only&gt; &amp; nothing else.</Message></Response>`)
	assertTwiML(t, e.do(signedVoice(messagingURL, incomingMessage("whatsapp:+15550009999", "stop"))), emptyTwiML)

	p := incomingMessage("whatsapp:+15550001111", "hi")
	r := signedVoice(messagingURL, p)
	r.Header.Set("X-Twilio-Signature", signature.Compute("forgedtoken", messagingURL, p))
	foreign := incomingMessage("whatsapp:+15550001111", "hi")
	foreign.Set("AccountSid", "AC00000000000000000000000000000002")
	for what, r := range map[string]*http.Request{"forged": r, "foreign": signedVoice(messagingURL, foreign)} {
		if w := e.do(r); w.Code != 403 {
			t.Errorf("%s: %d", what, w.Code)
		}
	}
	if w := e.do(signedVoice(messagingURL, url.Values{"AccountSid": {account}, "Body": {"x"}})); w.Code != 400 {
		t.Errorf("no From: %d", w.Code)
	}
	if len(e.mask.afterEnd) != 2 {
		t.Errorf("asked the chats %d times, want the 2 signed ones", len(e.mask.afterEnd))
	}
}

// The text to a number of no chat goes to a pair at most once per period, remembered past its bound
// only by dropping the expired: an auto-responder answering it must not loop with us.
func TestMessagingNeverChattedOncePer(t *testing.T) {
	const text = "This number is for delivery chats only."
	answered := `<?xml version="1.0" encoding="UTF-8"?><Response><Message>` + text + `</Message></Response>`
	e := newMaskEnv(t, guard.Redact, text)
	assertTwiML(t, e.do(signedVoice(messagingURL, incomingMessage("whatsapp:+15550009999", "hi"))), answered)
	// The auto-responder's answer to our answer, a moment later: nothing.
	assertTwiML(t, e.do(signedVoice(messagingURL, incomingMessage("whatsapp:+15550009999", "I am away until Monday"))), emptyTwiML)
	assertTwiML(t, e.do(signedVoice(messagingURL, incomingMessage("+15550009999", "I am away until Monday"))), emptyTwiML)
	assertTwiML(t, e.do(signedVoice(messagingURL, incomingMessage("whatsapp:+15550008888", "hi"))), answered)

	o := &oncePer{every: time.Hour, max: 2, last: map[string]time.Time{}}
	at := time.Date(2026, 5, 12, 18, 0, 0, 0, time.UTC)
	o.now = func() time.Time { return at }
	for i, step := range []struct {
		key     string
		advance time.Duration
		want    bool
	}{
		{"a", 0, true}, {"a", 59 * time.Minute, false}, {"b", 0, true},
		{"c", 0, false},               // full, nothing expired: silent
		{"a", time.Minute, true},      // a's hour is over
		{"c", 59 * time.Minute, true}, // b expired and dropped
		{"b", 0, false},               // full again: a and c are within their hour
	} {
		at = at.Add(step.advance)
		if got := o.take(step.key); got != step.want {
			t.Errorf("step %d: take(%s) = %v, want %v", i, step.key, got, step.want)
		}
	}
}

// BenchmarkPreEvent is one signed pre-event with a 1,600-character body through the router, the real
// guard redacting it; it reports the p99 of the runs.
func BenchmarkPreEvent(b *testing.B) {
	e := &maskEnv{mask: &fakeMask{g: guard.Guard{Mode: guard.Redact}, chatID: "order-1"}, flows: &fakeFlows{}, counts: &maskCounts{}, rec: &outcomes{}, logs: &bytes.Buffer{}}
	public, _ := url.Parse("https://optin.example.com")
	h, err := NewRouter(zerolog.Nop(), e.flows, signature.New(token), SignedURL{Public: public}, func(context.Context) error { return nil },
		Options{Mask: &Mask{Chats: e.mask, AfterEndText: afterEndText}})
	if err != nil {
		b.Fatal(err)
	}
	body := strings.Repeat("Leave it by the blue door, flat 12B, gate code 4411. ", 30)[:1560] + " call +1 415 555 0123"
	body += strings.Repeat(".", 1600-len([]rune(body)))
	p := preEventParams("whatsapp:+15550002222", body, "{}")
	sig := signature.Compute(token, convURL, p)
	enc := p.Encode()
	var times []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/webhooks/conversations", strings.NewReader(enc))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("X-Twilio-Signature", sig)
		w := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(w, r)
		times = append(times, time.Since(start))
		if w.Code != 200 || !strings.Contains(w.Body.String(), "[number hidden]") {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds()), "p99-µs")
}
