package metrics

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// maskMetrics count what the guard and the answer after the end do.
type maskMetrics struct {
	guarded  *prometheus.CounterVec
	skipped  *prometheus.CounterVec
	afterEnd *prometheus.CounterVec
	hook     prometheus.Gauge
}

// The label values of the mask's counters: a value outside them counts as other, so that a label
// never takes a value a request chose.
var (
	guardKinds   = []string{"number", "email", "link"}
	guardActions = []string{"redact", "block"}
	// GuardSkipped reasons: a message published as written without the guard's answer.
	guardSkips = []string{GuardOff, GuardNoChat, GuardOtherEvent, GuardError, GuardTimeout}
	// AfterEnd outcomes.
	afterEndOutcomes = []string{AfterEndAnswered, AfterEndSilenced, AfterEndNoChat, AfterEndError}
)

// Why a pre-event was answered 200 {} without the guard reading the message (optin_guard_skipped_total).
const (
	GuardOff        = "off"         // OPTIN_GUARD is off
	GuardNoChat     = "no_chat"     // the conversation is no chat's (or the chats API is off)
	GuardOtherEvent = "other_event" // a pre-event other than onMessageAdd
	GuardError      = "error"       // the chat could not be read, or the guard failed: the message goes out as written
	GuardTimeout    = "timeout"     // the guard's budget ran out: the message goes out as written
)

// What became of a message to a business number with no active conversation (optin_messages_after_end_total).
const (
	AfterEndAnswered = "answered" // the chat's party got OPTIN_AFTER_END_TEXT
	AfterEndSilenced = "silenced" // answered within OPTIN_AFTER_END_EVERY already, a keyword, or a chat not over
	AfterEndNoChat   = "no_chat"  // the pair never had a chat (within the retention)
	AfterEndError    = "error"    // the chat could not be read: nothing answered
)

func newMaskMetrics(reg prometheus.Registerer) maskMetrics {
	m := maskMetrics{
		guarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optin_messages_guarded_total",
			Help: "Messages of a chat's party the guard changed (action redact) or kept from the other party (action block), once per kind of contact data found in them (number, email, link).",
		}, []string{"kind", "action"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optin_guard_skipped_total",
			Help: "Pre-event requests answered 200 {} (published as written) without a guard's verdict, by reason: off (OPTIN_GUARD), no_chat, other_event, error (fail open), timeout (fail open).",
		}, []string{"reason"}),
		afterEnd: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optin_messages_after_end_total",
			Help: "Messages to a business number with no active conversation on their pair, by outcome: answered, silenced (answered lately, a keyword, or the chat not over), no_chat, error.",
		}, []string{"outcome"}),
		hook: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "optin_guard_hook_configured",
			Help: "1 when Twilio's webhook configuration sends onMessageAdd to this service's guard, 0 when it does not, -1 when it was not read (the guard is off, or the read failed).",
		}),
	}
	for _, k := range guardKinds {
		for _, a := range guardActions {
			m.guarded.WithLabelValues(k, a)
		}
	}
	for _, r := range guardSkips {
		m.skipped.WithLabelValues(r)
	}
	for _, o := range afterEndOutcomes {
		m.afterEnd.WithLabelValues(o)
	}
	m.hook.Set(-1)
	reg.MustRegister(m.guarded, m.skipped, m.afterEnd, m.hook)
	return m
}

func known(values []string, v string) string {
	if slices.Contains(values, v) {
		return v
	}
	return "other"
}

// MessageGuarded counts a message the guard acted on, once per kind found in it.
func (m *Metrics) MessageGuarded(kind, action string) {
	m.mask.guarded.WithLabelValues(known(guardKinds, kind), known(guardActions, action)).Inc()
}

// GuardSkipped counts a pre-event published as written without the guard's verdict.
func (m *Metrics) GuardSkipped(reason string) {
	m.mask.skipped.WithLabelValues(known(guardSkips, reason)).Inc()
}

// AfterEnd counts a message to a business number with no active conversation.
func (m *Metrics) AfterEnd(outcome string) {
	m.mask.afterEnd.WithLabelValues(known(afterEndOutcomes, outcome)).Inc()
}

// GuardHook records whether Twilio calls the guard (read once at start).
func (m *Metrics) GuardHook(configured bool) {
	if configured {
		m.mask.hook.Set(1)
	} else {
		m.mask.hook.Set(0)
	}
}
