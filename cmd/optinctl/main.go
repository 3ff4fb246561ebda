// Command optinctl is the operators' client of optin's chats API: start, get, list, watch and end
// delivery chats. The service's URL and one of its admin tokens come from flags or the environment
// (OPTIN_URL, OPTIN_ADMIN_TOKEN — or the server's own OPTIN_ADMIN_TOKENS, whose first token is taken).
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/optinkit/optin/internal/chat"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "optinctl:", err)
		os.Exit(1)
	}
}

const usage = `Usage: optinctl [-url URL] [-token TOKEN] [-o table|json] COMMAND

Commands:
  start -id ID -customer whatsapp:+… -rider whatsapp:+… [-mode optin|direct] [-customer-name N]
        [-rider-name N] [-ttl 2h] [-invite-content-sid HX…] [-invite-body TEXT] [-metadata JSON]
  start -f FILE            the request body as JSON (- for standard input)
  get ID                   a chat, by id or conversation SID
  list [-state S] [-limit N] [-cursor C]
  watch [-state S] [-every 1s]
                           print the chats' state changes as they happen, as the console shows them
  end ID                   close the chat's conversation
  help                     this text

The URL defaults to OPTIN_URL, else http://127.0.0.1:8080; the token to OPTIN_ADMIN_TOKEN, else the
first of OPTIN_ADMIN_TOKENS. -json is -o json. "optinctl COMMAND -h" tells a command's flags.
`

// defaultURL is where a service started with the defaults (or the demo) listens.
const defaultURL = "http://127.0.0.1:8080"

// client is one configured connection to the API.
type client struct {
	base, token string
	json        bool
	http        *http.Client
	stdout      io.Writer
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("optinctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stdout, usage) }
	base := fs.String("url", cmp.Or(getenv("OPTIN_URL"), defaultURL), "the service's base URL (OPTIN_URL)")
	token := fs.String("token", cmp.Or(getenv("OPTIN_ADMIN_TOKEN"), firstToken(getenv("OPTIN_ADMIN_TOKENS"))),
		"one of the service's admin tokens (OPTIN_ADMIN_TOKEN, or the first of OPTIN_ADMIN_TOKENS)")
	asJSON := fs.Bool("json", false, "print the API's JSON instead of a table (same as -o json)")
	output := fs.String("o", "table", "output: table or json")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no command")
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	if cmd == "help" {
		fs.Usage()
		return nil
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("-o %s: want table or json", *output)
	}
	c := &client{base: strings.TrimSuffix(*base, "/"), token: *token, json: *asJSON || *output == "json",
		http: &http.Client{Timeout: 30 * time.Second}, stdout: stdout}
	err := c.command(ctx, cmd, rest, stdin, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // a command's -h: its flags were printed
	}
	if errors.Is(err, errUnknownCommand) {
		fs.Usage()
	}
	return err
}

var errUnknownCommand = errors.New("unknown command")

// firstToken is the first of a comma-separated list of tokens.
func firstToken(list string) string {
	first, _, _ := strings.Cut(list, ",")
	return strings.TrimSpace(first)
}

// command runs one command.
func (c *client) command(ctx context.Context, cmd string, rest []string, stdin io.Reader, stderr io.Writer) error {
	switch cmd {
	case "start":
		return c.start(ctx, rest, stdin, stderr)
	case "watch":
		return c.watch(ctx, rest, stderr)
	case "get", "end":
		if len(rest) != 1 {
			return fmt.Errorf("%s needs one chat id", cmd)
		}
		method := http.MethodGet
		if cmd == "end" {
			method = http.MethodDelete
		}
		return c.chat(ctx, method, "/v1/chats/"+url.PathEscape(rest[0]), nil)
	case "list":
		return c.list(ctx, rest, stderr)
	case "doctor":
		return doctor(ctx, rest, os.Getenv, c.stdout, stderr)
	}
	return fmt.Errorf("%w %q", errUnknownCommand, cmd)
}

func (c *client) start(ctx context.Context, args []string, stdin io.Reader, stderr io.Writer) error {
	fs := flag.NewFlagSet("optinctl start", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "the request as a JSON file (- for standard input)")
	id := fs.String("id", "", "the chat's id (your key, e.g. the order number)")
	mode := fs.String("mode", "", "optin (default: the customer is invited) or direct (connected at once)")
	customer := fs.String("customer", "", "the customer's address, whatsapp:+E164")
	customerName := fs.String("customer-name", "", "the customer's name")
	rider := fs.String("rider", "", "the rider's address, whatsapp:+E164")
	riderName := fs.String("rider-name", "", "the rider's name")
	ttl := fs.String("ttl", "", "close the conversation after this long without activity")
	contentSid := fs.String("invite-content-sid", "", "the invitation's Content template")
	inviteBody := fs.String("invite-body", "", "the invitation as text (only inside the 24-hour window)")
	metadata := fs.String("metadata", "", "a JSON object echoed back")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var body []byte
	if *file != "" {
		var err error
		if *file == "-" {
			body, err = io.ReadAll(stdin)
		} else {
			body, err = os.ReadFile(*file)
		}
		if err != nil {
			return fmt.Errorf("reading the request: %w", err)
		}
	} else {
		req := map[string]any{"id": *id, "customer": party(*customer, *customerName), "rider": party(*rider, *riderName)}
		if *mode != "" {
			req["mode"] = *mode
		}
		if *ttl != "" {
			req["ttl"] = *ttl
		}
		switch {
		case *contentSid != "":
			req["invite"] = map[string]any{"content_sid": *contentSid}
		case *inviteBody != "":
			req["invite"] = map[string]any{"body": *inviteBody}
		}
		if *metadata != "" {
			if !json.Valid([]byte(*metadata)) {
				return errors.New("-metadata is not JSON")
			}
			req["metadata"] = json.RawMessage(*metadata)
		}
		body, _ = json.Marshal(req)
	}
	return c.chat(ctx, http.MethodPost, "/v1/chats", body)
}

func party(address, name string) map[string]string {
	p := map[string]string{"address": address}
	if name != "" {
		p["name"] = name
	}
	return p
}

func (c *client) list(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("optinctl list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	state := fs.String("state", "", "only chats in this state")
	limit := fs.Int("limit", 0, "at most this many (1 to 200; default 50)")
	cursor := fs.String("cursor", "", "the next_cursor of the page before")
	if err := fs.Parse(args); err != nil {
		return err
	}
	q := url.Values{}
	if *state != "" {
		q.Set("state", *state)
	}
	if *limit != 0 {
		q.Set("limit", fmt.Sprint(*limit))
	}
	if *cursor != "" {
		q.Set("cursor", *cursor)
	}
	raw, err := c.do(ctx, http.MethodGet, "/v1/chats?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	if c.json {
		return writeRaw(c.stdout, raw)
	}
	var page struct {
		Chats      []chat.View `json:"chats"`
		NextCursor *string     `json:"next_cursor"`
	}
	if err := json.Unmarshal(raw, &page); err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tCONVERSATION\tUPDATED")
	for _, ch := range page.Chats {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ch.ID, stateText(ch), deref(ch.ConversationSid), ch.UpdatedAt.Format(time.RFC3339))
	}
	_ = tw.Flush()
	if page.NextCursor != nil {
		fmt.Fprintf(c.stdout, "more: optinctl list -cursor %s\n", *page.NextCursor)
	}
	return nil
}

// chat makes a call whose answer is a chat, and prints it.
func (c *client) chat(ctx context.Context, method, path string, body []byte) error {
	raw, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	if c.json {
		return writeRaw(c.stdout, raw)
	}
	var ch chat.View
	if err := json.Unmarshal(raw, &ch); err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%s\n", ch.ID)
	fmt.Fprintf(tw, "state\t%s\n", stateText(ch))
	fmt.Fprintf(tw, "conversation\t%s\n", deref(ch.ConversationSid))
	for _, p := range []struct {
		role string
		p    chat.PartyView
	}{{"customer", ch.Customer}, {"rider", ch.Rider}} {
		name := ""
		if p.p.Name != nil {
			name = *p.p.Name + " "
		}
		via := "no number yet"
		if p.p.ProxyAddress != nil {
			via = "via " + *p.p.ProxyAddress
		}
		fmt.Fprintf(tw, "%s\t%s%s %s\n", p.role, name, p.p.Address, via)
	}
	fmt.Fprintf(tw, "created\t%s\n", ch.CreatedAt.Format(time.RFC3339))
	fmt.Fprintf(tw, "expires\t%s (without activity)\n", ch.ExpiresAt.Format(time.RFC3339))
	var hist []string
	for _, h := range ch.History {
		hist = append(hist, string(h.State)+" "+h.At.Format("15:04:05"))
	}
	fmt.Fprintf(tw, "history\t%s\n", strings.Join(hist, " → "))
	if ch.Error != nil {
		fmt.Fprintf(tw, "error\tTwilio %d: %s\n", ch.Error.TwilioCode, ch.Error.Detail)
	}
	if len(ch.Metadata) > 0 && string(ch.Metadata) != "null" {
		fmt.Fprintf(tw, "metadata\t%s\n", ch.Metadata)
	}
	return tw.Flush()
}

// do sends one request; an answer outside 2xx becomes an error that says what the problem was.
func (c *client) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	if c.token == "" {
		return nil, errors.New("an admin token is needed: -token, or OPTIN_ADMIN_TOKEN (or the server's OPTIN_ADMIN_TOKENS)")
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 300 {
		return raw, nil
	}
	var p struct {
		Title, Detail string
		TwilioCode    int `json:"twilio_code"`
		Errors        []struct{ Field, Message string }
	}
	if json.Unmarshal(raw, &p) != nil || p.Title == "" {
		return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	msg := fmt.Sprintf("%d %s", resp.StatusCode, p.Title)
	if p.Detail != "" && p.Detail != "see errors" {
		msg += ": " + p.Detail
	}
	if p.TwilioCode != 0 {
		msg += fmt.Sprintf(" (Twilio error %d)", p.TwilioCode)
	}
	for _, e := range p.Errors {
		msg += fmt.Sprintf("\n  %s: %s", e.Field, e.Message)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		msg += fmt.Sprintf(" (repeat the same command in %ss)", ra)
	}
	return nil, errors.New(msg)
}

func writeRaw(w io.Writer, raw []byte) error {
	_, err := w.Write(append(bytes.TrimSpace(raw), '\n'))
	return err
}

func stateText(ch chat.View) string {
	if ch.Reason != nil {
		return string(ch.State) + " (" + *ch.Reason + ")"
	}
	return string(ch.State)
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}
