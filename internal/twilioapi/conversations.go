package twilioapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	conversations "github.com/twilio/twilio-go/rest/conversations/v1"

	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/twiliocall"
)

var _ chat.Conversations = (*Client)(nil)

// CreateConversation creates an active conversation whose Timers.Closed is c.ClosedAfter.
func (c *Client) CreateConversation(ctx context.Context, nc chat.NewConversation) (string, error) {
	svc, rec := c.service(ctx, "create_conversation")
	p := &conversations.CreateConversationParams{}
	setIf(nc.UniqueName, p.SetUniqueName)
	setIf(nc.FriendlyName, p.SetFriendlyName)
	setIf(nc.Attributes, p.SetAttributes)
	// The state is said, not left to Twilio's default (no source shows a timer needing it).
	p.SetState("active")
	if nc.ClosedAfter > 0 {
		p.SetTimersClosed(isoDuration(nc.ClosedAfter))
	}
	conv, err := svc.CreateConversation(p)
	if err != nil {
		return "", classify("create conversation", err, rec)
	}
	return deref(conv.Sid), nil
}

// FindConversation fetches the conversation by its unique name, which Twilio accepts in place of the SID.
func (c *Client) FindConversation(ctx context.Context, uniqueName string) (string, bool, error) {
	svc, rec := c.service(ctx, "fetch_conversation")
	conv, err := svc.FetchConversation(seg(uniqueName))
	if err != nil {
		return "", false, classify("fetch conversation", err, rec)
	}
	return deref(conv.Sid), deref(conv.State) == "closed", nil
}

// AddParticipant adds a messaging participant: address reached through proxyAddress.
func (c *Client) AddParticipant(ctx context.Context, conversationSid, address, proxyAddress string) error {
	svc, rec := c.service(ctx, "create_participant")
	p := &conversations.CreateConversationParticipantParams{}
	p.SetMessagingBindingAddress(address).SetMessagingBindingProxyAddress(proxyAddress)
	if _, err := svc.CreateConversationParticipant(seg(conversationSid), p); err != nil {
		return classify("create participant", err, rec)
	}
	return nil
}

// ScopedWebhooks returns the conversation's scoped webhooks with their configuration, across all pages.
func (c *Client) ScopedWebhooks(ctx context.Context, conversationSid string) ([]conversation.Webhook, error) {
	svc, rec := c.service(ctx, "list_webhooks")
	p := &conversations.ListConversationScopedWebhookParams{}
	p.SetPageSize(webhookPageSize)
	hooks, err := svc.ListConversationScopedWebhook(seg(conversationSid), p)
	if err != nil {
		return nil, classify("list webhooks", err, rec)
	}
	out := make([]conversation.Webhook, 0, len(hooks))
	for _, h := range hooks {
		w := conversation.Webhook{Sid: deref(h.Sid)}
		if h.Configuration != nil {
			if cfg, ok := (*h.Configuration).(map[string]any); ok {
				w.URL, _ = cfg["url"].(string)
				w.Method, _ = cfg["method"].(string)
				if fs, ok := cfg["filters"].([]any); ok {
					for _, f := range fs {
						if s, ok := f.(string); ok {
							w.Filters = append(w.Filters, s)
						}
					}
				}
			}
		}
		out = append(out, w)
	}
	return out, nil
}

// CreateWebhook arms a scoped webhook at h.URL for h.Filters.
func (c *Client) CreateWebhook(ctx context.Context, conversationSid string, h conversation.Webhook) (string, error) {
	svc, rec := c.service(ctx, "create_webhook")
	p := &conversations.CreateConversationScopedWebhookParams{}
	p.SetTarget("webhook").SetConfigurationUrl(h.URL).SetConfigurationMethod(h.Method).SetConfigurationFilters(h.Filters)
	hook, err := svc.CreateConversationScopedWebhook(seg(conversationSid), p)
	if err != nil {
		return "", classify("create webhook", err, rec)
	}
	return deref(hook.Sid), nil
}

// CloseConversation sets State=closed: final at Twilio, and it frees the conversation's address pairs.
func (c *Client) CloseConversation(ctx context.Context, conversationSid string) error {
	svc, rec := c.service(ctx, "update_conversation")
	p := &conversations.UpdateConversationParams{}
	p.SetState("closed")
	if _, err := svc.UpdateConversation(seg(conversationSid), p); err != nil {
		return classify("close conversation", err, rec)
	}
	return nil
}

// RemoveParticipant removes the messaging participant whose binding address is address; none there
// counts as removed.
func (c *Client) RemoveParticipant(ctx context.Context, conversationSid, address string) error {
	svc, rec := c.service(ctx, "list_participants")
	p := &conversations.ListConversationParticipantParams{}
	p.SetPageSize(50) // Twilio's limit of non-chat participants in a conversation
	parts, err := svc.ListConversationParticipant(seg(conversationSid), p)
	if err != nil {
		return classify("list participants", err, rec)
	}
	for _, part := range parts {
		binding, _ := unbox(part.MessagingBinding).(map[string]any)
		if a, _ := binding["address"].(string); a != address {
			continue
		}
		svc, rec := c.service(ctx, "delete_participant")
		err := svc.DeleteConversationParticipant(seg(conversationSid), seg(deref(part.Sid)), nil)
		if err != nil {
			if err = classify("delete participant", err, rec); !twiliocall.IsNotFound(err) {
				return err
			}
		}
	}
	return nil
}

// unbox is what v points at, nil for nil.
func unbox(v *any) any {
	if v == nil {
		return nil
	}
	return *v
}

// FetchMessage reads one message of the conversation.
func (c *Client) FetchMessage(ctx context.Context, conversationSid, messageSid string) (chat.Message, error) {
	svc, rec := c.service(ctx, "fetch_message")
	m, err := svc.FetchConversationMessage(seg(conversationSid), seg(messageSid))
	if err != nil {
		return chat.Message{}, classify("fetch message", err, rec)
	}
	out := chat.Message{Sid: deref(m.Sid), Author: deref(m.Author), Body: deref(m.Body), Attributes: deref(m.Attributes), Index: m.Index}
	if m.DateCreated != nil {
		out.Created = m.DateCreated.UTC()
	}
	if m.Media != nil {
		for _, item := range *m.Media {
			out.Media = append(out.Media, mediaOf(item))
		}
	}
	return out, nil
}

// mediaOf reads one entry of a message's media: sid, content_type, filename (null when none), size.
func mediaOf(item any) chat.Media {
	fields, _ := item.(map[string]any)
	md := chat.Media{}
	md.Sid, _ = fields["sid"].(string)
	md.ContentType, _ = fields["content_type"].(string)
	md.Filename, _ = fields["filename"].(string)
	if size, ok := fields["size"].(float64); ok {
		md.Size = int64(size)
	}
	return md
}

// RecentDeliveries returns the newest messages, one page of at most limit, each with whether a
// delivery of it failed or was undelivered (the message's delivery summary: "none", "some", "all").
func (c *Client) RecentDeliveries(ctx context.Context, conversationSid string, limit int) ([]chat.Delivery, error) {
	msgs, err := c.newestMessages(ctx, conversationSid, limit)
	if err != nil {
		return nil, err
	}
	out := make([]chat.Delivery, 0, len(msgs))
	for _, m := range msgs {
		d := chat.Delivery{Sid: deref(m.Sid), Index: m.Index, Author: deref(m.Author), Ours: isOurs(deref(m.Attributes))}
		if m.DateCreated != nil {
			d.Created = m.DateCreated.UTC()
		}
		if summary, ok := unbox(m.Delivery).(map[string]any); ok {
			for _, key := range []string{"failed", "undelivered"} {
				if v, _ := summary[key].(string); v != "" && v != "none" {
					d.Failed = true
				}
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// FailureCodes returns the error codes of the message's failed or undelivered receipts.
func (c *Client) FailureCodes(ctx context.Context, conversationSid, messageSid string) ([]int, error) {
	svc, rec := c.service(ctx, "list_receipts")
	p := &conversations.ListConversationMessageReceiptParams{}
	p.SetPageSize(50)
	receipts, err := svc.ListConversationMessageReceipt(seg(conversationSid), seg(messageSid), p)
	if err != nil {
		return nil, classify("list receipts", err, rec)
	}
	var codes []int
	for _, r := range receipts {
		if st := deref(r.Status); (st == "failed" || st == "undelivered") && r.ErrorCode != 0 {
			codes = append(codes, r.ErrorCode)
		}
	}
	return codes, nil
}

// isoDuration writes d as an ISO 8601 duration (PT2H30M), as Twilio's timers take it.
func isoDuration(d time.Duration) string {
	d = d.Round(time.Second)
	var b strings.Builder
	b.WriteString("PT")
	if h := d / time.Hour; h > 0 {
		fmt.Fprintf(&b, "%dH", h)
	}
	if m := d % time.Hour / time.Minute; m > 0 {
		fmt.Fprintf(&b, "%dM", m)
	}
	if s := d % time.Minute / time.Second; s > 0 || b.Len() == 2 {
		fmt.Fprintf(&b, "%dS", s)
	}
	return b.String()
}

// isOurs reports whether a message's attributes carry the service's marker ({"optin":{…}}): the
// service made it, through the REST API, whoever it names as author.
func isOurs(attributes string) bool {
	var a struct {
		Optin json.RawMessage `json:"optin"`
	}
	return json.Unmarshal([]byte(attributes), &a) == nil && len(a.Optin) > 0
}
