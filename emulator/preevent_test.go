package emulator

import (
	"net/url"
	"testing"
	"time"
)

// The pre-event hook onMessageAdd: asked before a phone's message exists, with Twilio's parameters;
// its answer publishes the message as written, changed, or not at all.
func TestPreEventOnMessageAdd(t *testing.T) {
	for _, tc := range []struct {
		name             string
		status           int
		body             string
		wantBody, wantAt string
		dropped          bool
	}{
		{"empty object", 200, `{}`, "call me on +1 415 555 0123", "{}", false},
		{"empty body", 200, ``, "call me on +1 415 555 0123", "{}", false},
		{"not an object", 200, `ok`, "call me on +1 415 555 0123", "{}", false},
		{"changed", 200, `{"body":"call me on [number hidden]","attributes":"{\"guarded\":[\"phone\"]}"}`, "call me on [number hidden]", `{"guarded":["phone"]}`, false},
		{"attributes as an object", 200, `{"attributes":{"guarded":["phone"]}}`, "call me on +1 415 555 0123", `{"guarded":["phone"]}`, false},
		{"refused", 403, `{}`, "", "", true},
		{"failing", 500, ``, "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newService(t, func(path string, _ url.Values) (int, string, string) {
				if path == "/pre" {
					return tc.status, "application/json", tc.body
				}
				return 200, "", ""
			})
			h := newHarness(t)
			conv := h.story()
			h.must(201, "POST", "/v1/Conversations/"+conv+"/Webhooks", vals("Target", "webhook", "Configuration.Url", svc.url("/post"), "Configuration.Filters", "onMessageAdded"))
			h.must(200, "POST", "/v1/Services/IS"+sid[2:]+"/Configuration/Webhooks", vals("PreWebhookUrl", svc.url("/pre"), "Filters", "onMessageAdd"))
			participant := h.emu.conversations[0].participants[0].Sid

			m, err := h.emu.Inbound(customer, business, "call me on +1 415 555 0123")
			if err != nil {
				t.Fatal(err)
			}
			if err := h.emu.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			reqs := svc.requests()
			wantForm(t, "onMessageAdd", reqs[0].form, vals("AccountSid", sid, "ChatServiceSid", "IS"+sid[2:], "ConversationSid", conv,
				"EventType", "onMessageAdd", "Author", customer, "Body", "call me on +1 415 555 0123", "Attributes", "{}",
				"ParticipantSid", participant, "Source", "WHATSAPP", "MessagingBinding.Address", customer,
				"MessagingBinding.ProxyAddress", business, "RetryCount", "0"))
			view, _ := h.emu.Conversation(conv)
			got := h.emu.Transcript(rider)
			sent := h.emu.Transcript(customer)
			if tc.dropped {
				if !m.Dropped || m.Sid != "" || len(view.Messages) != 0 || len(got) != 0 || len(reqs) != 1 || sent[0].Status != "dropped" {
					t.Errorf("dropped: message %+v, conversation %+v, rider %+v, requests %d, sender %+v", m, view, got, len(reqs), sent)
				}
				return
			}
			if m.Dropped || len(view.Messages) != 1 || view.Messages[0].Body != tc.wantBody || view.Messages[0].Attributes != tc.wantAt ||
				view.Messages[0].Author != customer || len(got) != 1 || got[0].Text != tc.wantBody || sent[0].Text != "call me on +1 415 555 0123" {
				t.Errorf("published: message %+v, conversation %+v, rider %+v, sender %+v", m, view, got, sent)
			}
			// The post-event carries the message as published.
			if len(reqs) != 2 || reqs[1].path != "/post" || reqs[1].form.Get("Body") != tc.wantBody || reqs[1].form.Get("ParticipantSid") != participant {
				t.Errorf("post-event %+v", reqs)
			}
		})
	}
}

// No answer within the webhook timeout publishes the message unchanged; the account's hook is asked
// when the service has none; GET puts the parameters in the query; REST writes are never asked about.
func TestPreEventTimeoutAccountLevelAndREST(t *testing.T) {
	release := make(chan struct{})
	svc := newService(t, func(path string, _ url.Values) (int, string, string) {
		if path == "/slow" {
			<-release
		}
		return 200, "application/json", `{"body":"changed"}`
	})
	defer close(release)
	h := newHarness(t, func(o *Options) { o.WebhookTimeout = 100 * time.Millisecond })
	conv := h.story()
	h.emu.SetAccountWebhooks(WebhookConfiguration{PreURL: svc.url("/slow"), Filters: []string{"onMessageAdd"}})
	m, err := h.emu.Inbound(customer, business, "Yes")
	if err != nil || m.Body != "Yes" || m.Dropped {
		t.Fatalf("timed out hook: %v %+v", err, m)
	}
	calls := h.emu.WebhookCalls()
	if len(calls) != 1 || calls[0].EventType != "onMessageAdd" || calls[0].Error == "" {
		t.Errorf("calls %+v", calls)
	}

	h.emu.SetAccountWebhooks(WebhookConfiguration{PreURL: svc.url("/fast"), Method: "GET", Filters: []string{"onMessageAdd"}})
	h.emu.SetServiceWebhooks(WebhookConfiguration{PostURL: svc.url("/ignored"), Filters: []string{"onMessageAdded"}})
	if m, err := h.emu.Inbound(rider, business, "On my way"); err != nil || m.Body != "changed" {
		t.Fatalf("account-level hook: %v %+v", err, m)
	}
	h.must(201, "POST", "/v1/Conversations/"+conv+"/Messages", vals("Author", "system", "Body", "a REST write"))
	reqs := svc.requests()
	if len(reqs) != 2 || reqs[1].method != "GET" || reqs[1].path != "/fast" || reqs[1].form.Get("Body") != "On my way" {
		t.Errorf("requests %+v", reqs)
	}
	view, _ := h.emu.Conversation(conv)
	if len(view.Messages) != 3 || view.Messages[2].Body != "a REST write" {
		t.Errorf("messages %+v", view.Messages)
	}

	// With both asking, the service's hook is the one asked; a photo comes as Media.
	h.emu.SetServiceWebhooks(WebhookConfiguration{PreURL: svc.url("/service"), Filters: []string{"onMessageAdd"}})
	m, err = h.emu.InboundMedia(customer, business, "", Attachment{ContentType: "image/jpeg", Filename: "door.jpg", Data: []byte("jpeg")})
	if err != nil {
		t.Fatal(err)
	}
	reqs = svc.requests()
	if last := reqs[len(reqs)-1]; len(reqs) != 3 || last.path != "/service" || last.method != "POST" ||
		last.form.Get("Media") != `[{"Category":"media","ContentType":"image/jpeg","Filename":"door.jpg","Sid":"`+m.Media[0].Sid+`","Size":4}]` {
		t.Errorf("requests %+v", reqs)
	}
}
