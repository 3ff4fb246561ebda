package emulator

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// The Conversations webhook configurations of the account (/v1/Configuration/Webhooks) and of its
// Conversation Service (/v1/Services/{ChatServiceSid}/Configuration/Webhooks). Their pre-event URL
// takes onMessageAdd (preevent.go); their post-event URL is stored and shown, never called.

// eventFilters are the events a webhook configuration may filter on, as Twilio's spec lists them.
var eventFilters = []string{
	"onMessageAdd", "onMessageAdded", "onMessageUpdate", "onMessageUpdated", "onMessageRemove", "onMessageRemoved",
	"onConversationAdd", "onConversationAdded", "onConversationUpdate", "onConversationUpdated",
	"onConversationRemove", "onConversationRemoved", "onConversationStateUpdated",
	"onParticipantAdd", "onParticipantAdded", "onParticipantUpdate", "onParticipantUpdated",
	"onParticipantRemove", "onParticipantRemoved", "onDeliveryUpdated", "onUserAdded", "onUserUpdate", "onUserUpdated",
}

func (c WebhookConfiguration) empty() bool {
	return c.PreURL == "" && c.PostURL == "" && c.Method == "" && len(c.Filters) == 0 && c.Target == ""
}

// SetAccountWebhooks replaces the account's Conversations webhook configuration.
func (e *Emulator) SetAccountWebhooks(c WebhookConfiguration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.accountHooks = c
}

// SetServiceWebhooks replaces the Conversation Service's webhook configuration.
func (e *Emulator) SetServiceWebhooks(c WebhookConfiguration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.serviceHooks = c
}

// WebhookConfigurations returns the Conversation Service's and the account's webhook configurations.
func (e *Emulator) WebhookConfigurations() (service, account WebhookConfiguration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.serviceHooks, e.accountHooks
}

func (e *Emulator) accountHooksJSON(r *http.Request) map[string]any {
	c := e.accountHooks
	return map[string]any{
		"account_sid": e.opts.AccountSid, "target": cmp.Or(c.Target, "webhook"), "url": baseURL(r) + "/v1/Configuration/Webhooks",
		"method": cmp.Or(c.Method, "POST"), "filters": filters(c.Filters),
		"pre_webhook_url": nullable(c.PreURL), "post_webhook_url": nullable(c.PostURL),
	}
}

func (e *Emulator) serviceHooksJSON(r *http.Request) map[string]any {
	c := e.serviceHooks
	return map[string]any{
		"account_sid": e.opts.AccountSid, "chat_service_sid": e.serviceSid(),
		"url":    baseURL(r) + "/v1/Services/" + e.serviceSid() + "/Configuration/Webhooks",
		"method": cmp.Or(c.Method, "POST"), "filters": filters(c.Filters),
		"pre_webhook_url": nullable(c.PreURL), "post_webhook_url": nullable(c.PostURL),
	}
}

// applyHookConfig copies the update's fields onto c; a bad one changes nothing. An empty URL clears it.
func applyHookConfig(c *WebhookConfiguration, f url.Values, withTarget bool) *apiError {
	changed := *c
	for _, field := range []struct {
		name string
		dst  *string
	}{{"PreWebhookUrl", &changed.PreURL}, {"PostWebhookUrl", &changed.PostURL}} {
		if !f.Has(field.name) {
			continue
		}
		if v := f.Get(field.name); v != "" && !absoluteHTTP(v) {
			bad := badParam(field.name + " must be an absolute http(s) URL")
			return &bad
		}
		*field.dst = f.Get(field.name)
	}
	if f.Has("Method") {
		m := strings.ToUpper(f.Get("Method"))
		if m != http.MethodGet && m != http.MethodPost {
			bad := badParam("Method must be GET or POST")
			return &bad
		}
		changed.Method = m
	}
	if f.Has("Filters") {
		for _, name := range f["Filters"] {
			if !slices.Contains(eventFilters, name) {
				bad := badParam("Filters: unknown event " + name)
				return &bad
			}
		}
		changed.Filters = slices.Clone(f["Filters"])
	}
	if f.Has("Target") {
		t := f.Get("Target")
		if !withTarget || (t != "webhook" && t != "flex") {
			bad := badParam("Target must be webhook or flex")
			return &bad
		}
		changed.Target = t
	}
	*c = changed
	return nil
}

func (e *Emulator) fetchAccountHooks(r *http.Request, _ string) (int, any, *apiError) {
	return http.StatusOK, e.accountHooksJSON(r), nil
}

func (e *Emulator) updateAccountHooks(r *http.Request, _ string) (int, any, *apiError) {
	if err := applyHookConfig(&e.accountHooks, r.PostForm, true); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, e.accountHooksJSON(r), nil
}

func (e *Emulator) fetchServiceHooks(r *http.Request, _ string) (int, any, *apiError) {
	return http.StatusOK, e.serviceHooksJSON(r), nil
}

func (e *Emulator) updateServiceHooks(r *http.Request, _ string) (int, any, *apiError) {
	if err := applyHookConfig(&e.serviceHooks, r.PostForm, false); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, e.serviceHooksJSON(r), nil
}

// preEventURL is where onMessageAdd goes, with its method: the service's configuration when it
// asks for onMessageAdd, else the account's; "" when neither does. Callers hold e.mu.
func (e *Emulator) preEventURL() (string, string) {
	for _, c := range []WebhookConfiguration{e.serviceHooks, e.accountHooks} {
		if c.PreURL != "" && hasFilter(c.Filters, "onMessageAdd") && cmp.Or(c.Target, "webhook") == "webhook" {
			return c.PreURL, cmp.Or(c.Method, http.MethodPost)
		}
	}
	return "", ""
}
