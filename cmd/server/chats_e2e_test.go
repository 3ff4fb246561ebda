package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/redistest"
	"github.com/optinkit/optin/internal/signature"
)

const (
	adminToken1 = "7f3c9a1e5b2d4f6081a9c3e5b7d9f1a2"
	adminToken2 = "c84e2a6f0b1d3957e2a4c6b8d0f2e4a6"
	business    = "whatsapp:+15550100000"
	rider       = "whatsapp:+15550002222"
	inviteSid   = "HX0000000000000000000000000000a001"
	// publicBase is where Twilio reaches the service in the tests that deliver Twilio's webhooks to it
	// themselves (signed for publicBase, as a proxy passes them on): a loopback port nobody serves, so
	// that what the emulator reports there on its own (a message's delivery) is lost, never an event
	// the test did not mean.
	publicBase = "http://127.0.0.1:1"
)

// startAPI runs the service with the chats API on (extra on top) against a fresh Twilio.
func startAPI(t *testing.T, extra map[string]string) (*server, *twilio) {
	t.Helper()
	fake := newTwilio(t, emulator.Options{})
	return start(t, fake, adminEnv(extra)), fake
}

// adminEnv turns the chats API on, with extra on top.
func adminEnv(extra map[string]string) map[string]string {
	env := map[string]string{
		"OPTIN_ADMIN_TOKENS":       adminToken1 + "," + adminToken2,
		"OPTIN_WHATSAPP_NUMBER":    business,
		"OPTIN_INVITE_CONTENT_SID": inviteSid,
		"OPTIN_PUBLIC_URL":         publicBase,
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// api makes one admin API call with token ("" for none) and returns the status, headers and body.
func (s *server) api(method, path, token, body string) (int, http.Header, string) {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNotFound || strings.HasPrefix(path, "/v1/chats/") {
		checkAgainstOpenAPI(s.t, req, body, resp, b)
	}
	return resp.StatusCode, resp.Header, string(b)
}

const startBody = `{"id":"order-8812","customer":{"address":"whatsapp:+15550001111","name":"Ana"},"rider":{"address":"whatsapp:+15550002222","name":"Bruno"},"metadata":{"order":8812}}`

// The calls a start makes, in the order it makes them (the tests compare them sorted).
func startCalls(id, conv, ttl string) []call {
	chatMarker := func(step string) string { return `{"optin":{"chat":"` + id + `","step":"` + step + `"}}` }
	hook := func(events ...string) call {
		var pairs []string
		for _, ev := range events {
			pairs = append(pairs, "Configuration.Filters", ev)
		}
		return call{"POST", "/v1/Conversations/" + conv + "/Webhooks", form(append(pairs, "Configuration.Method", "post",
			"Configuration.Url", publicBase+"/webhooks/conversations", "Target", "webhook")...)}
	}
	participant := func(address string) call {
		return call{"POST", "/v1/Conversations/" + conv + "/Participants", form("MessagingBinding.Address", address, "MessagingBinding.ProxyAddress", business)}
	}
	return []call{
		{"POST", "/v1/Conversations", form("Attributes", chatMarker("conversation"), "FriendlyName", "Delivery "+id, "State", "active", "Timers.Closed", ttl, "UniqueName", id)},
		hook("onMessageAdded"), hook("onConversationStateUpdated", "onDeliveryUpdated"),
		participant(customer), participant(rider),
		{"POST", "/v1/Conversations/" + conv + "/Messages", form("Attributes", chatMarker("invite"), "Author", rider,
			"ContentSid", inviteSid, "ContentVariables", `{"1":"Ana","2":"Bruno"}`)},
	}
}

func closeCall(conv string) call {
	return call{"POST", "/v1/Conversations/" + conv, form("State", "closed")}
}

// chatOf decodes an API answer holding a chat.
func chatOf(t testing.TB, body string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("not JSON: %s", body)
	}
	return v
}

func states(c map[string]any) string {
	var out []string
	for _, h := range c["history"].([]any) {
		out = append(out, h.(map[string]any)["state"].(string))
	}
	return strings.Join(out, ",")
}

func TestChatStartGetListEnd(t *testing.T) {
	s, fake := startAPI(t, nil)

	code, hdr, body := s.api("POST", "/v1/chats", adminToken1, startBody)
	if code != 201 || hdr.Get("Location") != "/v1/chats/order-8812" || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("start: %d %v %s", code, hdr, body)
	}
	made := fake.Conversations()
	if len(made) != 1 {
		t.Fatalf("conversations at Twilio: %+v", made)
	}
	conv1 := made[0].Sid
	c := chatOf(t, body)
	cust, rid := c["customer"].(map[string]any), c["rider"].(map[string]any)
	if c["id"] != "order-8812" || c["conversation_sid"] != conv1 || c["state"] != "invited" || c["reason"] != nil || c["error"] != nil ||
		cust["address"] != customer || cust["proxy_address"] != business || cust["name"] != "Ana" || rid["address"] != rider || rid["name"] != "Bruno" ||
		states(c) != "starting,invited" || c["metadata"].(map[string]any)["order"] != 8812.0 {
		t.Errorf("chat: %s", body)
	}
	assertCalls(t, fake, sorted(startCalls("order-8812", conv1, "PT4H")...))
	if v, _ := fake.Conversation(conv1); v.State != "active" || len(v.Bindings) != 2 {
		t.Errorf("conversation %s with %v", v.State, v.Bindings)
	}

	// The same start again: the chat as it is, and nothing at Twilio.
	n := len(fake.Requests())
	if code, _, again := s.api("POST", "/v1/chats", adminToken2, startBody); code != 200 || chatOf(t, again)["conversation_sid"] != conv1 {
		t.Errorf("repeat: %d %s", code, again)
	}
	// The same id with another body: 409, and nothing at Twilio.
	other := strings.Replace(startBody, `"Ana"`, `"Ann"`, 1)
	if code, hdr, p := s.api("POST", "/v1/chats", adminToken1, other); code != 409 || hdr.Get("Content-Type") != "application/problem+json" ||
		!strings.Contains(p, `"type":"https://github.com/optinkit/optin/blob/main/docs/API.md#problem-id-conflict"`) || !strings.Contains(p, `"status":409`) {
		t.Errorf("conflicting repeat: %d %s", code, p)
	}
	if len(fake.Requests()) != n {
		t.Errorf("repeats made REST calls: %+v", calls(fake.Requests()[n:]))
	}

	for _, key := range []string{"order-8812", conv1} {
		if code, _, got := s.api("GET", "/v1/chats/"+key, adminToken1, ""); code != 200 || chatOf(t, got)["id"] != "order-8812" {
			t.Errorf("get %s: %d %s", key, code, got)
		}
	}
	if code, _, p := s.api("GET", "/v1/chats/order-0000", adminToken1, ""); code != 404 || !strings.Contains(p, `problem-not-found`) {
		t.Errorf("unknown: %d %s", code, p)
	}
	code, _, list := s.api("GET", "/v1/chats?state=invited&limit=10", adminToken1, "")
	if code != 200 || !strings.Contains(list, `"next_cursor":null`) || len(chatOf(t, list)["chats"].([]any)) != 1 {
		t.Errorf("list: %d %s", code, list)
	}
	if code, _, list := s.api("GET", "/v1/chats?state=closed", adminToken1, ""); code != 200 || strings.TrimSpace(list) != `{"chats":[],"next_cursor":null}` {
		t.Errorf("list closed: %d %s", code, list)
	}

	n = len(fake.Requests())
	code, _, ended := s.api("DELETE", "/v1/chats/order-8812", adminToken1, "")
	if c := chatOf(t, ended); code != 200 || c["state"] != "closed" || c["reason"] != "ended" || states(c) != "starting,invited,closed" {
		t.Errorf("end: %d %s", code, ended)
	}
	if code, _, again := s.api("DELETE", "/v1/chats/"+conv1, adminToken1, ""); code != 200 || chatOf(t, again)["state"] != "closed" {
		t.Errorf("end again: %d %s", code, again)
	}
	got := calls(fake.Requests()[n:])
	if len(got) != 1 || got[0] != closeCall(conv1) {
		t.Errorf("end made %+v, want one close", got)
	}
	if v, _ := fake.Conversation(conv1); v.State != "closed" {
		t.Errorf("conversation %s after end", v.State)
	}
	if code, _, p := s.api("DELETE", "/v1/chats/nope", adminToken1, ""); code != 404 {
		t.Errorf("end unknown: %d %s", code, p)
	}
	s.stop()
	if logs := s.logs.String(); strings.Contains(logs, adminToken1) || strings.Contains(logs, adminToken2) {
		t.Error("an admin token reached the log")
	}
}

func TestChatAPITokens(t *testing.T) {
	s, _ := startAPI(t, nil)
	for name, tt := range map[string]struct {
		header string
		code   int
	}{
		"missing":       {"", 401},
		"wrong":         {"Bearer 7f3c9a1e5b2d4f6081a9c3e5b7d9f1a9", 401},
		"not bearer":    {"Basic " + adminToken1, 401},
		"first":         {"Bearer " + adminToken1, 200},
		"second of two": {"bearer " + adminToken2, 200},
	} {
		req, _ := http.NewRequest("GET", s.base+"/v1/chats", nil)
		if tt.header != "" {
			req.Header.Set("Authorization", tt.header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("%s: %d, want %d", name, resp.StatusCode, tt.code)
		}
		if tt.code == 401 && (resp.Header.Get("WWW-Authenticate") != `Bearer realm="optin"` || resp.Header.Get("Content-Type") != "application/problem+json") {
			t.Errorf("%s: headers %v", name, resp.Header)
		}
	}
	// The document needs no token: code generators fetch it as it is.
	if code, _, doc := s.api("GET", "/v1/openapi.json", "", ""); code != 200 || !strings.Contains(doc, `"openapi": "3.1.0"`) {
		t.Errorf("openapi.json: %d", code)
	}

	// Without tokens the API does not exist.
	off := start(t, newFake(t), nil)
	if code, _, _ := off.api("GET", "/v1/chats", adminToken1, ""); code != 404 {
		t.Errorf("API off: %d, want 404", code)
	}
}

func TestChatStartRefusesBadRequests(t *testing.T) {
	s, fake := startAPI(t, nil)
	for name, tt := range map[string]struct {
		body   string
		code   int
		fields []string
	}{
		"not json":             {`{"id":`, 400, nil},
		"unknown field":        {`{"id":"a","custmer":{}}`, 400, []string{"custmer"}},
		"name in another case": {`{"ID":"a","customer":{"address":"whatsapp:+15550001111"},"rider":{"address":"whatsapp:+15550002222"}}`, 400, []string{"ID"}},
		"name twice":           {`{"id":"a","id":"b","customer":{"address":"whatsapp:+15550001111"},"rider":{"address":"whatsapp:+15550002222"}}`, 400, []string{"id"}},
		"trailing brace":       {`{"id":"a","customer":{"address":"whatsapp:+15550001111"},"rider":{"address":"whatsapp:+15550002222"}}}`, 400, nil},
		"trailing brackets":    {`{"id":"a","customer":{"address":"whatsapp:+15550001111"},"rider":{"address":"whatsapp:+15550002222"}}]]]`, 400, nil},
		"null":                 {`null`, 400, nil},
		"sid as id":            {`{"id":"CH0123456789abcdef0123456789abcdef","customer":{"address":"whatsapp:+15550001111"},"rider":{"address":"whatsapp:+15550002222"}}`, 422, []string{"id"}},
		"business number":      {`{"id":"a","customer":{"address":"whatsapp:+15550001111"},"rider":{"address":"` + business + `"}}`, 422, []string{"rider.address"}},
		"everything wrong": {`{"id":"bad id!","customer":{"address":"+15550001111"},"rider":{"address":"whatsapp:+1555"},"ttl":"5m","metadata":[1]}`, 422,
			[]string{"id", "customer.address", "rider.address", "ttl", "metadata"}},
		"same person": {`{"id":"a","customer":{"address":"whatsapp:+15550001111"},"rider":{"address":"whatsapp:+15550001111"}}`, 422, []string{"rider.address"}},
		"invite both": {`{"id":"a","customer":{"address":"whatsapp:+15550001111"},"rider":{"address":"whatsapp:+15550002222"},"invite":{"body":"hi","content_sid":"` + inviteSid + `"}}`, 422, []string{"invite"}},
		"not e164":    {`{"id":"a","customer":{"address":"whatsapp:+1 555 000 1111"},"rider":{"address":"whatsapp:+15550002222"}}`, 422, []string{"customer.address"}},
	} {
		code, hdr, p := s.api("POST", "/v1/chats", adminToken1, tt.body)
		if code != tt.code || hdr.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s", name, code, p)
			continue
		}
		var prob struct {
			Errors []struct{ Field string }
		}
		_ = json.Unmarshal([]byte(p), &prob)
		var got []string
		for _, e := range prob.Errors {
			got = append(got, e.Field)
		}
		if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
			t.Errorf("%s: fields %v, want %v (%s)", name, got, tt.fields, p)
		}
	}
	// A body that is not declared JSON is refused as such, whatever it holds.
	req, _ := http.NewRequest("POST", s.base+"/v1/chats", strings.NewReader(startBody))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Authorization", "Bearer "+adminToken1)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 415 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("text/plain body: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("refused starts made %d REST calls", n)
	}
	if code, _, _ := s.api("GET", "/v1/chats/a", adminToken1, ""); code != 404 {
		t.Errorf("a refused start left a chat: %d", code)
	}
}

// The pool knows the pairs of its chats: a second chat of the same customer on a one-number pool is
// refused before anything is made at Twilio, and leaves nothing behind.
func TestChatStartNoFreeNumber(t *testing.T) {
	s, fake := startAPI(t, nil)
	if code, _, body := s.api("POST", "/v1/chats", adminToken1, startBody); code != 201 {
		t.Fatalf("first: %d %s", code, body)
	}
	n := len(fake.Requests())
	second := strings.Replace(strings.Replace(startBody, "order-8812", "order-8813", 1), rider, "whatsapp:+15550003333", 1)
	code, _, p := s.api("POST", "/v1/chats", adminToken1, second)
	if code != 409 || !strings.Contains(p, "problem-no-free-number") || !strings.Contains(p, "customer: no number of the WhatsApp pool is free for whatsapp:+1555•••1111") ||
		strings.Contains(p, "twilio_code") {
		t.Fatalf("second: %d %s", code, p)
	}
	if len(fake.Requests()) != n {
		t.Errorf("a refused start made REST calls: %+v", calls(fake.Requests()[n:]))
	}
	if code, _, _ := s.api("GET", "/v1/chats/order-8813", adminToken1, ""); code != 404 {
		t.Errorf("a refused start left a chat: %d", code)
	}
	// Ending the first chat frees the customer's number.
	s.api("DELETE", "/v1/chats/order-8812", adminToken1, "")
	if code, _, p := s.api("POST", "/v1/chats", adminToken1, second); code != 201 {
		t.Errorf("after the first ended: %d %s", code, p)
	}
}

// Twilio knows pairs the service does not (conversations made outside it): a 50416 sets the pair aside
// and the party gets the next number; with none left the start fails, closes what it made, frees the rest.
func TestChatStartPairBoundOutside(t *testing.T) {
	const n1 = "whatsapp:+15550100001"
	t.Run("next number", func(t *testing.T) {
		fake := boundOutside(t)
		s := start(t, fake, adminEnv(map[string]string{"OPTIN_WHATSAPP_NUMBERS": n1}))
		code, _, body := s.api("POST", "/v1/chats", adminToken1, startBody)
		c := chatOf(t, body)
		if code != 201 || c["customer"].(map[string]any)["proxy_address"] != business || c["rider"].(map[string]any)["proxy_address"] != n1 {
			t.Fatalf("start: %d %s", code, body)
		}
		v, _ := fake.Conversation(c["conversation_sid"].(string))
		if !slices.Equal(v.Bindings, []emulator.Binding{{Address: customer, ProxyAddress: business}, {Address: rider, ProxyAddress: n1}}) {
			t.Errorf("participants %v", v.Bindings)
		}
		_, _, pools := s.api("GET", "/v1/pools", adminToken1, "")
		if strings.TrimSpace(pools) != `{"pools":[{"channel":"whatsapp","numbers":[{"number":"whatsapp:+15550100000","pairs_in_use":1},{"number":"whatsapp:+15550100001","pairs_in_use":1}]}]}` {
			t.Errorf("pools %s", pools)
		}
	})
	t.Run("none left", func(t *testing.T) {
		fake := boundOutside(t)
		s := start(t, fake, adminEnv(nil))
		code, _, p := s.api("POST", "/v1/chats", adminToken1, startBody)
		if code != 409 || !strings.Contains(p, `"twilio_code":50416`) || !strings.Contains(p, "problem-no-free-number") || !strings.Contains(p, "rider: ") {
			t.Fatalf("start: %d %s", code, p)
		}
		_, _, body := s.api("GET", "/v1/chats/order-8812", adminToken1, "")
		c := chatOf(t, body)
		if v, _ := fake.Conversation("order-8812"); v.State != "closed" || c["conversation_sid"] != v.Sid {
			t.Errorf("half-made conversation %q %s, chat names %v", v.State, v.Sid, c["conversation_sid"])
		}
		if e := c["error"].(map[string]any); c["state"] != "failed" || c["reason"] != "failed" || e["twilio_code"] != 50416.0 || e["step"] != "rider" || states(c) != "starting,failed" {
			t.Errorf("failed chat: %s", body)
		}
		// The rider's pair was bound elsewhere and no other was free: the chat names no number for them.
		if c["rider"].(map[string]any)["proxy_address"] != nil {
			t.Errorf("the failed chat names a number the rider never held: %s", body)
		}
		// The same request gets the same answer (issue 27).
		if again, _, p2 := s.api("POST", "/v1/chats", adminToken1, startBody); again != 409 || !strings.Contains(p2, `"twilio_code":50416`) ||
			!strings.Contains(p2, "problem-no-free-number") || !strings.Contains(p2, "rider: ") {
			t.Errorf("the identical retry: %d %s, want the first answer", again, p2)
		}
		if _, _, pools := s.api("GET", "/v1/pools", adminToken1, ""); !strings.Contains(pools, `"pairs_in_use":0`) {
			t.Errorf("the failed chat's numbers are still leased: %s", pools)
		}
		// Ending it changes nothing: failed is final.
		if _, _, ended := s.api("DELETE", "/v1/chats/order-8812", adminToken1, ""); chatOf(t, ended)["state"] != "failed" {
			t.Errorf("end of a failed chat: %s", ended)
		}
	})
}

// boundOutside is Twilio where the rider is on the business number in a conversation made outside the
// service.
func boundOutside(t *testing.T) *twilio {
	t.Helper()
	fake := newTwilio(t, emulator.Options{})
	if _, err := fake.AddConversation(emulator.Seed{Sid: "CH0000000000000000000000000000ffff",
		Participants: []emulator.Binding{{Address: rider, ProxyAddress: business}}}); err != nil {
		t.Fatal(err)
	}
	return fake
}

// A start cut off half-way answers 503 with Retry-After; the same call repeated completes it, and
// nothing is created twice.
func TestChatStartResumes(t *testing.T) {
	s, fake := startAPI(t, map[string]string{"OPTIN_CHAT_START_TIMEOUT": "1s"})
	fail(t, fake, emulator.Fault{Route: "participants.create", Kind: "503", Code: 20503, Count: 50})
	code, hdr, p := s.api("POST", "/v1/chats", adminToken1, startBody)
	if code != 503 || hdr.Get("Retry-After") == "" || !strings.Contains(p, "problem-busy") {
		t.Fatalf("cut off: %d %v %s", code, hdr, p)
	}
	if _, _, body := s.api("GET", "/v1/chats/order-8812", adminToken1, ""); chatOf(t, body)["state"] != "starting" {
		t.Errorf("cut-off chat: %s", body)
	}
	fail(t, fake)
	n := len(fake.Requests())
	code, _, body := s.api("POST", "/v1/chats", adminToken1, startBody)
	if code != 201 || chatOf(t, body)["state"] != "invited" {
		t.Fatalf("resumed: %d %s", code, body)
	}
	conv1 := chatOf(t, body)["conversation_sid"].(string)
	all := startCalls("order-8812", conv1, "PT4H")
	lookup := call{"GET", "/v1/Conversations/" + conv1 + "/Messages", "Order=desc&PageSize=50"}
	// The resumed call adds the participants, looks for an invitation an earlier call may have sent, sends it.
	assertCallsSince(t, fake, n, sorted(all[3], all[4], lookup, all[5]))
	if n := conversationsCreated(fake); n != 1 {
		t.Errorf("%d conversations created", n)
	}
}

func assertCallsSince(t *testing.T, fake *twilio, n int, want []call) {
	t.Helper()
	got := calls(fake.Requests()[n:])
	if !slices.Equal(got, want) {
		t.Errorf("REST calls:\n got %d: %+v\nwant %d: %+v", len(got), got, len(want), want)
	}
}

// publicPost is Twilio's POST of params, signed for the public URL the chat armed its webhook at.
func (s *server) publicPost(params url.Values) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, s.webhookURL(""), strings.NewReader(params.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("X-Twilio-Signature", signature.Compute(authToken, publicBase+"/webhooks/conversations", params))
	return r
}

// reply is Twilio's onMessageAdded of a message of author in the conversation sid.
func reply(sid, msgSid, author, body string) url.Values {
	ev := event(msgSid, author)
	ev.Set("ConversationSid", sid)
	ev.Set("Body", body)
	return ev
}

// startedChat starts the chat of startBody and returns the SID of its conversation and the SIDs of the
// two webhooks the start armed there.
func startedChat(t *testing.T, s *server, fake *twilio) (sid string, hooks []string) {
	t.Helper()
	code, _, body := s.api("POST", "/v1/chats", adminToken1, startBody)
	if code != 201 {
		t.Fatalf("start: %d %s", code, body)
	}
	sid = chatOf(t, body)["conversation_sid"].(string)
	v, ok := fake.Conversation(sid)
	if !ok || len(v.Webhooks) != 2 {
		t.Fatalf("conversation %s at Twilio: %+v", sid, v)
	}
	return sid, v.Webhooks
}

// waitChat polls the chat until it is in state; if it gives up, it shows the chat.
func (s *server) waitChat(id, state string) map[string]any {
	s.t.Helper()
	var c map[string]any
	var body string
	defer func() {
		if c["state"] != state {
			s.t.Logf("chat %s is %v: %s", id, c["state"], body)
		}
	}()
	poll.Until(s.t, "chat "+id+" to be "+state, func() bool {
		_, _, body = s.api("GET", "/v1/chats/"+id, adminToken1, "")
		c = chatOf(s.t, body)
		return c["state"] == state
	})
	return c
}

// The customer's answer decides: yes connects, no declines, STOP opts out; the rider cannot answer for them.
func TestChatConsent(t *testing.T) {
	riderCalls := func(conv, trigger string) []call {
		return []call{
			{"POST", "/v1/Conversations/" + conv + "/Messages", form("Body", waitText, "Attributes", `{"optin":{"step":"wait","trigger":"`+trigger+`"}}`)},
			{"POST", "/v1/Conversations/" + conv + "/Messages", form("Author", customer, "Body", riderText, "Attributes", `{"optin":{"step":"rider","trigger":"`+trigger+`"}}`)},
		}
	}
	for _, tt := range []struct {
		name, reply, state, reason, history string
		want                                func(conv, trigger string) []call
	}{
		{"yes", "Yes, I'm home", "connected", "", "starting,invited,connecting,connected", riderCalls},
		{"quick reply button", "Sure!", "connected", "", "starting,invited,connecting,connected", riderCalls},
		{"no", "No thanks.", "declined", "declined", "starting,invited,declined", func(conv, trigger string) []call {
			return []call{
				{"POST", "/v1/Conversations/" + conv + "/Messages", form("Body", "No problem — we won't connect you. Your delivery is on its way.",
					"Attributes", `{"optin":{"step":"decline","trigger":"`+trigger+`"}}`)},
				closeCall(conv),
			}
		}},
		{"opt out", "STOP", "declined", "opted_out", "starting,invited,declined", func(conv, _ string) []call {
			return []call{closeCall(conv)}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, fake := startAPI(t, nil)
			sid, hooks := startedChat(t, s, fake)
			n := len(fake.Requests())
			// The rider writes first: ignored, nothing at Twilio.
			if code, body := s.send(s.publicPost(reply(sid, msg9, rider, "I'm outside"))); code != 200 || body != `{"outcome":"ignored","reason":"customer_not_answered"}` {
				t.Errorf("rider first: %d %s", code, body)
			}
			if code, body := s.send(s.publicPost(reply(sid, msg1, customer, tt.reply))); code != 200 || body != `{"outcome":"accepted"}` {
				t.Fatalf("customer: %d %s", code, body)
			}
			c := s.waitChat("order-8812", tt.state)
			if got, _ := c["reason"].(string); got != tt.reason || states(c) != tt.history {
				t.Errorf("chat: reason %v, history %s", c["reason"], states(c))
			}
			s.stop()
			assertCallsSince(t, fake, n, sorted(tt.want(sid, msg1)...))
			// A chat keeps both: its messages and deliveries are the chat's to relay.
			if v, _ := fake.Conversation(sid); !slices.Equal(v.Webhooks, hooks) {
				t.Errorf("webhooks left %v, want both of %v", v.Webhooks, hooks)
			}
		})
	}
}

// Two replicas on one Redis, the same start sent to both many times at once: one conversation, one 201,
// and every answer names the same chat; the customer's reply to either replica connects it.
func TestChatConcurrentStartsOnTwoReplicas(t *testing.T) {
	rs := redistest.Start(t)
	fake := newTwilio(t, emulator.Options{})
	env := adminEnv(map[string]string{"OPTIN_REDIS_URL": rs.URL()})
	replicas := []*server{start(t, fake, env), start(t, fake, env)}
	var wg sync.WaitGroup
	answers := make(chan string, 20)
	for i := range 20 {
		wg.Go(func() {
			code, _, body := replicas[i%2].api("POST", "/v1/chats", adminToken1, startBody)
			var c struct {
				ConversationSid string `json:"conversation_sid"`
			}
			_ = json.Unmarshal([]byte(body), &c)
			answers <- fmt.Sprintf("%d %s", code, c.ConversationSid)
		})
	}
	wg.Wait()
	close(answers)
	made := fake.Conversations()
	if len(made) != 1 {
		t.Fatalf("%d conversations created", len(made))
	}
	created := 0
	for a := range answers {
		switch a {
		case "201 " + made[0].Sid:
			created++
		case "200 " + made[0].Sid:
		default:
			t.Errorf("answer %s", a)
		}
	}
	if created != 1 {
		t.Errorf("%d answers 201, want 1", created)
	}
	if code, body := replicas[1].send(replicas[1].publicPost(reply(made[0].Sid, msg1, customer, "Yes"))); code != 200 || body != `{"outcome":"accepted"}` {
		t.Fatalf("reply: %d %s", code, body)
	}
	if c := replicas[0].waitChat("order-8812", "connected"); states(c) != "starting,invited,connecting,connected" {
		t.Errorf("history %s", states(c))
	}
}

// conversationsCreated counts the conversations at Twilio: those the service created (a create
// refused, e.g. 50353, made none).
func conversationsCreated(fake *twilio) int { return len(fake.Conversations()) }

// A whole delivery against the emulator, which fires the webhooks: start, the invitation on the
// customer's phone, the customer's "Yes", template 2 on the rider's phone, the chat connected; then the
// chat's timer closes the conversation and the chat follows.
func TestChatDeliveryOnEmulator(t *testing.T) {
	const tmpl2 = "HX0000000000000000000000000000e002"
	emu, err := emulator.New(emulator.Options{AccountSid: accountSid, AuthToken: authToken,
		Contents: map[string]string{inviteSid: "Hello {{1}}, {{2}} needs help finding your door. Chat?", tmpl2: riderText}})
	if err != nil {
		t.Fatal(err)
	}
	apiSrv := httptest.NewServer(emu)
	t.Cleanup(apiSrv.Close)
	t.Cleanup(func() { _ = emu.Close(context.Background()) })
	p := newPlatform(t, "order-1")
	s := startListening(t, func(base string) map[string]string {
		return baseEnv(newFake(t), adminEnv(map[string]string{"OPTIN_PUBLIC_URL": base, "OPTIN_TWILIO_API_URL": apiSrv.URL,
			"OPTIN_RIDER_OPTIN_CONTENT_SID": tmpl2, "OPTIN_CALLBACK_URL": p.srv.URL, "OPTIN_CALLBACK_SECRET": callbackSecret}))
	})
	code, _, body := s.api("POST", "/v1/chats", adminToken1, `{"id":"order-1","customer":{"address":"whatsapp:+15550001111","name":"Ana"},"rider":{"address":"whatsapp:+15550002222","name":"Bruno"},"ttl":"30m"}`)
	if code != 201 {
		t.Fatalf("start: %d %s", code, body)
	}
	c := chatOf(t, body)
	convSid := c["conversation_sid"].(string)
	if tr := emu.Transcript(customer); len(tr) != 1 || tr[0].Text != "Hello Ana, Bruno needs help finding your door. Chat?" || tr[0].Status != "delivered" {
		t.Fatalf("customer's phone: %+v", tr)
	}
	if _, err := emu.Inbound(rider, business, "I'm at the gate"); err != nil { // the rider first: ignored
		t.Fatal(err)
	}
	if _, err := emu.Inbound(customer, business, "Yes"); err != nil {
		t.Fatal(err)
	}
	s.waitChat("order-1", "connected")
	if got := p.waitFor(2); got[0].Type != "chat.invited" || got[1].Type != "chat.connected" || got[1].State != "connected" {
		t.Errorf("events %+v", got)
	}
	riderGotTemplate := false
	for _, e := range emu.Transcript(rider) {
		riderGotTemplate = riderGotTemplate || (e.ContentSid == tmpl2 && e.Status == "delivered")
	}
	if !riderGotTemplate {
		t.Errorf("rider's phone: %+v", emu.Transcript(rider))
	}
	view, _ := emu.Conversation(convSid)
	if len(view.Webhooks) != 2 {
		t.Errorf("webhooks left %v, want the message and the lifecycle one", view.Webhooks)
	}
	// Nobody writes for 30 minutes: Twilio closes the conversation and tells the service.
	emu.Advance(31 * time.Minute)
	closed := s.waitChat("order-1", "closed")
	if closed["reason"] != "expired" || states(closed) != "starting,invited,connecting,connected,closed" {
		t.Errorf("after the timer: %v %s", closed["reason"], states(closed))
	}
	if got := p.waitFor(3); got[2].Type != "chat.closed" {
		t.Errorf("events %+v", got)
	}
	for _, call := range emu.WebhookCalls() {
		if call.Status != 200 {
			t.Errorf("webhook answered %d: %+v", call.Status, call)
		}
	}
}

// platform is a receiver of chat events that checks each signature with the Standard Webhooks library.
type platform struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	events []receivedEvent
	// answer, when set, chooses the status of each delivery (by event type and attempt, from 1).
	answer func(typ string, attempt int) int
}

type receivedEvent struct {
	ID, Type, State string
	Attempt         int
}

const callbackSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func newPlatform(t *testing.T, chatID string) *platform {
	p := &platform{t: t}
	wh, err := standardwebhooks.NewWebhook(callbackSecret)
	if err != nil {
		t.Fatal(err)
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := wh.Verify(body, r.Header); err != nil {
			t.Errorf("event signature: %v", err)
			w.WriteHeader(400)
			return
		}
		var ev struct {
			Type      string
			Timestamp time.Time
			Data      struct{ State, ID string }
		}
		if err := json.Unmarshal(body, &ev); err != nil || ev.Data.ID != chatID || ev.Timestamp.IsZero() {
			t.Errorf("event body %s (%v)", body, err)
		}
		p.mu.Lock()
		attempt := 1
		for _, e := range p.events {
			if e.ID == r.Header.Get("webhook-id") {
				attempt++
			}
		}
		p.events = append(p.events, receivedEvent{r.Header.Get("webhook-id"), ev.Type, ev.Data.State, attempt})
		answer := p.answer
		p.mu.Unlock()
		if answer != nil {
			w.WriteHeader(answer(ev.Type, attempt))
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *platform) got() []receivedEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]receivedEvent(nil), p.events...)
}

// waitFor polls until the platform has received n deliveries; if it gives up, it lists those it has.
func (p *platform) waitFor(n int) []receivedEvent {
	p.t.Helper()
	defer func() {
		if got := p.got(); len(got) < n {
			p.t.Logf("%d deliveries: %+v", len(got), got)
		}
	}()
	poll.Until(p.t, fmt.Sprintf("%d deliveries", n), func() bool { return len(p.got()) >= n })
	return p.got()
}

// Each transition the platform hears of arrives signed, with a stable webhook-id: a delivery answered
// 5xx comes again with the same id (the first retry within a minute), one answered 4xx does not.
func TestChatEvents(t *testing.T) {
	p := newPlatform(t, "order-8812")
	p.answer = func(typ string, attempt int) int {
		switch {
		case typ == "chat.connected" && attempt == 1:
			return 503
		case typ == "chat.closed":
			return 410
		}
		return 204
	}
	s, fake := startAPI(t, map[string]string{"OPTIN_CALLBACK_URL": p.srv.URL + "/hooks/optin", "OPTIN_CALLBACK_SECRET": callbackSecret})
	sid, _ := startedChat(t, s, fake)
	if got := p.waitFor(1); got[0].Type != "chat.invited" || got[0].State != "invited" || !strings.HasPrefix(got[0].ID, "msg_") {
		t.Errorf("first event %+v", got[0])
	}
	if code, _ := s.send(s.publicPost(reply(sid, msg1, customer, "Yes"))); code != 200 {
		t.Fatal(code)
	}
	got := p.waitFor(3) // chat.connected twice: answered 503, then delivered again
	if got[1].Type != "chat.connected" || got[2].ID != got[1].ID || got[2].Attempt != 2 || got[1].ID == got[0].ID {
		t.Errorf("connected deliveries %+v", got[1:])
	}
	if code, _, _ := s.api("DELETE", "/v1/chats/order-8812", adminToken1, ""); code != 200 {
		t.Fatal(code)
	}
	got = p.waitFor(4)
	if got[3].Type != "chat.closed" || got[3].State != "closed" {
		t.Errorf("closed event %+v", got[3])
	}
	s.stop()
	if n := len(p.got()); n != 4 {
		t.Errorf("%d deliveries: a rejected event was retried: %+v", n, p.got())
	}
	if logs := s.logs.String(); !strings.Contains(logs, "event rejected by the receiver; not retried") || strings.Contains(logs, callbackSecret) {
		t.Errorf("log: rejection not logged, or the secret is in it")
	}
}

// With OPTIN_ADMIN_ADDR the admin API and the console are on their own listener only; the public one serves the webhook.
func TestAdminAPIOnItsOwnListener(t *testing.T) {
	s, _ := startAPI(t, map[string]string{"OPTIN_ADMIN_ADDR": "127.0.0.1:0"})
	if s.admin == "" || s.admin == s.base {
		t.Fatalf("admin listener %q", s.admin)
	}
	if code, _, _ := s.api("GET", "/v1/chats", adminToken1, ""); code != 404 {
		t.Errorf("the public listener serves /v1: %d", code)
	}
	admin := *s
	admin.base = s.admin
	code, _, body := admin.api("POST", "/v1/chats", adminToken1, startBody)
	if code != 201 {
		t.Fatalf("admin listener: %d %s", code, body)
	}
	sid := chatOf(t, body)["conversation_sid"].(string)
	for _, p := range []string{"/healthz", "/readyz", "/console/login"} {
		r, _ := http.NewRequest(http.MethodGet, s.admin+p, nil)
		if code, _ := admin.send(r); code != 200 {
			t.Errorf("admin %s: %d", p, code)
		}
	}
	// The console is on the admin listener only.
	r, _ := http.NewRequest(http.MethodGet, s.base+"/console/login", nil)
	if code, _ := s.send(r); code != 404 {
		t.Errorf("the public listener serves the console: %d", code)
	}
	// The webhook stays on the public listener.
	if code, body := s.send(s.publicPost(reply(sid, msg1, customer, "Yes"))); code != 200 || body != `{"outcome":"accepted"}` {
		t.Errorf("webhook: %d %s", code, body)
	}
}

// With the API on, a conversation armed by hand keeps the guide's behaviour: the first author is the
// customer, any reply consents, every scoped webhook goes.
func TestHandArmedConversationWithTheAPIOn(t *testing.T) {
	fake := newFake(t, hook(1), hook(2))
	s := start(t, fake, adminEnv(nil))
	if code, body := s.send(s.publicPost(reply(conv, msg1, customer, "no"))); code != 200 || body != `{"outcome":"accepted"}` {
		t.Fatalf("%d %s", code, body)
	}
	waitFor(t, fake, 5)
	s.stop()
	assertCalls(t, fake, sorted(waitCall(msg1), riderCall(msg1), listCall("PageSize=5"), deleteCall(hook(1)), deleteCall(hook(2))))
}

// An invitation given as a body goes as one, authored by the rider.
func TestChatInviteBody(t *testing.T) {
	s, fake := startAPI(t, map[string]string{"OPTIN_INVITE_CONTENT_SID": ""})
	body := `{"id":"o-2","customer":{"address":"whatsapp:+15550001111"},"rider":{"address":"whatsapp:+15550002222"},"invite":{"body":"Hi, can we chat?"}}`
	code, _, p := s.api("POST", "/v1/chats", adminToken1, body)
	if code != 201 {
		t.Fatalf("%d %s", code, p)
	}
	reqs := fake.Requests()
	last := calls(reqs[len(reqs)-1:])[0]
	want := call{"POST", "/v1/Conversations/" + chatOf(t, p)["conversation_sid"].(string) + "/Messages", form("Attributes", `{"optin":{"chat":"o-2","step":"invite"}}`, "Author", rider, "Body", "Hi, can we chat?")}
	if last != want {
		t.Errorf("invitation %+v, want %+v", last, want)
	}
	// Without a default template, an invitation must be given.
	if code, _, p := s.api("POST", "/v1/chats", adminToken1, strings.Replace(startBody, "order-8812", "o-3", 1)); code != 422 || !strings.Contains(p, `"field":"invite"`) {
		t.Errorf("no invitation: %d %s", code, p)
	}
}

// poolOf5 adds four numbers to OPTIN_WHATSAPP_NUMBER's (business): a pool of five.
func poolOf5() string {
	return "whatsapp:+15550100001,whatsapp:+15550100002,whatsapp:+15550100003,whatsapp:+15550100004"
}

// A rider carries five orders at once on a pool of five numbers: five chats, all connected, each
// customer seeing only their own; a sixth finds no number for the rider; ending one frees it.
func TestRiderWithFiveOrdersOnEmulator(t *testing.T) {
	s, emu := onEmulator(t, map[string]string{"OPTIN_WHATSAPP_NUMBERS": poolOf5()})
	cust := func(i int) string { return fmt.Sprintf("whatsapp:+155500011%02d", i) }
	startFor := func(i int) (int, map[string]any) {
		body := fmt.Sprintf(`{"id":"order-%d","customer":{"address":%q,"name":"C%d"},"rider":{"address":%q,"name":"Bruno"}}`, i, cust(i), i, rider)
		code, _, p := s.api("POST", "/v1/chats", adminToken1, body)
		return code, chatOf(t, p)
	}
	numbers := map[int]string{}
	for i := 1; i <= 5; i++ {
		code, c := startFor(i)
		if code != 201 {
			t.Fatalf("chat %d: %d %v", i, code, c)
		}
		cp, rp := c["customer"].(map[string]any)["proxy_address"].(string), c["rider"].(map[string]any)["proxy_address"].(string)
		if cp != rp {
			t.Errorf("chat %d: customer on %s, rider on %s", i, cp, rp)
		}
		numbers[i] = rp
	}
	if len(slices.Compact(slices.Sorted(maps.Values(numbers)))) != 5 {
		t.Fatalf("the rider's chats share numbers: %v", numbers)
	}
	for i := 1; i <= 5; i++ {
		if _, err := emu.Inbound(cust(i), numbers[i], "Yes"); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 5; i++ {
		s.waitChat(fmt.Sprint("order-", i), "connected")
	}
	for i := 1; i <= 5; i++ {
		if _, err := emu.Inbound(rider, numbers[i], fmt.Sprintf("On my way to you, C%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 5; i++ {
		var got []string
		for _, e := range emu.Transcript(cust(i)) {
			if e.Direction == "received" && strings.HasPrefix(e.Text, "On my way") {
				got = append(got, e.Text)
			}
		}
		if want := []string{fmt.Sprintf("On my way to you, C%d", i)}; !slices.Equal(got, want) {
			t.Errorf("customer %d received %v, want %v", i, got, want)
		}
	}
	code, _, p := s.api("POST", "/v1/chats", adminToken1, fmt.Sprintf(`{"id":"order-6","customer":{"address":%q},"rider":{"address":%q}}`, cust(6), rider))
	if code != 409 || !strings.Contains(p, "rider: no number of the WhatsApp pool is free for whatsapp:+1555•••2222") {
		t.Errorf("sixth order: %d %s", code, p)
	}
	if code, _, _ := s.api("DELETE", "/v1/chats/order-3", adminToken1, ""); code != 200 {
		t.Fatal(code)
	}
	if code, c := startFor(6); code != 201 || c["rider"].(map[string]any)["proxy_address"] != numbers[3] {
		t.Errorf("after order 3 ended: %d %v", code, c)
	}
}

// Two replicas start 50 chats at once — ten riders with five orders each on five numbers: every start
// succeeds and no (address, number) pair is bound twice.
func TestPoolOnTwoReplicas(t *testing.T) {
	rs := redistest.Start(t)
	fake := newTwilio(t, emulator.Options{})
	env := adminEnv(map[string]string{"OPTIN_REDIS_URL": rs.URL(), "OPTIN_WHATSAPP_NUMBERS": poolOf5()})
	replicas := []*server{start(t, fake, env), start(t, fake, env)}
	var mu sync.Mutex
	pairs := map[string]string{}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			r, c := fmt.Sprintf("whatsapp:+155500020%02d", i%10), fmt.Sprintf("whatsapp:+155500030%02d", i)
			body := fmt.Sprintf(`{"id":"order-%d","customer":{"address":%q},"rider":{"address":%q}}`, i, c, r)
			code, _, p := replicas[i%2].api("POST", "/v1/chats", adminToken1, body)
			if code != 201 {
				t.Errorf("chat %d: %d %s", i, code, p)
				return
			}
			ch := chatOf(t, p)
			mu.Lock()
			defer mu.Unlock()
			for _, party := range []string{"customer", "rider"} {
				pp := ch[party].(map[string]any)
				key := pp["address"].(string) + "|" + pp["proxy_address"].(string)
				if other, dup := pairs[key]; dup {
					t.Errorf("pair %s bound to %s and order-%d", key, other, i)
				}
				pairs[key] = fmt.Sprint("order-", i)
			}
		})
	}
	wg.Wait()
	if len(pairs) != 100 {
		t.Errorf("%d pairs bound, want 100", len(pairs))
	}
	_, _, pools := replicas[0].api("GET", "/v1/pools", adminToken1, "")
	if strings.Count(pools, `"pairs_in_use":20`) != 5 {
		t.Errorf("pools %s, want 20 pairs on each number (10 riders and 10 customers)", pools)
	}
}

// Starts beyond the create rate wait within their budget, then answer 503 with Retry-After: never a
// failed chat; repeated, they all start.
func TestChatStartsArePaced(t *testing.T) {
	s, fake := startAPI(t, map[string]string{"OPTIN_TWILIO_CREATE_RATE": "1", "OPTIN_CHAT_START_TIMEOUT": "1s",
		"OPTIN_WHATSAPP_NUMBERS": poolOf5()})
	body := func(i int) string {
		return fmt.Sprintf(`{"id":"paced-%d","customer":{"address":"whatsapp:+155500040%02d"},"rider":{"address":"whatsapp:+155500050%02d"}}`, i, i, i)
	}
	codes := make([]int, 4)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			code, hdr, p := s.api("POST", "/v1/chats", adminToken1, body(i))
			codes[i] = code
			if code == 503 && (hdr.Get("Retry-After") == "" || !strings.Contains(p, "problem-busy")) {
				t.Errorf("paced start %d: %v %s", i, hdr, p)
			}
		})
	}
	wg.Wait()
	busy := 0
	for i, c := range codes {
		switch c {
		case 201:
		case 503:
			busy++
		default:
			t.Errorf("start %d answered %d", i, c)
		}
	}
	if busy == 0 {
		t.Errorf("4 starts at 1 create/s within 1 s: none was paced (%v)", codes)
	}
	// Repeated, each start completes.
	code, answer := 0, "" // the last answer
	done := func() bool { return code == 200 || code == 201 }
	defer func() {
		if !done() {
			t.Logf("the last start answered %d %s", code, answer)
		}
	}()
	for i := range 4 {
		poll.Until(t, fmt.Sprintf("start %d to complete", i), func() bool {
			code, _, answer = s.api("POST", "/v1/chats", adminToken1, body(i))
			if !done() && code != 503 {
				t.Fatalf("start %d: %d %s", i, code, answer)
			}
			return done()
		})
	}
	if n := conversationsCreated(fake); n != 4 {
		t.Errorf("%d conversations created, want 4", n)
	}
}

// onEmulator runs the service with the chats API (and env on top) against an emulator that calls it
// back, and whose invitation template reads "Hello {{1}}, can {{2}} message you?".
func onEmulator(t *testing.T, env map[string]string) (*server, *emulator.Emulator) {
	replicas, emu := emulatorReplicas(t, 1, env)
	return replicas[0], emu
}

// relayOnEmulator is onEmulator with an SMS pool.
func relayOnEmulator(t *testing.T) (*server, *emulator.Emulator) {
	return onEmulator(t, map[string]string{"OPTIN_SMS_NUMBERS": smsBusiness})
}

const (
	smsBusiness = "+15550190000"
	smsRider    = "+15550002222"
)

// lastReceived is the text of the last message the phone at address received, and its status.
func lastReceived(emu *emulator.Emulator, address string) (string, string) {
	tr := emu.Transcript(address)
	for i := len(tr) - 1; i >= 0; i-- {
		if tr[i].Direction == "received" {
			return tr[i].Text, tr[i].Status
		}
	}
	return "", ""
}

// The guide's first two patterns: a direct chat is connected at once, and messages flow both ways,
// WhatsApp ↔ WhatsApp and WhatsApp ↔ SMS.
func TestDirectRelays(t *testing.T) {
	for _, tt := range []struct {
		name, rider, riderProxy string
	}{
		{"whatsapp to whatsapp", rider, business},
		{"whatsapp to sms", smsRider, smsBusiness},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, emu := relayOnEmulator(t)
			body := fmt.Sprintf(`{"id":"d-1","mode":"direct","customer":{"address":%q},"rider":{"address":%q}}`, customer, tt.rider)
			code, _, p := s.api("POST", "/v1/chats", adminToken1, body)
			c := chatOf(t, p)
			if code != 201 || c["state"] != "connected" || c["mode"] != "direct" || states(c) != "starting,connected" ||
				c["rider"].(map[string]any)["proxy_address"] != tt.riderProxy || c["customer"].(map[string]any)["proxy_address"] != business {
				t.Fatalf("start: %d %s", code, p)
			}
			if tr := emu.Transcript(customer); len(tr) != 0 {
				t.Errorf("a direct chat sent the customer %+v", tr)
			}
			view, _ := emu.Conversation(c["conversation_sid"].(string))
			if len(view.Webhooks) != 2 {
				t.Errorf("webhooks %v, want the message and the lifecycle one", view.Webhooks)
			}
			// The customer writes first; then the rider answers, and the customer again.
			for _, m := range []struct{ from, to, text string }{
				{customer, business, "Are you close?"}, {tt.rider, tt.riderProxy, "At your gate"}, {customer, business, "Coming down"},
			} {
				if _, err := emu.Inbound(m.from, m.to, m.text); err != nil {
					t.Fatal(err)
				}
			}
			if text, status := lastReceived(emu, customer); text != "At your gate" || status != "delivered" {
				t.Errorf("customer received %q %s", text, status)
			}
			if text, status := lastReceived(emu, tt.rider); text != "Coming down" || status != "delivered" {
				t.Errorf("rider received %q %s", text, status)
			}
			if c := s.waitChat("d-1", "connected"); states(c) != "starting,connected" {
				t.Errorf("messages moved a direct chat: %s", states(c))
			}
		})
	}
}

// The opt-in with the rider on SMS: the invitation on WhatsApp, the customer's yes, and the rider's
// opt-in as a plain SMS (no window, no template).
func TestOptInWithSMSRider(t *testing.T) {
	s, emu := relayOnEmulator(t)
	body := fmt.Sprintf(`{"id":"o-1","customer":{"address":%q,"name":"Ana"},"rider":{"address":%q,"name":"Bruno"}}`, customer, smsRider)
	if code, _, p := s.api("POST", "/v1/chats", adminToken1, body); code != 201 {
		t.Fatalf("start: %d %s", code, p)
	}
	if text, status := lastReceived(emu, customer); text != "Hello Ana, can Bruno message you?" || status != "delivered" {
		t.Fatalf("invitation %q %s", text, status)
	}
	if _, err := emu.Inbound(customer, business, "Yes"); err != nil {
		t.Fatal(err)
	}
	s.waitChat("o-1", "connected")
	// The wait message and the opt-in are sent at once, in either order; SMS delivers the (system) wait
	// message to the rider too, as there is no window to stop it.
	optedIn := false
	for _, e := range emu.Transcript(smsRider) {
		optedIn = optedIn || (e.Direction == "received" && e.Status == "delivered" &&
			strings.HasPrefix(e.Text, "Your customer has agreed to chat to get this delivery sorted."))
	}
	if !optedIn {
		t.Errorf("the SMS rider received %+v", emu.Transcript(smsRider))
	}
	if _, err := emu.Inbound(smsRider, smsBusiness, "Which floor?"); err != nil {
		t.Fatal(err)
	}
	if text, status := lastReceived(emu, customer); text != "Which floor?" || status != "delivered" {
		t.Errorf("customer received %q %s", text, status)
	}
}

// A permanent Twilio refusal during the opt-in fails the chat with Twilio's code.
func TestChatFailsWithTwilioCode(t *testing.T) {
	s, fake := startAPI(t, nil)
	sid, _ := startedChat(t, s, fake)
	// The next message create — the wait message or the rider's opt-in — is refused for good.
	fail(t, fake, emulator.Fault{Route: "messages.create", Kind: "400", Code: 63016, Count: 1})
	if code, body := s.send(s.publicPost(reply(sid, msg1, customer, "Yes"))); code != 200 || body != `{"outcome":"accepted"}` {
		t.Fatalf("reply: %d %s", code, body)
	}
	c := s.waitChat("order-8812", "failed")
	e, _ := c["error"].(map[string]any)
	if e == nil || e["twilio_code"] != 63016.0 || e["step"] != nil || c["reason"] != "failed" || states(c) != "starting,invited,connecting,failed" {
		t.Errorf("failed chat: %v", c)
	}
}
