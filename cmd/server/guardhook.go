package main

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/guard"
	"github.com/optinkit/optin/internal/metrics"
	"github.com/optinkit/optin/internal/twilioapi"
)

// The guard works only when Twilio asks it: the Conversation Service's (or the account's) webhook
// configuration must send onMessageAdd to the service. The start reads that configuration once and
// says so when it does not; it never changes it (optinctl guard hook does, when asked).

// guardHookCheckKey carries, in run's context, true to have run read the webhook configuration of a
// Twilio stand-in (OPTIN_TWILIO_API_URL) too: tests of the check.
type guardHookCheckKey struct{}

func withGuardHookCheck(ctx context.Context) context.Context {
	return context.WithValue(ctx, guardHookCheckKey{}, true)
}

// The guard_hook field of /readyz.
const (
	hookCalled    = "called"     // Twilio sends onMessageAdd to the guard
	hookNotCalled = "not_called" // it does not: messages are published unguarded
	hookUnread    = "unread"     // the configuration could not be read
)

// guardHookState is what the start learnt of the guard's hook, for /readyz.
type guardHookState struct{ v atomic.Value }

func (s *guardHookState) detail() map[string]string {
	if v, ok := s.v.Load().(string); ok {
		return map[string]string{"guard_hook": v}
	}
	return nil
}

// wantGuardHookCheck reports whether the start reads the hook: the guard on, the chats API on, and
// Twilio itself (a stand-in only when a test asks).
func wantGuardHookCheck(ctx context.Context, cfg settings) bool {
	asked, _ := ctx.Value(guardHookCheckKey{}).(bool)
	return cfg.guard.Mode != guard.Off && len(cfg.adminTokens) > 0 && !cfg.Demo && (cfg.TwilioAPIURL == "" || asked)
}

// checkGuardHook reads the webhook configuration Twilio uses for the chats' service and records
// whether it calls hook: a warning in the log, optin_guard_hook_configured, /readyz's guard_hook.
func checkGuardHook(ctx context.Context, log zerolog.Logger, tw *twilioapi.Client, hook string, m *metrics.Metrics, state *guardHookState) {
	s, err := tw.FetchConversationService(ctx)
	if err != nil {
		state.v.Store(hookUnread)
		log.Warn().Err(err).Msg("the guard's hook could not be checked: run optinctl doctor")
		return
	}
	level, cfg := s.Effective()
	if cfg.Guards(hook) {
		m.GuardHook(true)
		state.v.Store(hookCalled)
		log.Info().Str("service_sid", s.Sid).Str("level", level).Msg("Twilio sends onMessageAdd to the guard")
		return
	}
	m.GuardHook(false)
	state.v.Store(hookNotCalled)
	pre := "none"
	if cfg.PreURL != "" {
		pre = redactURL(cfg.PreURL)
	}
	log.Warn().Str("service_sid", s.Sid).Str("level", level).Str("pre_webhook_url", pre).Str("filters", strings.Join(cfg.Filters, ",")).
		Str("want", hook).Msg("OPTIN_GUARD is on but Twilio does not send onMessageAdd to the guard: typed numbers are published as written; set it with optinctl guard hook (docs/TWILIO.md)")
}
