package emulator

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// Programmable Voice, as far as a phone calling a business number goes: the signed incoming-call
// request to the number's voice URL, the TwiML it answers (Say, Pause, Play, Redirect, Hangup,
// Reject, Dial with a Number and its whisper), the callee's phone ringing and answering on the
// emulator's clock, and the Dial's action callback.

// ErrUnknownNumber means the number called is not one of the account's.
var ErrUnknownNumber = errors.New("emulator: the number called is not one of the account's")

// ErrNoCall means no call has that SID, or it is over.
var ErrNoCall = errors.New("emulator: no such call in progress")

// Phone says how a phone answers the calls a Dial rings it with.
type Phone struct {
	// Answer is "answer" (the default), "busy", "no-answer" or "failed".
	Answer string `json:"answer,omitempty"`
	// RingFor is how long it rings before it answers: a Dial's timeout (30 s by default) running out
	// first is no-answer.
	RingFor Duration `json:"ring_for,omitempty"`
	// TalkFor is how long the callee talks before hanging up; zero: until the caller hangs up or the
	// Dial's timeLimit.
	TalkFor Duration `json:"talk_for,omitempty"`
	// ProfileName is the WhatsApp profile name its WhatsApp messages carry to a number's SMS URL.
	ProfileName string `json:"profile_name,omitempty"`
}

// Validate reports a Phone the emulator cannot play.
func (p Phone) Validate() error {
	switch p.Answer {
	case "", "answer", "busy", "no-answer", "failed":
	default:
		return fmt.Errorf("phone answer %q: want answer, busy, no-answer or failed", p.Answer)
	}
	if p.RingFor < 0 || p.TalkFor < 0 {
		return errors.New("phone ring_for and talk_for must not be negative")
	}
	return nil
}

// SetPhone says how the phone at number (+E164) answers calls from now on.
func (e *Emulator) SetPhone(number string, p Phone) error {
	if err := p.Validate(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.phones[normalizeNumber(number)] = p
	return nil
}

// Call is a call a phone placed to a business number, as it went so far.
type Call struct {
	// Sid is the call's CA… SID; From is the caller's number, To the number called.
	Sid  string `json:"sid"`
	From string `json:"from"`
	To   string `json:"to"`
	// Status is in-progress while TwiML runs or a Dial rings or talks, then completed, busy (a
	// Reject) or failed (no voice URL, TwiML Twilio could not get or read).
	Status string `json:"status"`
	// ErrorCode and Error say why a call failed: 11200, 12100, 12300; Error alone for a number
	// without a voice URL.
	ErrorCode int    `json:"error_code,omitempty"`
	Error     string `json:"error,omitempty"`
	// Rejected is the reason of a <Reject> (rejected or busy).
	Rejected string `json:"rejected,omitempty"`
	// Heard is what the caller heard: each <Say>, in order.
	Heard []string `json:"heard"`
	// Log lists each verb as it was played, and the warnings Twilio would log (12200 for a verb it
	// skips).
	Log []string `json:"log"`
	// Dials are the Dials the call made, oldest first.
	Dials   []Dial    `json:"dials"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitzero"`
}

// Dial is one <Dial> of a call: the callee's side.
type Dial struct {
	// Sid is the callee's leg (DialCallSid); To the number dialed.
	Sid string `json:"sid"`
	To  string `json:"to"`
	// CallerID is the number the callee's phone shows: the callerId attribute, else the caller's.
	CallerID string `json:"caller_id"`
	// Status is ringing, in-progress, then DialCallStatus: completed, busy, no-answer, failed or canceled.
	Status    string `json:"status"`
	ErrorCode int    `json:"error_code,omitempty"`
	// Duration is DialCallDuration: the seconds the two talked.
	Duration  int `json:"duration"`
	TimeLimit int `json:"time_limit"`
	Timeout   int `json:"timeout"`
	// Action is the action URL, made absolute; ActionCalls counts its requests (replays included).
	Action      string `json:"action,omitempty"`
	ActionCalls int    `json:"action_calls"`
	// Heard is what the callee heard before being connected: the <Say>s of the Number's url.
	Heard    []string  `json:"heard"`
	Ringing  time.Time `json:"ringing"`
	Answered time.Time `json:"answered,omitzero"`
	Ended    time.Time `json:"ended,omitzero"`
}

// call is a Call and what the emulator needs to carry it on. e.callMu guards it.
type call struct {
	Call
	// doc is the URL of the TwiML being played, for relative URLs; rest are its verbs after a Dial.
	doc  string
	rest []twimlNode
	dial *dialing
	// lastAction is the Dial's last action request, for a replay.
	lastAction *hookRequest
	// hungUp: the caller hung up; the call plays no more TwiML.
	hungUp bool
}

// dialing is a Dial in progress: what happens next (answer, no-answer or end) and when.
type dialing struct {
	next                 string
	due                  time.Time
	phone                Phone
	action, method       string
	whisper, whisperVerb string
}

type hookRequest struct {
	url, method, token string
	params             url.Values
}

func (c *call) lastDial() *Dial { return &c.Dials[len(c.Dials)-1] }

// clock reads the emulator's clock.
func (e *Emulator) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now()
}

// Call makes the phone at from call the business number to (+E164; a WhatsApp address whatsapp:+X
// calls from or to +X): the emulator asks the number's voice URL for TwiML and plays it. It returns
// when the call is over or waits on the clock: a Dial ringing or talking goes on as Advance moves
// the clock or Hangup ends it.
func (e *Emulator) Call(from, to string) (Call, error) {
	from, to = normalizeNumber(from), normalizeNumber(to)
	if from == "" || to == "" {
		return Call{}, errors.New("emulator: a call needs from and to")
	}
	e.mu.Lock()
	n := e.numberLocked(to)
	var pn PhoneNumber
	if n != nil {
		pn = n.PhoneNumber
	}
	sid := e.newSid("CA")
	now := e.now()
	e.mu.Unlock()
	if n == nil || !pn.Voice {
		return Call{}, ErrUnknownNumber
	}
	e.callMu.Lock()
	defer e.callMu.Unlock()
	c := &call{Call: Call{Sid: sid, From: from, To: to, Status: "ringing", Heard: []string{}, Log: []string{}, Dials: []Dial{}, Started: now}, doc: pn.VoiceURL}
	e.voiceCalls = append(e.voiceCalls, c)
	if pn.VoiceURL == "" {
		e.failCall(c, 0, errNoVoiceURL) // Twilio has no code of its own for it: the caller hears an error
		return c.snapshot(), nil
	}
	params := e.callParams(c, "ringing")
	doc, code, msg := e.fetchTwiML("voice", "", pn.VoiceURL, pn.VoiceMethod, params)
	if code != 0 && pn.VoiceFallbackURL != "" {
		c.Log = append(c.Log, fmt.Sprintf("error %d: %s; asking the fallback URL", code, msg))
		fb := cloneValues(params)
		fb.Set("ErrorCode", strconv.Itoa(code))
		fb.Set("ErrorUrl", pn.VoiceURL)
		c.doc = pn.VoiceFallbackURL
		doc, code, msg = e.fetchTwiML("voice-fallback", "", pn.VoiceFallbackURL, pn.VoiceFallbackMethod, fb)
	}
	if code != 0 {
		e.failCall(c, code, msg)
		return c.snapshot(), nil
	}
	c.Status = "in-progress"
	e.play(c, doc.Children, 0)
	e.progress()
	return c.snapshot(), nil
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

func (c *call) snapshot() Call {
	out := c.Call
	out.Heard, out.Log = slices.Clone(c.Heard), slices.Clone(c.Log)
	out.Dials = slices.Clone(c.Dials)
	for i := range out.Dials {
		out.Dials[i].Heard = slices.Clone(out.Dials[i].Heard)
	}
	return out
}

// errNoVoiceURL is Call.Error of a call to a number without a voice URL.
const errNoVoiceURL = "the number has no voice URL"

// failCall ends a call Twilio could not play: the caller hears an application error.
func (e *Emulator) failCall(c *call, code int, msg string) {
	c.Status, c.ErrorCode, c.Error = "failed", code, msg
	c.Heard = append(c.Heard, "(an application error has occurred)")
	if code != 0 {
		msg = fmt.Sprintf("error %d: %s", code, msg)
	}
	c.Log = append(c.Log, msg)
	c.Ended = e.clock()
}

// callParams are the parameters of Twilio's requests about the caller's leg.
func (e *Emulator) callParams(c *call, status string) url.Values {
	return url.Values{
		"AccountSid": {e.opts.AccountSid}, "ApiVersion": {"2010-04-01"}, "CallSid": {c.Sid}, "CallStatus": {status},
		"Direction": {"inbound"}, "From": {c.From}, "To": {c.To}, "Caller": {c.From}, "Called": {c.To},
	}
}

// play runs verbs from the document at c.doc until they end, a Dial waits on the clock, or the call
// ends. depth counts Redirects.
func (e *Emulator) play(c *call, verbs []twimlNode, depth int) {
	for i, v := range verbs {
		switch name := v.XMLName.Local; name {
		case "Say":
			c.Heard = append(c.Heard, v.text())
			c.Log = append(c.Log, "Say: "+v.text())
		case "Pause":
			c.Log = append(c.Log, "Pause "+cmp.Or(v.attr("length"), "1")+"s") // takes no time on the clock
		case "Play":
			c.Log = append(c.Log, "Play "+v.text())
		case "Hangup":
			c.Log = append(c.Log, "Hangup")
			e.endCall(c, "completed")
			return
		case "Reject":
			reason := cmp.Or(v.attr("reason"), "rejected")
			c.Log = append(c.Log, "Reject: "+reason)
			c.Rejected = reason
			e.endCall(c, "busy")
			return
		case "Redirect":
			target := resolve(c.doc, v.text())
			c.Log = append(c.Log, "Redirect "+target)
			if depth >= maxRedirects {
				e.failCall(c, codeParse, "too many redirects")
				return
			}
			doc, code, msg := e.fetchTwiML("voice-redirect", "", target, cmp.Or(v.attr("method"), "POST"), e.callParams(c, "in-progress"))
			if code != 0 {
				e.failCall(c, code, msg)
				return
			}
			c.doc = target
			e.play(c, doc.Children, depth+1)
			return
		case "Dial":
			c.rest = verbs[i+1:] // played after the Dial when it has no action
			e.startDial(c, v)
			return
		default:
			c.Log = append(c.Log, fmt.Sprintf("warning %d: <%s> skipped", codeUnknownVerb, name))
		}
	}
	e.endCall(c, "completed") // the document ran out: Twilio hangs up
}

func (e *Emulator) endCall(c *call, status string) {
	c.Status, c.Ended = status, e.clock()
}

func (e *Emulator) findCall(sid string) *call {
	for _, c := range e.voiceCalls {
		if c.Sid == sid {
			return c
		}
	}
	return nil
}

// Hangup ends a call early, as party ("caller" or "callee") hanging up now: a ringing Dial is
// canceled by the caller or declined (busy) by the callee; a connected one is completed, its
// duration counted to now. The Dial's action is posted; after a caller's hangup its TwiML is not
// played.
func (e *Emulator) Hangup(callSid, party string) (Call, error) {
	if party != "caller" && party != "callee" {
		return Call{}, fmt.Errorf("emulator: party %q: want caller or callee", party)
	}
	e.callMu.Lock()
	defer e.callMu.Unlock()
	e.progress() // events the clock already reached happen first
	c := e.findCall(callSid)
	if c == nil || !c.Ended.IsZero() {
		return Call{}, ErrNoCall
	}
	now := e.clock()
	switch {
	case c.dial == nil && party == "callee":
		return Call{}, fmt.Errorf("emulator: call %s has no callee on the line", callSid)
	case c.dial == nil:
		c.hungUp = true
		c.Log = append(c.Log, "the caller hung up")
		e.endCall(c, "completed")
	default:
		c.Log = append(c.Log, "the "+party+" hung up")
		status := "busy"
		if party == "caller" {
			c.hungUp, status = true, "canceled"
		}
		e.hangDial(c, now, status)
	}
	e.progress()
	return c.snapshot(), nil
}

// ReplayDialAction posts a call's last Dial action request again, with the same parameters and
// idempotency token, as Twilio's retry would; its TwiML is not played.
func (e *Emulator) ReplayDialAction(callSid string) (WebhookCall, error) {
	e.callMu.Lock()
	defer e.callMu.Unlock()
	c := e.findCall(callSid)
	if c == nil || c.lastAction == nil {
		return WebhookCall{}, ErrNoCall
	}
	c.lastDial().ActionCalls++
	_, _, _, call := e.fetchAction(c.lastAction)
	return call, nil
}

// Calls returns every call placed so far, oldest first.
func (e *Emulator) Calls() []Call {
	e.callMu.Lock()
	defer e.callMu.Unlock()
	out := make([]Call, 0, len(e.voiceCalls))
	for _, c := range e.voiceCalls {
		out = append(out, c.snapshot())
	}
	return out
}

// CallByID returns one call.
func (e *Emulator) CallByID(sid string) (Call, bool) {
	e.callMu.Lock()
	defer e.callMu.Unlock()
	c := e.findCall(sid)
	if c == nil {
		return Call{}, false
	}
	return c.snapshot(), true
}

// Rings returns the calls the phone at number was rung with, oldest first: each Dial to it, with
// the caller id it showed.
func (e *Emulator) Rings(number string) []Dial {
	want := normalizeNumber(number)
	e.callMu.Lock()
	defer e.callMu.Unlock()
	var out []Dial
	for _, c := range e.voiceCalls {
		for _, d := range c.snapshot().Dials {
			if normalizeNumber(d.To) == want {
				out = append(out, d)
			}
		}
	}
	return out
}

// progressCalls plays the call events the clock has reached (after Advance).
func (e *Emulator) progressCalls() {
	e.callMu.Lock()
	defer e.callMu.Unlock()
	e.progress()
}

// writeCallError maps call errors to Twilio-shaped answers of the /emulator routes.
func writeCallError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrUnknownNumber), errors.Is(err, ErrNoCall):
		writeAPIError(w, apiError{404, 20404, err.Error()})
	default:
		writeAPIError(w, badParam(err.Error()))
	}
}
