package main

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/optinkit/optin/emulator"
)

// doctor's guard line: no hook, the account-level hook, OPTIN_GUARD off.
func TestDoctorGuardHook(t *testing.T) {
	for _, tt := range []struct {
		name string
		a    emulator.Account
		env  map[string]string
		want string
	}{
		{"none", emulator.Account{}, nil,
			"WARN  guard hook: Twilio does not send onMessageAdd to the guard (account level: pre-event none, filters none): typed contact data is published as written; set it: optinctl guard hook (docs/TWILIO.md)"},
		{"the account's, with the public URL", emulator.Account{AccountWebhooks: emulator.WebhookConfiguration{PreURL: "https://optin.example.com/webhooks/conversations",
			PostURL: "https://crm.example.com/post", Method: "POST", Filters: []string{"onMessageAdded", "onMessageAdd"}}},
			map[string]string{"OPTIN_PUBLIC_URL": "https://optin.example.com/"},
			"OK    guard hook: the account-level configuration sends onMessageAdd to https://optin.example.com/webhooks/conversations (OPTIN_GUARD=redact)"},
		{"another host than the public URL", emulator.Account{ServiceWebhooks: emulator.WebhookConfiguration{PreURL: "https://old.example.com/webhooks/conversations",
			Filters: []string{"onMessageAdd"}}}, map[string]string{"OPTIN_PUBLIC_URL": "https://optin.example.com"},
			"WARN  guard hook: the service-level pre-event webhook is https://old.example.com/webhooks/conversations, not optin's guard"},
		{"without onMessageAdd", emulator.Account{ServiceWebhooks: emulator.WebhookConfiguration{PreURL: "https://optin.example.com/webhooks/conversations",
			Method: "POST", Filters: []string{"onMessageUpdate"}}}, nil,
			"WARN  guard hook: Twilio does not send onMessageAdd to the guard (service level: pre-event https://optin.example.com/webhooks/conversations, filters onMessageUpdate)"},
		{"off", emulator.Account{}, map[string]string{"OPTIN_GUARD": "off"}, "OK    guard hook: OPTIN_GUARD is off: typed contact data is published as written"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			api, _ := account(t, tt.a, templates)
			env := healthyEnv(api)
			for k, v := range tt.env {
				env[k] = v
			}
			out, _ := runDoctor(t, env)
			if !strings.Contains(out, tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, out)
			}
		})
	}
}

func runGuard(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := guardCommand(t.Context(), args, func(k string) string { return env[k] }, &out, io.Discard)
	return out.String(), err
}

// optinctl guard hook sets the service's pre-event URL with onMessageAdd among the filters kept, says
// so, writes nothing the second time, and refuses another's URL.
func TestGuardHookCommand(t *testing.T) {
	a := emulator.Account{ServiceWebhooks: emulator.WebhookConfiguration{PostURL: "https://crm.example.com/post", Method: "GET", Filters: []string{"onMessageAdded"}}}
	api, rec := account(t, a, templates)
	env := healthyEnv(api)
	env["OPTIN_PUBLIC_URL"] = "https://optin.example.com"
	out, err := runGuard(t, env, "hook")
	want := "set: the service-level webhook configuration of " + serviceSid + " sends onMessageAdd (GET) to https://optin.example.com/webhooks/conversations\n" +
		"filters: onMessageAdded,onMessageAdd (before: onMessageAdded); post-event webhook unchanged: https://crm.example.com/post\n"
	if err != nil || out != want {
		t.Fatalf("err %v, output:\n%s\nwant:\n%s", err, out, want)
	}
	reads := []string{"GET /v1/Configuration", "GET /v1/Services/" + serviceSid, "GET /v1/Services/" + serviceSid + "/Configuration/Webhooks", "GET /v1/Configuration/Webhooks"}
	if got := rec.take(); !slices.Equal(got, append(slices.Clone(reads), "POST /v1/Services/"+serviceSid+"/Configuration/Webhooks")) {
		t.Errorf("calls %v", got)
	}
	out, err = runGuard(t, env, "hook", "-url", "https://optin.example.com/")
	if err != nil || out != "unchanged: the service-level webhook configuration of "+serviceSid+" already sends onMessageAdd to https://optin.example.com/webhooks/conversations\n" {
		t.Errorf("again: %v %s", err, out)
	}
	if got := rec.take(); !slices.Equal(got, reads) {
		t.Errorf("calls the second time %v", got)
	}
	out, err = runGuard(t, env, "hook", "-url", "https://new.example.com")
	if err == nil || !strings.Contains(err.Error(), "the service-level pre-event webhook is https://optin.example.com/webhooks/conversations, not optin's: optin does not replace it") || out != "" {
		t.Errorf("another's: %v %q", err, out)
	}
	if got := rec.take(); !slices.Equal(got, reads) {
		t.Errorf("calls when refused %v", got)
	}
	delete(env, "OPTIN_PUBLIC_URL")
	if _, err := runGuard(t, env, "hook"); err == nil || !strings.Contains(err.Error(), "OPTIN_PUBLIC_URL") {
		t.Errorf("without a URL: %v", err)
	}
	if _, err := runGuard(t, env); err == nil || !strings.Contains(err.Error(), "optinctl guard hook") {
		t.Errorf("without the subcommand: %v", err)
	}
	if len(rec.take()) != 0 {
		t.Error("a refused command called Twilio")
	}
}
