package emulator

import (
	"net/http"
	"testing"
	"time"
)

// GET /v1/Conversations filters as Twilio does: by State (400 for one it does not know) and by the
// creation date, newest first with a date.
func TestListConversationsFilters(t *testing.T) {
	h := newHarness(t)
	first := h.must(201, "POST", "/v1/Conversations", nil)["sid"].(string)
	h.emu.Advance(48 * time.Hour)
	second := h.must(201, "POST", "/v1/Conversations", nil)["sid"].(string)
	third := h.must(201, "POST", "/v1/Conversations", nil)["sid"].(string)
	h.must(200, "POST", "/v1/Conversations/"+third, vals("State", "closed"))
	sids := func(path string) []string {
		var out []string
		for _, c := range h.must(200, "GET", path, nil)["conversations"].([]any) {
			out = append(out, c.(map[string]any)["sid"].(string))
		}
		return out
	}
	if got := sids("/v1/Conversations?State=closed"); len(got) != 1 || got[0] != third {
		t.Errorf("closed: %v", got)
	}
	if got := sids("/v1/Conversations?State=active"); len(got) != 2 || got[0] != first || got[1] != second {
		t.Errorf("active: %v", got)
	}
	since := h.emu.now().Add(-time.Hour).Format(time.RFC3339)
	if got := sids("/v1/Conversations?StartDate=" + since); len(got) != 2 || got[0] != third || got[1] != second {
		t.Errorf("since an hour ago, newest first: %v", got)
	}
	until := h.emu.now().Add(-24 * time.Hour).Format(time.DateOnly)
	if got := sids("/v1/Conversations?EndDate=" + until); len(got) != 1 || got[0] != first {
		t.Errorf("until yesterday: %v", got)
	}
	if code, body := h.do("GET", "/v1/Conversations?State=open", nil); code != 400 || apiCode(body) != 20001 {
		t.Errorf("unknown state: %d %v", code, body)
	}
	if code, _ := h.do("GET", "/v1/Conversations?StartDate=yesterday", nil); code != 400 {
		t.Errorf("bad date: %d", code)
	}
}

// Timers.Inactive: at least a minute (50375); when it runs out the conversation turns inactive, told
// with Reason TIMER; a message reactivates it (Reason EVENT); date_inactive says when.
func TestInactiveTimer(t *testing.T) {
	h := newHarness(t)
	rc := newReceiver(t)
	if code, body := h.do("POST", "/v1/Conversations", vals("State", "active", "Timers.Inactive", "PT30S")); code != 400 || apiCode(body) != 50375 {
		t.Errorf("inactive timer under a minute: %d %v", code, body)
	}
	c := h.must(201, "POST", "/v1/Conversations", vals("State", "active", "Timers.Inactive", "PT5M", "Timers.Closed", "PT1H", "MessagingServiceSid", "MG0123456789abcdef0123456789abcdef"))
	conv := c["sid"].(string)
	if tm := c["timers"].(map[string]any); tm["date_inactive"] == nil || tm["date_closed"] == nil {
		t.Errorf("timers %v", tm)
	}
	h.must(201, "POST", "/v1/Conversations/"+conv+"/Participants", vals("MessagingBinding.Address", customer, "MessagingBinding.ProxyAddress", business))
	h.must(201, "POST", "/v1/Conversations/"+conv+"/Webhooks", vals("Target", "webhook", "Configuration.Url", rc.srv.URL,
		"Configuration.Method", "post", "Configuration.Filters", "onConversationStateUpdated"))
	h.emu.Advance(6 * time.Minute)
	got := h.must(200, "GET", "/v1/Conversations/"+conv, nil)
	if got["state"] != "inactive" || got["timers"].(map[string]any)["date_inactive"] != nil {
		t.Fatalf("after the inactive timer: %v %v", got["state"], got["timers"])
	}
	if _, err := h.emu.Inbound(customer, business, "hello again"); err != nil {
		t.Fatal(err)
	}
	if got := h.must(200, "GET", "/v1/Conversations/"+conv, nil); got["state"] != "active" {
		t.Errorf("after a message: %v", got["state"])
	}
	_ = h.emu.Close(t.Context())
	// Webhooks are sent each on its own, as Twilio's are: they may arrive in either order.
	forms := rc.forms()
	if len(forms) == 2 && forms[0].Get("StateTo") == "active" {
		forms[0], forms[1] = forms[1], forms[0]
	}
	if len(forms) != 2 || forms[0].Get("StateTo") != "inactive" || forms[0].Get("Reason") != "TIMER" ||
		forms[1].Get("StateFrom") != "inactive" || forms[1].Get("StateTo") != "active" || forms[1].Get("Reason") != "EVENT" {
		t.Fatalf("state events %v", forms)
	}
	// The event's fields are Twilio's: StateUpdated (no DateUpdated), the Messaging Service, the
	// account's one Conversation Service.
	if f := forms[0]; f.Get("StateUpdated") == "" || f.Has("DateUpdated") || f.Get("MessagingServiceSid") != "MG0123456789abcdef0123456789abcdef" ||
		f.Get("ChatServiceSid") != "IS"+sid[2:] {
		t.Errorf("state event fields %v", f)
	}
}

// Every conversation of an account is in its one default Conversation Service, and every participant
// has its default role, as at Twilio.
func TestOneServiceAndRolePerAccount(t *testing.T) {
	h := newHarness(t)
	a, b := h.story(), h.must(201, "POST", "/v1/Conversations", nil)["sid"].(string)
	svc := func(conv string) any { return h.must(200, "GET", "/v1/Conversations/"+conv, nil)["chat_service_sid"] }
	if svc(a) != svc(b) || svc(a) != "IS"+sid[2:] {
		t.Errorf("services %v %v", svc(a), svc(b))
	}
	parts := h.must(200, "GET", "/v1/Conversations/"+a+"/Participants", nil)["participants"].([]any)
	if len(parts) != 2 || parts[0].(map[string]any)["role_sid"] != parts[1].(map[string]any)["role_sid"] {
		t.Errorf("roles %v", parts)
	}
}

// A method a resource does not take is 405 naming those it does, not 404.
func TestMethodNotAllowed(t *testing.T) {
	h := newHarness(t)
	conv := h.story()
	for path, allow := range map[string]string{
		"/v1/Conversations":                       "GET, POST",
		"/v1/Conversations/" + conv:               "GET, POST, DELETE",
		"/v1/Conversations/" + conv + "/Messages": "GET, POST",
	} {
		req, _ := http.NewRequest(http.MethodPut, h.srv.URL+path, nil)
		req.SetBasicAuth(sid, token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != allow {
			t.Errorf("PUT %s: %d, Allow %q, want %q", path, resp.StatusCode, resp.Header.Get("Allow"), allow)
		}
	}
	if code, _ := h.do("GET", "/v1/Nope", nil); code != 404 {
		t.Errorf("unknown path: %d", code)
	}
}

// Each message has a delivery receipt per recipient, as Twilio's Receipts resource shows them: delivered,
// failed with 63016 outside the 24-hour window, undelivered with 63003 for a number without WhatsApp;
// webhooks that ask get onDeliveryUpdated with Twilio's parameters.
func TestDeliveryReceipts(t *testing.T) {
	h := newHarness(t)
	rc := newReceiver(t)
	const noWhatsApp = "whatsapp:+15550003333"
	h.emu.SetNotOnWhatsApp("+15550003333")
	conv := h.story() // customer and rider on the business number
	h.must(201, "POST", "/v1/Conversations/"+conv+"/Participants", vals("MessagingBinding.Address", noWhatsApp, "MessagingBinding.ProxyAddress", business))
	h.must(201, "POST", "/v1/Conversations/"+conv+"/Webhooks", vals("Target", "webhook", "Configuration.Url", rc.srv.URL,
		"Configuration.Method", "post", "Configuration.Filters", "onDeliveryUpdated"))
	if _, err := h.emu.Inbound(customer, business, "hi"); err != nil { // the customer's window opens
		t.Fatal(err)
	}
	m := h.must(201, "POST", "/v1/Conversations/"+conv+"/Messages", vals("Body", "Your order is near"))
	msg := m["sid"].(string)
	if d := m["delivery"].(map[string]any); d["total"] != 3.0 || d["delivered"] != "some" || d["failed"] != "some" || d["undelivered"] != "some" {
		t.Errorf("delivery summary %v", d)
	}
	list := h.must(200, "GET", "/v1/Conversations/"+conv+"/Messages/"+msg+"/Receipts", nil)
	byParticipant := map[string]map[string]any{}
	parts := h.must(200, "GET", "/v1/Conversations/"+conv+"/Participants", nil)["participants"].([]any)
	address := map[string]string{}
	for _, p := range parts {
		pm := p.(map[string]any)
		address[pm["sid"].(string)] = pm["messaging_binding"].(map[string]any)["address"].(string)
	}
	for _, r := range list["delivery_receipts"].([]any) {
		rm := r.(map[string]any)
		byParticipant[address[rm["participant_sid"].(string)]] = rm
	}
	for addr, want := range map[string]struct {
		status string
		code   float64
	}{customer: {"delivered", 0}, rider: {"failed", 63016}, noWhatsApp: {"undelivered", 63003}} {
		got := byParticipant[addr]
		if got == nil || got["status"] != want.status || got["error_code"] != want.code || got["message_sid"] != msg {
			t.Errorf("receipt of %s: %v, want %s %v", addr, got, want.status, want.code)
		}
	}
	one := h.must(200, "GET", "/v1/Conversations/"+conv+"/Messages/"+msg+"/Receipts/"+byParticipant[rider]["sid"].(string), nil)
	if one["status"] != "failed" {
		t.Errorf("fetched receipt %v", one)
	}
	if code, _ := h.do("GET", "/v1/Conversations/"+conv+"/Messages/"+msg+"/Receipts/DY0", nil); code != 404 {
		t.Errorf("unknown receipt: %d", code)
	}
	_ = h.emu.Close(t.Context())
	statuses := map[string]string{}
	for _, f := range rc.forms() {
		if f.Get("MessageSid") != msg {
			continue // the receipts of the customer's "hi", to the others
		}
		if f.Get("EventType") != "onDeliveryUpdated" || f.Get("DeliveryReceiptSid") == "" || f.Get("ChannelMessageSid")[:2] != "WA" {
			t.Errorf("event %v", f)
		}
		statuses[address[f.Get("ParticipantSid")]] = f.Get("Status") + "/" + f.Get("ErrorCode")
	}
	if statuses[customer] != "delivered/" || statuses[rider] != "failed/63016" || statuses[noWhatsApp] != "undelivered/63003" {
		t.Errorf("delivery events %v", statuses)
	}
}
