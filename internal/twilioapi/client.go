// Package twilioapi is the Twilio Conversations adapter: it implements optin.Conversations with
// twilio-go and turns Twilio's failures into *twiliocall.CallError. It is the only package importing twilio-go.
package twilioapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/twilio/twilio-go/client"
	conversations "github.com/twilio/twilio-go/rest/conversations/v1"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/optin"
)

// Options configure a Client. Username and Password are the account SID and auth token, or an API key
// and its secret.
type Options struct {
	AccountSid string
	Username   string
	Password   string
	// BaseURL, when set, replaces the scheme and host of every call to a Twilio host — the
	// Conversations API and the Media Content Service (mcs.us1.twilio.com) alike (emulators, tests).
	BaseURL string
	// Transport carries the requests; nil means http.DefaultTransport's settings with connections kept
	// for reuse (newTransport).
	Transport http.RoundTripper
	// Observe, when set, is told of every HTTP request: its operation, status (0 when no answer came)
	// and duration.
	Observe func(operation string, status int, d time.Duration)
	// Tracer, when set, makes a client span of every HTTP request: its operation, method, route
	// template, status and Twilio's error code — never a number, a body or a credential.
	Tracer trace.Tracer
	// ConversationsService, when set (IS…), is the Conversation Service every Conversations call is
	// made in: /v1/Conversations/… goes as /v1/Services/{ConversationsService}/Conversations/….
	// Empty: the account's default Conversation Service.
	ConversationsService string
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

// serviceSidRE is a Conversation Service's SID.
var serviceSidRE = regexp.MustCompile(`^IS[0-9a-fA-F]{32}$`)

// New checks opts and returns a Client.
func New(opts Options) (*Client, error) {
	if !alphanumeric.MatchString(opts.AccountSid) {
		return nil, errors.New("account sid must be letters and digits")
	}
	if !alphanumeric.MatchString(opts.Username) || !alphanumeric.MatchString(opts.Password) {
		return nil, errors.New("credentials must be letters and digits")
	}
	if opts.ConversationsService != "" && !serviceSidRE.MatchString(opts.ConversationsService) {
		return nil, errors.New("conversations service must be IS followed by 32 hexadecimal digits")
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
	h, rec := c.handler(ctx, operation)
	return conversations.NewApiService(h), rec
}

// handler builds the twilio-go request handler of one call, for any of Twilio's APIs.
func (c *Client) handler(ctx context.Context, operation string) (*client.RequestHandler, *call) {
	rec := &call{}
	hc := &http.Client{
		Transport: &callTransport{ctx: ctx, base: c.base, next: c.transport, rec: rec, op: operation, observe: c.opts.Observe,
			tracer: c.opts.Tracer, service: c.opts.ConversationsService},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	tc := &client.Client{Credentials: client.NewCredentials(c.opts.Username, c.opts.Password), HTTPClient: hc}
	tc.SetAccountSid(c.opts.AccountSid)
	// A literal RequestHandler: NewRequestHandler would read TWILIO_EDGE and TWILIO_REGION from the environment.
	return &client.RequestHandler{Client: tc}, rec
}

// CreateMessage creates m without firing the conversation's webhooks.
func (c *Client) CreateMessage(ctx context.Context, conversationSid string, m conversation.Message) (string, error) {
	svc, rec := c.service(ctx, "create_message")
	p := &conversations.CreateConversationMessageParams{}
	setIf(m.Author, p.SetAuthor)
	setIf(m.Body, p.SetBody)
	setIf(m.ContentSid, p.SetContentSid)
	setIf(m.ContentVariables, p.SetContentVariables)
	setIf(m.Attributes, p.SetAttributes)
	setIf(m.MediaSid, p.SetMediaSid)
	msg, err := svc.CreateConversationMessage(seg(conversationSid), p)
	if err != nil {
		return "", classify("create message", err, rec)
	}
	return deref(msg.Sid), nil
}

// RecentMessages returns the newest messages first, one page of at most limit (Twilio's maximum is 100).
func (c *Client) RecentMessages(ctx context.Context, conversationSid string, limit int) ([]conversation.PostedMessage, error) {
	msgs, err := c.newestMessages(ctx, conversationSid, limit)
	if err != nil {
		return nil, err
	}
	out := make([]conversation.PostedMessage, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, conversation.PostedMessage{Sid: deref(m.Sid), Attributes: deref(m.Attributes)})
	}
	return out, nil
}

// newestMessages reads one page of the conversation's newest messages, at most limit (Twilio's
// maximum page is 100).
func (c *Client) newestMessages(ctx context.Context, conversationSid string, limit int) ([]conversations.ConversationsV1ConversationMessage, error) {
	svc, rec := c.service(ctx, "list_messages")
	p := &conversations.ListConversationMessageParams{}
	p.SetOrder("desc").SetPageSize(min(max(limit, 1), 100))
	page, err := svc.PageConversationMessage(seg(conversationSid), p, "", "")
	if err != nil {
		return nil, classify("list messages", err, rec)
	}
	return page.Messages, nil
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

// callTransport binds a call's context, redirects Twilio's fixed hosts and records the response.
type callTransport struct {
	ctx     context.Context
	base    *url.URL
	next    http.RoundTripper
	rec     *call
	op      string
	observe func(operation string, status int, d time.Duration)
	tracer  trace.Tracer
	// service, when set, scopes the Conversations API's paths to that Conversation Service.
	service string
}

func (t *callTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// A shallow copy: a RoundTripper must not change the request it is given, and this one only swaps
	// the URL (copied) and the context; a deep Clone copied every header of every call.
	r := req.WithContext(t.ctx)
	if t.service != "" {
		r.URL = inService(r.URL, t.service)
	}
	if t.base != nil && isTwilioHost(r.URL.Hostname()) {
		u := *r.URL
		u.Scheme, u.Host = t.base.Scheme, t.base.Host
		r.URL, r.Host = &u, t.base.Host
	}
	var span trace.Span
	if t.tracer != nil {
		var ctx context.Context
		ctx, span = t.tracer.Start(t.ctx, "twilio "+t.op, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
			attribute.String("http.request.method", r.Method), attribute.String("url.template", routeTemplate(r.URL.Path)),
			attribute.String("server.address", r.URL.Hostname()), attribute.String("twilio.operation", t.op)))
		r = r.WithContext(ctx)
		defer span.End()
	}
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		// What is recorded describes this request: an earlier page's answer says nothing of it.
		t.rec.status, t.rec.retryAfter = 0, 0
		t.observe(t.op, 0, time.Since(start))
		if span != nil {
			span.SetStatus(codes.Error, "no answer")
		}
		return nil, err
	}
	if span != nil {
		traceResponse(span, resp)
	}
	t.observe(t.op, resp.StatusCode, time.Since(start))
	t.rec.status = resp.StatusCode
	t.rec.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return resp, nil
}

// conversationsHost is the Conversations API's host.
const conversationsHost = "conversations.twilio.com"

// inService returns u scoped to the Conversation Service: a call to the default service's
// /v1/Conversations… (and /v1/ParticipantConversations) goes to /v1/Services/{service}/…, which takes
// the same parameters and answers in the same shape (TestServiceScopedParamsMatch). Other hosts, and
// paths already under /v1/Services (the next pages of a list), are left as they are.
func inService(u *url.URL, service string) *url.URL {
	if !strings.EqualFold(u.Hostname(), conversationsHost) {
		return u
	}
	rest, ok := strings.CutPrefix(u.Path, "/v1/")
	if !ok || !(rest == "Conversations" || strings.HasPrefix(rest, "Conversations/") || rest == "ParticipantConversations") {
		return u
	}
	scoped := *u
	prefix := "/v1/Services/" + service
	scoped.Path = prefix + strings.TrimPrefix(u.Path, "/v1")
	if u.RawPath != "" {
		scoped.RawPath = prefix + strings.TrimPrefix(u.RawPath, "/v1")
	}
	return &scoped
}

// isTwilioHost reports whether host is Twilio's (conversations.twilio.com, mcs.us1.twilio.com): a
// redirect elsewhere (media content kept in storage) goes where it says.
func isTwilioHost(host string) bool {
	host = strings.ToLower(host)
	return host == "twilio.com" || strings.HasSuffix(host, ".twilio.com")
}

// traceResponse records the response's status and, for a refusal, Twilio's error code (read from
// the body, which is put back for twilio-go).
func traceResponse(span trace.Span, resp *http.Response) {
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode < 400 {
		return
	}
	span.SetStatus(codes.Error, http.StatusText(resp.StatusCode))
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
	var twErr struct {
		Code int `json:"code"`
	}
	if err == nil && json.Unmarshal(body, &twErr) == nil && twErr.Code != 0 {
		span.SetAttributes(attribute.Int("twilio.error_code", twErr.Code))
	}
}

// maxErrorBody bounds what a span reads of an error answer: Twilio's are a few hundred bytes.
const maxErrorBody = 16 << 10

// routeTemplate is a REST path with its SIDs and unique names replaced by their parameter names:
// /v1/Conversations/CH…/Messages/IM… → /v1/Conversations/{ConversationSid}/Messages/{MessageSid}.
func routeTemplate(path string) string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i := 2; i < len(segs); i += 2 {
		segs[i] = "{" + strings.TrimSuffix(segs[i-1], "s") + "Sid}"
	}
	return "/" + strings.Join(segs, "/")
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
