package handlers

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	twilio "github.com/twilio/twilio-go/twiml"

	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/metrics"
	"github.com/optinkit/optin/internal/signature"
)

const (
	account   = "AC00000000000000000000000000000001"
	callSid   = "CA00000000000000000000000000000001"
	voiceURL  = "https://optin.example.com/webhooks/voice"
	statusURL = "https://optin.example.com/webhooks/voice/status?chat=order-1&caller=rider"
	unavail   = "Sorry, this number only connects an active delivery chat."
	whisper   = "A call about your delivery."
)

// fakeCalls records what the voice webhooks ask of the chats and answers as told.
type fakeCalls struct {
	mu       sync.Mutex
	routed   []chat.CallRequest
	ended    []chat.CallOutcome
	route    chat.CallRoute
	routeErr error
	endErr   error
}

func (f *fakeCalls) RouteCall(_ context.Context, req chat.CallRequest) (chat.CallRoute, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routed = append(f.routed, req)
	return f.route, f.routeErr
}

func (f *fakeCalls) CallEnded(_ context.Context, o chat.CallOutcome) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended = append(f.ended, o)
	return f.endErr
}

type voiceEnv struct {
	calls *fakeCalls
	rec   *outcomes
	logs  *bytes.Buffer
	h     http.Handler
}

func newVoiceEnv(t *testing.T, whisperText string) *voiceEnv {
	t.Helper()
	e := &voiceEnv{calls: &fakeCalls{route: chat.CallRoute{ChatID: "order-1", Caller: "rider", Callee: "customer",
		CallerID: "+15550100000", Number: "+15550001111"}}, rec: &outcomes{}, logs: &bytes.Buffer{}}
	public, _ := url.Parse("https://optin.example.com")
	h, err := NewRouter(zerolog.New(e.logs), &fakeFlows{}, signature.New(token), SignedURL{Public: public}, func(context.Context) error { return nil },
		Options{Metrics: e.rec, Voice: &Voice{Calls: e.calls, AccountSid: account, TimeLimit: 10 * time.Minute, Unavailable: unavail, Whisper: whisperText}})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	return e
}

func (e *voiceEnv) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

// signedVoice is Twilio's POST of params to u (path and query as Twilio was given them).
func signedVoice(u string, params url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, strings.TrimPrefix(u, "https://optin.example.com"), strings.NewReader(params.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("X-Twilio-Signature", signature.Compute(token, u, params))
	return r
}

func incoming() url.Values {
	return url.Values{"CallSid": {callSid}, "AccountSid": {account}, "From": {"+15550002222"}, "To": {"+15550100000"},
		"CallStatus": {"ringing"}, "Direction": {"inbound"}, "ApiVersion": {"2010-04-01"}}
}

const (
	dialTwiML    = `<?xml version="1.0" encoding="UTF-8"?><Response><Dial callerId="+15550100000" timeLimit="600" action="https://optin.example.com/webhooks/voice/status?chat=order-1&amp;caller=rider" method="POST"><Number url="https://optin.example.com/webhooks/voice/whisper">+15550001111</Number></Dial></Response>`
	refusedTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response><Say>` + unavail + `</Say><Hangup></Hangup></Response>`
	sorryTwiML   = `<?xml version="1.0" encoding="UTF-8"?><Response><Say>` + sorryText + `</Say><Hangup></Hangup></Response>`
	hangupTwiML  = `<?xml version="1.0" encoding="UTF-8"?><Response><Hangup></Hangup></Response>`
)

func assertTwiML(t *testing.T, w *httptest.ResponseRecorder, want string) {
	t.Helper()
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/xml" || w.Body.String() != want {
		t.Errorf("answer %d %q\n%s\nwant 200 text/xml\n%s", w.Code, w.Header().Get("Content-Type"), w.Body.String(), want)
	}
}

// A party of a connected chat is dialled through to the other, from the business number the other
// knows the chat by; the caller's number is nowhere in the answer.
func TestVoiceDialsTheOtherParty(t *testing.T) {
	e := newVoiceEnv(t, whisper)
	w := e.do(signedVoice(voiceURL, incoming()))
	assertTwiML(t, w, dialTwiML)
	if strings.Contains(w.Body.String(), "+15550002222") {
		t.Error("the caller's number is in the answer")
	}
	want := []chat.CallRequest{{Sid: callSid, From: "+15550002222", To: "+15550100000"}}
	if !reflect.DeepEqual(e.calls.routed, want) {
		t.Errorf("routed %+v, want %+v", e.calls.routed, want)
	}
	if e.rec.last() != metrics.Processed {
		t.Errorf("counted %q", e.rec.last())
	}
	// Without a whisper, the <Number> has no url.
	e = newVoiceEnv(t, "")
	assertTwiML(t, e.do(signedVoice(voiceURL, incoming())), strings.Replace(dialTwiML, ` url="https://optin.example.com/webhooks/voice/whisper"`, "", 1))
}

// Our TwiML reads as twilio-go's own builder writes the same verbs (its attributes come in map order,
// so the documents are compared decoded).
func TestVoiceTwiMLMatchesTwilioGo(t *testing.T) {
	theirs, err := twilio.Voice([]twilio.Element{twilio.VoiceDial{CallerId: "+15550100000", TimeLimit: "600",
		Action: "https://optin.example.com/webhooks/voice/status?chat=order-1&caller=rider", Method: "POST",
		InnerElements: []twilio.Element{twilio.VoiceNumber{PhoneNumber: "+15550001111", Url: "https://optin.example.com/webhooks/voice/whisper"}}}})
	if err != nil {
		t.Fatal(err)
	}
	refused, err := twilio.Voice([]twilio.Element{twilio.VoiceSay{Message: unavail}, twilio.VoiceHangup{}})
	if err != nil {
		t.Fatal(err)
	}
	for ours, theirs := range map[string]string{dialTwiML: theirs, refusedTwiML: refused} {
		var a, b twimlResponse
		if err := xml.Unmarshal([]byte(ours), &a); err != nil {
			t.Fatal(err)
		}
		if err := xml.Unmarshal([]byte(theirs), &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("ours %+v\ntwilio-go's %+v (%s)", a, b, theirs)
		}
	}
}

// Every caller the core refuses hears the text and is hung up on; a store failure hears an apology,
// with a 200 (Twilio would play its application error otherwise).
func TestVoiceRefuses(t *testing.T) {
	for _, reason := range []string{chat.CallWithheld, chat.CallUnknown, chat.CallNotConnected, chat.CallChatEnded} {
		e := newVoiceEnv(t, whisper)
		e.calls.routeErr = &chat.CallRefusedError{Reason: reason}
		assertTwiML(t, e.do(signedVoice(voiceURL, incoming())), refusedTwiML)
	}
	e := newVoiceEnv(t, whisper)
	e.calls.routeErr = fmt.Errorf("%w: redis down", conversation.ErrUnavailable)
	assertTwiML(t, e.do(signedVoice(voiceURL, incoming())), sorryTwiML)
	if !strings.Contains(e.logs.String(), "call not routed") || strings.Contains(e.logs.String(), "+1555") {
		t.Errorf("log %s", e.logs)
	}
}

// Untrusted or configured text is escaped, never spliced: a text with markup stays text.
func TestVoiceEscapes(t *testing.T) {
	h, err := newVoiceHandlers(Voice{Calls: &fakeCalls{}, TimeLimit: time.Minute, Unavailable: `<Dial>+1</Dial> & "x"`}, signature.New(token), SignedURL{}, &outcomes{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(h.refused), `<?xml version="1.0" encoding="UTF-8"?><Response><Say>&lt;Dial&gt;+1&lt;/Dial&gt; &amp; &#34;x&#34;</Say><Hangup></Hangup></Response>`; got != want {
		t.Errorf("refused %s, want %s", got, want)
	}
	e := newVoiceEnv(t, "")
	e.calls.route.ChatID = `a&b"<c>`
	w := e.do(signedVoice(voiceURL, incoming()))
	if !strings.Contains(w.Body.String(), `action="https://optin.example.com/webhooks/voice/status?chat=a%26b%22%3Cc%3E&amp;caller=rider"`) {
		t.Errorf("action of an odd chat id: %s", w.Body)
	}
}

// Forged, unsigned, tampered or another account's requests are refused with 403 before the chats are
// asked anything.
func TestVoiceRejects(t *testing.T) {
	forged := signedVoice(voiceURL, incoming())
	forged.Header.Set("X-Twilio-Signature", signature.Compute("other-token", voiceURL, incoming()))
	unsigned := signedVoice(voiceURL, incoming())
	unsigned.Header.Del("X-Twilio-Signature")
	tampered := incoming()
	tampered.Set("From", "+15550003333")
	tamperedReq := signedVoice(voiceURL, incoming())
	tamperedReq.Body = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tampered.Encode())).Body
	foreign := incoming()
	foreign.Set("AccountSid", "AC00000000000000000000000000000009")
	statusForged := signedVoice(statusURL, url.Values{"CallSid": {callSid}, "DialCallStatus": {"completed"}})
	statusForged.URL.RawQuery, statusForged.RequestURI = "chat=order-2&caller=rider", "/webhooks/voice/status?chat=order-2&caller=rider"
	whisperUnsigned := httptest.NewRequest(http.MethodGet, "/webhooks/voice/whisper", nil)
	for name, r := range map[string]*http.Request{
		"forged":                  forged,
		"unsigned":                unsigned,
		"tampered":                tamperedReq,
		"another account":         signedVoice(voiceURL, foreign),
		"status for another chat": statusForged,
		"status unsigned": func() *http.Request {
			r := signedVoice(statusURL, url.Values{})
			r.Header.Del("X-Twilio-Signature")
			return r
		}(),
		"whisper unsigned": whisperUnsigned,
		"forged to the whisper route": func() *http.Request {
			r := signedVoice(voiceURL, incoming())
			r.URL.Path, r.RequestURI = whisperPath, whisperPath
			return r
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			e := newVoiceEnv(t, whisper)
			w := e.do(r)
			if w.Code != http.StatusForbidden {
				t.Errorf("got %d %s, want 403", w.Code, w.Body)
			}
			if len(e.calls.routed)+len(e.calls.ended) != 0 {
				t.Errorf("the chats were asked: %+v %+v", e.calls.routed, e.calls.ended)
			}
			if e.rec.last() != metrics.BadSignature {
				t.Errorf("counted %q", e.rec.last())
			}
		})
	}
	e := newVoiceEnv(t, whisper)
	missing := incoming()
	missing.Del("CallSid")
	if w := e.do(signedVoice(voiceURL, missing)); w.Code != http.StatusBadRequest || len(e.calls.routed) != 0 {
		t.Errorf("without a CallSid: %d %s", w.Code, w.Body)
	}
}

// The Dial's action records the outcome; a repeat asks the core again (which records it once) and
// gets the same answer.
func TestVoiceStatus(t *testing.T) {
	e := newVoiceEnv(t, whisper)
	params := url.Values{"CallSid": {callSid}, "AccountSid": {account}, "DialCallSid": {"CA00000000000000000000000000000002"},
		"DialCallStatus": {"completed"}, "DialCallDuration": {"42"}, "CallStatus": {"in-progress"}}
	for range 2 {
		assertTwiML(t, e.do(signedVoice(statusURL, params)), hangupTwiML)
	}
	want := chat.CallOutcome{ChatID: "order-1", Caller: "rider", Sid: callSid, Status: "completed", Duration: 42 * time.Second}
	if len(e.calls.ended) != 2 || e.calls.ended[0] != want || e.calls.ended[1] != want {
		t.Errorf("ended %+v, want %+v twice", e.calls.ended, want)
	}
	// Not answered: no duration.
	params.Set("DialCallStatus", "no-answer")
	params.Del("DialCallDuration")
	assertTwiML(t, e.do(signedVoice(statusURL, params)), hangupTwiML)
	if got := e.calls.ended[2]; got.Status != "no-answer" || got.Duration != 0 {
		t.Errorf("no answer recorded as %+v", got)
	}
	// A chat no longer kept: nothing to record, a 200 all the same.
	e.calls.endErr = chat.ErrNotFound
	assertTwiML(t, e.do(signedVoice(statusURL, params)), hangupTwiML)
	// The store down: 503, so that a retry may record it.
	e.calls.endErr = fmt.Errorf("%w: redis down", conversation.ErrUnavailable)
	if w := e.do(signedVoice(statusURL, params)); w.Code != http.StatusServiceUnavailable {
		t.Errorf("store down: %d %s", w.Code, w.Body)
	}
	e.calls.endErr = nil
	for name, p := range map[string]url.Values{
		"no status":   {"CallSid": {callSid}, "AccountSid": {account}},
		"bad seconds": {"CallSid": {callSid}, "AccountSid": {account}, "DialCallStatus": {"completed"}, "DialCallDuration": {"x"}},
	} {
		n := len(e.calls.ended)
		if w := e.do(signedVoice(statusURL, p)); w.Code != http.StatusBadRequest || len(e.calls.ended) != n {
			t.Errorf("%s: %d %s", name, w.Code, w.Body)
		}
	}
	if w := e.do(signedVoice("https://optin.example.com/webhooks/voice/status", params)); w.Code != http.StatusBadRequest {
		t.Errorf("without a chat: %d %s", w.Code, w.Body)
	}
}

// The callee hears the whisper when they answer, on Twilio's signed GET or POST.
func TestVoiceWhisper(t *testing.T) {
	e := newVoiceEnv(t, whisper)
	want := `<?xml version="1.0" encoding="UTF-8"?><Response><Say>` + whisper + `</Say></Response>`
	assertTwiML(t, e.do(signedVoice("https://optin.example.com/webhooks/voice/whisper", url.Values{"CallSid": {"CA2"}, "AccountSid": {account}})), want)
	u := "https://optin.example.com/webhooks/voice/whisper?CallSid=CA2&AccountSid=" + account
	r := httptest.NewRequest(http.MethodGet, strings.TrimPrefix(u, "https://optin.example.com"), nil)
	r.Header.Set("X-Twilio-Signature", signature.Compute(token, u, nil))
	assertTwiML(t, e.do(r), want)
}

// Without Voice the routes do not exist; a bad Voice is refused when the router is built.
func TestVoiceOptions(t *testing.T) {
	h, err := NewRouter(zerolog.Nop(), &fakeFlows{}, signature.New(token), SignedURL{}, func(context.Context) error { return nil }, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, signedVoice(voiceURL, incoming()))
	if w.Code != http.StatusNotFound {
		t.Errorf("voice without Voice: %d", w.Code)
	}
	for name, v := range map[string]Voice{
		"no calls":        {TimeLimit: time.Minute, Unavailable: "x"},
		"limit too short": {Calls: &fakeCalls{}, TimeLimit: time.Millisecond, Unavailable: "x"},
		"limit too long":  {Calls: &fakeCalls{}, TimeLimit: 5 * time.Hour, Unavailable: "x"},
		"no text":         {Calls: &fakeCalls{}, TimeLimit: time.Minute},
		"relative base":   {Calls: &fakeCalls{}, TimeLimit: time.Minute, Unavailable: "x", CallbackBase: "/optin"},
	} {
		if _, err := NewRouter(zerolog.Nop(), &fakeFlows{}, signature.New(token), SignedURL{}, func(context.Context) error { return nil }, Options{Voice: &v}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Behind a proxy with basic auth, the answer's URLs carry the proxy's user and password (Twilio
// requests them with the credentials they hold), while the signatures are checked without them, as
// Twilio signs.
func TestVoiceURLsKeepTheProxysCredentials(t *testing.T) {
	calls := &fakeCalls{route: chat.CallRoute{ChatID: "order-1", Caller: "rider", Callee: "customer", CallerID: "+15550100000", Number: "+15550001111"}}
	public, _ := url.Parse("https://optin.example.com")
	h, err := NewRouter(zerolog.Nop(), &fakeFlows{}, signature.New(token), SignedURL{Public: public}, func(context.Context) error { return nil },
		Options{Metrics: &outcomes{}, Voice: &Voice{Calls: calls, AccountSid: account, TimeLimit: 10 * time.Minute, Unavailable: unavail,
			Whisper: whisper, CallbackBase: "https://proxyuser:proxypass@optin.example.com/"}})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, signedVoice(voiceURL, incoming()))
	assertTwiML(t, w, strings.ReplaceAll(dialTwiML, "https://optin.example.com/", "https://proxyuser:proxypass@optin.example.com/"))
	// Twilio's action request: to the URL with the credentials, signed over the one without.
	w = httptest.NewRecorder()
	h.ServeHTTP(w, signedVoice(statusURL, url.Values{"CallSid": {callSid}, "AccountSid": {account}, "DialCallStatus": {"completed"}}))
	assertTwiML(t, w, hangupTwiML)
	if len(calls.ended) != 1 {
		t.Errorf("ended %+v", calls.ended)
	}
}
