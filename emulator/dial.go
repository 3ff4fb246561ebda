package emulator

import (
	"cmp"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// A Dial of a call: the callee's phone ringing and answering on the emulator's clock, the whisper,
// the end of the connected call, and the action callback with what the TwiML says next.

// startDial rings the callee of a Dial; a Dial that cannot ring anyone (busy, failed, a caller id
// Twilio refuses) ends at once, going on to its action or the next verb.
func (e *Emulator) startDial(c *call, v twimlNode) {
	now := e.clock()
	d := Dial{Sid: "", CallerID: cmp.Or(v.attr("callerId"), c.From), Status: "ringing", Heard: []string{}, Ringing: now,
		TimeLimit: atoiOr(v.attr("timeLimit"), defaultTimeLimit), Timeout: atoiOr(v.attr("timeout"), defaultDialTimeout)}
	dl := &dialing{method: cmp.Or(v.attr("method"), "POST")}
	if a := v.attr("action"); a != "" {
		dl.action = resolve(c.doc, a)
		d.Action = dl.action
	}
	d.To = v.text()
	for _, noun := range v.Children {
		if noun.XMLName.Local == "Number" && d.To == "" {
			d.To = noun.text()
			if u := noun.attr("url"); u != "" {
				dl.whisper, dl.whisperVerb = resolve(c.doc, u), cmp.Or(noun.attr("method"), "POST")
			}
		} else if noun.XMLName.Local != "Number" {
			c.Log = append(c.Log, fmt.Sprintf("warning %d: <Dial><%s> is not dialed by the emulator", codeUnknownVerb, noun.XMLName.Local))
		}
	}
	e.mu.Lock()
	d.Sid = e.newSid("CA")
	allowed := e.callerIDAllowed(d.CallerID, c.To)
	dl.phone = e.phones[normalizeNumber(d.To)]
	e.mu.Unlock()
	c.Log = append(c.Log, fmt.Sprintf("Dial %s (caller id %s, time limit %ds)", d.To, d.CallerID, d.TimeLimit))
	dl.next, dl.due = "answer", now.Add(time.Duration(dl.phone.RingFor))
	switch {
	case d.To == "":
		d.Status = "failed"
		c.Log = append(c.Log, "Dial: no number to dial")
	case v.attr("callerId") != "" && !allowed:
		d.Status, d.ErrorCode = "failed", codeCallerID
		c.Log = append(c.Log, fmt.Sprintf("error %d: caller id %s is not a number of the account", codeCallerID, d.CallerID))
	case dl.phone.Answer == "busy" || dl.phone.Answer == "failed":
		d.Status = dl.phone.Answer
	case dl.phone.Answer == "no-answer" || time.Duration(dl.phone.RingFor) >= time.Duration(d.Timeout)*time.Second:
		dl.next, dl.due = "no-answer", now.Add(time.Duration(d.Timeout)*time.Second)
	}
	c.Dials = append(c.Dials, d)
	c.dial = dl
	if d.Status != "ringing" {
		c.lastDial().Ended = now
		e.finishDial(c)
	}
}

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n > 0 {
		return n
	}
	return def
}

// progress plays every Dial event the clock has reached: a callee answering, a ring running out, a
// connected call reaching its end. Callers hold e.callMu.
func (e *Emulator) progress() {
	for {
		now := e.clock()
		var due *call
		for _, c := range e.voiceCalls {
			if c.dial != nil && !c.dial.due.After(now) && (due == nil || c.dial.due.Before(due.dial.due)) {
				due = c
			}
		}
		if due == nil {
			return
		}
		e.step(due)
	}
}

// step plays a call's next Dial event, at the time it was due.
func (e *Emulator) step(c *call) {
	dl, d := c.dial, c.lastDial()
	at := dl.due
	switch dl.next {
	case "no-answer":
		d.Status, d.Ended = "no-answer", at
		e.finishDial(c)
	case "answer":
		d.Status, d.Answered = "in-progress", at
		if dl.whisper != "" {
			e.whisper(c, dl)
		}
		length := time.Duration(d.TimeLimit) * time.Second
		if t := time.Duration(dl.phone.TalkFor); t > 0 && t < length {
			length = t
		}
		dl.next, dl.due = "end", at.Add(length)
	case "end":
		e.hangDial(c, at, "completed")
	}
}

// whisper asks the Number's url for what the callee hears before the two are connected.
func (e *Emulator) whisper(c *call, dl *dialing) {
	d := c.lastDial()
	params := url.Values{
		"AccountSid": {e.opts.AccountSid}, "ApiVersion": {"2010-04-01"}, "CallSid": {d.Sid}, "ParentCallSid": {c.Sid},
		"CallStatus": {"in-progress"}, "Direction": {"outbound-dial"}, "From": {d.CallerID}, "To": {d.To},
		"Caller": {d.CallerID}, "Called": {d.To},
	}
	doc, code, msg := e.fetchTwiML("whisper", "", dl.whisper, dl.whisperVerb, params)
	if code != 0 {
		c.Log = append(c.Log, fmt.Sprintf("whisper error %d: %s", code, msg))
		return
	}
	for _, v := range doc.Children {
		if v.XMLName.Local == "Say" {
			d.Heard = append(d.Heard, v.text())
		} else {
			c.Log = append(c.Log, fmt.Sprintf("whisper: <%s> not played", v.XMLName.Local))
		}
	}
}

// hangDial ends a ringing or connected Dial at time at with status (for a connected one: completed).
func (e *Emulator) hangDial(c *call, at time.Time, status string) {
	d := c.lastDial()
	if !d.Answered.IsZero() {
		status = "completed"
		d.Duration = int(at.Sub(d.Answered) / time.Second)
	}
	d.Status, d.Ended = status, at
	e.finishDial(c)
}

// finishDial posts the Dial's action, when it has one, and plays what comes next: the action's
// TwiML, or the verbs after the Dial. A caller who hung up hears nothing more.
func (e *Emulator) finishDial(c *call) {
	dl, d := c.dial, c.lastDial()
	c.dial = nil
	c.Log = append(c.Log, fmt.Sprintf("Dial ended: %s after %ds", d.Status, d.Duration))
	parent := "in-progress"
	if c.hungUp {
		parent = "completed"
	}
	if dl.action == "" {
		if c.hungUp {
			e.endCall(c, "completed")
			return
		}
		rest := c.rest
		c.rest = nil
		e.play(c, rest, 0)
		return
	}
	params := e.callParams(c, parent)
	params.Set("DialCallSid", d.Sid)
	params.Set("DialCallStatus", d.Status)
	if !d.Answered.IsZero() {
		params.Set("DialCallDuration", strconv.Itoa(d.Duration))
	}
	c.lastAction = &hookRequest{url: dl.action, method: dl.method, token: randomToken(), params: params}
	d.ActionCalls++
	doc, code, msg, _ := e.fetchAction(c.lastAction)
	c.rest = nil
	switch {
	case c.hungUp:
		e.endCall(c, "completed")
	case code != 0:
		e.failCall(c, code, msg)
	default:
		c.doc = dl.action
		e.play(c, doc.Children, 0)
	}
}

// fetchAction makes (or repeats, with the same idempotency token) a Dial's action request.
func (e *Emulator) fetchAction(h *hookRequest) (twimlNode, int, string, WebhookCall) {
	return e.fetchTwiMLToken("dial-action", "", h.url, h.method, h.params, h.token)
}
