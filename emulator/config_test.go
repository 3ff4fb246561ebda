package emulator_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"

	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"
	conversations "github.com/twilio/twilio-go/rest/conversations/v1"

	"github.com/optinkit/optin/emulator"
)

// toServer sends every request to the test server, whichever Twilio host twilio-go addressed.
type toServer struct{ base *url.URL }

func (t toServer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = t.base.Scheme, t.base.Host, t.base.Host
	return http.DefaultTransport.RoundTrip(r)
}

// twilioGo is the real twilio-go request handler, pointed at srv.
func twilioGo(t *testing.T, srv *httptest.Server) *client.RequestHandler {
	t.Helper()
	base, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	tc := &client.Client{Credentials: client.NewCredentials(sid, token), HTTPClient: &http.Client{Transport: toServer{base}}}
	tc.SetAccountSid(sid)
	// A literal RequestHandler: NewRequestHandler would read TWILIO_EDGE and TWILIO_REGION from the environment.
	return &client.RequestHandler{Client: tc}
}

// twilio-go's UpdateIncomingPhoneNumber sets a number's voice and SMS URLs; a bad one changes nothing.
func TestIncomingPhoneNumberUpdateWithTwilioGo(t *testing.T) {
	emu, err := emulator.New(emulator.Options{AccountSid: sid, AuthToken: token,
		Numbers: []emulator.PhoneNumber{{Number: "+15550000001"}}})
	if err != nil {
		t.Fatal(err)
	}
	pn := emu.SetNumber(emulator.PhoneNumber{Number: "whatsapp:+15550000002", SMS: true, Voice: true})
	srv := httptest.NewServer(emu)
	defer srv.Close()
	v2010 := api.NewApiService(twilioGo(t, srv))

	p := &api.UpdateIncomingPhoneNumberParams{}
	p.SetVoiceUrl("https://optin.example.com/webhooks/voice").SetVoiceMethod("POST").
		SetVoiceFallbackUrl("https://optin.example.com/webhooks/voice-fallback").
		SetSmsUrl("https://optin.example.com/webhooks/messaging").SetSmsMethod("GET")
	got, err := v2010.UpdateIncomingPhoneNumber(pn, p)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Sid != pn || *got.PhoneNumber != "+15550000002" || *got.VoiceUrl != "https://optin.example.com/webhooks/voice" ||
		*got.VoiceMethod != "POST" || *got.SmsUrl != "https://optin.example.com/webhooks/messaging" || *got.SmsMethod != "GET" ||
		*got.VoiceFallbackUrl != "https://optin.example.com/webhooks/voice-fallback" {
		t.Errorf("updated number %+v", got)
	}
	want := []emulator.PhoneNumber{
		{Number: "+15550000001", SMS: true, Voice: true},
		{Number: "+15550000002", SMS: true, Voice: true, VoiceURL: "https://optin.example.com/webhooks/voice", VoiceMethod: "POST",
			VoiceFallbackURL: "https://optin.example.com/webhooks/voice-fallback",
			SMSURL:           "https://optin.example.com/webhooks/messaging", SMSMethod: "GET"},
	}
	if n := emu.Numbers(); !slices.EqualFunc(n, want, func(a, b emulator.PhoneNumber) bool { return a == b }) {
		t.Errorf("numbers\n got %+v\nwant %+v", n, want)
	}

	// The list finds it by its digits, with what was set.
	list, err := v2010.ListIncomingPhoneNumber(&api.ListIncomingPhoneNumberParams{PhoneNumber: ptr("5550000002")})
	if err != nil || len(list) != 1 || *list[0].VoiceUrl != "https://optin.example.com/webhooks/voice" {
		t.Errorf("list: %v %+v", err, list)
	}

	for _, bad := range []*api.UpdateIncomingPhoneNumberParams{
		(&api.UpdateIncomingPhoneNumberParams{}).SetVoiceUrl("not a url"),
		(&api.UpdateIncomingPhoneNumberParams{}).SetVoiceUrl("https://elsewhere.example.com/voice").SetVoiceMethod("PUT"),
	} {
		if _, err := v2010.UpdateIncomingPhoneNumber(pn, bad); err == nil {
			t.Errorf("update %+v: no error", bad)
		}
	}
	if _, err := v2010.UpdateIncomingPhoneNumber("PN00000000000000000000000000000099", p); err == nil {
		t.Error("an unknown number updated")
	}
	if n := emu.Numbers(); n[1] != want[1] {
		t.Errorf("a refused update changed the number: %+v", n[1])
	}
}

func ptr[T any](v T) *T { return &v }

// twilio-go's conversations client reads and changes the account's and the service's webhook
// configuration, in the shapes Twilio's spec gives.
func TestWebhookConfigurationWithTwilioGo(t *testing.T) {
	emu, err := emulator.New(emulator.Options{AccountSid: sid, AuthToken: token})
	if err != nil {
		t.Fatal(err)
	}
	sc := &specChecker{next: emu, checked: map[string]int{}}
	srv := httptest.NewServer(sc)
	defer srv.Close()
	sc.base = srv.URL
	sc.router = loadSpec(t, srv.URL)
	conv := conversations.NewApiService(twilioGo(t, srv))
	service := "IS" + sid[2:]

	acc, err := conv.UpdateConfigurationWebhook((&conversations.UpdateConfigurationWebhookParams{}).
		SetPreWebhookUrl("https://guard.example.com/pre").SetFilters([]string{"onMessageAdd"}).SetMethod("POST").SetTarget("webhook"))
	if err != nil {
		t.Fatal(err)
	}
	if *acc.PreWebhookUrl != "https://guard.example.com/pre" || !slices.Equal(*acc.Filters, []string{"onMessageAdd"}) || *acc.Target != "webhook" {
		t.Errorf("account configuration %+v", acc)
	}
	svc, err := conv.UpdateServiceWebhookConfiguration(service, (&conversations.UpdateServiceWebhookConfigurationParams{}).
		SetPreWebhookUrl("https://optin.example.com/webhooks/conversations").SetFilters([]string{"onMessageAdd", "onMessageAdded"}).SetMethod("GET"))
	if err != nil {
		t.Fatal(err)
	}
	if *svc.ChatServiceSid != service || *svc.Method != "GET" || svc.PostWebhookUrl != nil {
		t.Errorf("service configuration %+v", svc)
	}
	fetched, err := conv.FetchServiceWebhookConfiguration(service)
	if err != nil || *fetched.PreWebhookUrl != "https://optin.example.com/webhooks/conversations" || !slices.Equal(*fetched.Filters, []string{"onMessageAdd", "onMessageAdded"}) {
		t.Errorf("fetched %v %+v", err, fetched)
	}
	if _, err := conv.UpdateServiceWebhookConfiguration(service, (&conversations.UpdateServiceWebhookConfigurationParams{}).
		SetPreWebhookUrl("https://elsewhere.example.com/").SetFilters([]string{"onSomethingElse"})); err == nil {
		t.Error("an unknown filter was taken")
	}
	if _, err := conv.UpdateServiceWebhookConfiguration("IS00000000000000000000000000000000", nil); err == nil {
		t.Error("another service's configuration was changed")
	}
	gotSvc, gotAcc := emu.WebhookConfigurations()
	wantSvc := emulator.WebhookConfiguration{PreURL: "https://optin.example.com/webhooks/conversations", Method: "GET", Filters: []string{"onMessageAdd", "onMessageAdded"}}
	wantAcc := emulator.WebhookConfiguration{PreURL: "https://guard.example.com/pre", Method: "POST", Filters: []string{"onMessageAdd"}, Target: "webhook"}
	if gotSvc.PreURL != wantSvc.PreURL || gotSvc.Method != wantSvc.Method || !slices.Equal(gotSvc.Filters, wantSvc.Filters) || gotSvc.PostURL != "" ||
		gotAcc.PreURL != wantAcc.PreURL || gotAcc.Target != wantAcc.Target || !slices.Equal(gotAcc.Filters, wantAcc.Filters) {
		t.Errorf("configurations\n got %+v %+v\nwant %+v %+v", gotSvc, gotAcc, wantSvc, wantAcc)
	}
	for _, p := range sc.problems {
		t.Error(p)
	}
	for _, route := range []string{"POST /v1/Configuration/Webhooks", "POST /v1/Services/{ChatServiceSid}/Configuration/Webhooks", "GET /v1/Services/{ChatServiceSid}/Configuration/Webhooks"} {
		if sc.checked[route] < 1 {
			t.Errorf("%s not checked against the spec (checked: %v)", route, sc.checked)
		}
	}
}
