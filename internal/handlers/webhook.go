package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/rs/zerolog/hlog"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/metrics"
	"github.com/optinkit/optin/internal/signature"
)

// MaxBodyBytes is the largest webhook body accepted. An onMessageAdded carries at most 1,600 characters
// of Body and 4 KiB of Attributes: form-encoded, under 32 KiB even when every byte is escaped.
const MaxBodyBytes = 64 << 10

// stateBudget bounds the store and queue calls a webhook waits for, well inside Twilio's 5 s: a stalled
// Redis answers 503 (Twilio delivers again) rather than a timeout.
const stateBudget = 2 * time.Second

// Flows is what the webhook needs of the opt-in.
type Flows interface {
	Handle(ctx context.Context, ev conversation.Event) (conversation.Decision, error)
}

// Lifecycle is what the webhook tells the chats started through the API: that Twilio closed a
// chat's conversation, each message written in it, and each message's delivery.
type Lifecycle interface {
	StateUpdated(ctx context.Context, ev conversation.Event) (conversation.Decision, error)
	// MessageAdded takes a chat's message; taken is false when the opt-in decides it instead.
	MessageAdded(ctx context.Context, ev conversation.Event) (d conversation.Decision, taken bool, err error)
	DeliveryUpdated(ctx context.Context, ev conversation.Event) (conversation.Decision, error)
}

// dispatch hands the event to whom it concerns: a chat's lifecycle, or the opt-in.
func dispatch(ctx context.Context, flows Flows, l Lifecycle, ev conversation.Event) (conversation.Decision, error) {
	if l == nil {
		return flows.Handle(ctx, ev)
	}
	if err := ev.Validate(); err != nil {
		return conversation.Decision{}, err
	}
	switch ev.Type {
	case conversation.EventStateUpdated:
		return l.StateUpdated(ctx, ev)
	case conversation.EventDeliveryUpdated:
		return l.DeliveryUpdated(ctx, ev)
	case conversation.EventMessageAdded:
		if ev.Author != "" && ev.Author != "system" {
			d, taken, err := l.MessageAdded(ctx, ev)
			if err != nil || taken {
				return d, err
			}
		}
	}
	return flows.Handle(ctx, ev)
}

// SignedURL rebuilds the URL Twilio signed. With Public set it is Public joined with the request's path
// and query, which is right behind any proxy; otherwise it comes from the request itself.
type SignedURL struct {
	Public *url.URL
	// TrustProxy lets X-Forwarded-Proto and X-Forwarded-Host name the scheme and host.
	TrustProxy bool
}

// For returns the URL that Twilio signed for r, query included exactly as received.
func (s SignedURL) For(r *http.Request) string {
	target := r.RequestURI
	if !strings.HasPrefix(target, "/") {
		target = r.URL.RequestURI()
	}
	return s.Base(r) + target
}

// Base is the scheme, host and path prefix Twilio called r on: the URLs the service hands Twilio in
// an answer (a Dial's action) hang from it.
func (s SignedURL) Base(r *http.Request) string {
	if s.Public != nil {
		return strings.TrimSuffix(s.Public.String(), "/")
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if s.TrustProxy {
		if p := firstValue(r.Header.Get("X-Forwarded-Proto")); p != "" {
			scheme = p
		}
		if h := firstValue(r.Header.Get("X-Forwarded-Host")); h != "" {
			host = h
		}
	}
	return scheme + "://" + host
}

// Bounds of a logged URL: a forged request chooses its URL, so what it costs to log must not grow with it.
const (
	maxLoggedNames = 40
	maxLoggedBytes = 1024
)

// loggableURL hides the values of a URL's query — a GET webhook carries the customer's message and number
// there, which have no place in a log — and caps its size. The names are enough to compare the URL
// with the one Twilio was given.
func loggableURL(raw string) string {
	base, query, found := strings.Cut(raw, "?")
	if len(base) > maxLoggedBytes/2 {
		base = base[:maxLoggedBytes/2] + "…"
	}
	if !found {
		return base
	}
	var b strings.Builder
	b.WriteString(base)
	b.WriteByte('?')
	n, total := 0, strings.Count(query, "&")+1
	for pair := range strings.SplitSeq(query, "&") {
		name, _, _ := strings.Cut(pair, "=")
		if n == maxLoggedNames || b.Len()+len(name) > maxLoggedBytes {
			fmt.Fprintf(&b, "…(%d more)", total-n)
			break
		}
		if n > 0 {
			b.WriteByte('&')
		}
		b.WriteString(name)
		b.WriteString("=…")
		n++
	}
	return b.String()
}

// maxParams is url.ParseQuery's limit on the number of parameters.
const maxParams = 10_000

// parseForm is url.ParseQuery — the same names and values, refusing the same inputs — sized up front:
// the map gets its capacity and the values one shared backing array, so that reading the form of
// every webhook, forged ones included, costs a few allocations rather than one per parameter.
func parseForm(s string) (url.Values, error) {
	n := strings.Count(s, "&") + 1
	if n > maxParams {
		return nil, errors.New("number of URL query parameters exceeded limit")
	}
	form := make(url.Values, n)
	values := make([]string, 0, n)
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		if strings.Contains(pair, ";") {
			return nil, errors.New("invalid semicolon separator in query")
		}
		if pair == "" {
			continue
		}
		name, value, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(name)
		if err != nil {
			return nil, err
		}
		if value, err = url.QueryUnescape(value); err != nil {
			return nil, err
		}
		if seen, ok := form[name]; ok {
			form[name] = append(seen, value) // full capacity: this copies, never writes into values
			continue
		}
		values = append(values, value)
		form[name] = values[len(values)-1 : len(values) : len(values)]
	}
	return form, nil
}

func firstValue(h string) string {
	v, _, _ := strings.Cut(h, ",")
	return strings.TrimSpace(v)
}

// handleConversationsWebhook takes Twilio's events (GET query, POST form or POST JSON) — the post-events
// and the guard's pre-events (preevent.go): it reads the bounded body, checks the signature before it
// looks at any parameter, and answers as soon as the flow has decided; the REST work runs on.
func handleConversationsWebhook(flows Flows, lifecycle Lifecycle, pre *preEvent, v *signature.Validator, urls SignedURL, rec Recorder) http.Handler {
	rejections := newSampledLog()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		params, err := verifiedParams(w, r, v, urls)
		if err != nil {
			if errors.Is(err, errBadSignature) || errors.Is(err, errNoSignature) {
				if suppressed, ok := rejections.take(); ok {
					hlog.FromRequest(r).Warn().Str("signed_url", loggableURL(urls.For(r))).Str("reason", err.Error()).
						Int64("suppressed", suppressed).Msg("webhook rejected")
				}
			}
			rec.Webhook(failureOf(err).outcome)
			writeError(w, r, err)
			return
		}
		if preEvents[params.Get("EventType")] {
			// Before Twilio publishes: the guard's question, never the opt-in's or the chats' event.
			pre.serve(w, r, params)
			return
		}
		ev := conversation.Event{
			Type:            params.Get("EventType"),
			ConversationSid: params.Get("ConversationSid"),
			MessageSid:      params.Get("MessageSid"),
			Author:          params.Get("Author"),
			Body:            params.Get("Body"),
			ParticipantSid:  params.Get("ParticipantSid"),
			RetryCount:      params.Get("RetryCount"),
			StateTo:         params.Get("StateTo"),
			StateReason:     params.Get("Reason"),
			Status:          params.Get("Status"),
		}
		ev.ErrorCode, _ = strconv.Atoi(params.Get("ErrorCode"))
		ev.DateCreated, _ = time.Parse(time.RFC3339Nano, params.Get("DateCreated"))
		ctx, cancel := context.WithTimeout(r.Context(), stateBudget)
		d, err := dispatch(ctx, flows, lifecycle, ev)
		cancel()
		if err != nil {
			rec.Webhook(failureOf(err).outcome)
			writeError(w, r, err)
			return
		}
		rec.Webhook(decisionOutcome[d.Outcome])
		line := hlog.FromRequest(r).Info()
		if ev.Type == conversation.EventDeliveryUpdated && d.Outcome == conversation.OutcomeIgnored {
			// A report for every delivery, read and send of every message: only the failures matter.
			line = hlog.FromRequest(r).Debug()
		}
		line.
			Str("event_type", ev.Type).
			Str("conversation_sid", ev.ConversationSid).
			Str("message_sid", ev.MessageSid).
			Str("idempotency_token", r.Header.Get("I-Twilio-Idempotency-Token")).
			Str("outcome", string(d.Outcome)).
			Str("reason", d.Reason).
			Msg("webhook")
		if d.Reason == "" {
			writeFixed(w, http.StatusOK, "outcome", string(d.Outcome), "", "")
		} else {
			writeFixed(w, http.StatusOK, "outcome", string(d.Outcome), "reason", d.Reason)
		}
	})
}

var decisionOutcome = map[conversation.Outcome]string{
	conversation.OutcomeAccepted:  metrics.Processed,
	conversation.OutcomeDuplicate: metrics.Duplicate,
	conversation.OutcomeIgnored:   metrics.Ignored,
	conversation.OutcomeRelayed:   metrics.Processed,
}

// twilioForms checks Twilio's form requests beside the conversations webhook (a call, a message to a
// number): signed over the public URL, of the service's account. A refusal is answered and counted,
// and logged sampled — a flood of forgeries costs little to refuse and little to log.
type twilioForms struct {
	v          *signature.Validator
	urls       SignedURL
	account    string
	rec        Recorder
	rejections *sampledLog
	// what names the webhook in the log ("voice", "messaging"); whose the request ("call", "message").
	what, whose string
}

// verified returns the request's parameters, or answers the refusal and returns false.
func (t *twilioForms) verified(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	params, err := verifiedParams(w, r, t.v, t.urls)
	if err == nil && t.account != "" && params.Get("AccountSid") != t.account {
		err = fmt.Errorf("%w: the %s is another account's", errBadSignature, t.whose)
	}
	if err == nil {
		return params, true
	}
	if errors.Is(err, errBadSignature) || errors.Is(err, errNoSignature) {
		if suppressed, ok := t.rejections.take(); ok {
			hlog.FromRequest(r).Warn().Str("signed_url", loggableURL(t.urls.For(r))).Str("reason", err.Error()).
				Int64("suppressed", suppressed).Msg(t.what + " webhook rejected")
		}
	}
	t.rec.Webhook(failureOf(err).outcome)
	writeError(w, r, err)
	return nil, false
}

// verifiedParams reads the request's parameters and returns them only when the signature holds.
func verifiedParams(w http.ResponseWriter, r *http.Request, v *signature.Validator, urls SignedURL) (url.Values, error) {
	sig := r.Header.Get("X-Twilio-Signature")
	if sig == "" {
		return nil, errNoSignature
	}
	if r.ContentLength > MaxBodyBytes {
		return nil, errTooLarge
	}
	body, err := readBody(w, r)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, errTooLarge
		}
		return nil, malformed("reading body failed")
	}
	signed := urls.For(r)

	if r.Method == http.MethodGet {
		if !v.Validate(signed, nil, sig) {
			return nil, errBadSignature
		}
		q, err := parseForm(r.URL.RawQuery)
		if err != nil {
			return nil, malformed("malformed query string")
		}
		return q, nil
	}

	if isJSON(r.Header.Get("Content-Type")) {
		if !v.ValidateBody(signed, body, sig) {
			return nil, errBadSignature
		}
		return jsonParams(body)
	}
	form, err := parseForm(string(body))
	if err != nil {
		// The signature covers the parameters: a form that does not parse cannot be verified.
		return nil, fmt.Errorf("%w: form does not parse", errBadSignature)
	}
	if !v.Validate(signed, form, sig) {
		return nil, errBadSignature
	}
	return form, nil
}

// Rejections logged per second; the rest are counted, and the next line logged says how many.
const rejectionsPerSecond = 5

// sampledLog lets a few lines a second through: a flood of forged requests must not become a flood of
// log lines (and the one counter of optin_webhook_requests_total still counts every one).
type sampledLog struct {
	sampler    *zerolog.BurstSampler
	suppressed atomic.Int64
}

func newSampledLog() *sampledLog {
	return &sampledLog{sampler: &zerolog.BurstSampler{Burst: rejectionsPerSecond, Period: time.Second}}
}

// take reports whether this line may be logged and, if so, how many were suppressed since the last one.
func (l *sampledLog) take() (suppressed int64, ok bool) {
	if !l.sampler.Sample(zerolog.WarnLevel) {
		l.suppressed.Add(1)
		return 0, false
	}
	return l.suppressed.Swap(0), true
}

// readBody reads the bounded body in one allocation when its length is declared (Twilio declares it),
// rather than growing a buffer.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limited := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if r.ContentLength <= 0 {
		return io.ReadAll(limited)
	}
	body := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(limited, body); err != nil {
		return nil, err
	}
	return body, nil
}
