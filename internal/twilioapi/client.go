// Package twilioapi is the Twilio Conversations adapter: it implements optin.Conversations with
// twilio-go and turns Twilio's failures into *twiliocall.CallError. It is the only package importing twilio-go.
package twilioapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/twilio/twilio-go/client"
	conversations "github.com/twilio/twilio-go/rest/conversations/v1"

	"github.com/optinkit/optin/internal/optin"
)

// Options configure a Client. Username and Password are the account SID and auth token, or an API key
// and its secret.
type Options struct {
	AccountSid string
	Username   string
	Password   string
	// BaseURL, when set, replaces the scheme and host of every REST call (emulators, tests).
	BaseURL string
	// Transport carries the requests; nil means http.DefaultTransport's settings with connections kept
	// for reuse (newTransport).
	Transport http.RoundTripper
	// Observe, when set, is told of every HTTP request: its operation, status (0 when no answer came)
	// and duration.
	Observe func(operation string, status int, d time.Duration)
}

// Client calls the Conversations API.
type Client struct {
	opts      Options
	base      *url.URL
	transport http.RoundTripper
}

var _ optin.Conversations = (*Client)(nil)

// twilio-go refuses credentials with anything but letters and digits; say so at start, not on the first call.
var alphanumeric = regexp.MustCompile(`^[a-zA-Z0-9]+$`)

// New checks opts and returns a Client.
func New(opts Options) (*Client, error) {
	if !alphanumeric.MatchString(opts.AccountSid) {
		return nil, errors.New("account sid must be letters and digits")
	}
	if !alphanumeric.MatchString(opts.Username) || !alphanumeric.MatchString(opts.Password) {
		return nil, errors.New("credentials must be letters and digits")
	}
	c := &Client{opts: opts, transport: opts.Transport}
	if c.transport == nil {
		c.transport = newTransport()
	}
	if c.opts.Observe == nil {
		c.opts.Observe = func(string, int, time.Duration) {}
	}
	if opts.BaseURL != "" {
		u, err := url.Parse(opts.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
			// Only scheme and host are replaced: a path would be silently dropped.
			return nil, fmt.Errorf("base url %q: want http(s)://host[:port]", opts.BaseURL)
		}
		c.base = u
	}
	return c, nil
}

// service builds a twilio-go service bound to ctx for one call; twilio-go itself takes no context.
// The returned call records the HTTP status and Retry-After of the last response.
func (c *Client) service(ctx context.Context, operation string) (*conversations.ApiService, *call) {
	rec := &call{}
	hc := &http.Client{
		Transport: &callTransport{ctx: ctx, base: c.base, next: c.transport, rec: rec, op: operation, observe: c.opts.Observe},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	tc := &client.Client{Credentials: client.NewCredentials(c.opts.Username, c.opts.Password), HTTPClient: hc}
	tc.SetAccountSid(c.opts.AccountSid)
	// A literal RequestHandler: NewRequestHandler would read TWILIO_EDGE and TWILIO_REGION from the environment.
	return conversations.NewApiService(&client.RequestHandler{Client: tc}), rec
}

// CreateMessage creates m without firing the conversation's webhooks.
func (c *Client) CreateMessage(ctx context.Context, conversationSid string, m optin.Message) (string, error) {
	svc, rec := c.service(ctx, "create_message")
	p := &conversations.CreateConversationMessageParams{}
	setIf(m.Author, p.SetAuthor)
	setIf(m.Body, p.SetBody)
	setIf(m.ContentSid, p.SetContentSid)
	setIf(m.ContentVariables, p.SetContentVariables)
	setIf(m.Attributes, p.SetAttributes)
	msg, err := svc.CreateConversationMessage(seg(conversationSid), p)
	if err != nil {
		return "", classify("create message", err, rec)
	}
	return deref(msg.Sid), nil
}

// RecentMessages returns the newest messages first, one page of at most limit (Twilio's maximum is 100).
func (c *Client) RecentMessages(ctx context.Context, conversationSid string, limit int) ([]optin.PostedMessage, error) {
	svc, rec := c.service(ctx, "list_messages")
	p := &conversations.ListConversationMessageParams{}
	p.SetOrder("desc").SetPageSize(min(max(limit, 1), 100))
	page, err := svc.PageConversationMessage(seg(conversationSid), p, "", "")
	if err != nil {
		return nil, classify("list messages", err, rec)
	}
	out := make([]optin.PostedMessage, 0, len(page.Messages))
	for _, m := range page.Messages {
		out = append(out, optin.PostedMessage{Sid: deref(m.Sid), Attributes: deref(m.Attributes)})
	}
	return out, nil
}

// webhookPageSize is Twilio's maximum for scoped webhooks; twilio-go would ask for 50.
const webhookPageSize = 5

// DeleteWebhook deletes one scoped webhook.
func (c *Client) DeleteWebhook(ctx context.Context, conversationSid, webhookSid string) error {
	svc, rec := c.service(ctx, "delete_webhook")
	if err := svc.DeleteConversationScopedWebhook(seg(conversationSid), seg(webhookSid)); err != nil {
		return classify("delete webhook", err, rec)
	}
	return nil
}

// seg escapes a SID for its path segment: twilio-go pastes it into the path as it is.
func seg(sid string) string { return url.PathEscape(sid) }

func setIf[T any](v string, set func(string) T) {
	if v != "" {
		set(v)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// call is what the transport saw of one call's last response.
type call struct {
	status     int
	retryAfter time.Duration
}

// callTransport binds a call's context, redirects Twilio's fixed host and records the response.
type callTransport struct {
	ctx     context.Context
	base    *url.URL
	next    http.RoundTripper
	rec     *call
	op      string
	observe func(operation string, status int, d time.Duration)
}

func (t *callTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// A shallow copy: a RoundTripper must not change the request it is given, and this one only swaps
	// the URL (copied) and the context; a deep Clone copied every header of every call.
	r := req.WithContext(t.ctx)
	if t.base != nil {
		u := *r.URL
		u.Scheme, u.Host = t.base.Scheme, t.base.Host
		r.URL, r.Host = &u, t.base.Host
	}
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		// What is recorded describes this request: an earlier page's answer says nothing of it.
		t.rec.status, t.rec.retryAfter = 0, 0
		t.observe(t.op, 0, time.Since(start))
		return nil, err
	}
	t.observe(t.op, resp.StatusCode, time.Since(start))
	t.rec.status = resp.StatusCode
	t.rec.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return resp, nil
}

// parseRetryAfter reads delay-seconds or an HTTP date; anything else means no advice.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var secs int
	if _, err := fmt.Sscanf(v, "%d", &secs); err == nil && fmt.Sprint(secs) == v {
		return max(time.Duration(secs)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// idleConns is how many connections to Twilio's one host are kept open between calls.
const idleConns = 512

// newTransport is http.DefaultTransport keeping up to idleConns idle connections to a host instead of
// two: every call goes to the same host, and with hundreds of opt-ins at once the default closed and
// redialled — and in production re-handshook TLS — almost every connection (a seventh of the CPU
// under load went to dialling).
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost = idleConns, idleConns
	return t
}
