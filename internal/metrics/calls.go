package metrics

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/optinkit/optin/internal/chat"
)

// callMetrics count the masked calls between a chat's parties.
type callMetrics struct {
	started prometheus.Counter
	ended   *prometheus.CounterVec
	refused *prometheus.CounterVec
	seconds prometheus.Counter
}

// dialStatuses are the Dial's outcomes Twilio reports (DialCallStatus); anything else counts as other,
// so that a label never takes a value the request chose.
var dialStatuses = []string{"completed", "answered", "busy", "no-answer", "failed", "canceled"}

// refusals are the reasons a call is not connected (chat.CallRefusedError).
var refusals = []string{chat.CallWithheld, chat.CallUnknown, chat.CallNotConnected, chat.CallChatEnded}

var _ chat.CallObserver = (*Metrics)(nil)

func newCallMetrics(reg prometheus.Registerer) callMetrics {
	c := callMetrics{
		started: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "optin_calls_started_total",
			Help: "Calls between a chat's parties put through to the other party's phone (a <Dial> placed, answered or not).",
		}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optin_calls_total",
			Help: "Calls between a chat's parties by the Dial's outcome (DialCallStatus: completed, answered, busy, no-answer, failed, canceled, other).",
		}, []string{"status"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optin_calls_refused_total",
			Help: "Calls to a business number not connected, by reason: withheld (no caller id), unknown (no chat of the caller on that number), not_connected (the customer has not agreed), ended (the chat is over).",
		}, []string{"reason"}),
		seconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "optin_call_seconds_total",
			Help: "Seconds of calls between a chat's parties (DialCallDuration), for the cost of their two legs.",
		}),
	}
	for _, s := range dialStatuses {
		c.ended.WithLabelValues(s)
	}
	for _, r := range refusals {
		c.refused.WithLabelValues(r)
	}
	reg.MustRegister(c.started, c.ended, c.refused, c.seconds)
	return c
}

// CallStarted counts a call connected to the other party.
func (m *Metrics) CallStarted() { m.calls.started.Inc() }

// CallEnded counts a call's outcome and its duration.
func (m *Metrics) CallEnded(status string, d time.Duration) {
	if !slices.Contains(dialStatuses, status) {
		status = "other"
	}
	m.calls.ended.WithLabelValues(status).Inc()
	if d > 0 {
		m.calls.seconds.Add(d.Seconds())
	}
}

// CallRefused counts a call not connected.
func (m *Metrics) CallRefused(reason string) {
	if !slices.Contains(refusals, reason) {
		reason = "other"
	}
	m.calls.refused.WithLabelValues(reason).Inc()
}
