package emulator

import (
	"net/http"
	"net/url"
	"reflect"
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

// A refused credential is asked for again as Twilio asks: Basic, realm "Twilio API".
func TestWrongCredentialsChallenge(t *testing.T) {
	h := newHarness(t)
	for _, path := range []string{"/v1/Conversations", "/v1/Services/IS" + sid[2:] + "/Media/ME0"} {
		req, _ := http.NewRequest("GET", h.srv.URL+path, nil)
		req.SetBasicAuth(sid, "wrong")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Basic realm="Twilio API"` {
			t.Errorf("%s: %d, WWW-Authenticate %q", path, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
}

// onParticipantAdded reaches the webhooks that ask for it, with Twilio's parameters, when the REST
// call that adds the participant carries X-Twilio-Webhook-Enabled: true, and only then.
func TestParticipantAddedWebhook(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)
	h := newHarness(t, func(o *Options) { o.Now = func() time.Time { return at } })
	rc := newReceiver(t)
	conv := h.must(201, "POST", "/v1/Conversations", nil)["sid"].(string)
	wh := h.must(201, "POST", "/v1/Conversations/"+conv+"/Webhooks", vals("Target", "webhook", "Configuration.Url", rc.srv.URL,
		"Configuration.Method", "post", "Configuration.Filters", "onParticipantAdded"))["sid"].(string)
	h.must(201, "POST", "/v1/Conversations/"+conv+"/Participants", vals("MessagingBinding.Address", customer, "MessagingBinding.ProxyAddress", business))
	p := h.must(201, "POST", "/v1/Conversations/"+conv+"/Participants", vals("MessagingBinding.Address", rider, "MessagingBinding.ProxyAddress", business,
		"Attributes", `{"role":"rider"}`), "X-Twilio-Webhook-Enabled", "true")
	a := h.must(201, "POST", "/v1/Conversations/"+conv+"/Participants", vals("Identity", "agent", "MessagingBinding.ProjectedAddress", "+15550009999"),
		"X-Twilio-Webhook-Enabled", "true")
	_ = h.emu.Close(t.Context())
	got := map[string]url.Values{}
	for _, f := range rc.forms() {
		got[f.Get("ParticipantSid")] = f
	}
	common := func(participant map[string]any) url.Values {
		t.Helper()
		return url.Values{"AccountSid": {sid}, "ChatServiceSid": {"IS" + sid[2:]}, "ConversationSid": {conv},
			"EventType": {"onParticipantAdded"}, "ParticipantSid": {participant["sid"].(string)},
			"DateCreated": {"2026-01-02T03:04:05.678Z"}, "RoleSid": {"RL" + sid[2:]},
			"Source": {"API"}, "RetryCount": {"0"}, "WebhookSid": {wh}, "WebhookType": {"webhook"}}
	}
	want := map[string]url.Values{p["sid"].(string): common(p), a["sid"].(string): common(a)}
	for k, v := range map[string]string{"Attributes": `{"role":"rider"}`, "MessagingBinding.Type": "WHATSAPP",
		"MessagingBinding.Address": rider, "MessagingBinding.ProxyAddress": business} {
		want[p["sid"].(string)].Set(k, v)
	}
	for k, v := range map[string]string{"Attributes": "{}", "MessagingBinding.Type": "CHAT", "Identity": "agent",
		"MessagingBinding.ProjectedAddress": "+15550009999"} {
		want[a["sid"].(string)].Set(k, v)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events\n got %v\nwant %v", got, want)
	}
}

// A chat participant's projected address (group MMS) is kept and shown, in the participant and in
// the participant conversations lookup.
func TestProjectedAddress(t *testing.T) {
	h := newHarness(t)
	conv := h.must(201, "POST", "/v1/Conversations", nil)["sid"].(string)
	p := h.must(201, "POST", "/v1/Conversations/"+conv+"/Participants", vals("Identity", "agent", "MessagingBinding.ProjectedAddress", "+15550009999"))
	want := map[string]any{"type": "sms", "projected_address": "+15550009999"}
	if !reflect.DeepEqual(p["messaging_binding"], want) {
		t.Errorf("created binding %v", p["messaging_binding"])
	}
	if got := h.must(200, "GET", "/v1/Conversations/"+conv+"/Participants/"+p["sid"].(string), nil); !reflect.DeepEqual(got["messaging_binding"], want) {
		t.Errorf("fetched binding %v", got["messaging_binding"])
	}
	list := h.must(200, "GET", "/v1/ParticipantConversations?Identity=agent", nil)["conversations"].([]any)
	if len(list) != 1 || !reflect.DeepEqual(list[0].(map[string]any)["participant_messaging_binding"], want) {
		t.Errorf("lookup %v", list)
	}
}

// The participant conversations lookup finds every conversation of an address (or identity), closed
// ones with their state, in Twilio's shape, and under the service's SID too.
func TestParticipantConversations(t *testing.T) {
	h := newHarness(t)
	first := h.story()
	h.must(200, "POST", "/v1/Conversations/"+first, vals("State", "closed"))
	second := h.must(201, "POST", "/v1/Conversations", vals("UniqueName", "order-2", "FriendlyName", "Order 2"))["sid"].(string)
	p := h.must(201, "POST", "/v1/Conversations/"+second+"/Participants", vals("MessagingBinding.Address", customer, "MessagingBinding.ProxyAddress", business))
	h.must(201, "POST", "/v1/Conversations", nil) // without the customer

	svc := "IS" + sid[2:]
	for _, root := range []string{"/v1", "/v1/Services/" + svc} {
		got := h.must(200, "GET", root+"/ParticipantConversations?Address="+url.QueryEscape(customer), nil)
		list := got["conversations"].([]any)
		if len(list) != 2 || list[0].(map[string]any)["conversation_sid"] != first || list[0].(map[string]any)["conversation_state"] != "closed" {
			t.Fatalf("%s: %v", root, list)
		}
		item := list[1].(map[string]any)
		u := h.srv.URL + root + "/Conversations/" + second
		want := map[string]any{
			"account_sid": sid, "chat_service_sid": svc, "participant_sid": p["sid"], "participant_user_sid": nil,
			"participant_identity": nil, "participant_messaging_binding": map[string]any{"type": "whatsapp", "address": customer, "proxy_address": business},
			"conversation_sid": second, "conversation_unique_name": "order-2", "conversation_friendly_name": "Order 2",
			"conversation_attributes": "{}", "conversation_date_created": item["conversation_date_created"],
			"conversation_date_updated": item["conversation_date_updated"], "conversation_created_by": "system",
			"conversation_state": "active", "conversation_timers": map[string]any{},
			"links": map[string]any{"participant": u + "/Participants/" + p["sid"].(string), "conversation": u},
		}
		if !reflect.DeepEqual(item, want) {
			t.Errorf("%s:\n got %v\nwant %v", root, item, want)
		}
		if meta := got["meta"].(map[string]any); meta["key"] != "conversations" || meta["page_size"] != 50.0 ||
			meta["url"] != h.srv.URL+root+"/ParticipantConversations?Address="+url.QueryEscape(customer)+"&Page=0&PageSize=50" {
			t.Errorf("%s meta %v", root, meta)
		}
	}
	if code, body := h.do("GET", "/v1/ParticipantConversations", nil); code != 400 || apiCode(body) != 20001 {
		t.Errorf("without Address or Identity: %d %v", code, body)
	}
	if got := h.must(200, "GET", "/v1/ParticipantConversations?Address=%2B15550004444", nil)["conversations"].([]any); len(got) != 0 {
		t.Errorf("unknown address: %v", got)
	}
}

// Every Conversations route answers under /v1/Services/{ChatServiceSid} as well, for the account's one
// service, with the URLs of that root; another service is 404.
func TestServiceScopedRoutes(t *testing.T) {
	h := newHarness(t)
	svc := "IS" + sid[2:]
	root := "/v1/Services/" + svc
	c := h.must(201, "POST", root+"/Conversations", vals("UniqueName", "order-7"))
	conv := c["sid"].(string)
	if c["url"] != h.srv.URL+root+"/Conversations/"+conv || c["chat_service_sid"] != svc {
		t.Errorf("created %v", c)
	}
	if got := h.must(200, "GET", "/v1/Conversations/order-7", nil); got["sid"] != conv {
		t.Errorf("the same conversation at the short root: %v", got)
	}
	h.must(201, "POST", root+"/Conversations/"+conv+"/Participants", vals("MessagingBinding.Address", customer, "MessagingBinding.ProxyAddress", business))
	m := h.must(201, "POST", root+"/Conversations/"+conv+"/Messages", vals("Body", "hello"))
	if m["url"] != h.srv.URL+root+"/Conversations/"+conv+"/Messages/"+m["sid"].(string) {
		t.Errorf("message url %v", m["url"])
	}
	if got := h.must(200, "GET", root+"/Conversations/"+conv+"/Messages", nil)["messages"].([]any); len(got) != 1 {
		t.Errorf("messages %v", got)
	}
	s := h.must(200, "GET", root, nil)
	if s["sid"] != svc || s["account_sid"] != sid || s["url"] != h.srv.URL+root ||
		s["links"].(map[string]any)["participant_conversations"] != h.srv.URL+root+"/ParticipantConversations" {
		t.Errorf("service %v", s)
	}
	if list := h.must(200, "GET", "/v1/Services", nil)["services"].([]any); len(list) != 1 || list[0].(map[string]any)["sid"] != svc {
		t.Errorf("services %v", list)
	}
	for _, path := range []string{"/v1/Services/IS00000000000000000000000000000000", "/v1/Services/IS00000000000000000000000000000000/Conversations/" + conv} {
		if code, body := h.do("GET", path, nil); code != 404 || apiCode(body) != 20404 {
			t.Errorf("%s: %d %v", path, code, body)
		}
	}
	h.must(204, "DELETE", root+"/Conversations/"+conv, nil)
	if code, _ := h.do("GET", "/v1/Conversations/"+conv, nil); code != 404 {
		t.Errorf("after delete: %d", code)
	}
}
