package emulator

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twilio/twilio-go/client"

	"github.com/optinkit/optin/internal/signature"
)

const (
	sid      = "AC0123456789abcdef0123456789abcdef"
	token    = "0123456789abcdef0123456789abcdef"
	business = "whatsapp:+15550000000"
	customer = "whatsapp:+15550001111"
	rider    = "whatsapp:+15550002222"
	tmpl1    = "HX00000000000000000000000000000001"
)

type harness struct {
	t   *testing.T
	emu *Emulator
	srv *httptest.Server
}

func newHarness(t *testing.T, mutate ...func(*Options)) *harness {
	t.Helper()
	o := Options{AccountSid: sid, AuthToken: token, APIKey: "SK0123456789abcdef0123456789abcdef", APISecret: "keysecret",
		Contents: map[string]string{tmpl1: "Hello {{1}}, {{2}} needs help."}, WebhookTimeout: 2 * time.Second}
	for _, m := range mutate {
		m(&o)
	}
	emu, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, emu: emu}
	h.srv = httptest.NewServer(h.emu)
	t.Cleanup(func() {
		h.srv.Close()
		_ = h.emu.Close(t.Context())
	})
	return h
}

// do sends a form request authenticated as the account and decodes the JSON answer.
func (h *harness) do(method, path string, form url.Values, hdr ...string) (int, map[string]any) {
	h.t.Helper()
	return h.doAs(sid, token, method, path, form, hdr...)
}

func (h *harness) doAs(user, pass, method, path string, form url.Values, hdr ...string) (int, map[string]any) {
	h.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, h.srv.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (h *harness) must(status int, method, path string, form url.Values, hdr ...string) map[string]any {
	h.t.Helper()
	got, body := h.do(method, path, form, hdr...)
	if got != status {
		h.t.Fatalf("%s %s = %d %v, want %d", method, path, got, body, status)
	}
	return body
}

func vals(pairs ...string) url.Values {
	v := url.Values{}
	for i := 0; i < len(pairs); i += 2 {
		v.Add(pairs[i], pairs[i+1])
	}
	return v
}

// story sets up the guide's conversation: customer and rider on one business number.
func (h *harness) story() string {
	c := h.must(201, "POST", "/v1/Conversations", vals("FriendlyName", "delivery 42"))
	conv := c["sid"].(string)
	for _, a := range []string{customer, rider} {
		h.must(201, "POST", "/v1/Conversations/"+conv+"/Participants", vals("MessagingBinding.Address", a, "MessagingBinding.ProxyAddress", business))
	}
	return conv
}

func apiCode(body map[string]any) int {
	n, _ := body["code"].(float64)
	return int(n)
}

func TestAuth(t *testing.T) {
	h := newHarness(t)
	if code, body := h.doAs(sid, "wrong", "GET", "/v1/Conversations", nil); code != 401 || apiCode(body) != 20003 ||
		body["more_info"] != "https://www.twilio.com/docs/errors/20003" || body["status"] != 401.0 || body["message"] == "" {
		t.Errorf("wrong token: %d %v", code, body)
	}
	if code, _ := h.doAs("SK0123456789abcdef0123456789abcdef", "keysecret", "GET", "/v1/Conversations", nil); code != 200 {
		t.Errorf("api key: %d", code)
	}
	req, _ := http.NewRequest("GET", h.srv.URL+"/v1/Conversations", nil)
	resp, _ := http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("no credentials: %d", resp.StatusCode)
	}
}

func TestConversationsCRUDAndPaging(t *testing.T) {
	h := newHarness(t)
	var sids []string
	for i := range 7 {
		c := h.must(201, "POST", "/v1/Conversations", vals("FriendlyName", fmt.Sprint("c", i), "UniqueName", fmt.Sprint("u", i)))
		sids = append(sids, c["sid"].(string))
		if c["state"] != "active" || c["attributes"] != "{}" || c["account_sid"] != sid || !strings.HasPrefix(c["url"].(string), h.srv.URL+"/v1/Conversations/CH") {
			t.Fatalf("created %v", c)
		}
	}
	if code, body := h.do("POST", "/v1/Conversations", vals("UniqueName", "u1")); code != 409 || apiCode(body) != 50353 {
		t.Errorf("duplicate unique name: %d %v", code, body)
	}
	var got []string
	next := "/v1/Conversations?PageSize=3"
	pages := 0
	for next != "" {
		body := h.must(200, "GET", next, nil)
		pages++
		for _, c := range body["conversations"].([]any) {
			got = append(got, c.(map[string]any)["sid"].(string))
		}
		meta := body["meta"].(map[string]any)
		if meta["page_size"] != 3.0 || meta["key"] != "conversations" {
			t.Fatalf("meta %v", meta)
		}
		next = ""
		if u, ok := meta["next_page_url"].(string); ok {
			if !strings.HasPrefix(u, h.srv.URL+"/v1/Conversations?") {
				t.Fatalf("next_page_url not absolute: %s", u)
			}
			next = strings.TrimPrefix(u, h.srv.URL)
		}
	}
	if pages != 3 || !reflect.DeepEqual(got, sids) {
		t.Errorf("pages = %d, sids = %v, want 3 and %v", pages, got, sids)
	}
	if body := h.must(200, "GET", "/v1/Conversations?PageSize=1000", nil); body["meta"].(map[string]any)["page_size"] != 100.0 {
		t.Errorf("page size not capped at 100: %v", body["meta"])
	}
	if c := h.must(200, "GET", "/v1/Conversations/u2", nil); c["sid"] != sids[2] {
		t.Errorf("fetch by unique name: %v", c)
	}
	c := h.must(200, "POST", "/v1/Conversations/"+sids[0], vals("Attributes", `{"order":42}`, "State", "inactive"))
	if c["attributes"] != `{"order":42}` || c["state"] != "inactive" || c["friendly_name"] != "c0" {
		t.Errorf("updated %v", c)
	}
	if code, _ := h.do("POST", "/v1/Conversations/"+sids[0], vals("State", "sleeping")); code != 400 {
		t.Errorf("bad state: %d", code)
	}
	h.must(204, "DELETE", "/v1/Conversations/"+sids[0], nil)
	if code, body := h.do("GET", "/v1/Conversations/"+sids[0], nil); code != 404 || apiCode(body) != 20404 {
		t.Errorf("after delete: %d %v", code, body)
	}
	if code, _ := h.do("DELETE", "/v1/Conversations/"+sids[0], nil); code != 404 {
		t.Errorf("second delete: %d", code)
	}
}

func TestParticipants(t *testing.T) {
	h := newHarness(t)
	conv := h.story()
	list := h.must(200, "GET", "/v1/Conversations/"+conv+"/Participants", nil)["participants"].([]any)
	if len(list) != 2 {
		t.Fatalf("participants %v", list)
	}
	p := list[0].(map[string]any)
	want := map[string]any{"type": "whatsapp", "address": customer, "proxy_address": business}
	if !reflect.DeepEqual(p["messaging_binding"], want) || p["conversation_sid"] != conv {
		t.Errorf("participant %v", p)
	}
	other := h.must(201, "POST", "/v1/Conversations", nil)["sid"].(string)
	bind := vals("MessagingBinding.Address", customer, "MessagingBinding.ProxyAddress", business)
	if code, body := h.do("POST", "/v1/Conversations/"+other+"/Participants", bind); code != 409 || apiCode(body) != 50416 {
		t.Errorf("pair in another conversation: %d %v", code, body)
	}
	if code, body := h.do("POST", "/v1/Conversations/"+conv+"/Participants", bind); code != 409 || apiCode(body) != 50433 {
		t.Errorf("pair twice in one conversation: %d %v", code, body)
	}
	for _, f := range []url.Values{vals(), vals("MessagingBinding.Address", "+15550003333"), vals("MessagingBinding.Address", "+15550003333", "MessagingBinding.ProxyAddress", business)} {
		if code, _ := h.do("POST", "/v1/Conversations/"+other+"/Participants", f); code != 400 {
			t.Errorf("invalid participant %v: %d", f, code)
		}
	}
	h.must(200, "POST", "/v1/Conversations/"+conv, vals("State", "closed"))
	h.must(201, "POST", "/v1/Conversations/"+other+"/Participants", bind)
	psid := p["sid"].(string)
	if got := h.must(200, "GET", "/v1/Conversations/"+conv+"/Participants/"+psid, nil); got["sid"] != psid {
		t.Errorf("fetch %v", got)
	}
	h.must(204, "DELETE", "/v1/Conversations/"+conv+"/Participants/"+psid, nil)
	h.must(404, "DELETE", "/v1/Conversations/"+conv+"/Participants/"+psid, nil)
	if code, body := h.do("POST", "/v1/Conversations/"+conv+"/Participants", vals("Identity", "ops-agent")); code != 400 || apiCode(body) != 50377 {
		t.Errorf("participant added to a closed conversation: %d %v", code, body)
	}
	h.must(201, "POST", "/v1/Conversations/"+other+"/Participants", vals("Identity", "ops-agent"))
}

func TestMessages(t *testing.T) {
	h := newHarness(t)
	conv := h.story()
	m := h.must(201, "POST", "/v1/Conversations/"+conv+"/Messages", vals("Body", "hi"))
	if m["author"] != "system" || m["index"] != 0.0 || m["attributes"] != "{}" || m["participant_sid"] != nil {
		t.Errorf("system message %v", m)
	}
	m = h.must(201, "POST", "/v1/Conversations/"+conv+"/Messages", vals("Author", rider, "ContentSid", tmpl1, "ContentVariables", `{"1":"Ana","2":"Bo"}`, "Attributes", `{"k":1}`))
	if m["author"] != rider || m["content_sid"] != tmpl1 || m["body"] != nil || m["attributes"] != `{"k":1}` || m["participant_sid"] == nil {
		t.Errorf("template message %v", m)
	}
	if d := m["delivery"].(map[string]any); d["total"] != 1.0 || d["delivered"] != "all" {
		t.Errorf("delivery %v", d)
	}
	for _, f := range []url.Values{vals("Author", rider), vals("Body", "x", "Attributes", "{nope"), vals("ContentSid", tmpl1, "ContentVariables", "{nope")} {
		if code, _ := h.do("POST", "/v1/Conversations/"+conv+"/Messages", f); code != 400 {
			t.Errorf("invalid message %v accepted: %d", f, code)
		}
	}
	for i := range 4 {
		h.must(201, "POST", "/v1/Conversations/"+conv+"/Messages", vals("Body", fmt.Sprint("n", i)))
	}
	desc := h.must(200, "GET", "/v1/Conversations/"+conv+"/Messages?Order=desc&PageSize=2", nil)
	msgs := desc["messages"].([]any)
	if len(msgs) != 2 || msgs[0].(map[string]any)["body"] != "n3" || msgs[1].(map[string]any)["body"] != "n2" {
		t.Errorf("desc page %v", msgs)
	}
	if next := desc["meta"].(map[string]any)["next_page_url"].(string); !strings.Contains(next, "Order=desc") {
		t.Errorf("next page loses order: %s", next)
	}
	asc := h.must(200, "GET", "/v1/Conversations/"+conv+"/Messages", nil)["messages"].([]any)
	if len(asc) != 6 || asc[0].(map[string]any)["body"] != "hi" {
		t.Errorf("asc %v", asc)
	}
	first := asc[0].(map[string]any)["sid"].(string)
	if got := h.must(200, "GET", "/v1/Conversations/"+conv+"/Messages/"+first, nil); got["body"] != "hi" {
		t.Errorf("fetch %v", got)
	}
	h.must(400, "GET", "/v1/Conversations/"+conv+"/Messages?Order=sideways", nil)
	h.must(404, "GET", "/v1/Conversations/CH00000000000000000000000000000000/Messages", nil)
}

func TestWebhooksResource(t *testing.T) {
	h := newHarness(t)
	conv := h.story()
	path := "/v1/Conversations/" + conv + "/Webhooks"
	var sids []string
	for i := range 5 {
		w := h.must(201, "POST", path, vals("Target", "webhook", "Configuration.Url", fmt.Sprintf("https://example.com/h%d", i),
			"Configuration.Method", "get", "Configuration.Filters", "onMessageAdded", "Configuration.Filters", "onMessageUpdated"))
		sids = append(sids, w["sid"].(string))
		cfg := w["configuration"].(map[string]any)
		if w["target"] != "webhook" || cfg["method"] != "GET" || !reflect.DeepEqual(cfg["filters"], []any{"onMessageAdded", "onMessageUpdated"}) {
			t.Fatalf("webhook %v", w)
		}
	}
	if code, body := h.do("POST", path, vals("Target", "webhook", "Configuration.Url", "https://example.com/6")); code != 400 || apiCode(body) != 50361 {
		t.Errorf("sixth webhook: %d %v", code, body)
	}
	list := h.must(200, "GET", path+"?PageSize=50", nil)
	if meta := list["meta"].(map[string]any); meta["page_size"] != 5.0 || meta["next_page_url"] != nil || len(list["webhooks"].([]any)) != 5 {
		t.Errorf("list %v", list)
	}
	small := h.must(200, "GET", path+"?PageSize=2&Page=2", nil)
	if ws := small["webhooks"].([]any); len(ws) != 1 || ws[0].(map[string]any)["sid"] != sids[4] {
		t.Errorf("last page %v", small)
	}
	w := h.must(200, "POST", path+"/"+sids[0], vals("Configuration.Method", "POST", "Configuration.Url", "https://example.com/changed"))
	if cfg := w["configuration"].(map[string]any); cfg["method"] != "POST" || cfg["url"] != "https://example.com/changed" {
		t.Errorf("updated %v", w)
	}
	if got := h.must(200, "GET", path+"/"+sids[0], nil); got["sid"] != sids[0] {
		t.Errorf("fetch %v", got)
	}
	h.must(204, "DELETE", path+"/"+sids[0], nil)
	if code, body := h.do("DELETE", path+"/"+sids[0], nil); code != 404 || apiCode(body) != 20404 {
		t.Errorf("second delete %d %v", code, body)
	}
	for _, f := range []url.Values{vals("Target", "email"), vals("Target", "webhook"), vals("Target", "webhook", "Configuration.Url", "not a url"), vals("Target", "webhook", "Configuration.Url", "https://x", "Configuration.Method", "PUT")} {
		if code, _ := h.do("POST", path, f); code != 400 {
			t.Errorf("invalid webhook %v: %d", f, code)
		}
	}
}

// receiver records the webhooks the emulator fires.
type receiver struct {
	mu   sync.Mutex
	reqs []recorded
	srv  *httptest.Server
}

type recorded struct {
	method, url, sig, idem string
	form                   url.Values
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, recorded{r.Method, "http://" + r.Host + r.URL.RequestURI(), r.Header.Get("X-Twilio-Signature"), r.Header.Get("I-Twilio-Idempotency-Token"), r.PostForm})
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) all() []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]recorded(nil), rc.reqs...)
}

func TestInboundFiresSignedWebhooks(t *testing.T) {
	h := newHarness(t)
	rc := newReceiver(t)
	conv := h.story()
	path := "/v1/Conversations/" + conv + "/Webhooks"
	get := h.must(201, "POST", path, vals("Target", "webhook", "Configuration.Url", rc.srv.URL+"/get?x=1", "Configuration.Method", "GET", "Configuration.Filters", "onMessageAdded"))
	post := h.must(201, "POST", path, vals("Target", "webhook", "Configuration.Url", rc.srv.URL+"/post", "Configuration.Method", "POST", "Configuration.Filters", "onMessageAdded"))
	h.must(201, "POST", path, vals("Target", "webhook", "Configuration.Url", rc.srv.URL+"/other", "Configuration.Filters", "onConversationUpdated"))

	m, err := h.emu.Inbound(customer, business, "Yes")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.emu.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	reqs := rc.all()
	if len(reqs) != 2 {
		t.Fatalf("fired %d webhooks, want 2: %+v", len(reqs), reqs)
	}
	var psid string
	for _, p := range h.must(200, "GET", "/v1/Conversations/"+conv+"/Participants", nil)["participants"].([]any) {
		if p.(map[string]any)["messaging_binding"].(map[string]any)["address"] == customer {
			psid = p.(map[string]any)["sid"].(string)
		}
	}
	for _, r := range reqs {
		var params url.Values
		var whSid string
		rv := client.NewRequestValidator(token)
		switch r.method {
		case "GET":
			u, _ := url.Parse(r.url)
			params = u.Query()
			if params.Get("x") != "1" {
				t.Errorf("configured query lost: %s", r.url)
			}
			params.Del("x")
			whSid = get["sid"].(string)
			if !rv.Validate(r.url, map[string]string{}, r.sig) {
				t.Errorf("twilio-go rejects GET signature")
			}
			if !signature.New(token).Validate(r.url, nil, r.sig) {
				t.Errorf("service validator rejects GET signature")
			}
		case "POST":
			params = r.form
			whSid = post["sid"].(string)
			flat := map[string]string{}
			for k := range params {
				flat[k] = params.Get(k)
			}
			if !rv.Validate(r.url, flat, r.sig) {
				t.Errorf("twilio-go rejects POST signature")
			}
			if !signature.New(token).Validate(r.url, params, r.sig) {
				t.Errorf("service validator rejects POST signature")
			}
		}
		if r.idem == "" {
			t.Error("no I-Twilio-Idempotency-Token")
		}
		dc := params.Get("DateCreated")
		if _, err := time.Parse(time.RFC3339, dc); err != nil {
			t.Errorf("DateCreated %q", dc)
		}
		params.Del("DateCreated")
		want := vals("AccountSid", sid, "ChatServiceSid", "IS"+sid[2:], "ConversationSid", conv, "EventType", "onMessageAdded",
			"MessageSid", m.Sid, "Index", "0", "Author", customer, "Body", "Yes", "Attributes", "{}", "Source", "WHATSAPP",
			"RetryCount", "0", "WebhookSid", whSid, "WebhookType", "webhook", "ParticipantSid", psid)
		if !reflect.DeepEqual(params, want) {
			t.Errorf("%s params\n got %v\nwant %v", r.method, params, want)
		}
	}
	calls := h.must(200, "GET", "/emulator/webhook-calls", nil)["webhook_calls"].([]any)
	if len(calls) != 2 || calls[0].(map[string]any)["status"] != 200.0 {
		t.Errorf("webhook calls %v", calls)
	}
}

func TestRESTMessagesFireOnlyWhenAsked(t *testing.T) {
	h := newHarness(t)
	rc := newReceiver(t)
	conv := h.story()
	h.must(201, "POST", "/v1/Conversations/"+conv+"/Webhooks", vals("Target", "webhook", "Configuration.Url", rc.srv.URL, "Configuration.Filters", "onMessageAdded"))
	h.must(201, "POST", "/v1/Conversations/"+conv+"/Messages", vals("Body", "quiet"))
	h.must(201, "POST", "/v1/Conversations/"+conv+"/Messages", vals("Body", "loud"), "X-Twilio-Webhook-Enabled", "true")
	_ = h.emu.Close(t.Context())
	reqs := rc.all()
	if len(reqs) != 1 || reqs[0].form.Get("Body") != "loud" || reqs[0].form.Get("Source") != "API" || reqs[0].form.Get("Author") != "system" {
		t.Errorf("fired %+v", reqs)
	}
}

func TestWhatsApp24HourWindow(t *testing.T) {
	h := newHarness(t)
	conv := h.story()
	msgs := "/v1/Conversations/" + conv + "/Messages"
	// Template 1 to the customer, authored by the rider: only the customer receives it.
	h.must(201, "POST", msgs, vals("Author", rider, "ContentSid", tmpl1, "ContentVariables", `{"1":"Ana","2":"Bo"}`))
	if _, err := h.emu.Inbound(customer, business, "Yes"); err != nil {
		t.Fatal(err)
	}
	m := h.must(201, "POST", msgs, vals("Body", "Great! Just a moment"))
	if d := m["delivery"].(map[string]any); d["total"] != 2.0 || d["delivered"] != "some" || d["failed"] != "some" {
		t.Errorf("delivery %v", d)
	}
	h.emu.Advance(25 * time.Hour)
	h.must(201, "POST", msgs, vals("Body", "late"))

	type line struct {
		Dir, Text, Status string
		Code              int
	}
	got := func(addr string) []line {
		var out []line
		for _, e := range h.emu.Transcript(addr) {
			out = append(out, line{e.Direction, e.Text, e.Status, e.ErrorCode})
		}
		return out
	}
	wantCustomer := []line{
		{"received", "Hello Ana, Bo needs help.", "delivered", 0},
		{"sent", "Yes", "sent", 0},
		{"received", "Great! Just a moment", "delivered", 0},
		{"received", "late", "failed", 63016},
	}
	wantRider := []line{
		{"received", "Yes", "failed", 63016},
		{"received", "Great! Just a moment", "failed", 63016},
		{"received", "late", "failed", 63016},
	}
	if g := got(customer); !reflect.DeepEqual(g, wantCustomer) {
		t.Errorf("customer\n got %v\nwant %v", g, wantCustomer)
	}
	if g := got(rider); !reflect.DeepEqual(g, wantRider) {
		t.Errorf("rider\n got %v\nwant %v", g, wantRider)
	}
	body := h.must(200, "GET", "/emulator/transcripts?address="+url.QueryEscape(rider), nil)
	if tr := body["transcripts"].(map[string]any); len(tr) != 1 || len(tr[rider].([]any)) != 3 {
		t.Errorf("transcripts endpoint %v", body)
	}
	if all := h.must(200, "GET", "/emulator/transcripts", nil)["transcripts"].(map[string]any); len(all) != 2 {
		t.Errorf("all transcripts %v", all)
	}
}

func TestSMSHasNoWindow(t *testing.T) {
	h := newHarness(t)
	conv := h.must(201, "POST", "/v1/Conversations", nil)["sid"].(string)
	h.must(201, "POST", "/v1/Conversations/"+conv+"/Participants", vals("MessagingBinding.Address", "+15550003333", "MessagingBinding.ProxyAddress", "+15550000001"))
	h.must(201, "POST", "/v1/Conversations/"+conv+"/Messages", vals("Body", "your rider is here"))
	if tr := h.emu.Transcript("+15550003333"); len(tr) != 1 || tr[0].Status != "delivered" {
		t.Errorf("sms transcript %+v", tr)
	}
}

func TestInboundEndpoint(t *testing.T) {
	h := newHarness(t)
	conv := h.story()
	resp, err := http.PostForm(h.srv.URL+"/emulator/inbound", vals("From", customer, "To", business, "Body", "Yes"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if resp.StatusCode != 201 || m["conversation_sid"] != conv || m["author"] != customer || m["index"] != 0.0 {
		t.Errorf("inbound %d %v", resp.StatusCode, m)
	}
	resp, _ = http.Post(h.srv.URL+"/emulator/inbound", "application/json", strings.NewReader(`{"From":"`+rider+`","To":"`+business+`","Body":"here"}`))
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Errorf("json inbound %d", resp.StatusCode)
	}
	resp, _ = http.PostForm(h.srv.URL+"/emulator/inbound", vals("from", rider, "to", business, "body", "lower-case names"))
	resp.Body.Close()
	if tr := h.emu.Transcript(rider); resp.StatusCode != 201 || tr[len(tr)-1].Text != "lower-case names" {
		t.Errorf("lower-case inbound %d", resp.StatusCode)
	}
	for _, f := range []url.Values{vals("From", "whatsapp:+19999999999", "To", business, "Body", "x"), vals("From", customer)} {
		resp, _ := http.PostForm(h.srv.URL+"/emulator/inbound", f)
		resp.Body.Close()
		if resp.StatusCode != 404 && resp.StatusCode != 400 {
			t.Errorf("inbound %v: %d", f, resp.StatusCode)
		}
	}
}

func TestWebhookTimeoutIsRecorded(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.WebhookTimeout = 100 * time.Millisecond })
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	conv := h.story()
	h.must(201, "POST", "/v1/Conversations/"+conv+"/Webhooks", vals("Target", "webhook", "Configuration.Url", slow.URL, "Configuration.Filters", "onMessageAdded"))
	if _, err := h.emu.Inbound(customer, business, "Yes"); err != nil {
		t.Fatal(err)
	}
	_ = h.emu.Close(t.Context())
	calls := h.emu.WebhookCalls()
	if len(calls) != 1 || calls[0].Status != 0 || !strings.Contains(calls[0].Error, "deadline exceeded") {
		t.Errorf("calls %+v", calls)
	}
}

func TestClockAndHealth(t *testing.T) {
	h := newHarness(t)
	resp, _ := http.PostForm(h.srv.URL+"/emulator/clock", vals("advance", "25h"))
	resp.Body.Close()
	if resp.StatusCode != 200 || h.emu.offset != 25*time.Hour {
		t.Errorf("clock %d %v", resp.StatusCode, h.emu.offset)
	}
	resp, _ = http.PostForm(h.srv.URL+"/emulator/clock", vals("advance", "soon"))
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("bad clock %d", resp.StatusCode)
	}
	resp, _ = http.Get(h.srv.URL + "/emulator/healthz")
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("healthz %d", resp.StatusCode)
	}
	h.must(404, "GET", "/v1/Nope", nil)
}

func TestConversationView(t *testing.T) {
	h := newHarness(t)
	conv := h.story()
	wh := h.must(201, "POST", "/v1/Conversations/"+conv+"/Webhooks", vals("Target", "webhook", "Configuration.Url", "https://x.example.com", "Configuration.Filters", "onMessageAdded"))
	m := h.must(201, "POST", "/v1/Conversations/"+conv+"/Messages", vals("Author", rider, "Body", "hi", "Attributes", `{"a":1}`))
	v, ok := h.emu.Conversation(conv)
	want := ConversationView{Sid: conv, State: "active", Messages: []MessageView{{Sid: m["sid"].(string), Author: rider, Body: "hi", Attributes: `{"a":1}`}}, Webhooks: []string{wh["sid"].(string)},
		Participants: []string{customer, rider}, Bindings: []Binding{{customer, business}, {rider, business}}}
	if !ok || !reflect.DeepEqual(v, want) {
		t.Errorf("view %+v, want %+v", v, want)
	}
	if _, ok := h.emu.Conversation("CH0"); ok {
		t.Error("unknown conversation found")
	}
	if all := h.emu.Conversations(); len(all) != 1 || !reflect.DeepEqual(all[0], want) {
		t.Errorf("conversations %+v", all)
	}
}
