package handlers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/authlimit"
	"github.com/optinkit/optin/internal/callback"
	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/numberpool"
)

type noChats struct{}

func (noChats) Start(context.Context, chat.StartRequest) (chat.Chat, bool, error) {
	return chat.Chat{}, false, nil
}
func (noChats) Get(context.Context, string) (chat.Chat, error) { return chat.Chat{}, nil }
func (noChats) List(context.Context, chat.State, int, int64) ([]chat.Chat, int64, error) {
	return nil, 0, nil
}
func (noChats) End(context.Context, string) (chat.Chat, error) { return chat.Chat{}, nil }

type noPools struct{}

func (noPools) Usage(context.Context) ([]numberpool.Usage, error) { return nil, nil }

// The document lists exactly the admin routes the router serves.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatal(err)
	}
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	h, err := NewAdminRouter(noChats{}, noPools{}, []string{"token-0123456789abcdef"}, authlimit.New(authlimit.DefaultBurst, authlimit.DefaultEvery, false), OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	var served []string
	err = chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		served = append(served, method+" "+strings.ReplaceAll(route, "/*", ""))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Errorf("documented %v\nserved     %v", documented, served)
	}
}

// The events the platform is told of are the document's webhooks, each posting an Event of its type;
// the document's own answer is described as an OpenAPI document (not an empty object) and the document
// itself fits that; its license is the repository's, Apache 2.0.
func TestOpenAPIDescribesEventsItselfAndItsLicense(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	events := []string{"chat.call_ended", "chat.call_started", "chat.channel_changed", "chat.closed", "chat.connected", "chat.declined", "chat.failed", "chat.invited", chat.EventMessageAfterEnd}
	slices.Sort(events)
	var hooks []string
	for name, item := range doc.Webhooks {
		hooks = append(hooks, name)
		if item.Post == nil || item.Post.RequestBody == nil {
			t.Errorf("webhook %s: no POST with a body", name)
			continue
		}
		if ref := item.Post.RequestBody.Value.Content.Get("application/json").Schema.Ref; ref != "#/components/schemas/Event" {
			t.Errorf("webhook %s: body %q, want the Event", name, ref)
		}
		var headers []string
		for _, p := range item.Post.Parameters {
			if p.Value.In == "header" && p.Value.Required {
				headers = append(headers, p.Value.Name)
			}
		}
		if !slices.Equal(headers, []string{"webhook-id", "webhook-timestamp", "webhook-signature"}) {
			t.Errorf("webhook %s: headers %v", name, headers)
		}
	}
	slices.Sort(hooks)
	if !slices.Equal(hooks, events) {
		t.Errorf("webhooks %v, want %v", hooks, events)
	}
	if doc.Components.Schemas["Event"] == nil {
		t.Fatal("no Event schema")
	}
	var types []string
	for _, v := range doc.Components.Schemas["Event"].Value.Properties["type"].Value.Enum {
		types = append(types, v.(string))
	}
	slices.Sort(types)
	if !slices.Equal(types, events) {
		t.Errorf("Event.type %v, want %v", types, events)
	}

	self := doc.Paths.Value("/v1/openapi.json").Get.Responses.Status(200).Value.Content.Get("application/json").Schema.Value
	if len(self.Properties) == 0 || self.AdditionalProperties.Has == nil || !*self.AdditionalProperties.Has {
		t.Errorf("/v1/openapi.json is described as %v, %v: want an open object naming the document's parts", self.Properties, self.AdditionalProperties)
	}
	var asJSON any
	if err := json.Unmarshal(OpenAPI, &asJSON); err != nil {
		t.Fatal(err)
	}
	if err := self.VisitJSON(asJSON); err != nil {
		t.Errorf("the document does not fit its own description: %v", err)
	}
	if self.VisitJSON(map[string]any{"openapi": "3.1.0"}) == nil {
		t.Error("a document without info and paths fits the description")
	}

	if l := doc.Info.License; l == nil || l.Name != "Apache License 2.0" || l.Identifier != "Apache-2.0" {
		t.Errorf("info.license %+v", doc.Info.License)
	}
	text, err := os.ReadFile("../../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Apache License\n                           Version 2.0, January 2004", "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION", "9. Accepting Warranty or Additional Liability.", "END OF TERMS AND CONDITIONS"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("LICENSE lacks %q", want)
		}
	}
}

// A client guessing bearer tokens gets DefaultBurst 401s, then 429 with Retry-After; each refusal has
// its access line and the refusals are logged sampled, naming the client, never the guess. Another
// client is not slowed, and neither is a right token from the throttled client's own address: the
// guard counts failures, it does not lock out whoever shares an address with a guesser.
func TestBearerGuessesAreThrottled(t *testing.T) {
	const token = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	admin, err := NewAdminRouter(noChats{}, noPools{}, []string{token}, authlimit.New(authlimit.DefaultBurst, authlimit.DefaultEvery, false), OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	h := NewAdminServer(zerolog.New(&logs), admin, nil, nil, func(context.Context) error { return nil })
	call := func(from, bearer string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/v1/pools", nil)
		r.RemoteAddr = from
		r.Header.Set("Authorization", "Bearer "+bearer)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	codes := map[int]int{}
	for i := range 40 {
		w := call("192.0.2.1:50000", fmt.Sprintf("guess-%d", i))
		codes[w.Code]++
		if w.Code == http.StatusTooManyRequests && (w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "problem-too-many-attempts")) {
			t.Fatalf("429: %v %s", w.Header(), w.Body.String())
		}
	}
	if codes[401] != authlimit.DefaultBurst || codes[429] != 40-authlimit.DefaultBurst {
		t.Errorf("answers %v", codes)
	}
	for _, from := range []string{"192.0.2.1:50000", "192.0.2.1:50001", "198.51.100.7:50000"} {
		if w := call(from, token); w.Code != http.StatusOK {
			t.Errorf("right token from %s: %d", from, w.Code)
		}
	}
	if w := call("192.0.2.1:50000", "guess-again"); w.Code != http.StatusTooManyRequests {
		t.Errorf("a wrong token after the right one: %d, want 429 still", w.Code)
	}
	// An IPv6 client is its /64: moving to another address of it does not buy more guesses.
	for i := range authlimit.DefaultBurst {
		call(fmt.Sprintf("[2001:db8:1:2::%x]:50000", i+1), "guess")
	}
	if w := call("[2001:db8:1:2::ffff]:50000", "guess"); w.Code != http.StatusTooManyRequests {
		t.Errorf("another address of a throttled /64: %d, want 429", w.Code)
	}
	out := logs.String()
	if n := strings.Count(out, `"message":"request"`); n != 40+3+1+authlimit.DefaultBurst+1 {
		t.Errorf("%d access lines for %d requests", n, 40+3+1+authlimit.DefaultBurst+1)
	}
	for _, status := range []string{`"status":401`, `"status":429`} {
		if !strings.Contains(out, status) {
			t.Errorf("no access line with %s", status)
		}
	}
	if n := strings.Count(out, "admin API authentication refused"); n < 1 || n > rejectionsPerSecond+1 {
		t.Errorf("%d refusal lines", n)
	}
	if !strings.Contains(out, `"client":"192.0.2.1"`) {
		t.Errorf("the refusal lines do not name the client:\n%s", out)
	}
	if strings.Contains(out, "guess") || strings.Contains(out, token) {
		t.Error("a token is in the log")
	}
}

// A method a path does not have is 405 naming those it has.
func TestAdminMethodNotAllowedSaysAllow(t *testing.T) {
	const token = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	h, err := NewAdminRouter(noChats{}, noPools{}, []string{token}, authlimit.New(authlimit.DefaultBurst, authlimit.DefaultEvery, false), OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	for path, allow := range map[string]string{"/v1/chats": "GET, POST", "/v1/chats/a": "GET, DELETE", "/v1/pools": "GET"} {
		r := httptest.NewRequest(http.MethodPut, path, nil)
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 405 || w.Header().Get("Allow") != allow || w.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("PUT %s: %d, Allow %q", path, w.Code, w.Header().Get("Allow"))
		}
	}
}

// An event as the service posts it — body and headers, made by the real sender — is what the document's
// webhook for its type says: its headers, and an Event around the chat's JSON.
func TestEventsFitTheirWebhooks(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	type post struct {
		header http.Header
		body   []byte
	}
	posts := make(chan post, 1)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		posts <- post{r.Header, body}
	}))
	t.Cleanup(receiver.Close)
	sender, err := callback.NewSender(receiver.URL, "whsec_"+base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 22, 4, 24, 2, 101e6, time.UTC)
	proxy, name, sid, reason := "+15550100001", "Ana", "CH0123456789abcdef0123456789abcdef", "unreachable"
	view := chat.View{ID: "order-8812", Mode: "optin", ConversationSid: &sid, State: chat.StateFailed, Reason: &reason,
		Customer:  chat.PartyView{Address: "+15550001111", ProxyAddress: &proxy, Name: &name, Channel: "sms"},
		Rider:     chat.PartyView{Address: "whatsapp:+15550002222", Channel: "whatsapp", Held: 2, NudgedAt: &at},
		CreatedAt: at, UpdatedAt: at, ExpiresAt: at.Add(2 * time.Hour), Metadata: json.RawMessage(`{"order":8812}`),
		Error:   &chat.FailureView{TwilioCode: 63024, Detail: "not on WhatsApp"},
		History: []chat.TransitionView{{State: chat.StateStarting, At: at}, {State: chat.StateInvited, At: at, Channel: "sms"}, {State: chat.StateFailed, At: at}},
	}
	completed := "completed"
	ended := chat.CallView{Sid: "CA0123456789abcdef0123456789abcdef", From: "rider", To: "customer", At: at, Status: &completed, Duration: 42, EndedAt: &at}
	view.Calls = []chat.CallView{ended, {Sid: "CA0123456789abcdef0123456789abcdee", From: "customer", To: "rider", At: at}}
	view.Guarded = []chat.GuardedView{{At: at, From: "rider", Kinds: []string{"link", "number"}, Action: "redact"}}
	view.GuardedCount = 3
	data, err := json.Marshal(view)
	if err != nil {
		t.Fatal(err)
	}
	afterEnd, err := json.Marshal(struct {
		chat.View
		Message chat.AfterEndView `json:"message"`
	}{view, chat.AfterEndView{Party: "customer", At: at}})
	if err != nil {
		t.Fatal(err)
	}
	withCall := func(c chat.CallView) json.RawMessage {
		b, err := json.Marshal(struct {
			chat.View
			Call chat.CallView `json:"call"`
		}{view, c})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for typ, data := range map[string]json.RawMessage{"chat.failed": data, chat.EventChannelChanged: data,
		chat.EventCallStarted: withCall(view.Calls[1]), chat.EventCallEnded: withCall(ended), chat.EventMessageAfterEnd: afterEnd} {
		if err := sender.Send(t.Context(), chat.Event{ID: "msg_0123", Type: typ, At: at, Data: data}); err != nil {
			t.Fatal(err)
		}
		got := <-posts
		op := doc.Webhooks[typ].Post
		for _, p := range op.Parameters {
			if v := got.header.Get(p.Value.Name); v == "" || p.Value.Schema.Value.VisitJSON(v) != nil {
				t.Errorf("%s: header %s %q", typ, p.Value.Name, v)
			}
		}
		var body any
		if err := json.Unmarshal(got.body, &body); err != nil {
			t.Fatal(err)
		}
		if err := op.RequestBody.Value.Content.Get("application/json").Schema.Value.VisitJSON(body); err != nil {
			t.Errorf("%s: the body is not an Event: %v\n%s", typ, err, got.body)
		}
	}
}
