package emulator_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/twilioapi"
)

const (
	sid   = "AC0123456789abcdef0123456789abcdef"
	token = "0123456789abcdef0123456789abcdef"
)

// specChecker validates every /v1 request and successful response against Twilio's OpenAPI spec.
type specChecker struct {
	router routers.Router
	next   http.Handler
	base   string

	mu       sync.Mutex
	problems []string
	checked  map[string]int
}

func loadSpec(t *testing.T, base string) routers.Router {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromFile("testdata/twilio-oai/twilio_conversations_v1.json")
	if err != nil {
		t.Fatal(err)
	}
	// The spec pins every path to conversations.twilio.com; serve it from the emulator instead.
	doc.Servers = openapi3.Servers{{URL: base}}
	for _, item := range doc.Paths.Map() {
		item.Servers = nil
		for _, op := range item.Operations() {
			op.Servers = nil
		}
	}
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (s *specChecker) problem(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

func (s *specChecker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/v1/") || strings.Contains(r.URL.Path, "/Media") {
		// The Media Content Service is not in the Conversations spec (nor in any of Twilio's).
		s.next.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	check := r.Clone(r.Context())
	check.URL, _ = url.Parse(s.base + r.URL.RequestURI())
	check.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := s.router.FindRoute(check)
	if err != nil {
		s.problem("%s %s: no route in the spec: %v", r.Method, r.URL.Path, err)
		r.Body = io.NopCloser(bytes.NewReader(body))
		s.next.ServeHTTP(w, r)
		return
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}
	in := &openapi3filter.RequestValidationInput{Request: check, PathParams: params, Route: route, Options: opts}
	if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
		s.problem("request %s %s: %v", r.Method, r.URL.Path, err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	s.next.ServeHTTP(rec, r)
	if rec.Code < 300 {
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.Code, Header: rec.Header(),
			Body: io.NopCloser(bytes.NewReader(rec.Body.Bytes())), Options: opts}
		if err := openapi3filter.ValidateResponse(r.Context(), out); err != nil {
			s.problem("response %s %s %d: %v", r.Method, r.URL.Path, rec.Code, err)
		}
		s.mu.Lock()
		s.checked[route.Method+" "+route.Path]++
		s.mu.Unlock()
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func form(pairs ...string) url.Values {
	v := url.Values{}
	for i := 0; i < len(pairs); i += 2 {
		v.Add(pairs[i], pairs[i+1])
	}
	return v
}

// TestAgainstTwilioSpec drives every emulator endpoint — the opt-in's calls through the real twilio-go
// adapter, the rest as the guide's curl calls — and checks requests and responses against the spec.
func TestAgainstTwilioSpec(t *testing.T) {
	emu, err := emulator.New(emulator.Options{AccountSid: sid, AuthToken: token})
	if err != nil {
		t.Fatal(err)
	}
	sc := &specChecker{next: emu, checked: map[string]int{}}
	srv := httptest.NewServer(sc)
	defer srv.Close()
	sc.base = srv.URL
	sc.router = loadSpec(t, srv.URL)

	call := func(method, path string, f url.Values) string {
		t.Helper()
		var body io.Reader
		if f != nil {
			body = strings.NewReader(f.Encode())
		}
		req, _ := http.NewRequest(method, srv.URL+path, body)
		if f != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.SetBasicAuth(sid, token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		s := string(b)
		if i := strings.Index(s, `"sid":"`); i >= 0 {
			return s[i+7 : i+7+34]
		}
		return ""
	}
	conv := call("POST", "/v1/Conversations", form("FriendlyName", "delivery", "UniqueName", "order-42", "Attributes", `{"order":42}`))
	call("GET", "/v1/Conversations", nil)
	call("GET", "/v1/Conversations/"+conv, nil)
	call("POST", "/v1/Conversations/"+conv, form("Attributes", `{"order":43}`))
	p1 := call("POST", "/v1/Conversations/"+conv+"/Participants", form("MessagingBinding.Address", "whatsapp:+15550001111", "MessagingBinding.ProxyAddress", "whatsapp:+15550000000"))
	call("POST", "/v1/Conversations/"+conv+"/Participants", form("MessagingBinding.Address", "whatsapp:+15550002222", "MessagingBinding.ProxyAddress", "whatsapp:+15550000000"))
	call("POST", "/v1/Conversations/"+conv+"/Participants", form("Identity", "agent"))
	call("GET", "/v1/Conversations/"+conv+"/Participants", nil)
	call("GET", "/v1/Conversations/"+conv+"/Participants/"+p1, nil)
	m1 := call("POST", "/v1/Conversations/"+conv+"/Messages", form("Author", "whatsapp:+15550002222", "ContentSid", "HX00000000000000000000000000000001", "ContentVariables", `{"1":"Ana"}`))
	call("GET", "/v1/Conversations/"+conv+"/Messages/"+m1, nil)
	r1 := call("GET", "/v1/Conversations/"+conv+"/Messages/"+m1+"/Receipts", nil)
	if !strings.HasPrefix(r1, "DY") {
		t.Fatalf("receipt sid %q", r1)
	}
	call("GET", "/v1/Conversations/"+conv+"/Messages/"+m1+"/Receipts/"+r1, nil)
	call("GET", "/v1/Conversations/"+conv+"/Messages?Order=asc&PageSize=10", nil)
	wh := call("POST", "/v1/Conversations/"+conv+"/Webhooks", form("Target", "webhook", "Configuration.Url", "https://optin.example.com/webhooks/conversations",
		"Configuration.Method", "get", "Configuration.Filters", "onMessageAdded"))
	call("POST", "/v1/Conversations/"+conv+"/Webhooks", form("Target", "webhook", "Configuration.Url", "https://optin.example.com/b",
		"Configuration.Method", "post", "Configuration.Filters", "onMessageAdded", "Configuration.Filters", "onMessageUpdated"))
	call("GET", "/v1/Conversations/"+conv+"/Webhooks/"+wh, nil)
	call("POST", "/v1/Conversations/"+conv+"/Webhooks/"+wh, form("Configuration.Method", "post"))

	// The opt-in's own four calls, made by the service's adapter through twilio-go.
	c, err := twilioapi.New(twilioapi.Options{AccountSid: sid, Username: sid, Password: token, BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := c.CreateMessage(ctx, conv, conversation.Message{Body: "Great! Just a moment while we connect you…", Attributes: `{"optin":{"step":"wait","trigger":"IM1"}}`}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateMessage(ctx, conv, conversation.Message{Author: "whatsapp:+15550001111", ContentSid: "HX00000000000000000000000000000002", ContentVariables: `{"1":"x"}`, Attributes: `{}`}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RecentMessages(ctx, conv, 50); err != nil {
		t.Fatal(err)
	}
	hooks, err := c.ScopedWebhooks(ctx, conv)
	if err != nil || len(hooks) != 2 {
		t.Fatalf("hooks %v %v", hooks, err)
	}
	for _, h := range hooks {
		if err := c.DeleteWebhook(ctx, conv, h.Sid); err != nil {
			t.Fatal(err)
		}
	}
	call("POST", "/v1/Conversations/"+conv+"/Participants", form("Identity", "dispatcher", "MessagingBinding.ProjectedAddress", "+15550009999"))
	call("GET", "/v1/ParticipantConversations?Address="+url.QueryEscape("whatsapp:+15550001111"), nil)
	call("GET", "/v1/ParticipantConversations?Identity=dispatcher", nil)

	// The same resources under the account's Conversation Service.
	svc := "/v1/Services/IS" + sid[2:]
	call("GET", "/v1/Services", nil)
	call("GET", svc, nil)
	call("GET", svc+"/ParticipantConversations?Address="+url.QueryEscape("whatsapp:+15550001111"), nil)
	sconv := call("POST", svc+"/Conversations", form("FriendlyName", "scoped", "Timers.Closed", "PT1H"))
	call("GET", svc+"/Conversations", nil)
	call("GET", svc+"/Conversations/"+sconv, nil)
	call("POST", svc+"/Conversations/"+sconv, form("Attributes", `{"scoped":true}`))
	sp := call("POST", svc+"/Conversations/"+sconv+"/Participants", form("MessagingBinding.Address", "+15550003333", "MessagingBinding.ProxyAddress", "+15550000001"))
	call("GET", svc+"/Conversations/"+sconv+"/Participants", nil)
	call("GET", svc+"/Conversations/"+sconv+"/Participants/"+sp, nil)
	sm := call("POST", svc+"/Conversations/"+sconv+"/Messages", form("Body", "scoped hello"))
	call("GET", svc+"/Conversations/"+sconv+"/Messages", nil)
	call("GET", svc+"/Conversations/"+sconv+"/Messages/"+sm, nil)
	sr := call("GET", svc+"/Conversations/"+sconv+"/Messages/"+sm+"/Receipts", nil)
	call("GET", svc+"/Conversations/"+sconv+"/Messages/"+sm+"/Receipts/"+sr, nil)
	swh := call("POST", svc+"/Conversations/"+sconv+"/Webhooks", form("Target", "webhook", "Configuration.Url", "https://optin.example.com/c",
		"Configuration.Method", "post", "Configuration.Filters", "onParticipantAdded"))
	call("GET", svc+"/Conversations/"+sconv+"/Webhooks", nil)
	call("GET", svc+"/Conversations/"+sconv+"/Webhooks/"+swh, nil)
	call("POST", svc+"/Conversations/"+sconv+"/Webhooks/"+swh, form("Configuration.Method", "get"))
	call("DELETE", svc+"/Conversations/"+sconv+"/Webhooks/"+swh, nil)
	call("DELETE", svc+"/Conversations/"+sconv+"/Participants/"+sp, nil)
	call("DELETE", svc+"/Conversations/"+sconv, nil)

	call("DELETE", "/v1/Conversations/"+conv+"/Participants/"+p1, nil)
	call("DELETE", "/v1/Conversations/"+conv, nil)

	for _, p := range sc.problems {
		t.Error(p)
	}
	want := []string{
		"POST /v1/Conversations", "GET /v1/Conversations", "GET /v1/Conversations/{Sid}", "POST /v1/Conversations/{Sid}", "DELETE /v1/Conversations/{Sid}",
		"POST /v1/Conversations/{ConversationSid}/Participants", "GET /v1/Conversations/{ConversationSid}/Participants",
		"GET /v1/Conversations/{ConversationSid}/Participants/{Sid}", "DELETE /v1/Conversations/{ConversationSid}/Participants/{Sid}",
		"POST /v1/Conversations/{ConversationSid}/Messages", "GET /v1/Conversations/{ConversationSid}/Messages", "GET /v1/Conversations/{ConversationSid}/Messages/{Sid}",
		"GET /v1/Conversations/{ConversationSid}/Messages/{MessageSid}/Receipts", "GET /v1/Conversations/{ConversationSid}/Messages/{MessageSid}/Receipts/{Sid}",
		"POST /v1/Conversations/{ConversationSid}/Webhooks", "GET /v1/Conversations/{ConversationSid}/Webhooks",
		"GET /v1/Conversations/{ConversationSid}/Webhooks/{Sid}", "POST /v1/Conversations/{ConversationSid}/Webhooks/{Sid}", "DELETE /v1/Conversations/{ConversationSid}/Webhooks/{Sid}",
		"GET /v1/ParticipantConversations", "GET /v1/Services", "GET /v1/Services/{Sid}", "GET /v1/Services/{ChatServiceSid}/ParticipantConversations",
	}
	// Every short route, again under the service.
	for _, w := range want {
		if strings.Contains(w, "/v1/Conversations") {
			want = append(want, strings.Replace(w, "/v1/Conversations", "/v1/Services/{ChatServiceSid}/Conversations", 1))
		}
	}
	for _, w := range want {
		if sc.checked[w] == 0 {
			t.Errorf("%s never checked against the spec", w)
		}
	}
}
