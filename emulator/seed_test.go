package emulator

import (
	"reflect"
	"strings"
	"testing"
)

const (
	seedConv = "CH00000000000000000000000000000001"
	hook1    = "WH00000000000000000000000000000001"
	hook2    = "WH00000000000000000000000000000002"
)

// A seeded conversation is what the REST API shows, as if made earlier, and no request is logged for it.
func TestAddConversationAsTheAPIShowsIt(t *testing.T) {
	h := newHarness(t)
	v, err := h.emu.AddConversation(Seed{Sid: seedConv, UniqueName: "order-9", Participants: []Binding{{customer, business}, {rider, business}},
		Webhooks: []SeedWebhook{{Sid: hook1, URL: "https://optin.example.com/webhooks/conversations", Method: "get", Filters: []string{"onMessageAdded"}}, {Sid: hook2, URL: "http://127.0.0.1:1/x"}}})
	want := ConversationView{Sid: seedConv, UniqueName: "order-9", State: "active", Webhooks: []string{hook1, hook2},
		Participants: []string{customer, rider}, Bindings: []Binding{{customer, business}, {rider, business}}}
	if err != nil || !reflect.DeepEqual(v, want) {
		t.Fatalf("seeded %+v %v, want %+v", v, err, want)
	}
	if got := h.emu.Requests(); len(got) != 0 {
		t.Errorf("seeding logged %+v", got)
	}
	byName := h.must(200, "GET", "/v1/Conversations/order-9", nil)
	if byName["sid"] != seedConv || byName["state"] != "active" || byName["attributes"] != "{}" {
		t.Errorf("fetched %v", byName)
	}
	hooks := h.must(200, "GET", "/v1/Conversations/"+seedConv+"/Webhooks", nil)["webhooks"].([]any)
	first := hooks[0].(map[string]any)
	if cfg := first["configuration"].(map[string]any); len(hooks) != 2 || first["sid"] != hook1 || first["target"] != "webhook" ||
		cfg["url"] != "https://optin.example.com/webhooks/conversations" || cfg["method"] != "GET" || !reflect.DeepEqual(cfg["filters"], []any{"onMessageAdded"}) {
		t.Errorf("webhooks %v", hooks)
	}
	if cfg := hooks[1].(map[string]any)["configuration"].(map[string]any); cfg["method"] != "POST" {
		t.Errorf("default method %v", cfg)
	}
	parts := h.must(200, "GET", "/v1/Conversations/"+seedConv+"/Participants", nil)["participants"].([]any)
	if b := parts[1].(map[string]any)["messaging_binding"].(map[string]any); len(parts) != 2 || b["address"] != rider || b["proxy_address"] != business {
		t.Errorf("participants %v", parts)
	}
	// The seeded bindings are Twilio's: the pair is taken, and the phone's messages land in the conversation.
	other := h.must(201, "POST", "/v1/Conversations", nil)["sid"].(string)
	if code, body := h.do("POST", "/v1/Conversations/"+other+"/Participants", vals("MessagingBinding.Address", rider, "MessagingBinding.ProxyAddress", business)); code != 409 || apiCode(body) != 50416 {
		t.Errorf("pair bound in the seed: %d %v", code, body)
	}
	if m, err := h.emu.Inbound(customer, business, "Yes"); err != nil || m.ConversationSid != seedConv {
		t.Errorf("inbound %+v %v", m, err)
	}
	h.must(204, "DELETE", "/v1/Conversations/"+seedConv+"/Webhooks/"+hook1, nil)
	if v, _ := h.emu.Conversation(seedConv); !reflect.DeepEqual(v.Webhooks, []string{hook2}) {
		t.Errorf("webhooks left %v", v.Webhooks)
	}
}

// A seed may hold more webhooks than the API lets a conversation have; the API's list pages them.
func TestSeedBeyondFiveWebhooksIsPaged(t *testing.T) {
	h := newHarness(t)
	var hooks []SeedWebhook
	for range 7 {
		hooks = append(hooks, SeedWebhook{URL: "http://127.0.0.1:1/hook", Filters: []string{"onMessageAdded"}})
	}
	v, err := h.emu.AddConversation(Seed{Webhooks: hooks})
	if err != nil || len(v.Webhooks) != 7 || !strings.HasPrefix(v.Sid, "CH") || len(v.Sid) != 34 {
		t.Fatalf("seeded %+v %v", v, err)
	}
	first := h.must(200, "GET", "/v1/Conversations/"+v.Sid+"/Webhooks?PageSize=5", nil)
	second := h.must(200, "GET", "/v1/Conversations/"+v.Sid+"/Webhooks?PageSize=5&Page=1&PageToken=PT1", nil)
	if n1, n2 := len(first["webhooks"].([]any)), len(second["webhooks"].([]any)); n1 != 5 || n2 != 2 || first["meta"].(map[string]any)["next_page_url"] == nil ||
		second["meta"].(map[string]any)["next_page_url"] != nil {
		t.Errorf("pages of %d and %d: %v", n1, n2, second["meta"])
	}
	if code, body := h.do("POST", "/v1/Conversations/"+v.Sid+"/Webhooks", vals("Target", "webhook", "Configuration.Url", "http://127.0.0.1:1/hook")); code != 400 || apiCode(body) != 50361 {
		t.Errorf("the API's sixth: %d %v", code, body)
	}
}

func TestAddConversationRefuses(t *testing.T) {
	h := newHarness(t)
	if _, err := h.emu.AddConversation(Seed{Sid: seedConv, UniqueName: "order-1", Participants: []Binding{{customer, business}}, Webhooks: []SeedWebhook{{Sid: hook1, URL: "http://127.0.0.1:1/"}}}); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]Seed{
		"sid taken":              {Sid: seedConv},
		"sid shape":              {Sid: "CH1"},
		"sid prefix":             {Sid: "IM00000000000000000000000000000001"},
		"unique name taken":      {UniqueName: "order-1"},
		"state":                  {State: "initializing"},
		"pair in another":        {Participants: []Binding{{customer, business}}},
		"pair twice":             {Participants: []Binding{{rider, business}, {rider, business}}},
		"no proxy":               {Participants: []Binding{{rider, ""}}},
		"channels differ":        {Participants: []Binding{{rider, "+15550000000"}}},
		"webhook sid taken":      {Webhooks: []SeedWebhook{{Sid: hook1, URL: "http://127.0.0.1:1/"}}},
		"webhook sid twice":      {Webhooks: []SeedWebhook{{Sid: hook2, URL: "http://127.0.0.1:1/"}, {Sid: hook2, URL: "http://127.0.0.1:1/"}}},
		"webhook sid shape":      {Webhooks: []SeedWebhook{{Sid: "WH1", URL: "http://127.0.0.1:1/"}}},
		"webhook without url":    {Webhooks: []SeedWebhook{{}}},
		"webhook url relative":   {Webhooks: []SeedWebhook{{URL: "/hook"}}},
		"webhook method unknown": {Webhooks: []SeedWebhook{{URL: "http://127.0.0.1:1/", Method: "PUT"}}},
		"second pair in another": {Participants: []Binding{{rider, business}, {customer, business}}},
	} {
		if _, err := h.emu.AddConversation(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if n := len(h.emu.Conversations()); n != 1 {
		t.Errorf("%d conversations after refusals, want 1", n)
	}
	// A pair bound in a closed conversation is free again, as at Twilio; a closed seed takes nobody's.
	if _, err := h.emu.AddConversation(Seed{State: "closed", Participants: []Binding{{customer, business}}}); err != nil {
		t.Errorf("closed seed with a pair bound elsewhere: %v", err)
	}
	h.must(200, "POST", "/v1/Conversations/"+seedConv, vals("State", "closed"))
	if _, err := h.emu.AddConversation(Seed{Participants: []Binding{{customer, business}}}); err != nil {
		t.Errorf("pair of a closed conversation: %v", err)
	}
}
