package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/optinkit/optin/emulator"
)

// The demo's cast: fictional numbers and the guide's two templates, registered in the emulator.
const (
	demoBusiness  = "whatsapp:+15550100000"
	demoCustomer  = "whatsapp:+15550100001"
	demoRider     = "whatsapp:+15550100002"
	demoTemplate1 = "HX0000000000000000000000000000d001"
	demoTemplate2 = "HX0000000000000000000000000000d002"
	demoInvite    = "Hello {{1}}, your food delivery is almost there but {{2}} (your rider) needs help finding your door. Are you willing to chat with them?"
)

// demo is the embedded default: an in-process emulator stands in for Twilio, so nothing leaves the machine.
type demo struct {
	emu        *emulator.Emulator
	api        *emulator.Client
	srv        *http.Server
	url        string
	sid, token string
}

// startDemo starts the emulator on a loopback port with generated credentials.
func startDemo(riderText string) (*demo, error) {
	d := &demo{}
	d.sid, d.token = emulator.NewCredentials()
	emu, err := emulator.New(emulator.Options{
		AccountSid: d.sid,
		AuthToken:  d.token,
		Contents:   map[string]string{demoTemplate1: demoInvite, demoTemplate2: riderText},
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo emulator: %w", err)
	}
	d.emu, d.url = emu, "http://"+ln.Addr().String()
	d.api = emulator.NewClient(d.url, d.sid, d.token)
	d.srv = &http.Server{Handler: emu, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = d.srv.Serve(ln) }()
	return d, nil
}

// configure points the service at the emulator, whatever the environment says: the emulator calls the
// service directly, so no public URL or proxy header stands between them. The rider's opt-in goes as a
// Content template, as it must on real WhatsApp, unless one was configured.
func (d *demo) configure(c *config) {
	c.AccountSid, c.AuthToken, c.AuthTokenSecondary, c.APIKey, c.APISecret = d.sid, d.token, "", "", ""
	c.TwilioAPIURL = d.url
	c.PublicURL, c.TrustProxy = "", false
	if c.RiderContentSid == "" {
		c.RiderContentSid, c.RiderContentVar = demoTemplate2, ""
	}
	if c.Addr == ":8080" {
		c.Addr = "127.0.0.1:8080"
	}
	c.Demo = true
	// stdout tells the story; the log goes to stderr, readable.
	c.LogFormat = "console"
}

func (d *demo) close(ctx context.Context) {
	_ = d.srv.Shutdown(ctx)
	_ = d.emu.Close(ctx)
}

// play runs the guide's story against the service at serviceURL and prints what each phone saw.
func (d *demo) play(ctx context.Context, serviceURL string, out io.Writer) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	say("\noptin demo — nothing leaves this machine: Twilio is an emulator at %s with generated credentials.", d.url)
	say("The service is at %s.\n", serviceURL)

	conv, err := d.api.CreateConversation(ctx, url.Values{"FriendlyName": {"Order 1042"}})
	if err != nil {
		return err
	}
	say("1. Conversation %s created.", conv)
	for _, who := range []string{demoCustomer, demoRider} {
		if _, err := d.api.AddParticipant(ctx, conv, who, demoBusiness); err != nil {
			return err
		}
	}
	say("2. Customer %s and rider %s added on business number %s.", demoCustomer, demoRider, demoBusiness)
	if _, err := d.api.SendMessage(ctx, conv, url.Values{
		"Author": {demoRider}, "ContentSid": {demoTemplate1}, "ContentVariables": {`{"1":"Ana","2":"Bruno"}`}}); err != nil {
		return err
	}
	say("3. Template 1 sent to the customer, authored by the rider.")
	if _, err := d.api.AddWebhook(ctx, conv, serviceURL+"/webhooks/conversations", "get", "onMessageAdded"); err != nil {
		return err
	}
	say("4. Scoped webhook armed at %s/webhooks/conversations (GET, onMessageAdded).", serviceURL)
	if _, err := d.api.Inbound(ctx, demoCustomer, demoBusiness, "Yes"); err != nil {
		return err
	}
	say("5. The customer replies \"Yes\" — the emulator calls the service's webhook, signed.")

	if err := d.waitForOptIn(ctx, conv); err != nil {
		return err
	}
	hooks, err := d.api.Webhooks(ctx, conv)
	if err != nil {
		return err
	}
	say("6. The service sent the wait message and the rider's template, and removed the scoped webhooks (%d left).\n", len(hooks))
	printSideBySide(out, "Customer "+demoCustomer, d.emu.Transcript(demoCustomer), "Rider "+demoRider, d.emu.Transcript(demoRider))
	say("\n✗ marks a message WhatsApp would not deliver: free-form text to someone outside their 24-hour window (63016).")
	say("\nStill serving until Ctrl-C. Play further — the rider answers, the customer receives it:")
	say("  curl -s -X POST %s/emulator/inbound --data-urlencode From=%s --data-urlencode To=%s --data-urlencode 'Body=I am at the gate'", d.url, demoRider, demoBusiness)
	say("  curl -s '%s/emulator/transcripts'", d.url)
	say("  curl -s %s/healthz", serviceURL)
	return nil
}

// waitForOptIn polls until the customer has the wait message, the rider the opt-in template, and the
// conversation no scoped webhook: the three steps run concurrently and finish in any order.
func (d *demo) waitForOptIn(ctx context.Context, conv string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		view, _ := d.emu.Conversation(conv)
		if hasReceived(d.emu.Transcript(demoRider), conv, demoTemplate2) && hasReceived(d.emu.Transcript(demoCustomer), conv, "") && len(view.Webhooks) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the opt-in did not complete within 15 s; see the service's log")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// hasReceived reports a delivered message in conv with the content SID, or a delivered system message
// after the phone's own reply when contentSid is empty.
func hasReceived(tr []emulator.Entry, conv, contentSid string) bool {
	replied := false
	for _, e := range tr {
		if e.ConversationSid != conv {
			continue
		}
		if e.Direction == "sent" {
			replied = true
		}
		if e.Direction == "received" && e.Status == "delivered" && e.ContentSid == contentSid && (contentSid != "" || replied) {
			return true
		}
	}
	return false
}

const column = 48

func printSideBySide(out io.Writer, leftTitle string, left []emulator.Entry, rightTitle string, right []emulator.Entry) {
	render := func(entries []emulator.Entry) []string {
		var lines []string
		for _, e := range entries {
			mark := "← "
			switch {
			case e.Direction == "sent":
				mark = "→ "
			case e.Status == "failed":
				mark = "✗ "
			}
			for i, l := range wrap(e.Text, column-2) {
				if i == 0 {
					lines = append(lines, mark+l)
				} else {
					lines = append(lines, "  "+l)
				}
			}
			lines = append(lines, "")
		}
		return lines
	}
	l, r := render(left), render(right)
	fmt.Fprintf(out, "%s │ %s\n", pad(leftTitle), rightTitle)
	fmt.Fprintf(out, "%s─┼─%s\n", strings.Repeat("─", column), strings.Repeat("─", column))
	for i := range max(len(l), len(r)) {
		var a, b string
		if i < len(l) {
			a = l[i]
		}
		if i < len(r) {
			b = r[i]
		}
		fmt.Fprintf(out, "%s │ %s\n", pad(a), b)
	}
}

func pad(s string) string {
	return s + strings.Repeat(" ", max(column-utf8.RuneCountInString(s), 0))
}

func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && utf8.RuneCountInString(line)+1+utf8.RuneCountInString(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}
