package handlers

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog/hlog"

	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/metrics"
	"github.com/optinkit/optin/internal/signature"
)

// Masked calls: Twilio asks the voice webhook what to do with a call to a business number, and the
// answer rings the other party of the caller's chat from the business number that party knows it by
// (<Dial callerId>), or says a short text and hangs up. The Dial's action callback reports the outcome.

// Calls is what the voice webhooks need of the chats.
type Calls interface {
	RouteCall(ctx context.Context, req chat.CallRequest) (chat.CallRoute, error)
	CallEnded(ctx context.Context, o chat.CallOutcome) error
}

// Voice configures the voice webhooks; NewRouter serves them when Options.Voice is set.
type Voice struct {
	Calls Calls
	// AccountSid, when set, is the only account whose calls are answered.
	AccountSid string
	// TimeLimit bounds a connected call (<Dial timeLimit>, whole seconds, at most Twilio's 4 hours).
	TimeLimit time.Duration
	// Unavailable is said to a caller who is not connected; Whisper, when set, to the callee before the
	// call connects.
	Unavailable, Whisper string
	// CallbackBase, when set, is what the answer's own URLs (the Dial's action, the whisper) hang from:
	// OPTIN_PUBLIC_URL as given, so that a proxy's user and password in it reach Twilio's requests to
	// them as they reach its request to the voice URL (Twilio signs without them, so the check does
	// not use it). Empty: the URL Twilio called.
	CallbackBase string
}

// Paths of the voice webhooks: the incoming call, the Dial's action, the callee's whisper.
const (
	voicePath   = "/webhooks/voice"
	statusPath  = "/webhooks/voice/status"
	whisperPath = "/webhooks/voice/whisper"
)

// sorryText is said when the service cannot route a call (its store is unreachable): Twilio would
// otherwise play its own application error.
const sorryText = "Sorry, we cannot connect your call right now. Please try again in a minute."

// twimlResponse is the TwiML the webhooks answer, built by encoding/xml (every text and attribute
// escaped) in a fixed order: <Say>, <Dial>, <Hangup>.
type twimlResponse struct {
	XMLName xml.Name   `xml:"Response"`
	Say     string     `xml:"Say,omitempty"`
	Dial    *twimlDial `xml:"Dial,omitempty"`
	Hangup  *struct{}  `xml:"Hangup,omitempty"`
}

type twimlDial struct {
	CallerID  string      `xml:"callerId,attr"`
	TimeLimit int         `xml:"timeLimit,attr"`
	Action    string      `xml:"action,attr"`
	Method    string      `xml:"method,attr"`
	Number    twimlNumber `xml:"Number"`
}

type twimlNumber struct {
	URL    string `xml:"url,attr,omitempty"`
	Number string `xml:",chardata"`
}

// twiml encodes r as a TwiML document.
func twiml(r twimlResponse) []byte {
	b, err := xml.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("handlers: encoding TwiML: %v", err)) // strings and ints always encode
	}
	return append([]byte(xml.Header[:len(xml.Header)-1]), b...)
}

// textXML is the TwiML answers' Content-Type, shared rather than allocated per answer.
var textXML = []string{"text/xml"}

func writeTwiML(w http.ResponseWriter, body []byte) {
	w.Header()["Content-Type"] = textXML
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// voiceHandlers are the voice webhooks, their fixed answers made once.
type voiceHandlers struct {
	twilioForms
	cfg                     Voice
	refused, sorry, whisper []byte
	hangup                  []byte
	timeLimit               int
}

func newVoiceHandlers(cfg Voice, v *signature.Validator, urls SignedURL, rec Recorder) (*voiceHandlers, error) {
	switch {
	case cfg.Calls == nil:
		return nil, errors.New("handlers: voice without Calls")
	case cfg.TimeLimit < time.Second || cfg.TimeLimit > 4*time.Hour:
		return nil, fmt.Errorf("handlers: call time limit %s outside 1s..4h", cfg.TimeLimit)
	case cfg.Unavailable == "":
		return nil, errors.New("handlers: no text for a call not connected")
	case cfg.CallbackBase != "" && !absoluteHTTP(cfg.CallbackBase):
		return nil, errors.New("handlers: the voice callback base is not an http(s) URL")
	}
	h := &voiceHandlers{cfg: cfg, timeLimit: int(cfg.TimeLimit / time.Second),
		twilioForms: twilioForms{v: v, urls: urls, account: cfg.AccountSid, rec: rec, rejections: newSampledLog(), what: "voice", whose: "call"}}
	h.refused = twiml(twimlResponse{Say: cfg.Unavailable, Hangup: &struct{}{}})
	h.sorry = twiml(twimlResponse{Say: sorryText, Hangup: &struct{}{}})
	h.hangup = twiml(twimlResponse{Hangup: &struct{}{}})
	h.whisper = twiml(twimlResponse{Say: cfg.Whisper})
	return h, nil
}

func absoluteHTTP(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.RawQuery == "" && u.Fragment == ""
}

// call answers Twilio's incoming-call request: a <Dial> to the other party of the caller's connected
// chat, from the business number that party knows it by; a short text and <Hangup/> otherwise. The
// caller's own number appears nowhere in the answer.
func (h *voiceHandlers) call(w http.ResponseWriter, r *http.Request) {
	params, ok := h.verified(w, r)
	if !ok {
		return
	}
	req := chat.CallRequest{Sid: params.Get("CallSid"), From: params.Get("From"), To: params.Get("To")}
	if req.Sid == "" || req.To == "" {
		h.rec.Webhook(metrics.Malformed)
		writeError(w, r, malformed("CallSid and To are required"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), stateBudget)
	route, err := h.cfg.Calls.RouteCall(ctx, req)
	cancel()
	var refused *chat.CallRefusedError
	switch {
	case errors.As(err, &refused):
		h.rec.Webhook(metrics.Ignored)
		writeTwiML(w, h.refused)
		return
	case err != nil:
		// Twilio would play an application error to the caller: a short apology is kinder.
		hlog.FromRequest(r).Error().Err(err).Str("call_sid", req.Sid).Msg("call not routed")
		h.rec.Webhook(metrics.Unavailable)
		writeTwiML(w, h.sorry)
		return
	}
	base := h.urls.Base(r)
	if h.cfg.CallbackBase != "" {
		base = strings.TrimSuffix(h.cfg.CallbackBase, "/")
	}
	dial := &twimlDial{
		CallerID:  route.CallerID,
		TimeLimit: h.timeLimit,
		// The caller's role too: a call whose record was lost (a failover) is recorded from its end.
		Action: base + statusPath + "?chat=" + url.QueryEscape(route.ChatID) + "&caller=" + url.QueryEscape(route.Caller),
		Method: http.MethodPost,
		Number: twimlNumber{Number: route.Number},
	}
	if h.cfg.Whisper != "" {
		dial.Number.URL = base + whisperPath
	}
	h.rec.Webhook(metrics.Processed)
	writeTwiML(w, twiml(twimlResponse{Dial: dial}))
}

// status takes the Dial's action callback: the call's outcome, recorded once however often Twilio
// reports it. The caller's leg is hung up.
func (h *voiceHandlers) status(w http.ResponseWriter, r *http.Request) {
	params, ok := h.verified(w, r)
	if !ok {
		return
	}
	// The chat is in the action URL's query, which the signature covers.
	o := chat.CallOutcome{ChatID: r.URL.Query().Get("chat"), Caller: r.URL.Query().Get("caller"), Sid: params.Get("CallSid"), Status: params.Get("DialCallStatus")}
	if o.ChatID == "" || o.Sid == "" || o.Status == "" {
		h.rec.Webhook(metrics.Malformed)
		writeError(w, r, malformed("chat, CallSid and DialCallStatus are required"))
		return
	}
	if d := params.Get("DialCallDuration"); d != "" {
		secs, err := strconv.Atoi(d)
		if err != nil || secs < 0 {
			h.rec.Webhook(metrics.Malformed)
			writeError(w, r, malformed("DialCallDuration is not a number of seconds"))
			return
		}
		o.Duration = time.Duration(secs) * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), stateBudget)
	err := h.cfg.Calls.CallEnded(ctx, o)
	cancel()
	switch {
	case errors.Is(err, chat.ErrNotFound):
		// The chat is gone (past its retention): nothing to record, and nothing Twilio could retry.
		hlog.FromRequest(r).Info().Str("call_sid", o.Sid).Msg("call ended for a chat not kept")
	case err != nil:
		// 503: a retry (connection overrides) may record it; the call itself is over.
		h.rec.Webhook(metrics.Unavailable)
		writeError(w, r, err)
		return
	}
	h.rec.Webhook(metrics.Processed)
	writeTwiML(w, h.hangup)
}

// whisperTo is said to the callee when they answer, before the call connects.
func (h *voiceHandlers) whisperTo(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.verified(w, r); !ok {
		return
	}
	writeTwiML(w, h.whisper)
}
