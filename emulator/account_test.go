package emulator_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/twilioapi"
)

// The account's Conversations reads answer as Twilio's spec says, through the real twilio-go, with
// the configured webhooks; nothing else of the account is in the Conversations spec.
func TestAccountConversationsReadsAgainstTwilioSpec(t *testing.T) {
	emu, err := emulator.New(emulator.Options{AccountSid: sid, AuthToken: token})
	if err != nil {
		t.Fatal(err)
	}
	a := emulator.Account{
		ServiceWebhooks: emulator.WebhookConfiguration{PreURL: "https://guard.example.com/pre", Method: "POST", Filters: []string{"onMessageAdd"}},
		AccountWebhooks: emulator.WebhookConfiguration{PostURL: "https://archive.example.com/post", Method: "GET", Filters: []string{"onMessageAdded"}},
	}
	sc := &specChecker{next: emu.WithAccount(a), checked: map[string]int{}}
	srv := httptest.NewServer(sc)
	defer srv.Close()
	sc.base = srv.URL
	sc.router = loadSpec(t, srv.URL)
	c, err := twilioapi.New(twilioapi.Options{AccountSid: sid, Username: sid, Password: token, BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.FetchConversationService(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if s.Sid != "IS"+sid[2:] || !s.Default ||
		s.Service.PreURL != a.ServiceWebhooks.PreURL || s.Service.PostURL != "" || !slices.Equal(s.Service.Filters, []string{"onMessageAdd"}) ||
		s.Account.PostURL != a.AccountWebhooks.PostURL || s.Account.Method != "GET" {
		t.Errorf("service %+v", s)
	}
	for _, p := range sc.problems {
		t.Error(p)
	}
	for _, route := range []string{"GET /v1/Configuration", "GET /v1/Services/{Sid}", "GET /v1/Services/{ChatServiceSid}/Configuration/Webhooks", "GET /v1/Configuration/Webhooks"} {
		if sc.checked[route] != 1 {
			t.Errorf("%s checked %d times (checked: %v)", route, sc.checked[route], sc.checked)
		}
	}
}

// The account's reads take the account's credentials, as the rest of the API does.
func TestAccountReadsNeedCredentials(t *testing.T) {
	emu, err := emulator.New(emulator.Options{AccountSid: sid, AuthToken: token})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu.WithAccount(emulator.Account{}))
	defer srv.Close()
	for _, path := range []string{"/2010-04-01/Accounts/" + sid + ".json", "/v2/Channels/Senders", "/v1/Configuration"} {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.SetBasicAuth(sid, "wrong")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Basic realm="Twilio API"` {
			t.Errorf("%s with a wrong token: %d %v", path, resp.StatusCode, resp.Header)
		}
	}
}
