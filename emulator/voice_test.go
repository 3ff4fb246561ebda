package emulator

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twilio/twilio-go/twiml"
)

// The cast of a masked call: each party knows the chat by its own business number.
const (
	riderPhone    = "+15550002222"
	customerPhone = "+15550001111"
	riderLine     = "+15550000010" // the number the rider writes and calls
	customerLine  = "+15550000020" // the number the customer writes and calls
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// voiceHarness is an emulator on a fixed clock whose two business numbers send calls to svc.
func voiceHarness(t *testing.T, svc *service) *harness {
	h := newHarness(t, func(o *Options) { o.Now = func() time.Time { return t0 } })
	for _, n := range []string{riderLine, customerLine} {
		h.emu.SetNumber(PhoneNumber{Number: n, SMS: true, Voice: true, VoiceURL: svc.url("/webhooks/voice")})
	}
	return h
}

// callerParams are Twilio's parameters about the caller's leg.
func callerParams(callSid, from, to, status string) url.Values {
	return vals("AccountSid", sid, "ApiVersion", "2010-04-01", "CallSid", callSid, "CallStatus", status, "Direction", "inbound",
		"From", from, "To", to, "Caller", from, "Called", to)
}

// The masked call: the rider calls his line, the service dials the customer showing the customer's
// line, the customer hears the whisper, answers after 5 s, talks 90 s and hangs up; the action gets
// the outcome, and a replay repeats it exactly.
func TestMaskedCall(t *testing.T) {
	svc := newService(t, func(path string, _ url.Values) (int, string, string) {
		switch path {
		case "/webhooks/voice":
			return 200, "text/xml; charset=utf-8", `<?xml version="1.0" encoding="UTF-8"?><Response><Dial callerId="` + customerLine +
				`" timeLimit="600" action="status?chat=42"><Number url="/webhooks/voice/whisper">` + customerPhone + `</Number></Dial></Response>`
		case "/webhooks/voice/whisper":
			return 200, xmlType, `<Response><Say>A call about your delivery.</Say></Response>`
		}
		return 200, xmlType, `<Response/>`
	})
	h := voiceHarness(t, svc)
	if err := h.emu.SetPhone(customerPhone, Phone{RingFor: Duration(5 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	c, err := h.emu.Call(riderPhone, riderLine)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != "in-progress" || len(c.Dials) != 1 || c.Dials[0].Status != "ringing" || c.Dials[0].CallerID != customerLine ||
		c.Dials[0].To != customerPhone || c.Dials[0].TimeLimit != 600 || c.Dials[0].Timeout != 30 ||
		c.Dials[0].Action != svc.url("/webhooks/status?chat=42") {
		t.Fatalf("ringing call %+v", c)
	}
	reqs := svc.requests()
	if len(reqs) != 1 || reqs[0].method != "POST" || reqs[0].path != "/webhooks/voice" || reqs[0].idem == "" {
		t.Fatalf("requests %+v", reqs)
	}
	wantForm(t, "voice", reqs[0].form, callerParams(c.Sid, riderPhone, riderLine, "ringing"))

	h.emu.Advance(5 * time.Second) // the customer answers and hears the whisper
	c, _ = h.emu.CallByID(c.Sid)
	d := c.Dials[0]
	if d.Status != "in-progress" || !d.Answered.Equal(t0.Add(5*time.Second)) || !slices.Equal(d.Heard, []string{"A call about your delivery."}) {
		t.Fatalf("answered dial %+v", d)
	}
	reqs = svc.requests()
	if len(reqs) != 2 || reqs[1].path != "/webhooks/voice/whisper" {
		t.Fatalf("requests %+v", reqs)
	}
	wantForm(t, "whisper", reqs[1].form, vals("AccountSid", sid, "ApiVersion", "2010-04-01", "CallSid", d.Sid, "ParentCallSid", c.Sid,
		"CallStatus", "in-progress", "Direction", "outbound-dial", "From", customerLine, "To", customerPhone, "Caller", customerLine, "Called", customerPhone))

	h.emu.Advance(90 * time.Second)
	if c, _ = h.emu.CallByID(c.Sid); c.Dials[0].Status != "in-progress" {
		t.Fatalf("the call ended on its own: %+v", c.Dials[0])
	}
	c, err = h.emu.Hangup(c.Sid, "callee")
	if err != nil {
		t.Fatal(err)
	}
	d = c.Dials[0]
	if c.Status != "completed" || d.Status != "completed" || d.Duration != 90 || d.ActionCalls != 1 || !c.Ended.Equal(t0.Add(95*time.Second)) {
		t.Errorf("ended call %+v", c)
	}
	reqs = svc.requests()
	if len(reqs) != 3 || reqs[2].url != svc.url("/webhooks/status?chat=42") {
		t.Fatalf("requests %+v", reqs)
	}
	action := callerParams(c.Sid, riderPhone, riderLine, "in-progress")
	action.Set("DialCallSid", d.Sid)
	action.Set("DialCallStatus", "completed")
	action.Set("DialCallDuration", "90")
	wantForm(t, "action", reqs[2].form, action)

	// The callee's phone saw the customer's line, never the rider's number.
	rings := h.emu.Rings(customerPhone)
	if len(rings) != 1 || rings[0].CallerID != customerLine || rings[0].Sid != d.Sid {
		t.Errorf("rings %+v", rings)
	}
	for _, r := range reqs[1:] {
		if r.form.Get("From") == riderPhone && r.path == "/webhooks/voice/whisper" {
			t.Error("the whisper leg shows the rider's number")
		}
	}

	// Twilio's retry: the same request, the same idempotency token.
	wc, err := h.emu.ReplayDialAction(c.Sid)
	if err != nil || wc.EventType != "dial-action" || wc.Status != 200 {
		t.Fatalf("replay %v %+v", err, wc)
	}
	reqs = svc.requests()
	if len(reqs) != 4 || reqs[3].idem != reqs[2].idem || reqs[3].sig != reqs[2].sig {
		t.Fatalf("replayed %+v", reqs)
	}
	wantForm(t, "replayed action", reqs[3].form, action)
	if c, _ = h.emu.CallByID(c.Sid); c.Dials[0].ActionCalls != 2 {
		t.Errorf("action calls %d", c.Dials[0].ActionCalls)
	}
	if _, err := h.emu.Hangup(c.Sid, "caller"); !errors.Is(err, ErrNoCall) {
		t.Errorf("hanging up an ended call: %v", err)
	}
}

// The clock decides: a jump past the ring and the time limit plays both at their own times; a
// phone that talks less than the limit hangs up by itself.
func TestDialOnTheClock(t *testing.T) {
	for _, tc := range []struct {
		name       string
		phone      Phone
		advance    time.Duration
		wantStatus string
		wantDur    int
		duration   bool
	}{
		{"time limit", Phone{RingFor: Duration(3 * time.Second)}, time.Hour, "completed", 60, true},
		{"talks less", Phone{TalkFor: Duration(20 * time.Second)}, time.Minute, "completed", 20, true},
		{"rings out", Phone{RingFor: Duration(40 * time.Second)}, 10 * time.Second, "no-answer", 0, false},
		{"declines", Phone{Answer: "no-answer"}, 10 * time.Second, "no-answer", 0, false},
		{"busy", Phone{Answer: "busy"}, 0, "busy", 0, false},
		{"failed", Phone{Answer: "failed"}, 0, "failed", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newService(t, func(path string, _ url.Values) (int, string, string) {
				if path == "/webhooks/voice" {
					return 200, xmlType, `<Response><Dial callerId="` + customerLine + `" timeLimit="60" timeout="10" action="/webhooks/voice/status"><Number>` +
						customerPhone + `</Number></Dial><Say>never played: the Dial has an action</Say></Response>`
				}
				return 200, xmlType, `<Response><Say>The call has ended.</Say></Response>`
			})
			h := voiceHarness(t, svc)
			if err := h.emu.SetPhone(customerPhone, tc.phone); err != nil {
				t.Fatal(err)
			}
			c, err := h.emu.Call(riderPhone, riderLine)
			if err != nil {
				t.Fatal(err)
			}
			h.emu.Advance(tc.advance)
			c, _ = h.emu.CallByID(c.Sid)
			d := c.Dials[0]
			if c.Status != "completed" || d.Status != tc.wantStatus || d.Duration != tc.wantDur ||
				!slices.Equal(c.Heard, []string{"The call has ended."}) {
				t.Fatalf("call %+v", c)
			}
			reqs := svc.requests()
			if len(reqs) != 2 {
				t.Fatalf("requests %+v", reqs)
			}
			action := callerParams(c.Sid, riderPhone, riderLine, "in-progress")
			action.Set("DialCallSid", d.Sid)
			action.Set("DialCallStatus", tc.wantStatus)
			if tc.duration {
				action.Set("DialCallDuration", strconv.Itoa(tc.wantDur))
			}
			wantForm(t, "action", reqs[1].form, action)
		})
	}
}

// TwiML as Twilio's own Go SDK writes it is what the emulator plays.
func TestTwiMLFromTwilioGo(t *testing.T) {
	for _, tc := range []struct {
		name  string
		verbs []twiml.Element
		check func(t *testing.T, c Call, h *harness)
	}{
		{"dial", []twiml.Element{&twiml.VoiceDial{CallerId: customerLine, TimeLimit: "120", Action: "/webhooks/voice/status",
			InnerElements: []twiml.Element{&twiml.VoiceNumber{PhoneNumber: customerPhone, Url: "/webhooks/voice/whisper"}}}},
			func(t *testing.T, c Call, h *harness) {
				d := c.Dials[0]
				if d.CallerID != customerLine || d.TimeLimit != 120 || d.To != customerPhone || !slices.Equal(d.Heard, []string{"About your delivery."}) ||
					d.Status != "completed" || d.Duration != 120 || !strings.HasSuffix(d.Action, "/webhooks/voice/status") {
					t.Errorf("dial %+v", d)
				}
			}},
		{"say and hang up", []twiml.Element{&twiml.VoiceSay{Message: "This chat is closed."}, &twiml.VoiceHangup{}, &twiml.VoiceSay{Message: "never"}},
			func(t *testing.T, c Call, _ *harness) {
				if c.Status != "completed" || !slices.Equal(c.Heard, []string{"This chat is closed."}) || len(c.Dials) != 0 {
					t.Errorf("call %+v", c)
				}
			}},
		{"reject", []twiml.Element{&twiml.VoiceReject{Reason: "busy"}},
			func(t *testing.T, c Call, _ *harness) {
				if c.Status != "busy" || c.Rejected != "busy" || len(c.Heard) != 0 {
					t.Errorf("call %+v", c)
				}
			}},
		{"unknown verb skipped", []twiml.Element{&twiml.VoiceSay{Message: "One"}, &twiml.VoicePause{Length: "2"},
			&twiml.VoiceGather{InnerElements: []twiml.Element{&twiml.VoiceSay{Message: "press 1"}}}, &twiml.VoiceSay{Message: "Two"}},
			func(t *testing.T, c Call, _ *harness) {
				want := []string{"Say: One", "Pause 2s", "warning 12200: <Gather> skipped", "Say: Two"}
				if c.Status != "completed" || !slices.Equal(c.Heard, []string{"One", "Two"}) || !slices.Equal(c.Log, want) {
					t.Errorf("call %+v, log want %q", c, want)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := twiml.Voice(tc.verbs)
			if err != nil {
				t.Fatal(err)
			}
			svc := newService(t, func(path string, _ url.Values) (int, string, string) {
				switch path {
				case "/webhooks/voice":
					return 200, xmlType, doc
				case "/webhooks/voice/whisper":
					w, _ := twiml.Voice([]twiml.Element{&twiml.VoiceSay{Message: "About your delivery."}})
					return 200, xmlType, w
				}
				empty, _ := twiml.Voice(nil)
				return 200, xmlType, empty
			})
			h := voiceHarness(t, svc)
			c, err := h.emu.Call(riderPhone, riderLine)
			if err != nil {
				t.Fatal(err)
			}
			h.emu.Advance(time.Hour)
			c, _ = h.emu.CallByID(c.Sid)
			tc.check(t, c, h)
		})
	}
}

// What goes wrong is recorded as Twilio reports it, and a caller who hangs up hears nothing more.
func TestCallFailures(t *testing.T) {
	answers := map[string]string{}
	svc := newService(t, func(path string, _ url.Values) (int, string, string) {
		if path == "/broken" {
			return 500, "text/plain", "oops"
		}
		return 200, xmlType, answers[path]
	})
	h := voiceHarness(t, svc)
	call := func(to string) Call {
		t.Helper()
		c, err := h.emu.Call(riderPhone, to)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	set := func(voiceURL, fallback string) {
		h.emu.SetNumber(PhoneNumber{Number: riderLine, VoiceURL: voiceURL, VoiceFallbackURL: fallback})
	}

	if _, err := h.emu.Call(riderPhone, "+15559999999"); !errors.Is(err, ErrUnknownNumber) {
		t.Errorf("a number of no account: %v", err)
	}
	set("", "")
	if c := call(riderLine); c.Status != "failed" || c.ErrorCode != 0 || c.Error != errNoVoiceURL || len(svc.requests()) != 0 {
		t.Errorf("no voice URL: %+v", c)
	}
	answers["/webhooks/voice"] = `<Response><Say>unclosed</Response>`
	set(svc.url("/webhooks/voice"), "")
	if c := call(riderLine); c.Status != "failed" || c.ErrorCode != 12100 || len(c.Heard) != 1 {
		t.Errorf("malformed TwiML: %+v", c)
	}
	answers["/fallback"] = `<Response><Say>Sorry.</Say></Response>`
	set(svc.url("/broken"), svc.url("/fallback"))
	c := call(riderLine)
	if c.Status != "completed" || !slices.Equal(c.Heard, []string{"Sorry."}) {
		t.Errorf("fallback: %+v", c)
	}
	reqs := svc.requests()
	fb := reqs[len(reqs)-1]
	want := callerParams(c.Sid, riderPhone, riderLine, "ringing")
	want.Set("ErrorCode", "11200")
	want.Set("ErrorUrl", svc.url("/broken"))
	wantForm(t, "fallback", fb.form, want)

	// A caller id that is not the account's: 13214, the Dial fails, the action hears it.
	answers["/webhooks/voice"] = `<Response><Dial callerId="+15558888888" action="/after"><Number>` + customerPhone + `</Number></Dial></Response>`
	answers["/after"] = `<Response><Say>Could not connect.</Say></Response>`
	set(svc.url("/webhooks/voice"), "")
	c = call("whatsapp:" + riderLine) // a WhatsApp sender's number takes calls as the number
	if d := c.Dials[0]; d.Status != "failed" || d.ErrorCode != codeCallerID || !slices.Equal(c.Heard, []string{"Could not connect."}) || c.To != riderLine {
		t.Errorf("caller id refused: %+v", c)
	}
	if rings := h.emu.Rings(customerPhone); len(rings) != 1 || rings[0].Status != "failed" {
		t.Errorf("rings %+v", rings)
	}

	// The caller hangs up while it rings: canceled; the action is told, its TwiML not played.
	answers["/webhooks/voice"] = `<Response><Dial callerId="` + customerLine + `" action="/after"><Number>` + customerPhone + `</Number></Dial></Response>`
	if err := h.emu.SetPhone(customerPhone, Phone{RingFor: Duration(10 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	c = call(riderLine)
	h.emu.Advance(3 * time.Second)
	c, err := h.emu.Hangup(c.Sid, "caller")
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Dials[0]; c.Status != "completed" || d.Status != "canceled" || len(c.Heard) != 0 {
		t.Errorf("canceled: %+v", c)
	}
	reqs = svc.requests()
	action := callerParams(c.Sid, riderPhone, riderLine, "completed")
	action.Set("DialCallSid", c.Dials[0].Sid)
	action.Set("DialCallStatus", "canceled")
	wantForm(t, "canceled action", reqs[len(reqs)-1].form, action)

	if _, err := h.emu.Hangup("CA0", "caller"); !errors.Is(err, ErrNoCall) {
		t.Errorf("unknown call: %v", err)
	}
	if _, err := h.emu.Hangup(c.Sid, "operator"); err == nil {
		t.Error("a third party hung up")
	}
	if err := h.emu.SetPhone(customerPhone, Phone{Answer: "maybe"}); err == nil {
		t.Error("an unknown answer was taken")
	}
}

// The console's phones use the HTTP routes: place a call, list calls, hang up, replay, set a phone.
func TestCallRoutes(t *testing.T) {
	svc := newService(t, func(path string, _ url.Values) (int, string, string) {
		if path == "/webhooks/voice" {
			return 200, xmlType, `<Response><Dial callerId="` + customerLine + `" action="/status"><Number>` + customerPhone + `</Number></Dial></Response>`
		}
		return 200, xmlType, `<Response/>`
	})
	h := voiceHarness(t, svc)
	api := NewClient(h.srv.URL, sid, token)
	ctx := t.Context()
	if err := api.SetPhone(ctx, customerPhone, Phone{RingFor: Duration(2 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	c, err := api.Call(ctx, riderPhone, riderLine)
	if err != nil || c.Dials[0].Status != "ringing" {
		t.Fatalf("call %v %+v", err, c)
	}
	// JSON works as a form does; a call needs both numbers.
	resp, err := http.Post(h.srv.URL+"/emulator/calls", "application/json", strings.NewReader(`{"from":"`+customerPhone+`","to":"`+customerLine+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Errorf("JSON call: %d", resp.StatusCode)
	}
	if code, _ := h.do("POST", "/emulator/calls", vals("From", riderPhone)); code != 400 {
		t.Errorf("a call without To: %d", code)
	}
	if err := api.Advance(ctx, 12*time.Second); err != nil {
		t.Fatal(err)
	}
	c, err = api.Hangup(ctx, c.Sid, "caller")
	if err != nil || c.Dials[0].Status != "completed" || c.Dials[0].Duration != 10 {
		t.Fatalf("hangup %v %+v", err, c)
	}
	if wc, err := api.ReplayDialAction(ctx, c.Sid); err != nil || wc.Status != 200 || wc.EventType != "dial-action" {
		t.Errorf("replay %v %+v", err, wc)
	}
	mine, err := api.Calls(ctx, riderPhone)
	if err != nil || len(mine) != 1 || mine[0].Sid != c.Sid {
		t.Errorf("calls of the customer %v %+v", err, mine)
	}
	if none, err := api.Calls(ctx, "+15557777777"); err != nil || len(none) != 0 {
		t.Errorf("calls of a stranger %v %+v", err, none)
	}
	var apiErr *APIError
	if _, err := api.Call(ctx, riderPhone, "+15557777777"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("unknown number: %v", err)
	}
	if _, err := api.Hangup(ctx, "CA0", "caller"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("unknown call: %v", err)
	}
	if err := api.SetPhone(ctx, customerPhone, Phone{Answer: "maybe"}); !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Errorf("bad phone: %v", err)
	}
}

// A voice URL with a user and password (a proxy's basic auth) is requested with them, and signed
// without them, as Twilio signs.
func TestCallToAURLWithCredentials(t *testing.T) {
	svc := newService(t, func(string, url.Values) (int, string, string) {
		return 200, xmlType, `<Response><Say>Hello.</Say></Response>`
	})
	h := voiceHarness(t, svc)
	h.emu.SetNumber(PhoneNumber{Number: riderLine, Voice: true, VoiceURL: strings.Replace(svc.url("/webhooks/voice"), "http://", "http://proxyuser:proxypass@", 1)})
	c, err := h.emu.Call(riderPhone, riderLine)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != "completed" || !slices.Equal(c.Heard, []string{"Hello."}) {
		t.Errorf("call %+v", c)
	}
	if reqs := svc.requests(); len(reqs) != 1 { // requests checks each signature over the URL Twilio called
		t.Errorf("%d requests", len(reqs))
	}
}
