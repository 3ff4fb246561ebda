package emulator

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// Every request to the REST API is logged as it came — whatever it was answered — and nothing else is.
func TestRequestsAreLoggedAsReceived(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Faults = []Fault{{Route: "messages.list", Kind: "503", Count: 1}, {Route: "webhooks.delete", Kind: "drop", Applied: true, Count: 1}}
	})
	c := h.must(201, "POST", "/v1/Conversations", vals("UniqueName", "order-1", "Timers.Closed", "PT1H"), "X-Twilio-Webhook-Enabled", "true")
	conv := c["sid"].(string)
	h.must(201, "POST", "/v1/Conversations/"+conv+"/Participants", vals("MessagingBinding.Address", customer, "MessagingBinding.ProxyAddress", business))
	wh := h.must(201, "POST", "/v1/Conversations/"+conv+"/Webhooks", vals("Target", "webhook", "Configuration.Url", "http://127.0.0.1:1/hook",
		"Configuration.Filters", "onMessageAdded", "Configuration.Filters", "onDeliveryUpdated"))["sid"].(string)
	h.must(503, "GET", "/v1/Conversations/"+conv+"/Messages?Order=desc&PageSize=50", nil)
	if code, _ := h.doAs(sid, "wrong", "GET", "/v1/Conversations/"+conv, nil); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	h.must(404, "GET", "/v1/Nope", nil)
	req, _ := http.NewRequest("DELETE", h.srv.URL+"/v1/Conversations/"+conv+"/Webhooks/"+wh, nil)
	req.SetBasicAuth(sid, token)
	if resp, err := http.DefaultClient.Do(req); err == nil { // dropped: the webhook is gone, the answer lost
		resp.Body.Close()
		t.Errorf("dropped delete answered %d", resp.StatusCode)
	}
	resp, err := http.Get(h.srv.URL + "/emulator/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	want := []Request{
		{Method: "POST", Path: "/v1/Conversations", Query: url.Values{}, Form: vals("UniqueName", "order-1", "Timers.Closed", "PT1H"), WebhookEnabled: "true"},
		{Method: "POST", Path: "/v1/Conversations/" + conv + "/Participants", Query: url.Values{},
			Form: vals("MessagingBinding.Address", customer, "MessagingBinding.ProxyAddress", business)},
		{Method: "POST", Path: "/v1/Conversations/" + conv + "/Webhooks", Query: url.Values{}, Form: vals("Target", "webhook",
			"Configuration.Url", "http://127.0.0.1:1/hook", "Configuration.Filters", "onMessageAdded", "Configuration.Filters", "onDeliveryUpdated")},
		{Method: "GET", Path: "/v1/Conversations/" + conv + "/Messages", Query: url.Values{"Order": {"desc"}, "PageSize": {"50"}}},
		{Method: "GET", Path: "/v1/Conversations/" + conv, Query: url.Values{}},
		{Method: "GET", Path: "/v1/Nope", Query: url.Values{}},
		{Method: "DELETE", Path: "/v1/Conversations/" + conv + "/Webhooks/" + wh, Query: url.Values{}},
	}
	got := h.emu.Requests()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("requests:\n got %+v\nwant %+v", got, want)
	}
	if v, _ := h.emu.Conversation(conv); len(v.Webhooks) != 0 {
		t.Errorf("the dropped delete was not applied: %v", v.Webhooks)
	}

	// What Requests returns is a copy.
	got[0].Form.Set("UniqueName", "changed")
	got[3].Query.Del("Order")
	if again := h.emu.Requests(); !reflect.DeepEqual(again, want) {
		t.Errorf("a caller's change reached the log: %+v", again)
	}
	h.emu.ClearRequests()
	if got := h.emu.Requests(); len(got) != 0 {
		t.Errorf("after ClearRequests: %+v", got)
	}
}

// Logging reads a form body without taking it from the handler: a malformed form is still refused,
// and a raw upload is still stored, with an empty form in the log.
func TestRequestLogLeavesTheBody(t *testing.T) {
	h := newHarness(t)
	req, _ := http.NewRequest("POST", h.srv.URL+"/v1/Conversations", strings.NewReader("FriendlyName=%zz"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(sid, token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("malformed form: %d, want 400", resp.StatusCode)
	}
	svc := "IS" + sid[2:]
	code, m := h.upload(svc, "image/jpeg", photo)
	if code != 201 || m["size"] != float64(len(photo)) {
		t.Fatalf("upload: %d %v", code, m)
	}
	want := []Request{
		{Method: "POST", Path: "/v1/Conversations", Query: url.Values{}, Form: url.Values{}},
		{Method: "POST", Path: "/v1/Services/" + svc + "/Media", Query: url.Values{}, Form: url.Values{}},
	}
	if got := h.emu.Requests(); !reflect.DeepEqual(got, want) {
		t.Errorf("requests:\n got %+v\nwant %+v", got, want)
	}
	if h.emu.RESTCalls() != 1 {
		t.Errorf("%d REST calls handled, want the upload alone", h.emu.RESTCalls())
	}
}

func TestRequestLogKeepsTheNewest(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.RequestLog = 3 })
	for i := range 8 {
		h.must(200, "GET", "/v1/Conversations?Page="+itoa(i), nil)
	}
	var pages []string
	for _, r := range h.emu.Requests() {
		pages = append(pages, r.Query.Get("Page"))
	}
	if strings.Join(pages, ",") != "5,6,7" {
		t.Errorf("pages kept %v, want the newest three", pages)
	}

	off := newHarness(t, func(o *Options) { o.RequestLog = -1 })
	off.must(200, "GET", "/v1/Conversations", nil)
	if got := off.emu.Requests(); len(got) != 0 {
		t.Errorf("a log turned off holds %+v", got)
	}
}

// The account's reads (WithAccount) are logged too, once each, and the Client reads the log over HTTP.
func TestRequestLogOverHTTP(t *testing.T) {
	emu, err := New(Options{AccountSid: sid, AuthToken: token})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu.WithAccount(Account{}))
	defer srv.Close()
	c := NewClient(srv.URL, sid, token)
	ctx := t.Context()
	if err := c.Do(ctx, "GET", "/2010-04-01/Accounts/"+sid+".json", nil, nil); err != nil {
		t.Fatal(err)
	}
	conv, err := c.CreateConversation(ctx, url.Values{"FriendlyName": {"Order 1"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Requests(ctx)
	want := []Request{
		{Method: "GET", Path: "/2010-04-01/Accounts/" + sid + ".json", Query: url.Values{}},
		{Method: "POST", Path: "/v1/Conversations", Query: url.Values{}, Form: url.Values{"FriendlyName": {"Order 1"}}},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("requests %+v %v,\nwant %+v", got, err, want)
	}
	if err := c.ClearRequests(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Requests(ctx); err != nil || len(got) != 0 || got == nil {
		t.Errorf("after ClearRequests: %#v %v", got, err)
	}
	if v, ok := emu.Conversation(conv); !ok || v.State != "active" {
		t.Errorf("conversation %+v", v)
	}
}
