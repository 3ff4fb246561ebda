package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/poll"
)

// TestEndToEndEmulator runs many opt-ins through the emulator, which fires real signed webhooks, while
// a fifth of the REST calls fail (5xx, 429, dropped connections, some after taking effect).
func TestEndToEndEmulator(t *testing.T) {
	const (
		n        = 30
		business = "whatsapp:+15550100000"
		tmpl2    = "HX0000000000000000000000000000e002"
	)
	emu, err := emulator.New(emulator.Options{AccountSid: accountSid, AuthToken: authToken, Seed: 42,
		Contents: map[string]string{tmpl2: riderText}})
	if err != nil {
		t.Fatal(err)
	}
	apiSrv := httptest.NewServer(emu)
	defer apiSrv.Close()
	fake := newFake(t) // unused by the service; start needs one for its defaults
	s := start(t, fake, map[string]string{"OPTIN_TWILIO_API_URL": apiSrv.URL, "OPTIN_RIDER_OPTIN_CONTENT_SID": tmpl2})

	ctx := t.Context()
	api := emulator.NewClient(apiSrv.URL, accountSid, authToken)
	must := func(v string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	convs := make([]string, n)
	for i := range n {
		cust, rider := fmt.Sprintf("whatsapp:+1555020%04d", i), fmt.Sprintf("whatsapp:+1555030%04d", i)
		convs[i] = must(api.CreateConversation(ctx, nil))
		for _, a := range []string{cust, rider} {
			must(api.AddParticipant(ctx, convs[i], a, business))
		}
		must(api.AddWebhook(ctx, convs[i], s.webhookURL(""), []string{"get", "post"}[i%2], "onMessageAdded"))
	}
	if err := emu.SetFaults([]emulator.Fault{
		{Route: "messages.create", Kind: "503", Rate: 0.1},
		{Route: "messages.create", Kind: "drop", Applied: true, Rate: 0.1},
		{Route: "webhooks.list", Kind: "429", Rate: 0.2},
		{Route: "webhooks.delete", Kind: "drop", Rate: 0.2},
	}); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			cust := fmt.Sprintf("whatsapp:+1555020%04d", i)
			if _, err := emu.Inbound(cust, business, "Yes"); err != nil {
				t.Error(err)
			}
			if i%3 == 0 { // a second message a moment later must not opt in again
				if _, err := emu.Inbound(cust, business, "where are you?"); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()

	i := 0 // the first conversation not yet opted in
	defer func() {
		if i < n {
			t.Logf("conversation %s not opted in:\n%s", convs[i], s.logs)
		}
	}()
	poll.Until(t, "every conversation to opt in", func() bool {
		for i < n && riderGot(emu.Transcript(fmt.Sprintf("whatsapp:+1555030%04d", i)), tmpl2) {
			i++
		}
		return i == n
	})
	// Webhook removal may still be retrying; stopping drains every flow.
	_ = emu.SetFaults(nil)
	s.stop()
	if err := emu.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	for i, conv := range convs {
		msgs, err := api.Messages(ctx, conv)
		if err != nil {
			t.Fatal(err)
		}
		steps := map[string]int{}
		for _, m := range msgs {
			var attrs struct {
				OptIn struct{ Step string } `json:"optin"`
			}
			_ = json.Unmarshal([]byte(m.Attributes), &attrs)
			steps[attrs.OptIn.Step]++
			if attrs.OptIn.Step == "rider" && (m.Author != fmt.Sprintf("whatsapp:+1555020%04d", i) || m.ContentSid != tmpl2) {
				t.Errorf("%s rider message %+v", conv, m)
			}
		}
		if steps["wait"] != 1 || steps["rider"] != 1 {
			t.Errorf("%s: %d wait and %d rider messages, want 1 and 1", conv, steps["wait"], steps["rider"])
		}
		if hooks, err := api.Webhooks(ctx, conv); err != nil || len(hooks) != 0 {
			t.Errorf("%s: webhooks left %v %v", conv, hooks, err)
		}
	}
	logs := s.logs.String()
	t.Logf("retries: %d, steps found done after an ambiguous failure: %d", strings.Count(logs, `"message":"retrying"`), strings.Count(logs, "step already done"))
	if !strings.Contains(logs, `"message":"retrying"`) {
		t.Error("no fault was met: the test proves nothing about retries")
	}
	for _, c := range emu.WebhookCalls() {
		if c.Status != 200 {
			t.Errorf("webhook call answered %d %s", c.Status, c.Error)
		}
	}
}

func riderGot(tr []emulator.Entry, contentSid string) bool {
	for _, e := range tr {
		if e.ContentSid == contentSid && e.Status == "delivered" {
			return true
		}
	}
	return false
}
