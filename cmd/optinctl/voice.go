package main

import (
	"context"
	"net/url"
	"slices"
	"strings"
)

// voiceURLs checks, when OPTIN_PUBLIC_URL is set, that each pool number — the WhatsApp senders' numbers
// and the SMS numbers — sends its calls to the service's /webhooks/voice, so that a party calling the
// number they know their chat by reaches the other party. Read-only: it says how to set the URL.
func (d *checkup) voiceURLs(ctx context.Context) {
	public := strings.TrimSuffix(d.getenv("OPTIN_PUBLIC_URL"), "/")
	if public == "" {
		return
	}
	target := public + "/webhooks/voice"
	want := redact(target)
	var pool []string
	for _, n := range list(d.getenv("OPTIN_WHATSAPP_NUMBER") + "," + d.getenv("OPTIN_WHATSAPP_NUMBERS") + "," + d.getenv("OPTIN_SMS_NUMBERS")) {
		if n = strings.TrimPrefix(n, "whatsapp:"); !slices.Contains(pool, n) {
			pool = append(pool, n)
		}
	}
	for _, number := range pool {
		check := "calls to " + number
		n, found, err := d.tw.FindPhoneNumber(ctx, number)
		switch {
		case err != nil:
			d.r.fail(check, "could not look it up: %v", err)
		case !found:
			d.r.warn(check, "not a phone number of this account: its calls never reach optin, and the chats on it have no masked calls")
		case !n.Voice:
			d.r.warn(check, "%s cannot take calls: the chats on it have no masked calls", n.Sid)
		case n.TrunkSid != "" || n.VoiceApplicationSid != "":
			d.r.warn(check, "%s sends its calls to %s, not optin: set its voice URL to %s (docs/TWILIO.md)", n.Sid, orNone(n.TrunkSid+n.VoiceApplicationSid), want)
		case !sameURL(n.VoiceURL, target) || (n.VoiceMethod != "" && n.VoiceMethod != "POST"):
			d.r.warn(check, "%s's voice URL is %s, not optin's: calls to it are not masked; set it: twilio api:core:incoming-phone-numbers:update --sid %s --voice-url %s --voice-method POST",
				n.Sid, orNone(strings.TrimSpace(n.VoiceMethod+" "+redact(n.VoiceURL))), n.Sid, want)
		default:
			d.r.ok(check, "%s: POST %s (masked calls)", n.Sid, want)
		}
	}
}

// sameURL compares two URLs as parsed, a user and password in them included: a voice URL whose
// password is not the proxy's would have Twilio's requests refused (401), though both print the same
// once redacted.
func sameURL(a, b string) bool {
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	return errA == nil && errB == nil && ua.String() == ub.String()
}
