package twilioapi

import (
	"errors"
	"net/http/httptest"
	"net/url"
	"reflect"
	"testing"

	"github.com/optinkit/optin/emulator"
)

const guardURL = "https://optin.example.com/webhooks/conversations"

// guardSetup is an emulated account over HTTP with the given webhook configurations, and a client of
// it that records its requests.
func guardSetup(t *testing.T, service, account emulator.WebhookConfiguration) (*Client, *emulator.Emulator, *recorder) {
	t.Helper()
	emu, err := emulator.New(emulator.Options{AccountSid: accountSid, AuthToken: authToken})
	if err != nil {
		t.Fatal(err)
	}
	emu.SetServiceWebhooks(service)
	emu.SetAccountWebhooks(account)
	rec := &recorder{next: emu.WithAccount(emulator.Account{})}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	c, err := New(Options{AccountSid: accountSid, Username: accountSid, Password: authToken, BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return c, emu, rec
}

// reads are the four reads of FetchConversationService.
var reads = []string{"GET /v1/Configuration", "GET /v1/Services/" + serviceSid, "GET /v1/Services/" + serviceSid + "/Configuration/Webhooks", "GET /v1/Configuration/Webhooks"}

func requests(rec *recorder) (lines []string, bodies []url.Values) {
	for _, s := range rec.take() {
		lines = append(lines, s.Method+" "+s.Path)
		if s.Method == "POST" {
			v, _ := url.ParseQuery(string(s.Body))
			bodies = append(bodies, v)
		}
	}
	return lines, bodies
}

// SetGuardHook writes the level Twilio reads for the service, keeping the filters and the method there,
// and writes nothing when it already guards or when the pre-event URL is another's.
func TestSetGuardHook(t *testing.T) {
	other := "https://audit.example.com/pre"
	for _, tt := range []struct {
		name             string
		service, account emulator.WebhookConfiguration
		level            string
		write            url.Values // nil: no write
		err              bool
	}{
		{"nothing anywhere: the service's own", emulator.WebhookConfiguration{}, emulator.WebhookConfiguration{}, LevelService,
			url.Values{"PreWebhookUrl": {guardURL}, "Filters": {"onMessageAdd"}, "Method": {"POST"}}, false},
		{"the service's post hook: its filters and method kept",
			emulator.WebhookConfiguration{PostURL: "https://crm.example.com/post", Method: "GET", Filters: []string{"onMessageAdded", "onConversationRemoved"}},
			emulator.WebhookConfiguration{PostURL: "https://ignored.example.com"}, LevelService,
			url.Values{"PreWebhookUrl": {guardURL}, "Filters": {"onMessageAdded", "onConversationRemoved", "onMessageAdd"}, "Method": {"GET"}}, false},
		{"only the account's: the account's, so that its hooks keep firing", emulator.WebhookConfiguration{},
			emulator.WebhookConfiguration{PostURL: "https://crm.example.com/post", Filters: []string{"onMessageAdded"}}, LevelAccount,
			url.Values{"PreWebhookUrl": {guardURL}, "Filters": {"onMessageAdded", "onMessageAdd"}, "Method": {"POST"}}, false},
		{"already the guard", emulator.WebhookConfiguration{PreURL: guardURL, Method: "POST", Filters: []string{"onMessageAdd"}},
			emulator.WebhookConfiguration{}, LevelService, nil, false},
		{"another's pre-event URL", emulator.WebhookConfiguration{PreURL: other, Filters: []string{"onMessageAdd"}},
			emulator.WebhookConfiguration{}, LevelService, nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, emu, rec := guardSetup(t, tt.service, tt.account)
			beforeService, beforeAccount := emu.WebhookConfigurations()
			ch, err := c.SetGuardHook(t.Context(), guardURL)
			var taken *PreHookTakenError
			if tt.err != errors.As(err, &taken) || (err != nil && !tt.err) {
				t.Fatalf("err %v", err)
			}
			if ch.Level != tt.level || ch.ServiceSid != serviceSid || ch.Changed != (tt.write != nil) {
				t.Errorf("change %+v", ch)
			}
			lines, bodies := requests(rec)
			want := reads
			if tt.write != nil {
				path := "POST /v1/Services/" + serviceSid + "/Configuration/Webhooks"
				if tt.level == LevelAccount {
					path = "POST /v1/Configuration/Webhooks"
				}
				want = append(append([]string(nil), reads...), path)
			}
			if !reflect.DeepEqual(lines, want) || (tt.write != nil && !reflect.DeepEqual(bodies[0], tt.write)) {
				t.Errorf("requests %v %v, want %v %v", lines, bodies, want, tt.write)
			}
			service, account := emu.WebhookConfigurations()
			if tt.write == nil {
				if !reflect.DeepEqual(service, beforeService) || !reflect.DeepEqual(account, beforeAccount) {
					t.Errorf("changed: %+v %+v", service, account)
				}
				return
			}
			got := service
			if tt.level == LevelAccount {
				got = account
			}
			if got.PreURL != guardURL || !reflect.DeepEqual(got.Filters, tt.write["Filters"]) || ch.After.PreURL != guardURL {
				t.Errorf("after: %+v (answer %+v)", got, ch.After)
			}
			s, err := c.FetchConversationService(t.Context())
			if _, eff := s.Effective(); err != nil || !eff.Guards(guardURL) {
				t.Errorf("the effective configuration does not guard: %+v %v", s, err)
			}
		})
	}
}
