package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/optinkit/optin/emulator"
)

// With OPTIN_PUBLIC_URL set, each pool number's voice URL is checked against the service's, read-only:
// a WARN says how to set it, and nothing is written.
func TestDoctorChecksVoiceURLs(t *testing.T) {
	a := healthy
	a.Numbers = []emulator.PhoneNumber{
		{Number: "+15550100000", SMS: true, Voice: true, VoiceURL: "https://optin.example.com/webhooks/voice", VoiceMethod: "POST"},
		{Number: "+15550100001", SMS: true, Voice: true, VoiceURL: "https://pbx.example.com/answer", VoiceMethod: "GET"},
		{Number: "+15550200000", SMS: true, Voice: false},
	}
	api, rec := account(t, a, templates)
	env := healthyEnv(api)
	env["OPTIN_PUBLIC_URL"] = "https://optin.example.com/"
	env["OPTIN_SMS_NUMBERS"] = "+15550200000,+15550200009"
	out, _ := runDoctor(t, env)
	for _, want := range []string{
		"OK    calls to +15550100000: PN00000000000000000000000000000001: POST https://optin.example.com/webhooks/voice (masked calls)\n",
		"WARN  calls to +15550100001: PN00000000000000000000000000000002's voice URL is GET https://pbx.example.com/answer, not optin's: calls to it are not masked; set it: twilio api:core:incoming-phone-numbers:update --sid PN00000000000000000000000000000002 --voice-url https://optin.example.com/webhooks/voice --voice-method POST\n",
		"WARN  calls to +15550200000: PN00000000000000000000000000000003 cannot take calls",
		"WARN  calls to +15550200009: not a phone number of this account",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, c := range rec.take() {
		if !strings.HasPrefix(c, "GET ") {
			t.Errorf("doctor wrote: %s", c)
		}
	}
	// Without OPTIN_PUBLIC_URL nothing is said of calls.
	delete(env, "OPTIN_PUBLIC_URL")
	out, _ = runDoctor(t, env)
	if strings.Contains(out, "calls to") {
		t.Errorf("voice URLs checked without OPTIN_PUBLIC_URL:\n%s", out)
	}
	if got := rec.take(); slices.ContainsFunc(got, func(c string) bool { return strings.Contains(c, "PhoneNumber=%2B15550100000") }) {
		t.Errorf("a WhatsApp number looked up without OPTIN_PUBLIC_URL: %v", got)
	}
}

// Behind a proxy with basic auth, a voice URL with another password than OPTIN_PUBLIC_URL's is not
// optin's as far as Twilio's calls go (the proxy refuses them), though the two print the same.
func TestDoctorVoiceURLPassword(t *testing.T) {
	a := healthy
	a.Numbers = []emulator.PhoneNumber{
		{Number: "+15550100000", SMS: true, Voice: true, VoiceURL: "https://proxyuser:current@optin.example.com/webhooks/voice", VoiceMethod: "POST"},
		{Number: "+15550100001", SMS: true, Voice: true, VoiceURL: "https://proxyuser:rotated-away@optin.example.com/webhooks/voice", VoiceMethod: "POST"},
	}
	api, _ := account(t, a, templates)
	env := healthyEnv(api)
	env["OPTIN_PUBLIC_URL"] = "https://proxyuser:current@optin.example.com"
	out, _ := runDoctor(t, env)
	for _, want := range []string{
		"OK    calls to +15550100000: PN00000000000000000000000000000001: POST https://xxxxx@optin.example.com/webhooks/voice (masked calls)\n",
		"WARN  calls to +15550100001: PN00000000000000000000000000000002's voice URL is POST https://xxxxx@optin.example.com/webhooks/voice, not optin's",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "current") || strings.Contains(out, "rotated-away") {
		t.Errorf("a password in the output:\n%s", out)
	}
}
