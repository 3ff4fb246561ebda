package emulator

import (
	"errors"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"
)

func TestClient(t *testing.T) {
	const business, customer, rider = "whatsapp:+15550000000", "whatsapp:+15550001111", "whatsapp:+15550002222"
	emu, err := New(Options{AccountSid: sid, AuthToken: token, Contents: map[string]string{"HX0123456789abcdef0123456789abcdef": "Hi {{1}}"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	defer srv.Close()
	ctx := t.Context()
	c := NewClient(srv.URL+"/", sid, token)

	conv, err := c.CreateConversation(ctx, url.Values{"UniqueName": {"order-1"}})
	if err != nil || len(conv) != 34 {
		t.Fatalf("create: %q %v", conv, err)
	}
	var apiErr *APIError
	if _, err := c.CreateConversation(ctx, url.Values{"UniqueName": {"order-1"}}); !errors.As(err, &apiErr) || apiErr.Status != 409 || apiErr.Code != 50353 {
		t.Errorf("duplicate unique name: %v", err)
	}
	for _, a := range []string{customer, rider} {
		if p, err := c.AddParticipant(ctx, conv, a, business); err != nil || p[:2] != "MB" {
			t.Fatalf("participant %q %v", p, err)
		}
	}
	if _, err := c.SendMessage(ctx, conv, url.Values{"Author": {rider}, "ContentSid": {"HX0123456789abcdef0123456789abcdef"}, "ContentVariables": {`{"1":"Ana"}`}}); err != nil {
		t.Fatal(err)
	}
	hook, err := c.AddWebhook(ctx, conv, "http://127.0.0.1:1/hook", "post", "onMessageUpdated")
	if err != nil {
		t.Fatal(err)
	}
	if hooks, err := c.Webhooks(ctx, conv); err != nil || !slices.Equal(hooks, []string{hook}) {
		t.Errorf("webhooks %v %v", hooks, err)
	}
	m, err := c.Inbound(ctx, customer, business, "Yes")
	if err != nil || m.ConversationSid != conv || m.Author != customer || m.Body != "Yes" || m.Index != 1 {
		t.Fatalf("inbound %+v %v", m, err)
	}
	if _, err := c.Inbound(ctx, "whatsapp:+15550009999", business, "?"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("inbound without binding: %v", err)
	}
	msgs, err := c.Messages(ctx, conv)
	if err != nil || len(msgs) != 2 || msgs[0].ContentSid != "HX0123456789abcdef0123456789abcdef" || msgs[1].Sid != m.Sid || msgs[1].Body != "Yes" {
		t.Errorf("messages %+v %v", msgs, err)
	}
	tr, err := c.Transcript(ctx, customer)
	if err != nil || len(tr) != 2 || tr[0].Text != "Hi Ana" || tr[0].Status != "delivered" || tr[1].Direction != "sent" {
		t.Errorf("transcript %+v %v", tr, err)
	}
	if calls, err := c.WebhookCalls(ctx); err != nil || len(calls) != 0 {
		t.Errorf("webhook calls %+v %v", calls, err)
	}

	if err := c.SetFaults(ctx, []Fault{{Route: "conversations.list", Kind: "503", Count: 1}}); err != nil {
		t.Fatal(err)
	}
	if got := emu.Faults(); len(got) != 1 || got[0].Kind != "503" {
		t.Errorf("faults %+v", got)
	}
	if err := c.SetFaults(ctx, []Fault{{Route: "x", Kind: "teapot"}}); !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Errorf("bad fault: %v", err)
	}
	if err := c.SetFaults(ctx, nil); err != nil || len(emu.Faults()) != 0 {
		t.Errorf("clear: %v %+v", err, emu.Faults())
	}

	before := emu.now()
	if err := c.Advance(ctx, 25*time.Hour); err != nil {
		t.Fatal(err)
	}
	if d := emu.now().Sub(before); d < 25*time.Hour || d > 26*time.Hour {
		t.Errorf("clock moved %v", d)
	}
	if _, err := NewClient(srv.URL, sid, "wrong").Webhooks(ctx, conv); !errors.As(err, &apiErr) || apiErr.Status != 401 || apiErr.Code != 20003 {
		t.Errorf("bad credentials: %v", err)
	}
}
