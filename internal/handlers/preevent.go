package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/rs/zerolog/hlog"

	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/metrics"
)

// The guard: Twilio asks /webhooks/conversations, before it publishes a message of a phone, what to
// publish (the onMessageAdd pre-event). The answer is 200 {} to publish it as written, 200 with a body
// and attributes to publish those instead, or a 4xx to drop it. Whatever goes wrong here publishes the
// message as written: a 5xx would drop the person's message, and no answer within Twilio's 5 s
// publishes it anyway, only later.

// guardBudget bounds the chat's lookup and record, well inside Twilio's 5 s.
const guardBudget = 3 * time.Second

// blockedStatus drops a blocked message: any 4xx or 5xx makes Twilio drop it. 422 (the message cannot
// be taken as written) rather than 403, which is the answer to a forged request, or 400, a malformed
// one: logs and metrics keep the three apart, and a 4xx is not retried.
const blockedStatus = http.StatusUnprocessableEntity

// preEvents are Twilio Conversations' pre-event types; the service answers onMessageAdd only.
var preEvents = map[string]bool{
	"onMessageAdd": true, "onMessageUpdate": true, "onMessageRemove": true,
	"onConversationAdd": true, "onConversationUpdate": true, "onConversationRemove": true,
	"onParticipantAdd": true, "onParticipantUpdate": true, "onParticipantRemove": true,
	"onUserUpdate": true,
}

// Masking is what the guard and the messaging webhook need of the chats.
type Masking interface {
	GuardMessage(ctx context.Context, req chat.GuardRequest) (chat.GuardAnswer, error)
	MessageAfterEnd(ctx context.Context, req chat.AfterEndRequest) (chat.AfterEndAnswer, error)
}

// MaskRecorder counts what the guard and the messaging webhook do (the metrics package's values).
type MaskRecorder interface {
	MessageGuarded(kind, action string)
	GuardSkipped(reason string)
	AfterEnd(outcome string)
}

type noMaskRecorder struct{}

func (noMaskRecorder) MessageGuarded(string, string) {}
func (noMaskRecorder) GuardSkipped(string)           {}
func (noMaskRecorder) AfterEnd(string)               {}

// Mask configures the guard and the messaging webhook; NewRouter serves them when Options.Mask is set.
type Mask struct {
	Chats Masking
	// AccountSid, when set, is the only account whose incoming messages are answered.
	AccountSid string
	// AfterEndText answers a party writing to their ended chat's number (at most once per period, the
	// chats decide); NeverChattedText, when set, answers a number that never had a chat on the pair.
	AfterEndText, NeverChattedText string
	// NeverChattedEvery is how often, at most, NeverChattedText goes to one pair (0:
	// chat.DefaultAfterEndEvery); kept in each replica's memory.
	NeverChattedEvery time.Duration
	// Metrics, when set, counts guarded messages, skipped pre-events and messages after the end.
	Metrics MaskRecorder
	// Budget bounds a pre-event's work; 0 is guardBudget.
	Budget time.Duration
	// GuardOff: OPTIN_GUARD is off, every message is published as written without a look.
	GuardOff bool
}

// preEvent answers the pre-events of /webhooks/conversations.
type preEvent struct {
	chats  Masking // nil: no chats, every message published as written
	off    bool
	rec    Recorder
	mrec   MaskRecorder
	budget time.Duration
}

func newPreEvent(m *Mask, rec Recorder) *preEvent {
	p := &preEvent{rec: rec, mrec: noMaskRecorder{}, budget: guardBudget}
	if m == nil {
		return p
	}
	p.chats, p.off = m.Chats, m.GuardOff
	if m.Metrics != nil {
		p.mrec = m.Metrics
	}
	if m.Budget > 0 {
		p.budget = m.Budget
	}
	return p
}

// publishAsWritten is the answer that publishes a message unchanged.
var publishAsWritten = []byte("{}")

// serve answers a signed pre-event.
func (p *preEvent) serve(w http.ResponseWriter, r *http.Request, params url.Values) {
	get := params.Get
	log := hlog.FromRequest(r)
	typ, conv := get("EventType"), get("ConversationSid")
	skip := func(reason, outcome string) {
		p.mrec.GuardSkipped(reason)
		p.rec.Webhook(outcome)
		writeJSONBytes(w, http.StatusOK, publishAsWritten)
	}
	if typ != "onMessageAdd" {
		log.Info().Str("event_type", typ).Str("conversation_sid", conv).Msg("pre-event not answered: published as Twilio has it")
		skip(metrics.GuardOtherEvent, metrics.Ignored)
		return
	}
	switch {
	case p.off:
		skip(metrics.GuardOff, metrics.Ignored)
		return
	case p.chats == nil:
		skip(metrics.GuardNoChat, metrics.Ignored)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.budget)
	ans, err := p.guard(ctx, chat.GuardRequest{ConversationSid: conv, Author: get("Author"), Body: get("Body")})
	late := ctx.Err() != nil
	cancel()
	switch {
	case err != nil && (late || errors.Is(err, context.DeadlineExceeded)):
		log.Warn().Err(err).Str("conversation_sid", conv).Msg("guard out of time: message published as written")
		skip(metrics.GuardTimeout, metrics.Failed)
		return
	case err != nil:
		log.Error().Err(err).Str("conversation_sid", conv).Msg("guard failed: message published as written")
		skip(metrics.GuardError, metrics.Failed)
		return
	case ans.ChatID == "":
		skip(metrics.GuardNoChat, metrics.Ignored)
		return
	}
	res := ans.Result
	kinds := make([]string, 0, len(res.Found))
	for _, k := range res.Kinds() {
		kinds = append(kinds, string(k))
		p.mrec.MessageGuarded(string(k), string(res.Action))
	}
	p.rec.Webhook(metrics.Processed)
	switch {
	case res.Blocked:
		log.Info().Str("conversation_sid", conv).Str("chat_id", ans.ChatID).Strs("kinds", kinds).Msg("message blocked")
		writeFixed(w, blockedStatus, "outcome", "blocked", "", "")
	case res.Changed:
		b, err := json.Marshal(struct {
			Body       string `json:"body"`
			Attributes string `json:"attributes"`
		}{res.Body, guardedAttributes(get("Attributes"), kinds)})
		if err != nil { // strings always encode
			writeJSONBytes(w, http.StatusOK, publishAsWritten)
			return
		}
		writeJSONBytes(w, http.StatusOK, b)
	default:
		writeJSONBytes(w, http.StatusOK, publishAsWritten)
	}
}

// guard asks the chats, a panic (the finder on a body nobody foresaw) turned into an error: the
// router's recovery would answer 500, and Twilio drops a message answered 5xx. The panic's value and
// stack are not logged, they may quote the body.
func (p *preEvent) guard(ctx context.Context, req chat.GuardRequest) (ans chat.GuardAnswer, err error) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			ans, err = chat.GuardAnswer{}, errGuardPanicked
		}
	}()
	return p.chats.GuardMessage(ctx, req)
}

var errGuardPanicked = errors.New("handlers: the guard panicked")

// guardedAttributes is the message's attributes (a JSON object as a string) with what the guard hid
// added under "optin": {"guarded": kinds}; the rest kept. Attributes that are no JSON object are
// replaced by ours alone, as is an "optin" that is no object.
func guardedAttributes(raw string, kinds []string) string {
	var obj map[string]json.RawMessage
	if json.Unmarshal([]byte(raw), &obj) != nil || obj == nil {
		obj = map[string]json.RawMessage{}
	}
	var ours map[string]json.RawMessage
	if json.Unmarshal(obj["optin"], &ours) != nil || ours == nil {
		ours = map[string]json.RawMessage{}
	}
	ours["guarded"], _ = json.Marshal(kinds)
	obj["optin"], _ = json.Marshal(ours)
	b, _ := json.Marshal(obj)
	return string(b)
}

// writeJSONBytes writes a JSON body made already.
func writeJSONBytes(w http.ResponseWriter, status int, body []byte) {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
