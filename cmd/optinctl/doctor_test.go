package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/optinkit/optin/emulator"
)

const (
	inviteSid = "HX0000000000000000000000000000a001"
	riderSid  = "HX0000000000000000000000000000a002"
	nudgeSid  = "HX0000000000000000000000000000a003"
	// The emulator's one Conversation Service.
	serviceSid = "IS00000000000000000000000000000001"
)

// calls records each request a handler receives, as "METHOD path?query".
type calls struct {
	next http.Handler
	mu   sync.Mutex
	seen []string
}

func (c *calls) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	line := r.Method + " " + r.URL.Path
	if r.URL.RawQuery != "" {
		line += "?" + r.URL.RawQuery
	}
	c.seen = append(c.seen, line)
	c.mu.Unlock()
	c.next.ServeHTTP(w, r)
}

func (c *calls) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.seen
	c.seen = nil
	return out
}

// account is an emulated Twilio account over HTTP, as optinctl doctor reads it.
func account(t *testing.T, a emulator.Account, contents map[string]string) (string, *calls) {
	t.Helper()
	emu, err := emulator.New(emulator.Options{AccountSid: accountSid, AuthToken: authToken, Contents: contents})
	if err != nil {
		t.Fatal(err)
	}
	rec := &calls{next: emu.WithAccount(a)}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return srv.URL, rec
}

func runDoctor(t *testing.T, env map[string]string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := doctor(t.Context(), nil, func(k string) string { return env[k] }, &out, io.Discard)
	if strings.Contains(out.String(), authToken) {
		t.Errorf("the auth token is in the output:\n%s", out.String())
	}
	return out.String(), err
}

var templates = map[string]string{
	inviteSid: "Hello {{1}}, your food delivery is almost there but {{2}} (your rider) needs help finding your door. Are you willing to chat with them?",
	riderSid:  "Your customer has agreed to chat to get this delivery sorted. You're now connected. Say hello!",
	nudgeSid:  "{{1}} has written to you about your delivery. Reply to read it.",
}

func healthyEnv(api string) map[string]string {
	return map[string]string{
		"TWILIO_ACCOUNT_SID": accountSid, "TWILIO_AUTH_TOKEN": authToken, "OPTIN_TWILIO_API_URL": api,
		"OPTIN_WHATSAPP_NUMBERS": "whatsapp:+15550100000,whatsapp:+15550100001", "OPTIN_SMS_NUMBERS": "+15550200000",
		"OPTIN_INVITE_CONTENT_SID": inviteSid, "OPTIN_RIDER_OPTIN_CONTENT_SID": riderSid, "OPTIN_NUDGE_CONTENT_SID": nudgeSid,
	}
}

var healthy = emulator.Account{
	FriendlyName: "Deliveries",
	Senders: []emulator.Sender{{Address: "whatsapp:+15550100000", WebhookURL: "https://platform.example.com/whatsapp"},
		{Address: "whatsapp:+15550100001"}},
	Numbers:         []emulator.PhoneNumber{{Number: "+15550200000", SMS: true, Voice: true, SMSURL: "https://platform.example.com/sms"}},
	ServiceWebhooks: emulator.WebhookConfiguration{PreURL: "https://optin.example.com/webhooks/conversations", Method: "POST", Filters: []string{"onMessageAdd"}},
}

// A healthy account: every check OK, each read made once, exactly these REST calls.
func TestDoctorHealthyAccount(t *testing.T) {
	api, rec := account(t, healthy, templates)
	out, err := runDoctor(t, healthyEnv(api))
	if err != nil {
		t.Fatalf("doctor failed: %v\n%s", err, out)
	}
	want := `OK    credentials: account ` + accountSid + ` "Deliveries", Full, active
OK    conversations service: ` + serviceSid + ` "Default Conversations Service", the account's default
OK    service webhooks: pre-event webhook https://optin.example.com/webhooks/conversations (POST, filters onMessageAdd): optin's guard
OK    account webhooks: none (optin arms its own on each chat's conversation)
OK    guard hook: the service-level configuration sends onMessageAdd to https://optin.example.com/webhooks/conversations (OPTIN_GUARD=redact)
OK    whatsapp sender whatsapp:+15550100000: XE00000000000000000000000000000001 ONLINE; its webhook: https://platform.example.com/whatsapp
OK    whatsapp sender whatsapp:+15550100001: XE00000000000000000000000000000002 ONLINE; its webhook: none
OK    sms number +15550200000: PN00000000000000000000000000000001; incoming messages: POST https://platform.example.com/sms; calls: none
OK    OPTIN_INVITE_CONTENT_SID ` + inviteSid + `: "template_00a001" (en, variables 1,2), approved for WhatsApp (UTILITY)
OK    OPTIN_RIDER_OPTIN_CONTENT_SID ` + riderSid + `: "template_00a002" (en, no variables), approved for WhatsApp (UTILITY)
OK    OPTIN_NUDGE_CONTENT_SID ` + nudgeSid + `: "template_00a003" (en, variables 1), approved for WhatsApp (UTILITY)
0 failed, 0 warnings
`
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
	wantCalls := []string{
		"GET /2010-04-01/Accounts/" + accountSid + ".json",
		"GET /v1/Configuration",
		"GET /v1/Services/" + serviceSid,
		"GET /v1/Services/" + serviceSid + "/Configuration/Webhooks",
		"GET /v1/Configuration/Webhooks",
		"GET /v2/Channels/Senders?Channel=whatsapp&PageSize=20",
		"GET /2010-04-01/Accounts/" + accountSid + "/IncomingPhoneNumbers.json?PageSize=20&PhoneNumber=%2B15550200000",
		"GET /v1/Content/" + inviteSid, "GET /v1/Content/" + inviteSid + "/ApprovalRequests",
		"GET /v1/Content/" + riderSid, "GET /v1/Content/" + riderSid + "/ApprovalRequests",
		"GET /v1/Content/" + nudgeSid, "GET /v1/Content/" + nudgeSid + "/ApprovalRequests",
	}
	if got := rec.take(); !slices.Equal(got, wantCalls) {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantCalls, "\n"))
	}
}

// Each way an account can be wrong is one FAIL or WARN line that says what to do, and a FAIL is an error.
func TestDoctorFindsProblems(t *testing.T) {
	const unknownSid = "HX0000000000000000000000000000dead"
	a := emulator.Account{
		Senders: []emulator.Sender{{Address: "whatsapp:+15550100000", Status: "OFFLINE"}},
		Numbers: []emulator.PhoneNumber{
			{Number: "+15550200000", Voice: true},
			{Number: "+15550200001", SMS: true, SMSURL: "https://user:secret@optin.example.com/webhooks/conversations"},
		},
		Approvals:       map[string]emulator.Approval{inviteSid: {Status: "rejected", RejectionReason: "INVALID_FORMAT"}, riderSid: {Status: "pending"}},
		ServiceWebhooks: emulator.WebhookConfiguration{PreURL: "https://guard.example.com/pre", Method: "POST", Filters: []string{"onMessageAdd"}},
	}
	api, _ := account(t, a, map[string]string{inviteSid: templates[inviteSid], riderSid: templates[riderSid], nudgeSid: "Hi {{1}}, {{2}} wrote"})
	env := healthyEnv(api)
	env["OPTIN_WHATSAPP_NUMBERS"] = "whatsapp:+15550100000,whatsapp:+15550100009"
	env["OPTIN_SMS_NUMBERS"] = "+15550200000,+15550200001,+15550200009"
	out, err := runDoctor(t, env)
	if err == nil || err.Error() != "5 checks failed" {
		t.Errorf("err = %v, want 5 checks failed", err)
	}
	for _, want := range []string{
		"WARN  service webhooks: pre-event webhook https://guard.example.com/pre (POST, filters onMessageAdd): it sees every message before Twilio publishes it",
		"WARN  guard hook: the service-level pre-event webhook is https://guard.example.com/pre, not optin's guard: typed contact data is published as written; optinctl guard hook will not replace it",
		"FAIL  whatsapp sender whatsapp:+15550100000: XE00000000000000000000000000000001 OFFLINE: it cannot send until it is ONLINE",
		"FAIL  whatsapp sender whatsapp:+15550100009: not a WhatsApp sender of this account: register it",
		"FAIL  sms number +15550200000: PN00000000000000000000000000000001 cannot send or receive SMS",
		"WARN  sms number +15550200001: its incoming webhook is optin's /webhooks/conversations",
		"FAIL  sms number +15550200009: not a phone number of this account",
		`FAIL  OPTIN_INVITE_CONTENT_SID ` + inviteSid + `: "template_00a001" (en, variables 1,2): WhatsApp approval rejected (INVALID_FORMAT)`,
		`WARN  OPTIN_RIDER_OPTIN_CONTENT_SID ` + riderSid + `: "template_00a002" (en, no variables): WhatsApp has not approved it yet (pending)`,
		`WARN  OPTIN_NUDGE_CONTENT_SID ` + nudgeSid + `: "template_00a003" (en, variables 1,2), approved (UTILITY): optin sends variables 1`,
		"5 failed, 5 warnings\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret") {
		t.Errorf("a webhook's password is in the output:\n%s", out)
	}

	env["OPTIN_NUDGE_CONTENT_SID"] = unknownSid
	env["OPTIN_CONVERSATIONS_SERVICE_SID"] = "IS0000000000000000000000000000beef"
	out, _ = runDoctor(t, env)
	for _, want := range []string{
		"FAIL  conversations service: OPTIN_CONVERSATIONS_SERVICE_SID IS0000000000000000000000000000beef is no Conversation Service of this account",
		"FAIL  OPTIN_NUDGE_CONTENT_SID " + unknownSid + ": no such Content template in this account",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// Refused credentials stop the checks after one call; missing ones before any.
func TestDoctorCredentials(t *testing.T) {
	api, rec := account(t, healthy, templates)
	env := healthyEnv(api)
	env["TWILIO_AUTH_TOKEN"] = "wrong0000000000000000000000000000"
	out, err := runDoctor(t, env)
	want := "FAIL  credentials: Twilio refused them (HTTP 401, code 20003): TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or the API key) must be the same account's, and current\n1 failed, 0 warnings\n"
	if err == nil || out != want {
		t.Errorf("err = %v, output:\n%s\nwant:\n%s", err, out, want)
	}
	if got := rec.take(); len(got) != 1 {
		t.Errorf("calls after a refusal: %q", got)
	}
	if strings.Contains(out, env["TWILIO_AUTH_TOKEN"]) {
		t.Error("the wrong token is in the output")
	}
	delete(env, "TWILIO_AUTH_TOKEN")
	out, err = runDoctor(t, env)
	if err == nil || !strings.HasPrefix(out, "FAIL  credentials: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN") || len(rec.take()) != 0 {
		t.Errorf("without a token: err = %v, output:\n%s", err, out)
	}
	env["TWILIO_AUTH_TOKEN"], env["OPTIN_CONVERSATIONS_SERVICE_SID"] = authToken, "MG00000000000000000000000000000001"
	out, err = runDoctor(t, env)
	if err == nil || !strings.HasPrefix(out, "FAIL  configuration: conversations service must be IS followed by 32 hexadecimal digits") || len(rec.take()) != 0 {
		t.Errorf("a Messaging Service SID for the Conversation Service: err = %v, output:\n%s", err, out)
	}
	delete(env, "OPTIN_CONVERSATIONS_SERVICE_SID")
	delete(env, "TWILIO_AUTH_TOKEN")
	// An API key authenticates instead of the token.
	env["TWILIO_API_KEY"], env["TWILIO_API_SECRET"] = "SK00000000000000000000000000000001", "secret1"
	if out, err := runDoctor(t, env); err == nil || !strings.Contains(out, "Twilio refused them (HTTP 401") {
		t.Errorf("an API key the account does not have: err = %v, output:\n%s", err, out)
	}
}

// optinctl doctor, as an operator types it, reads the environment and exits non-zero on a FAIL.
func TestDoctorCommand(t *testing.T) {
	api, _ := account(t, healthy, templates)
	for k, v := range healthyEnv(api) {
		t.Setenv(k, v)
	}
	t.Setenv("OPTIN_SMS_NUMBERS", "+15550200009")
	var out bytes.Buffer
	err := run(t.Context(), []string{"optinctl", "doctor"}, func(string) string { return "" }, strings.NewReader(""), &out, io.Discard)
	if err == nil || !strings.Contains(out.String(), "FAIL  sms number +15550200009: not a phone number of this account") {
		t.Errorf("err = %v, output:\n%s", err, out.String())
	}
}
