package twilioapi

import (
	"errors"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	conversations "github.com/twilio/twilio-go/rest/conversations/v1"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/twiliocall"
)

// The emulator's one Conversation Service: IS and the account SID's digits.
const serviceSid = "IS" + "00000000000000000000000000000001"

// everyCall makes each Conversations call of the adapter once, in a chat's order, and returns the
// requests the emulator received.
func everyCall(t *testing.T, service string) []string {
	t.Helper()
	emu, err := emulator.New(emulator.Options{AccountSid: accountSid, AuthToken: authToken})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{next: emu}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	c, err := New(Options{AccountSid: accountSid, Username: accountSid, Password: authToken, BaseURL: srv.URL, ConversationsService: service})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	conv, err := c.CreateConversation(ctx, chat.NewConversation{UniqueName: "order-1", ClosedAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if sid, _, err := c.FindConversation(ctx, "order-1"); err != nil || sid != conv {
		t.Fatalf("find: %q, %v", sid, err)
	}
	hook, err := c.CreateWebhook(ctx, conv, conversation.Webhook{URL: "https://optin.example.com/webhooks/conversations", Method: "POST", Filters: []string{"onMessageAdded"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{customer, rider} {
		if err := c.AddParticipant(ctx, conv, a, business); err != nil {
			t.Fatal(err)
		}
	}
	if hooks, err := c.ScopedWebhooks(ctx, conv); err != nil || len(hooks) != 1 {
		t.Fatalf("webhooks: %v, %v", hooks, err)
	}
	msg, err := c.CreateMessage(ctx, conv, conversation.Message{Author: rider, Body: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	steps := []func() error{
		func() error { _, err := c.RecentMessages(ctx, conv, 50); return err },
		func() error { _, err := c.FetchMessage(ctx, conv, msg); return err },
		func() error { _, err := c.RecentDeliveries(ctx, conv, 50); return err },
		func() error { _, err := c.FailureCodes(ctx, conv, msg); return err },
		func() error { return c.DeleteWebhook(ctx, conv, hook) },
		func() error { return c.RemoveParticipant(ctx, conv, rider) },
		func() error { return c.CloseConversation(ctx, conv) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, r := range rec.take() {
		p := strings.ReplaceAll(r.Path, conv, "{CH}")
		p = strings.ReplaceAll(p, msg, "{IM}")
		p = strings.ReplaceAll(p, hook, "{WH}")
		for _, part := range strings.Split(p, "/") {
			if strings.HasPrefix(part, "MB") {
				p = strings.ReplaceAll(p, part, "{MB}")
			}
		}
		got = append(got, r.Method+" "+p)
	}
	return got
}

// The calls of a chat, as made in the default Conversation Service.
var defaultServiceCalls = []string{
	"POST /v1/Conversations",
	"GET /v1/Conversations/order-1",
	"POST /v1/Conversations/{CH}/Webhooks",
	"POST /v1/Conversations/{CH}/Participants",
	"POST /v1/Conversations/{CH}/Participants",
	"GET /v1/Conversations/{CH}/Webhooks",
	"POST /v1/Conversations/{CH}/Messages",
	"GET /v1/Conversations/{CH}/Messages",
	"GET /v1/Conversations/{CH}/Messages/{IM}",
	"GET /v1/Conversations/{CH}/Messages",
	"GET /v1/Conversations/{CH}/Messages/{IM}/Receipts",
	"DELETE /v1/Conversations/{CH}/Webhooks/{WH}",
	"GET /v1/Conversations/{CH}/Participants",
	"DELETE /v1/Conversations/{CH}/Participants/{MB}",
	"POST /v1/Conversations/{CH}",
}

// Without OPTIN_CONVERSATIONS_SERVICE_SID every call goes to the default service's paths; with it,
// the same calls go under /v1/Services/{IS}: the real twilio-go over HTTP, against the emulator.
func TestConversationsServicePaths(t *testing.T) {
	if got := everyCall(t, ""); !slices.Equal(got, defaultServiceCalls) {
		t.Errorf("default service:\n got %q\nwant %q", got, defaultServiceCalls)
	}
	var want []string
	for _, c := range defaultServiceCalls {
		method, path, _ := strings.Cut(c, " ")
		want = append(want, method+" /v1/Services/"+serviceSid+strings.TrimPrefix(path, "/v1"))
	}
	if got := everyCall(t, serviceSid); !slices.Equal(got, want) {
		t.Errorf("service %s:\n got %q\nwant %q", serviceSid, got, want)
	}
}

// A service the account does not have is Twilio's 404, a permanent failure of the first call.
func TestUnknownConversationsService(t *testing.T) {
	emu, err := emulator.New(emulator.Options{AccountSid: accountSid, AuthToken: authToken})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	c, err := New(Options{AccountSid: accountSid, Username: accountSid, Password: authToken, BaseURL: srv.URL,
		ConversationsService: "IS0000000000000000000000000000dead"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateConversation(t.Context(), chat.NewConversation{UniqueName: "order-1"})
	var ce *twiliocall.CallError
	if !errors.As(err, &ce) || ce.Status != 404 || ce.Code != 20404 || ce.Kind != twiliocall.Permanent {
		t.Errorf("err = %v, want a permanent 404 (20404)", err)
	}
	if _, err := New(Options{AccountSid: accountSid, Username: accountSid, Password: authToken, ConversationsService: "MG00000000000000000000000000000001"}); err == nil {
		t.Error("a Messaging Service SID was taken for a Conversation Service")
	}
}

// The adapter sends the default service's parameters to the service-scoped paths: twilio-go's
// parameters of each service-scoped call the adapter stands in for are the same, name for name.
func TestServiceScopedParamsMatch(t *testing.T) {
	pairs := [][2]any{
		{conversations.CreateConversationParams{}, conversations.CreateServiceConversationParams{}},
		{conversations.UpdateConversationParams{}, conversations.UpdateServiceConversationParams{}},
		{conversations.CreateConversationParticipantParams{}, conversations.CreateServiceConversationParticipantParams{}},
		{conversations.ListConversationParticipantParams{}, conversations.ListServiceConversationParticipantParams{}},
		{conversations.DeleteConversationParticipantParams{}, conversations.DeleteServiceConversationParticipantParams{}},
		{conversations.CreateConversationMessageParams{}, conversations.CreateServiceConversationMessageParams{}},
		{conversations.ListConversationMessageParams{}, conversations.ListServiceConversationMessageParams{}},
		{conversations.ListConversationMessageReceiptParams{}, conversations.ListServiceConversationMessageReceiptParams{}},
		{conversations.CreateConversationScopedWebhookParams{}, conversations.CreateServiceConversationScopedWebhookParams{}},
		{conversations.ListConversationScopedWebhookParams{}, conversations.ListServiceConversationScopedWebhookParams{}},
	}
	names := func(v any) []string {
		var out []string
		t := reflect.TypeOf(v)
		for i := range t.NumField() {
			out = append(out, t.Field(i).Tag.Get("json"))
		}
		slices.Sort(out)
		return out
	}
	for _, p := range pairs {
		if a, b := names(p[0]), names(p[1]); !slices.Equal(a, b) {
			t.Errorf("%T %v\n%T %v", p[0], a, p[1], b)
		}
	}
}
