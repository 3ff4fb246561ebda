package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/optinkit/optin/internal/guard"
	"github.com/optinkit/optin/internal/twilioapi"
)

// The guard's hook: Twilio asks optin about each message of a phone before publishing it only when
// the chats' Conversation Service's webhook configuration (or the account's) sends onMessageAdd to
// optin's /webhooks/conversations. doctor says whether it does; "guard hook" sets it, when asked.

// guardHook checks, read-only, whether Twilio sends onMessageAdd to the guard: one line.
func (d *checkup) guardHook(s twilioapi.ConversationService) {
	const check = "guard hook"
	mode, err := guard.ParseMode(d.getenv("OPTIN_GUARD"))
	switch {
	case err != nil:
		d.r.fail(check, "OPTIN_GUARD: %v", err)
		return
	case mode == guard.Off:
		d.r.ok(check, "OPTIN_GUARD is off: typed contact data is published as written")
		return
	}
	level, cfg := s.Effective()
	want := d.guardURL()
	pointsHere := d.ours(cfg.PreURL) && (want == "" || cfg.PreURL == want)
	switch {
	case pointsHere && slices.Contains(cfg.Filters, twilioapi.GuardEvent):
		d.r.ok(check, "the %s-level configuration sends onMessageAdd to %s (OPTIN_GUARD=%s)", level, redact(cfg.PreURL), mode)
	case cfg.PreURL != "" && !pointsHere:
		d.r.warn(check, "the %s-level pre-event webhook is %s, not optin's guard: typed contact data is published as written; optinctl guard hook will not replace it — decide which one Twilio calls (docs/TWILIO.md)",
			level, redact(cfg.PreURL))
	default:
		d.r.warn(check, "Twilio does not send onMessageAdd to the guard (%s level: pre-event %s, filters %s): typed contact data is published as written; set it: optinctl guard hook (docs/TWILIO.md)",
			level, orNone(redact(cfg.PreURL)), orNone(strings.Join(cfg.Filters, ",")))
	}
}

// guardURL is the guard's URL by OPTIN_PUBLIC_URL; "" without it.
func (d *checkup) guardURL() string {
	if public := strings.TrimSuffix(d.getenv("OPTIN_PUBLIC_URL"), "/"); public != "" {
		return public + "/webhooks/conversations"
	}
	return ""
}

// guardCommand is "optinctl guard hook": it points the chats' service's onMessageAdd pre-event at
// the guard, keeping every filter there, and refuses to replace another's pre-event URL.
func guardCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("optinctl guard hook", flag.ContinueOnError)
	fs.SetOutput(stderr)
	public := fs.String("url", getenv("OPTIN_PUBLIC_URL"), "the service's public base URL (default OPTIN_PUBLIC_URL)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long the calls may take")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: optinctl guard hook [-url https://optin.example.com] [-timeout 30s]

Makes Twilio send each message of a phone to the service's guard before publishing it: sets the
pre-event webhook URL of the chats' Conversation Service (OPTIN_CONVERSATIONS_SERVICE_SID, else the
account's default; the account-level configuration when only it has URLs) to URL/webhooks/conversations
and adds onMessageAdd to its filters, keeping every filter and the method already there. It refuses,
changing nothing, when the pre-event URL is another's. Credentials as for doctor.
`)
		fs.PrintDefaults()
	}
	if len(args) == 0 || args[0] != "hook" {
		fs.Usage()
		return errors.New(`guard needs a subcommand: optinctl guard hook`)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("guard hook takes no arguments, got %q", fs.Arg(0))
	}
	u, err := url.Parse(*public)
	if *public == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return errors.New("guard hook needs the service's public base URL: -url or OPTIN_PUBLIC_URL, http(s)://host[/prefix]")
	}
	r := &report{w: io.Discard}
	tw, ok := r.client(getenv)
	if !ok {
		return errors.New("set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or TWILIO_API_KEY and TWILIO_API_SECRET), as for the service; OPTIN_CONVERSATIONS_SERVICE_SID and OPTIN_TWILIO_API_URL must be valid")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	hook := strings.TrimSuffix(*public, "/") + "/webhooks/conversations"
	ch, err := tw.SetGuardHook(ctx, hook)
	if err != nil {
		return fmt.Errorf("guard hook: %w", err)
	}
	if !ch.Changed {
		fmt.Fprintf(stdout, "unchanged: the %s-level webhook configuration of %s already sends onMessageAdd to %s\n", ch.Level, ch.ServiceSid, redact(hook))
		return nil
	}
	fmt.Fprintf(stdout, "set: the %s-level webhook configuration of %s sends onMessageAdd (%s) to %s\n", ch.Level, ch.ServiceSid, ch.After.Method, redact(ch.After.PreURL))
	fmt.Fprintf(stdout, "filters: %s (before: %s); post-event webhook unchanged: %s\n", strings.Join(ch.After.Filters, ","),
		orNone(strings.Join(ch.Before.Filters, ",")), orNone(redact(ch.After.PostURL)))
	return nil
}
