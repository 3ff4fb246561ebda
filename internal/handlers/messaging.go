package handlers

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog/hlog"

	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/metrics"
	"github.com/optinkit/optin/internal/signature"
)

// After the end: a message on a pair that no active conversation holds goes to the business number's
// own incoming-message webhook (its SmsUrl, or its Messaging Service's), /webhooks/messaging. A party
// of the pair's last chat, which ended, is answered with a short text at most once per period (the
// chats decide); everything else gets an empty <Response/>: Twilio sends nothing, and never retries.

// messagingPath is the incoming-message webhook.
const messagingPath = "/webhooks/messaging"

// messagingTwiML is a messaging answer: <Response/>, or one <Message>, built by encoding/xml (the text
// escaped).
type messagingTwiML struct {
	XMLName xml.Name `xml:"Response"`
	Message string   `xml:"Message,omitempty"`
}

func messagingAnswer(text string) []byte {
	b, err := xml.Marshal(messagingTwiML{Message: text})
	if err != nil {
		panic(fmt.Sprintf("handlers: encoding TwiML: %v", err)) // a string always encodes
	}
	return append([]byte(xml.Header[:len(xml.Header)-1]), b...)
}

// messagingHandler is the incoming-message webhook, its answers made once.
type messagingHandler struct {
	twilioForms
	cfg                           Mask
	mrec                          MaskRecorder
	empty, afterEnd, neverChatted []byte
	neverChattedOnce              *oncePer
}

func newMessagingHandler(cfg Mask, v *signature.Validator, urls SignedURL, rec Recorder) (*messagingHandler, error) {
	switch {
	case cfg.Chats == nil:
		return nil, errors.New("handlers: the messaging webhook without chats")
	case cfg.AfterEndText == "":
		return nil, errors.New("handlers: no text for a message after the end")
	}
	h := &messagingHandler{cfg: cfg, mrec: noMaskRecorder{},
		twilioForms: twilioForms{v: v, urls: urls, account: cfg.AccountSid, rec: rec, rejections: newSampledLog(), what: "messaging", whose: "message"},
		empty:       messagingAnswer(""), afterEnd: messagingAnswer(cfg.AfterEndText), neverChatted: messagingAnswer(cfg.NeverChattedText)}
	if cfg.Metrics != nil {
		h.mrec = cfg.Metrics
	}
	every := cfg.NeverChattedEvery
	if every <= 0 {
		every = chat.DefaultAfterEndEvery
	}
	h.neverChattedOnce = &oncePer{every: every, max: maxNeverChatted, now: time.Now, last: map[string]time.Time{}}
	return h, nil
}

// maxNeverChatted bounds the pairs oncePer remembers: past it, and once the expired are dropped, a pair
// not remembered is not answered — a flood from many numbers must not grow the memory, and silence is
// the safe answer.
const maxNeverChatted = 10_000

// oncePer lets an answer go to a pair at most once per period (an auto-responder answering our answer
// would otherwise loop with us). What no chat records is remembered here, in this replica's memory: with
// several replicas a pair may get the answer once per replica per period.
type oncePer struct {
	mu    sync.Mutex
	every time.Duration
	max   int
	now   func() time.Time
	last  map[string]time.Time
}

func (o *oncePer) take(key string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	if at, ok := o.last[key]; ok && now.Sub(at) < o.every {
		return false
	}
	if _, ok := o.last[key]; !ok && len(o.last) >= o.max {
		for k, at := range o.last {
			if now.Sub(at) >= o.every {
				delete(o.last, k)
			}
		}
		if len(o.last) >= o.max {
			return false
		}
	}
	o.last[key] = now
	return true
}

// ServeHTTP answers Twilio's incoming-message request (MessageSid, AccountSid, From, To, Body, …).
func (h *messagingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	params, ok := h.verified(w, r)
	if !ok {
		return
	}
	req := chat.AfterEndRequest{From: params.Get("From"), To: params.Get("To"), Body: params.Get("Body")}
	if req.From == "" || req.To == "" {
		h.rec.Webhook(metrics.Malformed)
		writeError(w, r, malformed("From and To are required"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), stateBudget)
	ans, err := h.cfg.Chats.MessageAfterEnd(ctx, req)
	cancel()
	log := hlog.FromRequest(r).Info().Str("message_sid", params.Get("MessageSid"))
	switch {
	case err != nil:
		// An empty answer: an error status would have Twilio log it and try the fallback URL, and a
		// missed answer after the end is better than one sent twice.
		hlog.FromRequest(r).Error().Err(err).Str("message_sid", params.Get("MessageSid")).Msg("message after the end not answered")
		h.mrec.AfterEnd(metrics.AfterEndError)
		h.rec.Webhook(metrics.Unavailable)
		writeTwiML(w, h.empty)
	case ans.ChatID == "":
		h.mrec.AfterEnd(metrics.AfterEndNoChat)
		h.rec.Webhook(metrics.Ignored)
		if h.cfg.NeverChattedText != "" && !chat.IsKeyword(req.Body) && h.neverChattedOnce.take(chat.E164(req.From)+" "+chat.E164(req.To)) {
			log.Msg("message to a number of no chat answered")
			writeTwiML(w, h.neverChatted)
			return
		}
		writeTwiML(w, h.empty)
	case ans.Reply:
		log.Str("chat_id", ans.ChatID).Str("party", ans.Party).Msg("message after the end answered")
		h.mrec.AfterEnd(metrics.AfterEndAnswered)
		h.rec.Webhook(metrics.Processed)
		writeTwiML(w, h.afterEnd)
	default:
		h.mrec.AfterEnd(metrics.AfterEndSilenced)
		h.rec.Webhook(metrics.Ignored)
		writeTwiML(w, h.empty)
	}
}
