package emulator

import (
	"net/url"
	"testing"
	"time"
)

// forms returns the forms of the webhooks rc received.
func (rc *receiver) forms() []url.Values {
	var out []url.Values
	for _, r := range rc.all() {
		out = append(out, r.form)
	}
	return out
}

func TestClosedTimerAndStateEvents(t *testing.T) {
	h := newHarness(t)
	rc := newReceiver(t)
	// Twilio's spec asks for no State with a timer: the conversation is active and the timer runs.
	c := h.must(201, "POST", "/v1/Conversations", vals("Timers.Closed", "PT2H"))
	created, _ := time.Parse(time.RFC3339, c["date_created"].(string))
	if c["state"] != "active" || c["timers"].(map[string]any)["date_closed"] != created.Add(2*time.Hour).Format(time.RFC3339) {
		t.Errorf("timer without state: %v %v", c["state"], c["timers"])
	}
	if code, body := h.do("POST", "/v1/Conversations", vals("State", "active", "Timers.Closed", "PT5M")); code != 400 || apiCode(body) != 50376 {
		t.Errorf("timer under 10 minutes: %d %v", code, body)
	}
	if code, body := h.do("POST", "/v1/Conversations", vals("State", "closed")); code != 400 || apiCode(body) != 50384 {
		t.Errorf("created closed: %d %v", code, body)
	}
	c = h.must(201, "POST", "/v1/Conversations", vals("State", "active", "Timers.Closed", "PT2H"))
	conv := c["sid"].(string)
	if c["timers"].(map[string]any)["date_closed"] == nil {
		t.Errorf("timers %v", c["timers"])
	}
	h.must(201, "POST", "/v1/Conversations/"+conv+"/Webhooks", vals("Target", "webhook", "Configuration.Url", rc.srv.URL,
		"Configuration.Method", "post", "Configuration.Filters", "onConversationStateUpdated"))

	h.emu.Advance(119 * time.Minute)
	if got := h.must(200, "GET", "/v1/Conversations/"+conv, nil); got["state"] != "active" {
		t.Fatalf("closed before its timer: %v", got["state"])
	}
	h.emu.Advance(2 * time.Minute)
	if got := h.must(200, "GET", "/v1/Conversations/"+conv, nil); got["state"] != "closed" {
		t.Fatalf("open after its timer: %v", got["state"])
	}
	_ = h.emu.Close(t.Context())
	forms := rc.forms()
	if len(forms) != 1 || forms[0].Get("EventType") != "onConversationStateUpdated" || forms[0].Get("StateFrom") != "active" ||
		forms[0].Get("StateTo") != "closed" || forms[0].Get("Reason") != "TIMER" || forms[0].Get("ConversationSid") != conv {
		t.Errorf("state events %v", forms)
	}
	for _, req := range []struct{ path string }{{"/Messages"}, {"/Participants"}, {""}} {
		if code, body := h.do("POST", "/v1/Conversations/"+conv+req.path, vals("Body", "x", "MessagingBinding.Address", "+15550003333", "MessagingBinding.ProxyAddress", "+15550000000", "FriendlyName", "x")); code != 400 || apiCode(body) != 50377 {
			t.Errorf("POST %s on a closed conversation: %d %v", req.path, code, body)
		}
	}
}

// A close through the REST API fires the state webhook only with X-Twilio-Webhook-Enabled: true, as at
// Twilio: the service's own close is not reported back to it.
func TestCloseByAPIFiresStateEventOnlyWhenAsked(t *testing.T) {
	h := newHarness(t)
	rc := newReceiver(t)
	quiet := h.must(201, "POST", "/v1/Conversations", nil)["sid"].(string)
	loud := h.must(201, "POST", "/v1/Conversations", nil)["sid"].(string)
	for _, conv := range []string{quiet, loud} {
		h.must(201, "POST", "/v1/Conversations/"+conv+"/Webhooks", vals("Target", "webhook", "Configuration.Url", rc.srv.URL,
			"Configuration.Method", "post", "Configuration.Filters", "onConversationStateUpdated"))
	}
	h.must(200, "POST", "/v1/Conversations/"+quiet, vals("State", "closed"))
	h.must(200, "POST", "/v1/Conversations/"+loud, vals("State", "closed"), "X-Twilio-Webhook-Enabled", "true")
	_ = h.emu.Close(t.Context())
	if forms := rc.forms(); len(forms) != 1 || forms[0].Get("Reason") != "API" || forms[0].Get("StateTo") != "closed" || forms[0].Get("ConversationSid") != loud {
		t.Errorf("state events %v", forms)
	}
	if got := h.must(200, "GET", "/v1/Conversations/"+quiet, nil); got["state"] != "closed" {
		t.Errorf("quietly closed conversation is %v", got["state"])
	}
}

func TestParseISODuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"PT10M": 10 * time.Minute, "PT2H30M": 150 * time.Minute, "P1D": 24 * time.Hour, "PT600S": 10 * time.Minute, "P1DT1H": 25 * time.Hour} {
		if got, ok := parseISODuration(in); !ok || got != want {
			t.Errorf("%s = %v %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "P", "PT", "10m", "PT1.5H", "-PT1H"} {
		if _, ok := parseISODuration(in); ok {
			t.Errorf("%q accepted", in)
		}
	}
}

// Twilio limits conversation creates per service; so does the emulator when asked.
func TestCreateRate(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.CreateRate = 3 })
	for range 3 {
		h.must(201, "POST", "/v1/Conversations", nil)
	}
	if code, body := h.do("POST", "/v1/Conversations", nil); code != 429 || apiCode(body) != 20429 {
		t.Errorf("fourth create in a second: %d %v", code, body)
	}
	h.emu.Advance(time.Second)
	h.must(201, "POST", "/v1/Conversations", nil)
	if n := h.emu.RateLimited(); n != 1 {
		t.Errorf("RateLimited = %d", n)
	}
}
