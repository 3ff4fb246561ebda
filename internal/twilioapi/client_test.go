package twilioapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/twiliocall"
)

const (
	accountSid = "AC00000000000000000000000000000001"
	authToken  = "token0000000000000000000000000001"
	conv       = "CH00000000000000000000000000000001"
)

// newEmulator serves an emulator of the account, which also takes the API key apiKey with apiSecret
// when apiKey is set, and holds the conversation conv with the given scoped webhooks.
func newEmulator(t *testing.T, apiKey, apiSecret string, webhooks ...string) (*emulator.Emulator, string) {
	t.Helper()
	emu, err := emulator.New(emulator.Options{AccountSid: accountSid, AuthToken: authToken, APIKey: apiKey, APISecret: apiSecret})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = emu.Close(context.Background()) })
	seed := emulator.Seed{Sid: conv}
	for _, sid := range webhooks {
		seed.Webhooks = append(seed.Webhooks, emulator.SeedWebhook{Sid: sid, URL: "https://optin.example.com/webhooks/conversations",
			Method: "GET", Filters: []string{"onMessageAdded"}})
	}
	if _, err := emu.AddConversation(seed); err != nil {
		t.Fatal(err)
	}
	return emu, srv.URL
}

// newPair is a client authenticated with user and pass against an emulator holding conv with webhooks.
func newPair(t *testing.T, user, pass string, webhooks ...string) (*Client, *emulator.Emulator) {
	t.Helper()
	var key, secret string
	if strings.HasPrefix(user, "SK") {
		key, secret = user, pass
	}
	emu, base := newEmulator(t, key, secret, webhooks...)
	c, err := New(Options{AccountSid: accountSid, Username: user, Password: pass, BaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	return c, emu
}

// messages are what the emulator holds of conv's messages, oldest first.
func messages(t *testing.T, emu *emulator.Emulator) []emulator.MessageView {
	t.Helper()
	v, ok := emu.Conversation(conv)
	if !ok {
		t.Fatalf("no conversation %s", conv)
	}
	return v.Messages
}

// webhook SIDs of Twilio's shape: hook(1) is WH + 31 zeros + 1.
func hook(n int) string { return fmt.Sprintf("WH%032d", n) }

func TestCreateMessageSendsExactForm(t *testing.T) {
	c, emu := newPair(t, accountSid, authToken)
	sid, err := c.CreateMessage(t.Context(), conv, conversation.Message{
		Author: "whatsapp:+15550001111", ContentSid: "HX00000000000000000000000000000001",
		ContentVariables: `{"1":"Ana"}`, Attributes: `{"optin":{"step":"rider","trigger":"IM1"}}`,
	})
	if err != nil {
		t.Fatal(err)
	}
	reqs := emu.Requests()
	if len(reqs) != 1 {
		t.Fatalf("requests = %+v", reqs)
	}
	want := url.Values{
		"Author":           {"whatsapp:+15550001111"},
		"ContentSid":       {"HX00000000000000000000000000000001"},
		"ContentVariables": {`{"1":"Ana"}`},
		"Attributes":       {`{"optin":{"step":"rider","trigger":"IM1"}}`},
	}
	r := reqs[0]
	if r.Method != "POST" || r.Path != "/v1/Conversations/"+conv+"/Messages" || !reflect.DeepEqual(r.Form, want) || r.WebhookEnabled != "" {
		t.Errorf("request = %+v, want POST Messages with form %v and no webhook header", r, want)
	}
	if msgs := messages(t, emu); len(msgs) != 1 || msgs[0].Sid != sid || msgs[0].ContentVariables != `{"1":"Ana"}` {
		t.Errorf("sid = %q, the emulator holds %+v", sid, msgs)
	}
}

func TestSystemMessageHasNoAuthor(t *testing.T) {
	c, emu := newPair(t, accountSid, authToken)
	if _, err := c.CreateMessage(t.Context(), conv, conversation.Message{Body: "Great!", Attributes: "{}"}); err != nil {
		t.Fatal(err)
	}
	want := url.Values{"Body": {"Great!"}, "Attributes": {"{}"}}
	if got := emu.Requests()[0].Form; !reflect.DeepEqual(got, want) {
		t.Errorf("form = %v, want %v", got, want)
	}
	if msgs := messages(t, emu); len(msgs) != 1 || msgs[0].Author != "system" {
		t.Errorf("the emulator holds %+v, want a system message", msgs)
	}
}

func TestAPIKeyAuth(t *testing.T) {
	_, base := newEmulator(t, "SK00000000000000000000000000000001", "secret1")
	c, _ := New(Options{AccountSid: accountSid, Username: "SK00000000000000000000000000000001", Password: "secret1", BaseURL: base})
	if _, err := c.ScopedWebhooks(t.Context(), conv); err != nil {
		t.Fatalf("API key rejected: %v", err)
	}
	bad, _ := New(Options{AccountSid: accountSid, Username: "SK00000000000000000000000000000001", Password: "wrong", BaseURL: base})
	_, err := bad.ScopedWebhooks(t.Context(), conv)
	var ce *twiliocall.CallError
	if !errors.As(err, &ce) || ce.Status != 401 || ce.Kind != twiliocall.Permanent {
		t.Errorf("wrong secret: err = %v", err)
	}
}

// Twilio holds at most five scoped webhooks, one page; the client follows next_page_url all the same,
// against a conversation seeded with eleven.
func TestScopedWebhooksFollowsEveryPage(t *testing.T) {
	var hooks []string
	for i := 1; i <= 11; i++ {
		hooks = append(hooks, hook(i))
	}
	c, emu := newPair(t, accountSid, authToken, hooks...)
	listed, err := c.ScopedWebhooks(t.Context(), conv)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range listed {
		got = append(got, h.Sid)
		if h.URL != "https://optin.example.com/webhooks/conversations" || h.Method != "GET" || !reflect.DeepEqual(h.Filters, []string{"onMessageAdded"}) {
			t.Errorf("webhook %+v", h)
		}
	}
	if !reflect.DeepEqual(got, hooks) {
		t.Errorf("sids = %v, want %v", got, hooks)
	}
	var queries []url.Values
	for _, r := range emu.Requests() {
		if r.Method != "GET" || r.Path != "/v1/Conversations/"+conv+"/Webhooks" {
			t.Errorf("unexpected request %+v", r)
		}
		queries = append(queries, r.Query)
	}
	want := []url.Values{
		{"PageSize": {"5"}},
		{"PageSize": {"5"}, "Page": {"1"}, "PageToken": {"PT1"}},
		{"PageSize": {"5"}, "Page": {"2"}, "PageToken": {"PT2"}},
	}
	if !reflect.DeepEqual(queries, want) {
		t.Errorf("queries = %v, want %v", queries, want)
	}
}

func TestRecentMessagesNewestFirst(t *testing.T) {
	c, emu := newPair(t, accountSid, authToken)
	for _, a := range []string{`{"n":1}`, `{"n":2}`} {
		if _, err := c.CreateMessage(t.Context(), conv, conversation.Message{Body: "x", Attributes: a}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.RecentMessages(t.Context(), conv, 50)
	if err != nil {
		t.Fatal(err)
	}
	msgs := messages(t, emu)
	want := []conversation.PostedMessage{{Sid: msgs[1].Sid, Attributes: `{"n":2}`}, {Sid: msgs[0].Sid, Attributes: `{"n":1}`}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("recent = %+v, want %+v", got, want)
	}
	if q := emu.Requests()[2].Query; !reflect.DeepEqual(q, url.Values{"Order": {"desc"}, "PageSize": {"50"}}) {
		t.Errorf("query = %v", q)
	}
}

func TestDeleteWebhook(t *testing.T) {
	c, emu := newPair(t, accountSid, authToken, hook(1), hook(2))
	if err := c.DeleteWebhook(t.Context(), conv, hook(1)); err != nil {
		t.Fatal(err)
	}
	if v, _ := emu.Conversation(conv); !reflect.DeepEqual(v.Webhooks, []string{hook(2)}) {
		t.Errorf("left = %v", v.Webhooks)
	}
	err := c.DeleteWebhook(t.Context(), conv, hook(1))
	var ce *twiliocall.CallError
	if !errors.As(err, &ce) || !ce.NotFound() || ce.Kind != twiliocall.Permanent || ce.Code != 20404 {
		t.Errorf("second delete: %v", err)
	}
	if r := emu.Requests()[0]; r.Method != "DELETE" || r.Path != "/v1/Conversations/"+conv+"/Webhooks/"+hook(1) {
		t.Errorf("request = %+v", r)
	}
}

func TestClassification(t *testing.T) {
	tests := []struct {
		name  string
		fault emulator.Fault
		want  twiliocall.CallError
	}{
		{"429", emulator.Fault{Kind: "429", Code: 20429, RetryAfter: 3}, twiliocall.CallError{Kind: twiliocall.Retryable, Status: 429, Code: 20429, RetryAfter: 3 * time.Second}},
		{"500", emulator.Fault{Kind: "500", Code: 20500}, twiliocall.CallError{Kind: twiliocall.Retryable, Status: 500, Code: 20500}},
		{"503", emulator.Fault{Kind: "503", Code: 20503}, twiliocall.CallError{Kind: twiliocall.Retryable, Status: 503, Code: 20503}},
		{"504", emulator.Fault{Kind: "504", Code: 20504}, twiliocall.CallError{Kind: twiliocall.Uncertain, Status: 504, Code: 20504}},
		{"63016", emulator.Fault{Kind: "400", Code: 63016}, twiliocall.CallError{Kind: twiliocall.Permanent, Status: 400, Code: 63016}},
		{"403", emulator.Fault{Kind: "403", Code: 20403}, twiliocall.CallError{Kind: twiliocall.Permanent, Status: 403, Code: 20403}},
		{"dropped", emulator.Fault{Kind: "drop"}, twiliocall.CallError{Kind: twiliocall.Uncertain}},
		{"applied then dropped", emulator.Fault{Kind: "drop", Applied: true}, twiliocall.CallError{Kind: twiliocall.Uncertain}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, emu := newPair(t, accountSid, authToken)
			tt.fault.Route, tt.fault.Count = "messages.create", 1
			if err := emu.SetFaults([]emulator.Fault{tt.fault}); err != nil {
				t.Fatal(err)
			}
			_, err := c.CreateMessage(t.Context(), conv, conversation.Message{Body: "x"})
			var ce *twiliocall.CallError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *CallError", err)
			}
			got := twiliocall.CallError{Kind: ce.Kind, Status: ce.Status, Code: ce.Code, RetryAfter: ce.RetryAfter}
			if got != tt.want {
				t.Errorf("got %+v, want %+v (%v)", got, tt.want, err)
			}
			// One call, not retried, which took effect only when the fault was applied.
			want := 0
			if tt.fault.Applied {
				want = 1
			}
			if n, msgs := len(emu.Requests()), messages(t, emu); n != 1 || len(msgs) != want {
				t.Errorf("%d requests, messages %+v; want 1 request and %d messages", n, msgs, want)
			}
		})
	}
}

func TestNonJSONErrorUsesStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	defer srv.Close()
	c, _ := New(Options{AccountSid: accountSid, Username: accountSid, Password: authToken, BaseURL: srv.URL})
	err := c.DeleteWebhook(t.Context(), conv, "WH1")
	var ce *twiliocall.CallError
	if !errors.As(err, &ce) || ce.Kind != twiliocall.Uncertain || ce.Status != 502 {
		t.Errorf("err = %v", err)
	}
}

func TestConnectionRefusedIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	c, _ := New(Options{AccountSid: accountSid, Username: accountSid, Password: authToken, BaseURL: addr})
	_, err := c.ScopedWebhooks(t.Context(), conv)
	var ce *twiliocall.CallError
	if !errors.As(err, &ce) || ce.Kind != twiliocall.Retryable || ce.Status != 0 {
		t.Errorf("err = %v", err)
	}
}

func TestContextBoundsTheCall(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	c, _ := New(Options{AccountSid: accountSid, Username: accountSid, Password: authToken, BaseURL: srv.URL})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := c.CreateMessage(ctx, conv, conversation.Message{Body: "x"})
	var ce *twiliocall.CallError
	if !errors.As(err, &ce) || ce.Kind != twiliocall.Uncertain {
		t.Errorf("err = %v, want uncertain", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"5":                             5 * time.Second,
		"0":                             0,
		"-3":                            0,
		"1.5":                           0,
		"soon":                          0,
		"Thu, 01 Jan 2026 00:00:07 GMT": 7 * time.Second,
		"Wed, 31 Dec 2025 23:59:00 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestNewRejects(t *testing.T) {
	for name, o := range map[string]Options{
		"sid with dash":   {AccountSid: "AC-1", Username: "AC1", Password: "x"},
		"token with dash": {AccountSid: "AC1", Username: "AC1", Password: "x-y"},
		"empty password":  {AccountSid: "AC1", Username: "AC1"},
		"base url":        {AccountSid: "AC1", Username: "AC1", Password: "x", BaseURL: "ftp://x"},
		"base url host":   {AccountSid: "AC1", Username: "AC1", Password: "x", BaseURL: "http://"},
		"base url path":   {AccountSid: "AC1", Username: "AC1", Password: "x", BaseURL: "http://127.0.0.1:9/twilio"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// pageTwoRefused lets the first request through, with a Retry-After on its answer, and refuses the
// connection of every later one.
type pageTwoRefused struct {
	next http.RoundTripper
	n    int
}

func (p *pageTwoRefused) RoundTrip(r *http.Request) (*http.Response, error) {
	p.n++
	if p.n > 1 {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	resp, err := p.next.RoundTrip(r)
	if err == nil {
		resp.Header.Set("Retry-After", "7")
	}
	return resp, err
}

// A failure is classified by what happened to the request that failed, not by an earlier page's answer.
func TestLaterPageFailureIsNotTheFirstPagesStatus(t *testing.T) {
	_, base := newEmulator(t, "", "", hook(1), hook(2), hook(3), hook(4), hook(5), hook(6), hook(7))
	c, err := New(Options{AccountSid: accountSid, Username: accountSid, Password: authToken, BaseURL: base,
		Transport: &pageTwoRefused{next: http.DefaultTransport}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ScopedWebhooks(t.Context(), conv)
	var ce *twiliocall.CallError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *CallError", err)
	}
	if got := (twiliocall.CallError{Kind: ce.Kind, Status: ce.Status, RetryAfter: ce.RetryAfter}); got != (twiliocall.CallError{Kind: twiliocall.Retryable}) {
		t.Errorf("page 2 refused: got %+v, want retryable with status 0 and no Retry-After (%v)", got, err)
	}
}

// SIDs are path segments: whatever they hold stays in its segment.
func TestSidsAreEscapedInPaths(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.EscapedPath()+" query="+r.URL.RawQuery)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(404)
		_, _ = w.Write([]byte(`{"code":20404,"message":"not found","status":404}`))
	}))
	defer srv.Close()
	c, _ := New(Options{AccountSid: accountSid, Username: accountSid, Password: authToken, BaseURL: srv.URL})
	_, _ = c.CreateMessage(t.Context(), "CHx?y=1#z", conversation.Message{Body: "x"})
	_ = c.DeleteWebhook(t.Context(), "CH1/Webhooks", "WH1?a=b")
	_, _ = c.ScopedWebhooks(t.Context(), `{"a":1}`)
	want := []string{
		"POST /v1/Conversations/CHx%3Fy=1%23z/Messages query=",
		"DELETE /v1/Conversations/CH1%2FWebhooks/Webhooks/WH1%3Fa=b query=",
		"GET /v1/Conversations/%7B%22a%22:1%7D/Webhooks query=PageSize=5",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("requests:\n got %q\nwant %q", got, want)
	}
}

// Twilio's message quoting a participant's number reaches no log or detail whole: the adapter masks it,
// and the code is still Twilio's.
func TestTwilioMessagesAreMasked(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"code":50416,"message":"The address whatsapp:+15550001111 and proxy address whatsapp:+15550100000 are already in another conversation","more_info":"https://www.twilio.com/docs/errors/50416","status":400}`))
	}))
	defer srv.Close()
	c, _ := New(Options{AccountSid: accountSid, Username: accountSid, Password: authToken, BaseURL: srv.URL})
	err := c.AddParticipant(t.Context(), conv, "whatsapp:+15550001111", "whatsapp:+15550100000")
	var ce *twiliocall.CallError
	if !errors.As(err, &ce) || ce.Code != 50416 || ce.Kind != twiliocall.Permanent {
		t.Fatalf("err = %v", err)
	}
	if msg := err.Error(); strings.Contains(msg, "15550001111") || !strings.Contains(msg, "whatsapp:+1555•••1111") {
		t.Errorf("message %q", msg)
	}
}
