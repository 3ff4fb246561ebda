package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client drives an emulator over HTTP: the REST calls a platform makes to set a conversation up, and
// the emulator's own /emulator endpoints (phones, transcripts, faults, clock). It works against an
// Emulator served in-process (httptest.NewServer(emu)) or a separate cmd/emulator.
type Client struct {
	baseURL    string
	user, pass string
	hc         *http.Client
}

// NewClient returns a Client for the emulator at baseURL (scheme and host, e.g. http://127.0.0.1:8081)
// that authenticates its REST calls with user and pass (an account SID and auth token, or an API key).
func NewClient(baseURL, user, pass string) *Client {
	return &Client{baseURL: strings.TrimSuffix(baseURL, "/"), user: user, pass: pass, hc: &http.Client{Timeout: 30 * time.Second}}
}

// APIError is an error answer of the emulator, in Twilio's shape.
type APIError struct {
	Status  int    `json:"status"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *APIError) Error() string {
	return fmt.Sprintf("emulator answered %d (code %d): %s", e.Status, e.Code, e.Message)
}

// Do sends one request. A url.Values body goes as a form, anything else non-nil as JSON; a 2xx answer
// is decoded into out (when out is not nil), any other comes back as *APIError.
func (c *Client) Do(ctx context.Context, method, path string, body any, out any) error {
	var (
		r           io.Reader
		contentType string
	)
	switch b := body.(type) {
	case nil:
	case url.Values:
		r, contentType = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return fmt.Errorf("encoding %s %s: %w", method, path, err)
		}
		r, contentType = bytes.NewReader(raw), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, r)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if strings.HasPrefix(path, "/v1/") || strings.HasPrefix(path, "/2010-04-01/") {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: reading answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		apiErr := &APIError{Status: resp.StatusCode}
		_ = json.Unmarshal(raw, apiErr)
		apiErr.Status = resp.StatusCode
		return fmt.Errorf("%s %s: %w", method, path, apiErr)
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: decoding answer: %w", method, path, err)
	}
	return nil
}

type sidOnly struct {
	Sid string `json:"sid"`
}

func (c *Client) create(ctx context.Context, path string, form url.Values) (string, error) {
	var out sidOnly
	err := c.Do(ctx, http.MethodPost, path, form, &out)
	return out.Sid, err
}

func convPath(conv string, rest string) string {
	return "/v1/Conversations/" + url.PathEscape(conv) + rest
}

// CreateConversation creates a conversation with the given parameters (FriendlyName, UniqueName, …)
// and returns its SID.
func (c *Client) CreateConversation(ctx context.Context, params url.Values) (string, error) {
	return c.create(ctx, "/v1/Conversations", params)
}

// AddParticipant adds a messaging participant: address (whatsapp:+… or +…) reached through proxy.
func (c *Client) AddParticipant(ctx context.Context, conv, address, proxy string) (string, error) {
	return c.create(ctx, convPath(conv, "/Participants"), url.Values{
		"MessagingBinding.Address": {address}, "MessagingBinding.ProxyAddress": {proxy}})
}

// SendMessage creates a message with the given parameters (Author, Body, ContentSid, …).
func (c *Client) SendMessage(ctx context.Context, conv string, params url.Values) (string, error) {
	return c.create(ctx, convPath(conv, "/Messages"), params)
}

// AddWebhook arms a conversation-scoped webhook at target, called with method ("get" or "post") for
// the events in filters.
func (c *Client) AddWebhook(ctx context.Context, conv, target, method string, filters ...string) (string, error) {
	form := url.Values{"Target": {"webhook"}, "Configuration.Url": {target}, "Configuration.Method": {method}}
	for _, f := range filters {
		form.Add("Configuration.Filters", f)
	}
	return c.create(ctx, convPath(conv, "/Webhooks"), form)
}

// Webhooks returns the SIDs of the conversation's scoped webhooks (Twilio holds at most 5: one page).
func (c *Client) Webhooks(ctx context.Context, conv string) ([]string, error) {
	var out struct {
		Webhooks []sidOnly `json:"webhooks"`
	}
	if err := c.Do(ctx, http.MethodGet, convPath(conv, "/Webhooks"), nil, &out); err != nil {
		return nil, err
	}
	sids := make([]string, 0, len(out.Webhooks))
	for _, h := range out.Webhooks {
		sids = append(sids, h.Sid)
	}
	return sids, nil
}

// Messages returns the conversation's first 100 messages, oldest first.
func (c *Client) Messages(ctx context.Context, conv string) ([]MessageView, error) {
	var out struct {
		Messages []struct {
			Sid        string      `json:"sid"`
			Author     string      `json:"author"`
			Body       string      `json:"body"`
			ContentSid string      `json:"content_sid"`
			Attributes string      `json:"attributes"`
			Media      []MediaInfo `json:"media"`
		} `json:"messages"`
	}
	if err := c.Do(ctx, http.MethodGet, convPath(conv, "/Messages?PageSize=100"), nil, &out); err != nil {
		return nil, err
	}
	msgs := make([]MessageView, 0, len(out.Messages))
	for _, m := range out.Messages {
		msgs = append(msgs, MessageView{Sid: m.Sid, Author: m.Author, Body: m.Body, ContentSid: m.ContentSid, Attributes: m.Attributes, Media: m.Media})
	}
	return msgs, nil
}

// Inbound makes the phone at from write body to the Twilio number to, as Emulator.Inbound does.
func (c *Client) Inbound(ctx context.Context, from, to, body string) (Message, error) {
	var m Message
	err := c.Do(ctx, http.MethodPost, "/emulator/inbound", url.Values{"From": {from}, "To": {to}, "Body": {body}}, &m)
	return m, err
}

// InboundMedia makes the phone at from send a file, with body as its caption (may be empty), as
// Emulator.InboundMedia does.
func (c *Client) InboundMedia(ctx context.Context, from, to, body string, a Attachment) (Message, error) {
	var m Message
	err := c.Do(ctx, http.MethodPost, "/emulator/inbound", map[string]any{"From": from, "To": to, "Body": body, "Media": a}, &m)
	return m, err
}

// Transcript returns what the phone at address sent and received, oldest first.
func (c *Client) Transcript(ctx context.Context, address string) ([]Entry, error) {
	var out struct {
		Transcripts map[string][]Entry `json:"transcripts"`
	}
	err := c.Do(ctx, http.MethodGet, "/emulator/transcripts?address="+url.QueryEscape(address), nil, &out)
	return out.Transcripts[address], err
}

// WebhookCalls returns every webhook the emulator fired so far.
func (c *Client) WebhookCalls(ctx context.Context) ([]WebhookCall, error) {
	var out struct {
		Calls []WebhookCall `json:"webhook_calls"`
	}
	err := c.Do(ctx, http.MethodGet, "/emulator/webhook-calls", nil, &out)
	return out.Calls, err
}

// Requests returns the REST requests the emulator received, as Emulator.Requests does.
func (c *Client) Requests(ctx context.Context) ([]Request, error) {
	var out struct {
		Requests []Request `json:"requests"`
	}
	err := c.Do(ctx, http.MethodGet, "/emulator/requests", nil, &out)
	return out.Requests, err
}

// ClearRequests empties the emulator's request log.
func (c *Client) ClearRequests(ctx context.Context) error {
	return c.Do(ctx, http.MethodDelete, "/emulator/requests", nil, nil)
}

// SetFaults replaces the active faults; nil clears them.
func (c *Client) SetFaults(ctx context.Context, faults []Fault) error {
	if faults == nil {
		return c.Do(ctx, http.MethodDelete, "/emulator/faults", nil, nil)
	}
	return c.Do(ctx, http.MethodPost, "/emulator/faults", map[string]any{"faults": faults}, nil)
}

// Advance moves the emulator's clock forward.
func (c *Client) Advance(ctx context.Context, d time.Duration) error {
	return c.Do(ctx, http.MethodPost, "/emulator/clock", url.Values{"advance": {d.String()}}, nil)
}

// Call makes the phone at from call the business number to, as Emulator.Call does.
func (c *Client) Call(ctx context.Context, from, to string) (Call, error) {
	var out Call
	err := c.Do(ctx, http.MethodPost, "/emulator/calls", url.Values{"From": {from}, "To": {to}}, &out)
	return out, err
}

// Calls returns the calls placed so far; with a number, those it placed, took or was rung with.
func (c *Client) Calls(ctx context.Context, number string) ([]Call, error) {
	var out struct {
		Calls []Call `json:"calls"`
	}
	err := c.Do(ctx, http.MethodGet, "/emulator/calls?number="+url.QueryEscape(number), nil, &out)
	return out.Calls, err
}

// Hangup ends a call early as party (caller or callee), as Emulator.Hangup does.
func (c *Client) Hangup(ctx context.Context, callSid, party string) (Call, error) {
	var out Call
	err := c.Do(ctx, http.MethodPost, "/emulator/calls/"+url.PathEscape(callSid)+"/hangup", url.Values{"party": {party}}, &out)
	return out, err
}

// ReplayDialAction posts a call's last Dial action again, as Emulator.ReplayDialAction does.
func (c *Client) ReplayDialAction(ctx context.Context, callSid string) (WebhookCall, error) {
	var out struct {
		Call WebhookCall `json:"webhook_call"`
	}
	err := c.Do(ctx, http.MethodPost, "/emulator/calls/"+url.PathEscape(callSid)+"/replay-action", nil, &out)
	return out.Call, err
}

// SetPhone says how the phone at number answers calls, as Emulator.SetPhone does.
func (c *Client) SetPhone(ctx context.Context, number string, p Phone) error {
	return c.Do(ctx, http.MethodPost, "/emulator/phones/"+url.PathEscape(number), p, nil)
}
