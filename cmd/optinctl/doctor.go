package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/optinkit/optin/internal/twilioapi"
	"github.com/optinkit/optin/internal/twiliocall"
)

// doctor checks, read-only, that the Twilio account the service's variables name is set up as they
// say: credentials, Conversation Service, WhatsApp senders, SMS numbers, templates. One line per
// check; an error when any failed. It reads the service's own variables (cmd/server/config.go).
func doctor(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("optinctl doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 30*time.Second, "how long all the checks may take")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: optinctl doctor [-timeout 30s]

Checks the Twilio account read-only against the service's variables: TWILIO_ACCOUNT_SID with
TWILIO_AUTH_TOKEN (or TWILIO_API_KEY and TWILIO_API_SECRET), OPTIN_CONVERSATIONS_SERVICE_SID,
OPTIN_WHATSAPP_NUMBER(S), OPTIN_SMS_NUMBERS, OPTIN_INVITE_CONTENT_SID, OPTIN_RIDER_OPTIN_CONTENT_SID,
OPTIN_NUDGE_CONTENT_SID, OPTIN_PUBLIC_URL (each pool number's voice URL, when set), OPTIN_GUARD
(Twilio sends onMessageAdd to the guard), and
OPTIN_TWILIO_API_URL, for an emulator. Prints OK, WARN
or FAIL per check; exits 1 when any failed. docs/TWILIO.md says what each means.
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("doctor takes no arguments, got %q", fs.Arg(0))
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	r := &report{w: stdout}
	tw, ok := r.client(getenv)
	if ok {
		d := checkup{r: r, tw: tw, getenv: getenv}
		if d.account(ctx) {
			if s, ok := d.service(ctx); ok {
				d.guardHook(s)
			}
			d.senders(ctx)
			d.numbers(ctx)
			d.voiceURLs(ctx)
			d.templates(ctx)
		}
	}
	fmt.Fprintf(stdout, "%d failed, %d warnings\n", r.fails, r.warns)
	if r.fails > 0 {
		return fmt.Errorf("%d checks failed", r.fails)
	}
	return nil
}

// report prints one line per check and counts them.
type report struct {
	w            io.Writer
	fails, warns int
}

func (r *report) line(status, check, format string, args ...any) {
	fmt.Fprintf(r.w, "%-4s  %s: %s\n", status, check, fmt.Sprintf(format, args...))
}
func (r *report) ok(check, format string, args ...any) { r.line("OK", check, format, args...) }
func (r *report) warn(check, format string, args ...any) {
	r.warns++
	r.line("WARN", check, format, args...)
}
func (r *report) fail(check, format string, args ...any) {
	r.fails++
	r.line("FAIL", check, format, args...)
}

// client builds the Twilio client from the service's variables; a FAIL line when they are missing or
// malformed.
func (r *report) client(getenv func(string) string) (*twilioapi.Client, bool) {
	account, user, pass := getenv("TWILIO_ACCOUNT_SID"), getenv("TWILIO_ACCOUNT_SID"), getenv("TWILIO_AUTH_TOKEN")
	if key := getenv("TWILIO_API_KEY"); key != "" {
		user, pass = key, getenv("TWILIO_API_SECRET")
	}
	if account == "" || pass == "" {
		r.fail("credentials", "set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or TWILIO_API_KEY and TWILIO_API_SECRET), as for the service")
		return nil, false
	}
	tw, err := twilioapi.New(twilioapi.Options{AccountSid: account, Username: user, Password: pass,
		BaseURL: getenv("OPTIN_TWILIO_API_URL"), ConversationsService: getenv("OPTIN_CONVERSATIONS_SERVICE_SID")})
	if err != nil {
		// twilioapi's errors say what is wrong, never a credential's value.
		r.fail("configuration", "%v: check TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN (or the API key), OPTIN_TWILIO_API_URL and OPTIN_CONVERSATIONS_SERVICE_SID", err)
		return nil, false
	}
	return tw, true
}

// checkup is one run of the checks.
type checkup struct {
	r      *report
	tw     *twilioapi.Client
	getenv func(string) string
}

// account fetches the account: the credentials work, and it may send. False stops the checkup.
func (d *checkup) account(ctx context.Context) bool {
	a, err := d.tw.FetchAccount(ctx)
	var ce *twiliocall.CallError
	switch {
	case errors.As(err, &ce) && (ce.Status == 401 || ce.Status == 403 || ce.NotFound()):
		d.r.fail("credentials", "Twilio refused them (HTTP %d, code %d): TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or the API key) must be the same account's, and current", ce.Status, ce.Code)
		return false
	case err != nil:
		d.r.fail("credentials", "Twilio could not be asked: %v", err)
		return false
	case a.Status != "active":
		d.r.fail("account", "%s %q is %s: no message goes out until Twilio reactivates it", a.Sid, a.FriendlyName, a.Status)
		return false
	}
	d.r.ok("credentials", "account %s %q, %s, %s", a.Sid, a.FriendlyName, a.Type, a.Status)
	return true
}

// service checks the Conversation Service the chats are made in, and the webhooks Twilio calls for
// every conversation of it.
func (d *checkup) service(ctx context.Context) (twilioapi.ConversationService, bool) {
	s, err := d.tw.FetchConversationService(ctx)
	if err != nil {
		if twiliocall.IsNotFound(err) && d.getenv("OPTIN_CONVERSATIONS_SERVICE_SID") != "" {
			d.r.fail("conversations service", "OPTIN_CONVERSATIONS_SERVICE_SID %s is no Conversation Service of this account: fix it, or unset it for the default service",
				d.getenv("OPTIN_CONVERSATIONS_SERVICE_SID"))
			return s, false
		}
		d.r.fail("conversations service", "could not read it: %v", err)
		return s, false
	}
	which := "the account's default"
	if !s.Default {
		which = "not the account's default (OPTIN_CONVERSATIONS_SERVICE_SID)"
	}
	d.r.ok("conversations service", "%s %q, %s", s.Sid, s.FriendlyName, which)
	for _, c := range []struct {
		level string
		cfg   twilioapi.WebhookConfiguration
	}{{"service", s.Service}, {"account", s.Account}} {
		check := c.level + " webhooks"
		switch {
		case c.cfg.PreURL == "" && c.cfg.PostURL == "":
			d.r.ok(check, "none (optin arms its own on each chat's conversation)")
			continue
		case d.ours(c.cfg.PostURL):
			d.r.warn(check, "the post-event webhook is optin's (%s): it takes each chat's own events; set here, every conversation's reach it — remove it in the Console (Conversations › Manage › Webhooks)",
				redact(c.cfg.PostURL))
			continue
		}
		switch {
		case d.ours(c.cfg.PreURL):
			d.r.ok(check, "pre-event webhook %s (%s, filters %s): optin's guard", redact(c.cfg.PreURL), c.cfg.Method, strings.Join(c.cfg.Filters, ","))
		case c.cfg.PreURL != "":
			d.r.warn(check, "pre-event webhook %s (%s, filters %s): it sees every message before Twilio publishes it and can change or reject it; it is not optin's",
				redact(c.cfg.PreURL), c.cfg.Method, strings.Join(c.cfg.Filters, ","))
		}
		if c.cfg.PostURL != "" {
			d.r.ok(check, "post-event webhook %s (%s, filters %s): not optin's; it changes nothing for chats", redact(c.cfg.PostURL), c.cfg.Method, strings.Join(c.cfg.Filters, ","))
		}
	}
	return s, true
}

// senders checks that every configured WhatsApp number is an online sender of the account.
func (d *checkup) senders(ctx context.Context) {
	pool := list(d.getenv("OPTIN_WHATSAPP_NUMBER") + "," + d.getenv("OPTIN_WHATSAPP_NUMBERS"))
	if len(pool) == 0 {
		d.r.warn("whatsapp senders", "none configured (OPTIN_WHATSAPP_NUMBERS): the chats API cannot start a chat")
		return
	}
	senders, err := d.tw.WhatsAppSenders(ctx)
	if err != nil {
		d.r.fail("whatsapp senders", "could not list them: %v", err)
		return
	}
	for _, address := range pool {
		check := "whatsapp sender " + address
		i := slices.IndexFunc(senders, func(s twilioapi.WhatsAppSender) bool { return s.Address == address })
		switch {
		case i < 0:
			d.r.fail(check, "not a WhatsApp sender of this account: register it (Console › Messaging › Senders › WhatsApp senders) or remove it from OPTIN_WHATSAPP_NUMBERS")
		case senders[i].Status == "ONLINE":
			d.r.ok(check, "%s ONLINE; its webhook: %s", senders[i].Sid, orNone(redact(senders[i].WebhookURL)))
		case strings.HasPrefix(senders[i].Status, "ONLINE"):
			d.r.warn(check, "%s %s: it sends, while Twilio applies a change", senders[i].Sid, senders[i].Status)
		default:
			d.r.fail(check, "%s %s: it cannot send until it is ONLINE (Console › Messaging › Senders)", senders[i].Sid, senders[i].Status)
		}
	}
}

// numbers checks that every configured SMS number is an SMS-capable number of the account, and
// says where what arrives on it outside a chat goes.
func (d *checkup) numbers(ctx context.Context) {
	pool := list(d.getenv("OPTIN_SMS_NUMBERS"))
	if len(pool) == 0 {
		d.r.ok("sms numbers", "none configured (OPTIN_SMS_NUMBERS): SMS parties are refused, and nobody is moved to SMS")
		return
	}
	for _, number := range pool {
		check := "sms number " + number
		n, found, err := d.tw.FindPhoneNumber(ctx, number)
		switch {
		case err != nil:
			d.r.fail(check, "could not look it up: %v", err)
			continue
		case !found:
			d.r.fail(check, "not a phone number of this account: a participant's proxy address must be one; buy or port it into this account, or remove it from OPTIN_SMS_NUMBERS")
			continue
		case !n.SMS:
			d.r.fail(check, "%s cannot send or receive SMS: use an SMS-capable number", n.Sid)
			continue
		}
		sms := orNone(n.SMSURL)
		if n.SMSURL != "" {
			sms = n.SMSMethod + " " + redact(n.SMSURL)
		}
		if n.SMSApplicationSid != "" {
			sms = "application " + n.SMSApplicationSid
		}
		voice := orNone(n.VoiceURL)
		switch {
		case n.TrunkSid != "":
			voice = "SIP trunk " + n.TrunkSid
		case n.VoiceApplicationSid != "":
			voice = "application " + n.VoiceApplicationSid
		case n.VoiceURL != "":
			voice = n.VoiceMethod + " " + redact(n.VoiceURL)
		}
		if d.ours(n.SMSURL) || d.ours(n.VoiceURL) {
			d.r.warn(check, "its incoming webhook is optin's /webhooks/conversations, which takes Conversations' events only: point it elsewhere, or clear it")
			continue
		}
		d.r.ok(check, "%s; incoming messages: %s; calls: %s", n.Sid, sms, voice)
	}
}

// templates checks each configured Content template: it exists, WhatsApp approved it, and its
// variables are those the service sets.
func (d *checkup) templates(ctx context.Context) {
	riderVars := []string{}
	if raw := d.getenv("OPTIN_RIDER_OPTIN_CONTENT_VARIABLES"); raw != "" {
		var obj map[string]any
		if json.Unmarshal([]byte(raw), &obj) != nil {
			d.r.fail("OPTIN_RIDER_OPTIN_CONTENT_VARIABLES", "not a JSON object")
		}
		for k := range obj {
			riderVars = append(riderVars, k)
		}
	}
	for _, t := range []struct {
		name, sid string
		vars      []string
		none      func()
	}{
		{"OPTIN_INVITE_CONTENT_SID", d.getenv("OPTIN_INVITE_CONTENT_SID"), []string{"1", "2"}, func() {
			d.r.warn("OPTIN_INVITE_CONTENT_SID", "no default invitation: every POST /v1/chats must carry its own invite")
		}},
		{"OPTIN_RIDER_OPTIN_CONTENT_SID", d.getenv("OPTIN_RIDER_OPTIN_CONTENT_SID"), riderVars, func() {
			d.r.warn("OPTIN_RIDER_OPTIN_CONTENT_SID", "the rider's opt-in goes as text (OPTIN_RIDER_OPTIN_MESSAGE): WhatsApp refuses it outside the rider's 24-hour window (63016)")
		}},
		{"OPTIN_NUDGE_CONTENT_SID", d.getenv("OPTIN_NUDGE_CONTENT_SID"), []string{"1"}, func() {
			d.r.ok("OPTIN_NUDGE_CONTENT_SID", "none: a held message waits for its party to write")
		}},
	} {
		if t.sid == "" {
			t.none()
			continue
		}
		d.template(ctx, t.name, t.sid, t.vars)
	}
}

func (d *checkup) template(ctx context.Context, name, sid string, sent []string) {
	check := name + " " + sid
	tmpl, err := d.tw.FetchTemplate(ctx, sid)
	switch {
	case twiliocall.IsNotFound(err):
		d.r.fail(check, "no such Content template in this account: create it (Console › Messaging › Content Template Builder) or fix the SID")
		return
	case err != nil:
		d.r.fail(check, "could not read it: %v", err)
		return
	}
	slices.Sort(sent)
	declared := slices.Clone(tmpl.Variables)
	slices.Sort(declared)
	vars := "variables " + strings.Join(tmpl.Variables, ",")
	if len(tmpl.Variables) == 0 {
		vars = "no variables"
	}
	label := fmt.Sprintf("%q (%s, %s)", tmpl.FriendlyName, tmpl.Language, vars)
	a := tmpl.Approval
	switch a.Status {
	case "approved":
	case "pending", "received":
		d.r.warn(check, "%s: WhatsApp has not approved it yet (%s): outside the 24-hour window it cannot be sent until it is", label, a.Status)
		return
	case "":
		d.r.fail(check, "%s: never submitted for WhatsApp approval: submit it in the Content Template Builder", label)
		return
	default:
		reason := ""
		if a.RejectionReason != "" {
			reason = " (" + a.RejectionReason + ")"
		}
		d.r.fail(check, "%s: WhatsApp approval %s%s: it cannot be sent outside the 24-hour window; fix and submit it again, or configure another", label, a.Status, reason)
		return
	}
	if !slices.Equal(declared, sent) {
		d.r.warn(check, "%s, approved (%s): optin sends variables %s: Twilio refuses a message whose variables do not match the template's (63028)", label, a.Category, orNone(strings.Join(sent, ",")))
		return
	}
	d.r.ok(check, "%s, approved for WhatsApp (%s)", label, a.Category)
}

// ours reports whether raw is the service's own webhook, on whatever host.
func (d *checkup) ours(raw string) bool {
	u, err := url.Parse(raw)
	return raw != "" && err == nil && strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), "/webhooks/conversations")
}

// list splits a comma-separated list, without blanks and repeats.
func list(s string) []string {
	var out []string
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// redact hides the user and password a webhook URL may carry.
func redact(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(a URL that does not parse)"
	}
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	return u.String()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
