package twilioapi

import (
	"context"
	"fmt"
	"net/url"
	"slices"

	conversations "github.com/twilio/twilio-go/rest/conversations/v1"
)

// The guard's hook: Twilio asks a pre-event URL about each message of a phone before it publishes it
// (onMessageAdd). Pre-event URLs are set per Conversation Service or for the account, never per
// conversation, and one Filters list serves the pre- and the post-event URL of a configuration.

// GuardEvent is the pre-event the guard answers.
const GuardEvent = "onMessageAdd"

// Webhook configuration levels.
const (
	LevelService = "service"
	LevelAccount = "account"
)

// Effective is the webhook configuration Twilio uses for the service's conversations, and its level:
// a service's own configuration replaces the account's wholly once it has a URL; without one, the
// account's applies.
func (s ConversationService) Effective() (level string, cfg WebhookConfiguration) {
	if s.Service.PreURL != "" || s.Service.PostURL != "" {
		return LevelService, s.Service
	}
	return LevelAccount, s.Account
}

// Guards reports whether the configuration sends onMessageAdd pre-events to hook.
func (w WebhookConfiguration) Guards(hook string) bool {
	return w.PreURL == hook && slices.Contains(w.Filters, GuardEvent)
}

// PreHookTakenError refuses to replace a pre-event URL that is not the guard's.
type PreHookTakenError struct {
	Level, URL string
}

func (e *PreHookTakenError) Error() string {
	return fmt.Sprintf("the %s-level pre-event webhook is %s, not optin's: optin does not replace it (change it yourself if it should be optin's guard)", e.Level, redactURL(e.URL))
}

// GuardHookChange says what SetGuardHook found and did.
type GuardHookChange struct {
	ServiceSid string
	// Level is the configuration changed (or that already guarded): service or account.
	Level string
	// Before and After are that configuration; they are equal when Changed is false.
	Before, After WebhookConfiguration
	Changed       bool
}

// SetGuardHook makes Twilio send the chats' service's onMessageAdd pre-events to hook, on the
// configuration Twilio reads for the service (Effective; the service's own when neither has a URL, so
// that no other service is touched, and the account's when only it has one, so that the account's
// hooks keep firing for this service). It keeps every filter already there and the method (POST when
// none), and refuses, changing nothing, when the pre-event URL is another's. Nothing is written when
// the configuration already guards.
func (c *Client) SetGuardHook(ctx context.Context, hook string) (GuardHookChange, error) {
	s, err := c.FetchConversationService(ctx)
	if err != nil {
		return GuardHookChange{}, err
	}
	level, cfg := s.Effective()
	if cfg.PreURL == "" && cfg.PostURL == "" {
		level, cfg = LevelService, s.Service
	}
	ch := GuardHookChange{ServiceSid: s.Sid, Level: level, Before: cfg, After: cfg}
	if cfg.Guards(hook) {
		return ch, nil
	}
	if cfg.PreURL != "" && cfg.PreURL != hook {
		return ch, &PreHookTakenError{Level: level, URL: cfg.PreURL}
	}
	filters := slices.Clone(cfg.Filters)
	if !slices.Contains(filters, GuardEvent) {
		filters = append(filters, GuardEvent)
	}
	method := cfg.Method
	if method == "" {
		method = "POST"
	}
	var after WebhookConfiguration
	if level == LevelService {
		svc, rec := c.service(ctx, "update_service_webhooks")
		p := &conversations.UpdateServiceWebhookConfigurationParams{}
		p.SetPreWebhookUrl(hook).SetFilters(filters).SetMethod(method)
		w, err := svc.UpdateServiceWebhookConfiguration(seg(s.Sid), p)
		if err != nil {
			return ch, classify("update service webhooks", err, rec)
		}
		after = WebhookConfiguration{PreURL: deref(w.PreWebhookUrl), PostURL: deref(w.PostWebhookUrl), Method: deref(w.Method)}
		if w.Filters != nil {
			after.Filters = *w.Filters
		}
	} else {
		svc, rec := c.service(ctx, "update_account_webhooks")
		p := &conversations.UpdateConfigurationWebhookParams{}
		p.SetPreWebhookUrl(hook).SetFilters(filters).SetMethod(method)
		w, err := svc.UpdateConfigurationWebhook(p)
		if err != nil {
			return ch, classify("update account webhooks", err, rec)
		}
		after = WebhookConfiguration{PreURL: deref(w.PreWebhookUrl), PostURL: deref(w.PostWebhookUrl), Method: deref(w.Method)}
		if w.Filters != nil {
			after.Filters = *w.Filters
		}
	}
	ch.After, ch.Changed = after, true
	return ch, nil
}

// redactURL hides the user and password a webhook URL may carry.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a URL that does not parse)"
	}
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	return u.String()
}
