package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/optin"
	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/signature"
)

// Message SIDs of Twilio's shape (IM + 32 hex digits).
const (
	msg1 = "IM00000000000000000000000000000001"
)

const token = "authtoken0000000000000000000001"

// fakeFlows records events and answers as told.
type fakeFlows struct {
	mu     sync.Mutex
	events []conversation.Event
	answer conversation.Decision
	err    error
}

// reset forgets the events seen so far.
func (f *fakeFlows) reset() []conversation.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := f.events
	f.events = nil
	return seen
}

func (f *fakeFlows) Handle(_ context.Context, ev conversation.Event) (conversation.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, ev)
	if f.err != nil {
		return conversation.Decision{}, f.err
	}
	if err := ev.Validate(); err != nil {
		return conversation.Decision{}, err
	}
	return f.answer, nil
}

// outcomes records what the router counts.
type outcomes struct {
	mu   sync.Mutex
	seen []string
}

func (o *outcomes) Webhook(outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, outcome)
}

func (o *outcomes) last() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.seen) == 0 {
		return ""
	}
	return o.seen[len(o.seen)-1]
}

type env struct {
	flows *fakeFlows
	ready bool
	logs  *bytes.Buffer
	rec   *outcomes
	h     http.Handler
}

func newEnv(t testing.TB, urls SignedURL) *env {
	t.Helper()
	e := &env{flows: &fakeFlows{answer: conversation.Decision{Outcome: conversation.OutcomeAccepted}}, ready: true, logs: &bytes.Buffer{}, rec: &outcomes{}}
	e.h = e.router(t, e.flows, urls)
	return e
}

func (e *env) router(t testing.TB, flows Flows, urls SignedURL) http.Handler {
	t.Helper()
	ready := func(context.Context) error {
		if !e.ready {
			return errors.New("shutting down")
		}
		return nil
	}
	h, err := NewRouter(zerolog.New(e.logs), flows, signature.New(token), urls, ready, Options{Metrics: e.rec})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (e *env) do(r *http.Request) (int, string) {
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w.Code, strings.TrimSpace(w.Body.String())
}

var event = url.Values{
	"EventType":       {"onMessageAdded"},
	"ConversationSid": {"CH00000000000000000000000000000001"},
	"MessageSid":      {msg1},
	"Author":          {"whatsapp:+15550001111"},
	"Body":            {"Yes"},
	"ParticipantSid":  {"MB1"},
	"RetryCount":      {"0"},
	"Index":           {"1"},
	"Source":          {"WHATSAPP"},
}

var wantEvent = conversation.Event{Type: "onMessageAdded", ConversationSid: "CH00000000000000000000000000000001", MessageSid: msg1,
	Author: "whatsapp:+15550001111", Body: "Yes", ParticipantSid: "MB1", RetryCount: "0"}

const target = "http://example.com/webhooks/conversations"

func signedGET(params url.Values) *http.Request {
	u := target + "?" + params.Encode()
	r := httptest.NewRequest(http.MethodGet, u, nil)
	r.Header.Set("X-Twilio-Signature", signature.Compute(token, u, nil))
	return r
}

func signedPOST(params url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(params.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("X-Twilio-Signature", signature.Compute(token, target, params))
	return r
}

func signedJSON(body string) *http.Request {
	sum := sha256.Sum256([]byte(body))
	u := target + "?bodySHA256=" + hex.EncodeToString(sum[:])
	r := httptest.NewRequest(http.MethodPost, u, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Twilio-Signature", signature.Compute(token, u, nil))
	return r
}

func TestWebhookAccepts(t *testing.T) {
	json := `{"EventType":"onMessageAdded","ConversationSid":"CH00000000000000000000000000000001","MessageSid":"IM00000000000000000000000000000001","Author":"whatsapp:+15550001111","Body":"Yes","ParticipantSid":"MB1","RetryCount":0,"Index":1,"Media":null}`
	for name, r := range map[string]*http.Request{
		"GET query": signedGET(event),
		"POST form": signedPOST(event),
		"POST json": signedJSON(json),
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, SignedURL{})
			code, body := e.do(r)
			if code != 200 || body != `{"outcome":"accepted"}` {
				t.Fatalf("got %d %s", code, body)
			}
			if len(e.flows.events) != 1 || e.flows.events[0] != wantEvent {
				t.Errorf("events = %+v, want %+v", e.flows.events, wantEvent)
			}
		})
	}
}

func TestWebhookRejects(t *testing.T) {
	unsigned := signedPOST(event)
	unsigned.Header.Del("X-Twilio-Signature")
	forged := signedPOST(event)
	forged.Header.Set("X-Twilio-Signature", signature.Compute("other", target, event))
	tampered := signedPOST(event)
	changed := url.Values{}
	for k, v := range event {
		changed[k] = v
	}
	changed.Set("Author", "whatsapp:+15559999999")
	tampered.Body = io.NopCloser(strings.NewReader(changed.Encode()))
	getForged := signedGET(event)
	getForged.URL.RawQuery += "&Extra=1"
	getForged.RequestURI += "&Extra=1"
	jsonTampered := signedJSON(`{"EventType":"onMessageAdded"}`)
	jsonTampered.Body = io.NopCloser(strings.NewReader(`{"EventType":"onMessageAdded","x":1}`))
	jsonNoHash := signedJSON(`{}`)
	jsonNoHash.URL.RawQuery, jsonNoHash.RequestURI = "", "/webhooks/conversations"
	jsonNoHash.Header.Set("X-Twilio-Signature", signature.Compute(token, target, nil))
	big := httptest.NewRequest(http.MethodPost, target, strings.NewReader("Body="+strings.Repeat("a", MaxBodyBytes)))
	big.Header.Set("X-Twilio-Signature", "x")
	bigChunked := httptest.NewRequest(http.MethodPost, target, io.MultiReader(strings.NewReader("Body="), strings.NewReader(strings.Repeat("a", MaxBodyBytes))))
	bigChunked.ContentLength = -1
	bigChunked.Header.Set("X-Twilio-Signature", "x")
	badForm := httptest.NewRequest(http.MethodPost, target, strings.NewReader("Body=%zz"))
	badForm.Header.Set("X-Twilio-Signature", "x")
	// More parameters than url.ParseQuery takes: it cannot be parsed, so it cannot be verified.
	manyParams := httptest.NewRequest(http.MethodPost, target, strings.NewReader(strings.Repeat("a=1&", 10_001)))
	manyParams.Header.Set("X-Twilio-Signature", "x")
	badGetQuery := signedGET(event)
	badGetQuery.URL.RawQuery += "&Body=%zz"
	badGetQuery.RequestURI += "&Body=%zz"
	badGetQuery.Header.Set("X-Twilio-Signature", signature.Compute(token, target+"?"+badGetQuery.URL.RawQuery, nil))
	withSid := func(conv string) url.Values {
		v := url.Values{}
		for k, vals := range event {
			v[k] = vals
		}
		v.Set("ConversationSid", conv)
		return v
	}
	nestedJSON := signedJSON(`{"EventType":"onMessageAdded","ConversationSid":{"a":"CH00000000000000000000000000000001"},"MessageSid":"IM00000000000000000000000000000001","Author":"a"}`)
	badJSON := signedJSON(`{"EventType":`)
	arrayJSON := signedJSON(`["onMessageAdded"]`)
	twiceJSON := signedJSON(`{"EventType":"onMessageAdded","ConversationSid":"CH00000000000000000000000000000001","ConversationSid":"CH00000000000000000000000000000002","MessageSid":"IM00000000000000000000000000000001","Author":"a"}`)
	trailingJSON := signedJSON(`{"EventType":"onMessageAdded"}}`)
	noConversation := url.Values{"EventType": {"onMessageAdded"}, "MessageSid": {msg1}, "Author": {"a"}}
	noMessage := url.Values{"EventType": {"onMessageAdded"}, "ConversationSid": {"CH00000000000000000000000000000001"}, "Author": {"a"}}

	tests := []struct {
		name    string
		r       *http.Request
		code    int
		body    string
		outcome string
	}{
		{"no signature", unsigned, 403, `{"error":"missing X-Twilio-Signature"}`, "bad_signature"},
		{"other token", forged, 403, `{"error":"invalid X-Twilio-Signature"}`, "bad_signature"},
		{"body changed", tampered, 403, `{"error":"invalid X-Twilio-Signature"}`, "bad_signature"},
		{"query changed", getForged, 403, `{"error":"invalid X-Twilio-Signature"}`, "bad_signature"},
		{"json changed", jsonTampered, 403, `{"error":"invalid X-Twilio-Signature"}`, "bad_signature"},
		{"json without bodySHA256", jsonNoHash, 403, `{"error":"invalid X-Twilio-Signature"}`, "bad_signature"},
		{"form that does not parse", badForm, 403, `{"error":"invalid X-Twilio-Signature"}`, "bad_signature"},
		{"over 10,000 parameters", manyParams, 403, `{"error":"invalid X-Twilio-Signature"}`, "bad_signature"},
		{"over 64 KiB", big, 413, `{"error":"request body exceeds 64 KiB"}`, "too_large"},
		{"over 64 KiB chunked", bigChunked, 413, `{"error":"request body exceeds 64 KiB"}`, "too_large"},
		{"signed query that does not parse", badGetQuery, 400, `{"error":"malformed request: malformed query string"}`, "malformed"},
		{"malformed json", badJSON, 400, `{"error":"malformed request: body is not a JSON object"}`, "malformed"},
		{"json array", arrayJSON, 400, `{"error":"malformed request: body is not a JSON object"}`, "malformed"},
		{"json name twice", twiceJSON, 400, `{"error":"malformed request: body is not a JSON object"}`, "malformed"},
		{"json trailing data", trailingJSON, 400, `{"error":"malformed request: body is not a JSON object"}`, "malformed"},
		{"no ConversationSid", signedPOST(noConversation), 400, `{"error":"invalid event: ConversationSid is missing"}`, "malformed"},
		{"no MessageSid", signedGET(noMessage), 400, `{"error":"invalid event: MessageSid is missing"}`, "malformed"},
		{"query and fragment in ConversationSid", signedPOST(withSid("CHx?y=1#z")), 400, `{"error":"invalid event: ConversationSid is not CH followed by 32 hexadecimal digits"}`, "malformed"},
		{"nested JSON as ConversationSid", nestedJSON, 400, `{"error":"invalid event: ConversationSid is not CH followed by 32 hexadecimal digits"}`, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, SignedURL{})
			code, body := e.do(tt.r)
			if code != tt.code || body != tt.body {
				t.Errorf("got %d %s, want %d %s", code, body, tt.code, tt.body)
			}
			if got := e.rec.last(); got != tt.outcome {
				t.Errorf("counted as %q, want %q", got, tt.outcome)
			}
			if tt.code != 400 && len(e.flows.events) != 0 {
				t.Errorf("flow saw a rejected request: %+v", e.flows.events)
			}
		})
	}
}

// A forged request chooses its URL; what its rejection writes to the log must not grow with it.
func TestRejectionLogIsBounded(t *testing.T) {
	e := newEnv(t, SignedURL{})
	for name, query := range map[string]string{
		"60,000 ampersands": strings.Repeat("&", 60_000),
		"one long name":     strings.Repeat("n", 60_000) + "=1",
		"many names":        strings.Repeat("name=1&", 5_000),
	} {
		e.logs.Reset()
		r := httptest.NewRequest(http.MethodGet, target+"?"+query, nil)
		r.Header.Set("X-Twilio-Signature", "forged")
		if code, _ := e.do(r); code != 403 {
			t.Errorf("%s: %d", name, code)
		}
		for line := range strings.SplitSeq(strings.TrimSpace(e.logs.String()), "\n") {
			if len(line) > 2048 {
				t.Errorf("%s: a log line of %d bytes", name, len(line))
			}
		}
		if !strings.Contains(e.logs.String(), "more)") {
			t.Errorf("%s: the cut is not marked:\n%.500s", name, e.logs)
		}
	}
}

// blockingFlows holds Handle until its context ends, as a call to a stalled Redis would.
type blockingFlows struct{ deadline chan time.Duration }

func (b blockingFlows) Handle(ctx context.Context, _ conversation.Event) (conversation.Decision, error) {
	d, _ := ctx.Deadline()
	b.deadline <- time.Until(d)
	<-ctx.Done()
	return conversation.Decision{}, fmt.Errorf("claiming: %w: %w", conversation.ErrUnavailable, ctx.Err())
}

// The state the webhook waits for has a budget inside Twilio's 5 s: past it, 503.
func TestWebhookBoundsTheStateCalls(t *testing.T) {
	e := newEnv(t, SignedURL{})
	flows := blockingFlows{deadline: make(chan time.Duration, 1)}
	e.h = e.router(t, flows, SignedURL{})
	code, body := e.do(signedPOST(event))
	if code != 503 || body != `{"error":"temporarily unavailable"}` {
		t.Errorf("got %d %s", code, body)
	}
	if d := <-flows.deadline; d <= 0 || d > stateBudget || stateBudget > 3*time.Second {
		t.Errorf("Handle's deadline was %v away, want within a budget (%v) well inside Twilio's 5 s", d, stateBudget)
	}
	if e.rec.last() != "unavailable" {
		t.Errorf("counted as %q", e.rec.last())
	}
}

func TestNewRouterRequiresItsDependencies(t *testing.T) {
	v, ready := signature.New(token), func(context.Context) error { return nil }
	for name, build := range map[string]func() (http.Handler, error){
		"flows": func() (http.Handler, error) {
			return NewRouter(zerolog.Nop(), nil, v, SignedURL{}, ready, Options{})
		},
		"validator": func() (http.Handler, error) {
			return NewRouter(zerolog.Nop(), &fakeFlows{}, nil, SignedURL{}, ready, Options{})
		},
		"ready": func() (http.Handler, error) {
			return NewRouter(zerolog.Nop(), &fakeFlows{}, v, SignedURL{}, nil, Options{})
		},
	} {
		if h, err := build(); err == nil || h != nil {
			t.Errorf("nil %s accepted", name)
		}
	}
	if _, err := NewRouter(zerolog.Nop(), &fakeFlows{}, v, SignedURL{}, ready, Options{}); err != nil {
		t.Errorf("optional observability required: %v", err)
	}
}

func TestWebhookAnswersDecision(t *testing.T) {
	e := newEnv(t, SignedURL{})
	e.flows.answer = conversation.Decision{Outcome: conversation.OutcomeIgnored, Reason: optin.ReasonNotCustomer}
	if code, body := e.do(signedPOST(event)); code != 200 || body != `{"outcome":"ignored","reason":"not_customer"}` {
		t.Errorf("got %d %s", code, body)
	}
	e.flows.err = errors.New("store down: redis://secret@host")
	code, body := e.do(signedPOST(event))
	if code != 500 || body != `{"error":"internal error"}` {
		t.Errorf("got %d %s", code, body)
	}
	e.flows.err = fmt.Errorf("claiming: %w: %w", conversation.ErrUnavailable, errors.New("dial tcp 10.0.0.1:6379: refused"))
	code, body = e.do(signedPOST(event))
	if code != 503 || body != `{"error":"temporarily unavailable"}` {
		t.Errorf("got %d %s", code, body)
	}
}

func TestSignedURL(t *testing.T) {
	public, _ := url.Parse("https://optin.example.com/prefix/")
	tests := []struct {
		name    string
		urls    SignedURL
		headers map[string]string
		want    string
	}{
		{"from request", SignedURL{}, nil, "http://internal:8080/webhooks/conversations?a=1&b=%27x"},
		{"public url with prefix", SignedURL{Public: public}, map[string]string{"X-Forwarded-Host": "evil"}, "https://optin.example.com/prefix/webhooks/conversations?a=1&b=%27x"},
		{"proxy headers ignored", SignedURL{}, map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "optin.example.com"}, "http://internal:8080/webhooks/conversations?a=1&b=%27x"},
		{"proxy headers trusted", SignedURL{TrustProxy: true}, map[string]string{"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "optin.example.com, internal"}, "https://optin.example.com/webhooks/conversations?a=1&b=%27x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "http://internal:8080/webhooks/conversations?a=1&b=%27x", nil)
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			if got := tt.urls.For(r); got != tt.want {
				t.Errorf("For = %q, want %q", got, tt.want)
			}
		})
	}
}

// Behind a TLS proxy the service sees http://internal; Twilio signed the public https URL.
func TestSignatureBehindProxy(t *testing.T) {
	publicTarget := "https://optin.example.com/webhooks/conversations"
	req := func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, "http://internal:8080/webhooks/conversations", strings.NewReader(event.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("X-Forwarded-Proto", "https")
		r.Header.Set("X-Forwarded-Host", "optin.example.com")
		r.Header.Set("X-Twilio-Signature", signature.Compute(token, publicTarget, event))
		return r
	}
	public, _ := url.Parse("https://optin.example.com")
	for _, tt := range []struct {
		urls SignedURL
		code int
	}{
		{SignedURL{}, 403},
		{SignedURL{TrustProxy: true}, 200},
		{SignedURL{Public: public}, 200},
	} {
		e := newEnv(t, tt.urls)
		if code, _ := e.do(req()); code != tt.code {
			t.Errorf("%+v: got %d, want %d", tt.urls, code, tt.code)
		}
	}
}

func TestProbes(t *testing.T) {
	e := newEnv(t, SignedURL{})
	for _, tt := range []struct {
		path  string
		ready bool
		code  int
		body  string
	}{
		{"/healthz", true, 200, `{"status":"ok"}`},
		{"/readyz", true, 200, `{"status":"ready"}`},
		{"/readyz", false, 503, `{"status":"not ready"}`},
		{"/healthz", false, 200, `{"status":"ok"}`},
	} {
		e.ready = tt.ready
		if code, body := e.do(httptest.NewRequest(http.MethodGet, tt.path, nil)); code != tt.code || body != tt.body {
			t.Errorf("%s ready=%v: got %d %s", tt.path, tt.ready, code, body)
		}
	}
}

func TestRoutingErrorsAndLogs(t *testing.T) {
	e := newEnv(t, SignedURL{})
	if code, body := e.do(httptest.NewRequest(http.MethodGet, "/nope", nil)); code != 404 || body != `{"error":"not found"}` {
		t.Errorf("404: %d %s", code, body)
	}
	put := httptest.NewRecorder()
	e.h.ServeHTTP(put, httptest.NewRequest(http.MethodPut, "/webhooks/conversations", nil))
	if body := strings.TrimSpace(put.Body.String()); put.Code != 405 || body != `{"error":"method not allowed"}` || put.Header().Get("Allow") != "GET, POST" {
		t.Errorf("405: %d %s, Allow %q", put.Code, body, put.Header().Get("Allow"))
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, signedPOST(event))
	if w.Header().Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id")
	}
	logs := e.logs.String()
	for _, want := range []string{`"method":"POST","path":"/webhooks/conversations","status":200`, `"request_id":"`, `"conversation_sid":"CH00000000000000000000000000000001","message_sid":"IM00000000000000000000000000000001"`, `"outcome":"accepted"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, token) {
		t.Error("auth token in logs")
	}
	e.logs.Reset()
	forged := signedGET(event)
	forged.Header.Set("X-Twilio-Signature", "forged")
	e.do(forged)
	if !strings.Contains(e.logs.String(), `"signed_url":"http://example.com/webhooks/conversations?Author=…&Body=…&ConversationSid=…&EventType=…&Index=…&MessageSid=…&ParticipantSid=…&RetryCount=…&Source=…"`) {
		t.Errorf("rejection does not log the signed URL:\n%s", e.logs)
	}
	if strings.Contains(e.logs.String(), "15550001111") || strings.Contains(e.logs.String(), "Body=Yes") {
		t.Errorf("a rejected webhook's personal data reached the log:\n%s", e.logs)
	}
}

func TestPanicIs500(t *testing.T) {
	e := newEnv(t, SignedURL{})
	e.h = e.router(t, panicky{}, SignedURL{})
	if code, body := e.do(signedPOST(event)); code != 500 || body != `{"error":"internal error"}` {
		t.Errorf("got %d %s", code, body)
	}
	if !strings.Contains(e.logs.String(), "handler panicked") {
		t.Error("panic not logged")
	}
}

type panicky struct{}

func (panicky) Handle(context.Context, conversation.Event) (conversation.Decision, error) {
	panic("boom")
}

// A flood of forged requests is a trickle of log lines: a few a second, each saying how many were not
// logged before it, and no access-log line per refusal; the counter still counts every one.
func TestRejectionsAreLoggedSampled(t *testing.T) {
	e := newEnv(t, SignedURL{})
	forged := func() {
		r := signedPOST(event)
		r.Header.Set("X-Twilio-Signature", "forged")
		if code, _ := e.do(r); code != 403 {
			t.Fatalf("forged: %d", code)
		}
	}
	for range 200 {
		forged()
	}
	if n := strings.Count(e.logs.String(), "\n"); n > 2*rejectionsPerSecond {
		t.Errorf("%d log lines for 200 forged requests", n)
	}
	// Forged again until a later second's line counts the rejections suppressed before it.
	counted := regexp.MustCompile(`"suppressed":[1-9][0-9]*`)
	defer func() {
		if !counted.MatchString(e.logs.String()) {
			t.Logf("logs:\n%s", e.logs)
		}
	}()
	poll.Until(t, "a line counting the suppressed rejections", func() bool {
		if counted.MatchString(e.logs.String()) {
			return true
		}
		forged()
		return false
	})
	if strings.Contains(e.logs.String(), `"status":403`) {
		t.Error("refusals are in the access log, one line each")
	}
	e.rec.mu.Lock()
	defer e.rec.mu.Unlock()
	if n := len(e.rec.seen); n < 201 {
		t.Errorf("%d refusals counted, want every one", n)
	}
}

// requestScope's access line carries the request id it answered, the status and size of an implicit
// 200, and none for a 403; the connection's writer stays reachable through http.ResponseController.
func TestRequestScope(t *testing.T) {
	var logs strings.Builder
	h := requestScope(zerolog.New(&logs))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		_, _ = w.Write([]byte("hello"))
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush through the scope: %v", err)
		}
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/hello", nil))
	id := w.Header().Get("X-Request-Id")
	if len(id) != 20 || !w.Flushed || !strings.Contains(logs.String(), `"request_id":"`+id+`","method":"GET","path":"/hello","status":200,"size":5`) {
		t.Errorf("id %q flushed %v, log:\n%s", id, w.Flushed, logs.String())
	}
	logs.Reset()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/refuse", nil))
	if logs.Len() != 0 {
		t.Errorf("a 403 logged an access line:\n%s", logs.String())
	}
}
