package twilioapi

import (
	"context"
	"slices"
	"strings"

	api "github.com/twilio/twilio-go/rest/api/v2010"
	content "github.com/twilio/twilio-go/rest/content/v1"
	messaging "github.com/twilio/twilio-go/rest/messaging/v2"
)

// The reads an operator's check of an account makes (optinctl doctor): the account, its phone
// numbers, its WhatsApp senders, its Content templates and their approval, its Conversation Service.
// Each changes nothing at Twilio.

// Account is what the account resource says of itself.
type Account struct {
	Sid, FriendlyName string
	// Status is active, suspended or closed; Type is Trial or Full.
	Status, Type string
}

// FetchAccount reads the account the client's credentials act for: GET /2010-04-01/Accounts/{Sid}.json.
// The answer holds the auth token too, which is dropped here.
func (c *Client) FetchAccount(ctx context.Context) (Account, error) {
	h, rec := c.handler(ctx, "fetch_account")
	a, err := api.NewApiService(h).FetchAccount(seg(c.opts.AccountSid))
	if err != nil {
		return Account{}, classify("fetch account", err, rec)
	}
	return Account{Sid: deref(a.Sid), FriendlyName: deref(a.FriendlyName), Status: deref(a.Status), Type: deref(a.Type)}, nil
}

// PhoneNumber is one of the account's phone numbers and where Twilio sends what arrives on it.
type PhoneNumber struct {
	Sid, Number string
	SMS, Voice  bool
	// SMSURL and SMSMethod receive a message that no conversation takes; an SMS application
	// (SMSApplicationSid) replaces them.
	SMSURL, SMSMethod, SMSApplicationSid string
	// VoiceURL and VoiceMethod answer a call; a voice application or a SIP trunk replaces them.
	VoiceURL, VoiceMethod, VoiceApplicationSid, TrunkSid string
}

// phonePageSize is how many numbers a page of the number lookup holds.
const phonePageSize = 20

// FindPhoneNumber looks number (+E164) up among the account's phone numbers:
// GET /2010-04-01/Accounts/{Sid}/IncomingPhoneNumbers.json?PhoneNumber=…. Twilio matches the
// parameter loosely; only the number itself counts.
func (c *Client) FindPhoneNumber(ctx context.Context, number string) (PhoneNumber, bool, error) {
	h, rec := c.handler(ctx, "list_phone_numbers")
	p := &api.ListIncomingPhoneNumberParams{}
	p.SetPhoneNumber(number).SetPageSize(phonePageSize)
	found, err := api.NewApiService(h).ListIncomingPhoneNumber(p)
	if err != nil {
		return PhoneNumber{}, false, classify("list phone numbers", err, rec)
	}
	for _, n := range found {
		if deref(n.PhoneNumber) != number {
			continue
		}
		out := PhoneNumber{Sid: deref(n.Sid), Number: number,
			SMSURL: deref(n.SmsUrl), SMSMethod: deref(n.SmsMethod), SMSApplicationSid: deref(n.SmsApplicationSid),
			VoiceURL: deref(n.VoiceUrl), VoiceMethod: deref(n.VoiceMethod), VoiceApplicationSid: deref(n.VoiceApplicationSid),
			TrunkSid: deref(n.TrunkSid)}
		if n.Capabilities != nil {
			out.SMS, out.Voice = n.Capabilities.Sms, n.Capabilities.Voice
		}
		return out, true, nil
	}
	return PhoneNumber{}, false, nil
}

// WhatsAppSender is one of the account's WhatsApp senders.
type WhatsAppSender struct {
	Sid string
	// Address is whatsapp:+E164.
	Address string
	// Status is ONLINE when it can send; CREATING, OFFLINE, PENDING_VERIFICATION, VERIFYING,
	// ONLINE:UPDATING, TWILIO_REVIEW, DRAFT or STUBBED otherwise.
	Status string
	// WebhookURL receives a message to the sender that no conversation takes.
	WebhookURL string
}

// senderPageSize is the Senders API's default page for WhatsApp, asked for explicitly.
const senderPageSize = 20

// WhatsAppSenders lists the account's WhatsApp senders, every page:
// GET messaging.twilio.com/v2/Channels/Senders?Channel=whatsapp.
func (c *Client) WhatsAppSenders(ctx context.Context) ([]WhatsAppSender, error) {
	h, rec := c.handler(ctx, "list_senders")
	p := &messaging.ListChannelsSenderParams{}
	p.SetChannel("whatsapp").SetPageSize(senderPageSize)
	senders, err := messaging.NewApiService(h).ListChannelsSender(p)
	if err != nil {
		return nil, classify("list senders", err, rec)
	}
	out := make([]WhatsAppSender, 0, len(senders))
	for _, s := range senders {
		w := WhatsAppSender{Sid: deref(s.Sid), Address: deref(s.SenderId), Status: deref(s.Status)}
		if s.Webhook != nil {
			w.WebhookURL = deref(s.Webhook.CallbackUrl)
		}
		out = append(out, w)
	}
	return out, nil
}

// Template is a Content template and its WhatsApp approval.
type Template struct {
	Sid, FriendlyName, Language string
	// Variables are the names of the template's variables ("1", "2", …), sorted.
	Variables []string
	// Types are its content types (twilio/text, twilio/quick-reply, …), sorted.
	Types []string
	// Approval is WhatsApp's verdict: Status is empty when none was ever asked for.
	Approval TemplateApproval
}

// TemplateApproval is a template's WhatsApp approval request as the Content API reports it.
type TemplateApproval struct {
	Status, Name, Category, RejectionReason string
}

// FetchTemplate reads a Content template, GET content.twilio.com/v1/Content/{Sid}, and its WhatsApp
// approval, GET …/Content/{Sid}/ApprovalRequests.
func (c *Client) FetchTemplate(ctx context.Context, sid string) (Template, error) {
	h, rec := c.handler(ctx, "fetch_content")
	t, err := content.NewApiService(h).FetchContent(seg(sid))
	if err != nil {
		return Template{}, classify("fetch content", err, rec)
	}
	out := Template{Sid: deref(t.Sid), FriendlyName: deref(t.FriendlyName), Language: deref(t.Language)}
	if t.Variables != nil {
		for name := range *t.Variables {
			out.Variables = append(out.Variables, name)
		}
	}
	if t.Types != nil {
		for name := range *t.Types {
			out.Types = append(out.Types, name)
		}
	}
	slices.SortFunc(out.Variables, compareVariables)
	slices.Sort(out.Types)
	h, rec = c.handler(ctx, "fetch_content_approval")
	a, err := content.NewApiService(h).FetchApprovalFetch(seg(sid))
	if err != nil {
		return Template{}, classify("fetch content approval", err, rec)
	}
	if a.Whatsapp != nil {
		w := *a.Whatsapp
		str := func(key string) string { s, _ := w[key].(string); return s }
		out.Approval = TemplateApproval{Status: str("status"), Name: str("name"), Category: str("category"), RejectionReason: str("rejection_reason")}
	}
	return out, nil
}

// compareVariables orders "2" before "10", then names as text.
func compareVariables(a, b string) int {
	if len(a) != len(b) && strings.Trim(a, "0123456789") == "" && strings.Trim(b, "0123456789") == "" {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// ConversationService is the Conversation Service the client's chats are made in, and the webhooks
// Twilio calls for every conversation of it.
type ConversationService struct {
	Sid, FriendlyName string
	// Default: it is the account's default Conversation Service.
	Default bool
	// Service and Account are the service-level and the account-level webhook configurations.
	Service, Account WebhookConfiguration
}

// WebhookConfiguration is where Twilio sends the events of every conversation: pre-event hooks
// (onMessageAdd, …) to PreURL, whose answer can change or drop the action, post-event ones to PostURL.
type WebhookConfiguration struct {
	PreURL, PostURL, Method string
	Filters                 []string
}

// FetchConversationService reads the configured Conversation Service (the account's default when
// none is configured): GET /v1/Configuration, GET /v1/Services/{Sid}, and the webhook
// configurations GET /v1/Services/{Sid}/Configuration/Webhooks and GET /v1/Configuration/Webhooks.
func (c *Client) FetchConversationService(ctx context.Context) (ConversationService, error) {
	svc, rec := c.service(ctx, "fetch_configuration")
	cfg, err := svc.FetchConfiguration()
	if err != nil {
		return ConversationService{}, classify("fetch configuration", err, rec)
	}
	defaultSid := deref(cfg.DefaultChatServiceSid)
	sid := c.opts.ConversationsService
	if sid == "" {
		sid = defaultSid
	}
	svc, rec = c.service(ctx, "fetch_service")
	s, err := svc.FetchService(seg(sid))
	if err != nil {
		return ConversationService{}, classify("fetch service", err, rec)
	}
	out := ConversationService{Sid: deref(s.Sid), FriendlyName: deref(s.FriendlyName), Default: deref(s.Sid) == defaultSid}
	svc, rec = c.service(ctx, "fetch_service_webhooks")
	sw, err := svc.FetchServiceWebhookConfiguration(seg(sid))
	if err != nil {
		return ConversationService{}, classify("fetch service webhooks", err, rec)
	}
	out.Service = WebhookConfiguration{PreURL: deref(sw.PreWebhookUrl), PostURL: deref(sw.PostWebhookUrl), Method: deref(sw.Method)}
	if sw.Filters != nil {
		out.Service.Filters = *sw.Filters
	}
	svc, rec = c.service(ctx, "fetch_account_webhooks")
	aw, err := svc.FetchConfigurationWebhook()
	if err != nil {
		return ConversationService{}, classify("fetch account webhooks", err, rec)
	}
	out.Account = WebhookConfiguration{PreURL: deref(aw.PreWebhookUrl), PostURL: deref(aw.PostWebhookUrl), Method: deref(aw.Method)}
	if aw.Filters != nil {
		out.Account.Filters = *aw.Filters
	}
	return out, nil
}
