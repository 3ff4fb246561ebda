package emulator

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Account is the rest of a Twilio account around the emulator's Conversations, as far as a check
// of an account's setup reads it (optinctl doctor): the account itself, its phone numbers, its
// WhatsApp senders, its Content templates (Options.Contents) and their WhatsApp approval, and the
// Conversations webhook configuration. The numbers and the webhook configuration are the
// emulator's own (WithAccount sets them, the REST API changes them); the rest is read-only.
type Account struct {
	// FriendlyName and Status ("active" when empty) of the account resource.
	FriendlyName, Status string
	// Numbers are the account's phone numbers (IncomingPhoneNumbers).
	Numbers []PhoneNumber
	// Senders are the account's WhatsApp senders (the Senders API).
	Senders []Sender
	// Approvals holds the WhatsApp approval of templates of Options.Contents; a template without
	// an entry is approved, in the UTILITY category.
	Approvals map[string]Approval
	// ServiceWebhooks and AccountWebhooks are the Conversations webhook configurations of the
	// default Conversation Service and of the account: none when empty.
	ServiceWebhooks, AccountWebhooks WebhookConfiguration
}

// PhoneNumber is one of the account's numbers: where its calls (VoiceURL) and the messages no
// conversation takes (SMSURL) go. Methods are GET or POST (the default).
type PhoneNumber struct {
	// Number is +E164.
	Number         string `json:"number"`
	FriendlyName   string `json:"friendly_name,omitempty"`
	SMS            bool   `json:"sms,omitempty"`
	Voice          bool   `json:"voice,omitempty"`
	SMSURL         string `json:"sms_url,omitempty"`
	SMSMethod      string `json:"sms_method,omitempty"`
	SMSFallbackURL string `json:"sms_fallback_url,omitempty"`
	VoiceURL       string `json:"voice_url,omitempty"`
	VoiceMethod    string `json:"voice_method,omitempty"`
	// VoiceFallbackURL is asked for TwiML when VoiceURL fails (no answer, an error status, bad TwiML).
	VoiceFallbackURL    string `json:"voice_fallback_url,omitempty"`
	VoiceFallbackMethod string `json:"voice_fallback_method,omitempty"`
	// MessagingServiceSid, when set, is sent with the messages the number hands to SMSURL.
	MessagingServiceSid string `json:"messaging_service_sid,omitempty"`
}

// Sender is a WhatsApp sender.
type Sender struct {
	// Address is whatsapp:+E164; Status is ONLINE when empty.
	Address, Status string
	// WebhookURL receives the messages no conversation takes.
	WebhookURL string
}

// Approval is a template's WhatsApp approval: Status approved, pending, rejected, unsubmitted, ….
type Approval struct {
	Status, Category, RejectionReason string
}

// WebhookConfiguration is a Conversations webhook configuration (pre- and post-event URLs) of the
// account or of its Conversation Service. Method is GET or POST (the default); Target, of the
// account's only, is webhook (the default) or flex.
type WebhookConfiguration struct {
	PreURL, PostURL, Method string
	Filters                 []string
	Target                  string
}

// WithAccount sets the account's numbers (added to the emulator's, SetNumber) and its non-empty
// webhook configurations, and returns a handler that answers the account's reads below and hands
// every other request to the emulator.
func (e *Emulator) WithAccount(a Account) http.Handler {
	e.mu.Lock()
	for _, n := range a.Numbers {
		e.setNumberLocked(n)
	}
	if !a.AccountWebhooks.empty() {
		e.accountHooks = a.AccountWebhooks
	}
	if !a.ServiceWebhooks.empty() {
		e.serviceHooks = a.ServiceWebhooks
	}
	e.mu.Unlock()
	m := http.NewServeMux()
	read := func(pattern string, h func(r *http.Request) (any, *apiError)) {
		m.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			e.logRequest(r)
			if !e.authorized(r) {
				w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
				writeAPIError(w, errAuth)
				return
			}
			body, err := h(r)
			if err != nil {
				writeAPIError(w, *err)
				return
			}
			writeJSON(w, http.StatusOK, body)
		})
	}
	read("GET /2010-04-01/Accounts/{file}", func(r *http.Request) (any, *apiError) {
		if r.PathValue("file") != e.opts.AccountSid+".json" {
			return nil, &errNotFound
		}
		return e.accountJSON(a), nil
	})
	read("GET /v2/Channels/Senders", func(r *http.Request) (any, *apiError) { return e.senders(r, a) })
	read("GET /v1/Content/{sid}", func(r *http.Request) (any, *apiError) { return e.contentJSON(r) })
	read("GET /v1/Content/{sid}/ApprovalRequests", func(r *http.Request) (any, *apiError) { return e.approvalJSON(r, a) })
	read("GET /v1/Configuration", func(r *http.Request) (any, *apiError) {
		u := baseURL(r) + "/v1/Configuration"
		return map[string]any{
			"account_sid": e.opts.AccountSid, "default_chat_service_sid": e.serviceSid(),
			"default_messaging_service_sid": nil, "default_inactive_timer": nil, "default_closed_timer": nil,
			"url": u, "links": map[string]any{"service": baseURL(r) + "/v1/Services/" + e.serviceSid() + "/Configuration", "webhooks": u + "/Webhooks"},
		}, nil
	})
	m.Handle("/", e)
	return m
}

// accountDate is the 2010 API's date format (RFC 2822).
const accountDate = "Mon, 02 Jan 2006 15:04:05 -0700"

func (e *Emulator) accountJSON(a Account) map[string]any {
	uri := "/2010-04-01/Accounts/" + e.opts.AccountSid
	return map[string]any{
		"sid": e.opts.AccountSid, "owner_account_sid": e.opts.AccountSid, "auth_token": e.opts.AuthToken,
		"friendly_name": cmp.Or(a.FriendlyName, "emulated account"), "status": cmp.Or(a.Status, "active"), "type": "Full",
		"date_created": e.started.UTC().Format(accountDate), "date_updated": e.started.UTC().Format(accountDate),
		"uri": uri + ".json", "subresource_uris": map[string]any{"incoming_phone_numbers": uri + "/IncomingPhoneNumbers.json"},
	}
}

func (e *Emulator) senders(r *http.Request, a Account) (any, *apiError) {
	q := r.URL.Query()
	if ch := q.Get("Channel"); ch != "" && ch != "whatsapp" {
		bad := badParam("Channel must be whatsapp")
		return nil, &bad
	}
	size, err := strconv.Atoi(q.Get("PageSize"))
	if err != nil || size <= 0 {
		size = 20
	}
	n, _ := strconv.Atoi(q.Get("Page"))
	n = max(n, 0)
	start := min(n*size, len(a.Senders))
	end := min(start+size, len(a.Senders))
	var out []any
	for i, s := range a.Senders[start:end] {
		sid := fmt.Sprintf("XE%032x", start+i+1)
		out = append(out, map[string]any{
			"sid": sid, "status": cmp.Or(s.Status, "ONLINE"), "sender_id": s.Address,
			"webhook": map[string]any{"callback_url": nullable(s.WebhookURL), "callback_method": "POST"},
			"url":     baseURL(r) + "/v2/Channels/Senders/" + sid,
		})
	}
	link := func(p int) string {
		v := url.Values{"Channel": {q.Get("Channel")}, "PageSize": {strconv.Itoa(size)}, "Page": {strconv.Itoa(p)}}
		if p > 0 {
			v.Set("PageToken", "PT"+strconv.Itoa(p))
		}
		return baseURL(r) + r.URL.Path + "?" + v.Encode()
	}
	meta := map[string]any{"page": n, "page_size": size, "key": "senders", "first_page_url": link(0), "url": link(n),
		"previous_page_url": nil, "next_page_url": nil}
	if n > 0 {
		meta["previous_page_url"] = link(n - 1)
	}
	if end < len(a.Senders) {
		meta["next_page_url"] = link(n + 1)
	}
	return map[string]any{"senders": orEmpty(out), "meta": meta}, nil
}

func (e *Emulator) contentJSON(r *http.Request) (any, *apiError) {
	sid := r.PathValue("sid")
	text, ok := e.opts.Contents[sid]
	if !ok {
		return nil, &errNotFound
	}
	vars := map[string]any{}
	for _, m := range placeholder.FindAllStringSubmatch(text, -1) {
		vars[m[1]] = "sample " + m[1]
	}
	u := baseURL(r) + "/v1/Content/" + sid
	ts := ts(e.started)
	return map[string]any{
		"sid": sid, "account_sid": e.opts.AccountSid, "friendly_name": "template_" + strings.ToLower(sid[len(sid)-6:]),
		"language": "en", "variables": vars, "types": map[string]any{"twilio/text": map[string]any{"body": text}},
		"date_created": ts, "date_updated": ts, "url": u,
		"links": map[string]any{"approval_fetch": u + "/ApprovalRequests", "approval_create": u + "/ApprovalRequests/whatsapp"},
	}, nil
}

func (e *Emulator) approvalJSON(r *http.Request, a Account) (any, *apiError) {
	sid := r.PathValue("sid")
	if _, ok := e.opts.Contents[sid]; !ok {
		return nil, &errNotFound
	}
	ap, ok := a.Approvals[sid]
	if !ok {
		ap = Approval{Status: "approved"}
	}
	return map[string]any{
		"sid": sid, "account_sid": e.opts.AccountSid, "url": baseURL(r) + r.URL.Path,
		"whatsapp": map[string]any{
			"type": "whatsapp", "name": "template_" + strings.ToLower(sid[len(sid)-6:]), "status": ap.Status,
			"category": cmp.Or(ap.Category, "UTILITY"), "content_type": "twilio/text",
			"rejection_reason": ap.RejectionReason, "allow_category_change": true,
		},
	}, nil
}

func digits(s string) string {
	return strings.Map(func(r rune) rune {
		if '0' <= r && r <= '9' {
			return r
		}
		return -1
	}, s)
}

func filters(f []string) []string {
	return slices.Concat([]string{}, f)
}

func orEmpty(items []any) []any {
	if items == nil {
		return []any{}
	}
	return items
}
