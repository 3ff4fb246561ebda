package emulator_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/optinkit/optin/emulator"
)

// A rider calls the business number he knows the chat by; the service behind its voice URL dials
// the customer showing the customer's business number. The customer answers after 5 s, the rider
// hangs up a minute later, and the Dial's action hears how it went.
func ExampleEmulator_Call() {
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "text/xml")
		if r.URL.Path == "/webhooks/voice" {
			_, _ = io.WriteString(w, `<Response><Dial callerId="+15550000020" timeLimit="600" action="status">`+
				`<Number>+15550001111</Number></Dial></Response>`)
			return
		}
		fmt.Println("action:", r.PostForm.Get("DialCallStatus"), r.PostForm.Get("DialCallDuration"))
		_, _ = io.WriteString(w, `<Response/>`)
	}))
	defer svc.Close()
	sid, token := emulator.NewCredentials()
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	emu, err := emulator.New(emulator.Options{AccountSid: sid, AuthToken: token, Now: func() time.Time { return start },
		Numbers: []emulator.PhoneNumber{{Number: "+15550000010", VoiceURL: svc.URL + "/webhooks/voice"}, {Number: "+15550000020"}},
		Phones:  map[string]emulator.Phone{"+15550001111": {RingFor: emulator.Duration(5 * time.Second)}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	call, err := emu.Call("+15550002222", "+15550000010")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("the customer's phone rings, showing", call.Dials[0].CallerID)
	emu.Advance(65 * time.Second)
	call, _ = emu.Hangup(call.Sid, "caller")
	fmt.Println("call:", call.Status)
	// Output:
	// the customer's phone rings, showing +15550000020
	// action: completed 60
	// call: completed
}
