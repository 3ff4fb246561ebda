// Command optinctl is the operators' client of optin's chats API: start, get, list, watch and end
// delivery chats. The service's URL and one of its admin tokens come from flags or the environment
// (OPTIN_URL, OPTIN_ADMIN_TOKEN — or the server's own OPTIN_ADMIN_TOKENS, whose first token is taken).
package main

import (
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
  start -id ID -customer ADDRESS -rider ADDRESS [-mode optin|direct] [-customer-name N]
        [-rider-name N] [-ttl 2h] [-invite-content-sid HX…] [-invite-body TEXT] [-metadata JSON]
                           an ADDRESS is whatsapp:+E164 for WhatsApp, or +E164 for SMS
  start -f FILE            the request body as JSON (- for standard input)
  get ID                   a chat, by id or conversation SID
  list [-state S] [-limit N] [-cursor C]
  watch [-state S] [-every 1s]
                           print the chats' state changes from now on, as they happen
  end ID                   close the chat's conversation
  doctor                   check the Twilio account against the service's variables, read-only
  guard hook [-url URL]    make Twilio send each phone's message to the service's guard first
                           (changes the Conversation Service's webhook configuration)
  help                     this text

The URL defaults to OPTIN_URL, else http://127.0.0.1:8080; the token to OPTIN_ADMIN_TOKEN, else the
first of OPTIN_ADMIN_TOKENS. -json is -o json. -url, -token, -o and -json go before or after the
command and its id (optinctl get order-8812 -o json). "optinctl COMMAND -h" tells a command's flags.
`

// defaultURL is where a service started with the defaults (or the demo) listens.
const defaultURL = "http://127.0.0.1:8080"

// parseAll parses fs's flags wherever they stand among args (after "--", none) and returns the
// other arguments, in order.
func parseAll(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if used := len(args) - fs.NArg(); used > 0 && args[used-1] == "--" {
			return append(positional, fs.Args()...), nil
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("optinctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stdout, usage) }
	o := &options{base: cmp.Or(getenv("OPTIN_URL"), defaultURL), token: cmp.Or(getenv("OPTIN_ADMIN_TOKEN"), firstToken(getenv("OPTIN_ADMIN_TOKENS"))), output: "table"}
	o.register(fs)
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
	err := command(ctx, o, cmd, rest, stdin, stdout, stderr)
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

// command runs one command: its flags (the options among them) parsed, then the call made.
func command(ctx context.Context, o *options, cmd string, rest []string, stdin io.Reader, stdout, stderr io.Writer) error {
	switch cmd {
	case "doctor":
		return doctor(ctx, rest, os.Getenv, stdout, stderr)
	case "guard":
		return guardCommand(ctx, rest, os.Getenv, stdout, stderr)
	}
	fs := flag.NewFlagSet("optinctl "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var do func(c *client, ids []string) error
	switch cmd {
	case "start":
		do = startFlags(ctx, fs, stdin)
	case "watch":
		do = watchFlags(ctx, fs)
	case "list":
		do = listFlags(ctx, fs)
	case "get", "end":
		method := http.MethodGet
		if cmd == "end" {
			method = http.MethodDelete
		}
		do = func(c *client, ids []string) error {
			return c.chat(ctx, method, "/v1/chats/"+url.PathEscape(ids[0]), nil)
		}
	default:
		return fmt.Errorf("%w %q", errUnknownCommand, cmd)
	}
	o.register(fs)
	positional, err := parseAll(fs, rest)
	if err != nil {
		return err
	}
	switch {
	case (cmd == "get" || cmd == "end") && len(positional) != 1:
		if len(positional) == 0 {
			return fmt.Errorf("%s needs a chat id: optinctl %s ID", cmd, cmd)
		}
		return fmt.Errorf("%s takes one chat id, not %d: %s", cmd, len(positional), strings.Join(positional, " "))
	case cmd != "get" && cmd != "end" && len(positional) > 0:
		return fmt.Errorf("%s takes flags only, not %q (optinctl %s -h lists them)", cmd, positional[0], cmd)
	}
	c, err := o.client(stdout)
	if err != nil {
		return err
	}
	return do(c, positional)
}

// startFlags declares start's flags on fs and returns what start does with them.
func startFlags(ctx context.Context, fs *flag.FlagSet, stdin io.Reader) func(*client, []string) error {
	const address = ": whatsapp:+E164 for WhatsApp, or +E164 for SMS (the service needs OPTIN_SMS_NUMBERS)"
	var r startRequest
	fs.StringVar(&r.file, "f", "", "the request as a JSON file (- for standard input)")
	fs.StringVar(&r.id, "id", "", "the chat's id (your key, e.g. the order number)")
	fs.StringVar(&r.mode, "mode", "", "optin (default: the customer is invited) or direct (connected at once)")
	fs.StringVar(&r.customer, "customer", "", "the customer's address"+address)
	fs.StringVar(&r.customerName, "customer-name", "", "the customer's name")
	fs.StringVar(&r.rider, "rider", "", "the rider's address"+address)
	fs.StringVar(&r.riderName, "rider-name", "", "the rider's name")
	fs.StringVar(&r.ttl, "ttl", "", "close the conversation after this long without activity")
	fs.StringVar(&r.contentSid, "invite-content-sid", "", "the invitation's Content template")
	fs.StringVar(&r.inviteBody, "invite-body", "", "the invitation as text (only inside the 24-hour window)")
	fs.StringVar(&r.metadata, "metadata", "", "a JSON object echoed back")
	return func(c *client, _ []string) error {
		body, err := r.body(stdin)
		if err != nil {
			return err
		}
		return c.chat(ctx, http.MethodPost, "/v1/chats", body)
	}
}

// startRequest is start's flags.
type startRequest struct {
	file, id, mode, customer, customerName, rider, riderName, ttl, contentSid, inviteBody, metadata string
}

// body is the start request: the file's (- for standard input), or the one the other flags describe.
func (r *startRequest) body(stdin io.Reader) ([]byte, error) {
	if r.file != "" {
		var body []byte
		var err error
		if r.file == "-" {
			body, err = io.ReadAll(stdin)
		} else {
			body, err = os.ReadFile(r.file)
		}
		if err != nil {
			return nil, fmt.Errorf("reading the request: %w", err)
		}
		return body, nil
	}
	req := map[string]any{"id": r.id, "customer": party(r.customer, r.customerName), "rider": party(r.rider, r.riderName)}
	if r.mode != "" {
		req["mode"] = r.mode
	}
	if r.ttl != "" {
		req["ttl"] = r.ttl
	}
	switch {
	case r.contentSid != "":
		req["invite"] = map[string]any{"content_sid": r.contentSid}
	case r.inviteBody != "":
		req["invite"] = map[string]any{"body": r.inviteBody}
	}
	if r.metadata != "" {
		if !json.Valid([]byte(r.metadata)) {
			return nil, errors.New("-metadata is not JSON")
		}
		req["metadata"] = json.RawMessage(r.metadata)
	}
	return json.Marshal(req)
}

func party(address, name string) map[string]string {
	p := map[string]string{"address": address}
	if name != "" {
		p["name"] = name
	}
	return p
}

// listFlags declares list's flags on fs and returns what list does with them.
func listFlags(ctx context.Context, fs *flag.FlagSet) func(*client, []string) error {
	state := fs.String("state", "", "only chats in this state")
	limit := fs.Int("limit", 0, "at most this many (1 to 200; default 50)")
	cursor := fs.String("cursor", "", "the next_cursor of the page before")
	return func(c *client, _ []string) error { return c.list(ctx, *state, *limit, *cursor) }
}

func (c *client) list(ctx context.Context, state string, limit int, cursor string) error {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if limit != 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
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
		nudged := "not nudged"
		if p.p.NudgedAt != nil {
			nudged = "nudged " + p.p.NudgedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s%s %s, %d held, %s\n", p.role, name, p.p.Address, via, p.p.Held, nudged)
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
