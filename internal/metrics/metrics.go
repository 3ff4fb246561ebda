// Package metrics is the service's Prometheus instrumentation, registered on a registry passed in:
// webhook outcomes, flows, steps, Twilio REST calls, retries, queue depth, Go runtime and process.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/optinkit/optin/internal/numberpool"
	"github.com/optinkit/optin/internal/optin"
)

// Webhook outcomes, the values of optin_webhook_requests_total's outcome label.
const (
	Processed    = "processed"
	Duplicate    = "duplicate"
	Ignored      = "ignored"
	BadSignature = "bad_signature"
	TooLarge     = "too_large"
	Malformed    = "malformed"
	Unavailable  = "unavailable"
	Failed       = "error"
)

// Metrics records what the service does.
type Metrics struct {
	webhooks *prometheus.CounterVec
	flows    *prometheus.CounterVec
	steps    *prometheus.HistogramVec
	twilio   *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	retries  *prometheus.CounterVec
	chats    *prometheus.CounterVec
	events   *prometheus.CounterVec
	upkeep   *prometheus.CounterVec
	resent   prometheus.Counter
	noNumber prometheus.Counter
	relay    relayMetrics
	calls    callMetrics
	mask     maskMetrics
	reg      prometheus.Registerer
}

// relayMetrics count what happens to messages in connected chats.
type relayMetrics struct {
	held, resent, nudges, fallbacks, parked prometheus.Counter
	dropped                                 *prometheus.CounterVec
}

var _ optin.Observer = (*Metrics)(nil)

// New registers the metrics on reg. queueDepth, when not nil, is read at each scrape.
func New(reg prometheus.Registerer, queueDepth func() (int, error)) *Metrics {
	m := &Metrics{
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optin_webhook_requests_total",
			Help: "Conversations webhook requests by outcome.",
		}, []string{"outcome"}),
		flows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optin_flows_finished_total",
			Help: "Opt-in flows finished, by final state (done or failed).",
		}, []string{"state"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "optin_step_duration_seconds",
			Help:    "Time an opt-in step took, retries included, by step and outcome.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"step", "outcome"}),
		twilio: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optin_twilio_requests_total",
			Help: "HTTP requests to Twilio's REST API by operation and status (\"error\" when no answer came).",
		}, []string{"operation", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "optin_twilio_request_duration_seconds",
			Help:    "Latency of Twilio REST requests by operation.",
			Buckets: prometheus.DefBuckets,
		}, []string{"operation"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optin_retries_total",
			Help: "REST calls retried after a transient failure, by operation.",
		}, []string{"operation"}),
		chats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optin_chat_transitions_total",
			Help: "Chats entering a state, by state and reason: consent rate = connecting / (connecting + declined).",
		}, []string{"state", "reason"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optin_callbacks_total",
			Help: "Deliveries of chat events to the platform by outcome: delivered, retried, rejected, expired.",
		}, []string{"outcome"}),
	}
	m.upkeep = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "optin_chats_reconciled_total",
		Help: "What the reconciler did to chats: closed (Twilio had closed the conversation), concluded (an end left undone), resumed or failed (a start cut off).",
	}, []string{"outcome"})
	m.resent = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "optin_outbox_resent_total",
		Help: "Chat events queued again by the outbox sweep (their first queueing failed or was lost).",
	})
	m.noNumber = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "optin_pool_exhausted_total",
		Help: "Chat starts refused because no business number was free for a party.",
	})
	m.relay = relayMetrics{
		held: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "optin_messages_held_total",
			Help: "Messages held for a party whose WhatsApp window was closed (63016), to be sent again once they write.",
		}),
		resent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "optin_messages_resent_total",
			Help: "Held messages sent again after their party wrote.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "optin_messages_dropped_total",
			Help: "Held messages dropped, by reason: expired (held longer than OPTIN_HOLD_MAX), closed (the chat ended), overflow (beyond OPTIN_HOLD_LIMIT), refused (Twilio refused the copy for good).",
		}, []string{"reason"}),
		nudges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "optin_nudges_total",
			Help: "Nudge templates sent to a party with a closed window and a held message.",
		}),
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "optin_channel_fallbacks_total",
			Help: "Customers moved from WhatsApp to SMS because their number is not on WhatsApp (63003, 63024).",
		}),
		parked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "optin_chat_work_parked_total",
			Help: "Chats whose recorded work (held messages, nudges, a move to SMS, a release) failed through all its runs; the sweep keeps trying.",
		}),
	}
	for _, reason := range []string{"expired", "closed", "overflow", "refused"} {
		m.relay.dropped.WithLabelValues(reason) // exported at 0 before the first drop, for alerts and rates
	}
	m.reg = reg
	m.calls = newCallMetrics(reg)
	m.mask = newMaskMetrics(reg)
	reg.MustRegister(m.relay.held, m.relay.resent, m.relay.dropped, m.relay.nudges, m.relay.fallbacks, m.relay.parked)
	reg.MustRegister(m.webhooks, m.flows, m.steps, m.twilio, m.latency, m.retries, m.chats, m.events, m.upkeep, m.resent, m.noNumber,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if queueDepth != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "optin_queue_depth",
			Help: "Opt-ins queued or waiting for a retry, not yet being worked on (-1 when the queue cannot be read).",
		}, func() float64 {
			n, err := queueDepth()
			if err != nil {
				return -1
			}
			return float64(n)
		}))
	}
	return m
}

// Handler serves the registry's metrics.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}

// Webhook counts one webhook request.
func (m *Metrics) Webhook(outcome string) { m.webhooks.WithLabelValues(outcome).Inc() }

// FlowFinished counts a flow's final state.
func (m *Metrics) FlowFinished(state optin.State) { m.flows.WithLabelValues(string(state)).Inc() }

// StepFinished observes a step's duration.
func (m *Metrics) StepFinished(step, outcome string, d time.Duration) {
	m.steps.WithLabelValues(step, outcome).Observe(d.Seconds())
}

// WatchPool exports the pairs in use on each number of a pool, read at each scrape.
func (m *Metrics) WatchPool(usage func(context.Context) ([]numberpool.Usage, error)) {
	m.reg.MustRegister(&poolCollector{usage: usage, desc: prometheus.NewDesc("optin_pool_pairs_in_use",
		"(address, number) pairs leased to open chats, per business number: a person in k chats at once needs k numbers.",
		[]string{"number", "channel"}, nil)})
}

type poolCollector struct {
	usage func(context.Context) ([]numberpool.Usage, error)
	desc  *prometheus.Desc
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	usage, err := c.usage(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, u := range usage {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(u.InUse), u.Number, u.Channel)
	}
}

// ChatTransition counts a chat entering state.
func (m *Metrics) ChatTransition(state, reason string) { m.chats.WithLabelValues(state, reason).Inc() }

// Reconciled counts n chats the reconciler treated with outcome.
func (m *Metrics) Reconciled(outcome string, n int) {
	m.upkeep.WithLabelValues(outcome).Add(float64(n))
}

// OutboxResent counts n events the outbox sweep queued again.
func (m *Metrics) OutboxResent(n int) { m.resent.Add(float64(n)) }

// MessagesHeld counts n messages held for a closed window.
func (m *Metrics) MessagesHeld(n int) { m.relay.held.Add(float64(n)) }

// MessagesResent counts n held messages sent again.
func (m *Metrics) MessagesResent(n int) { m.relay.resent.Add(float64(n)) }

// MessagesDropped counts n held messages dropped for reason.
func (m *Metrics) MessagesDropped(reason string, n int) {
	m.relay.dropped.WithLabelValues(reason).Add(float64(n))
}

// Nudged counts a nudge sent.
func (m *Metrics) Nudged() { m.relay.nudges.Inc() }

// ChannelFallback counts a customer moved to SMS.
func (m *Metrics) ChannelFallback() { m.relay.fallbacks.Inc() }

// WorkParked counts a chat whose work failed through all its runs.
func (m *Metrics) WorkParked() { m.relay.parked.Inc() }

// NoFreeNumber counts a start the pool could not serve.
func (m *Metrics) NoFreeNumber() { m.noNumber.Inc() }

// Callback counts one delivery attempt of a chat event.
func (m *Metrics) Callback(outcome string) { m.events.WithLabelValues(outcome).Inc() }

// Retry counts a retried call.
func (m *Metrics) Retry(operation string) { m.retries.WithLabelValues(operation).Inc() }

// TwilioRequest counts one HTTP request to Twilio; status 0 means no answer.
func (m *Metrics) TwilioRequest(operation string, status int, d time.Duration) {
	label := "error"
	if status != 0 {
		label = strconv.Itoa(status)
	}
	m.twilio.WithLabelValues(operation, label).Inc()
	m.latency.WithLabelValues(operation).Observe(d.Seconds())
}
