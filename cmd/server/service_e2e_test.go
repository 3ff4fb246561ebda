package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/optinkit/optin/emulator"
)

// pathRecorder records the method and path of every request on its way to next.
type pathRecorder struct {
	next  http.Handler
	mu    sync.Mutex
	paths []string
}

func (p *pathRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.paths = append(p.paths, r.Method+" "+r.URL.Path)
	p.mu.Unlock()
	p.next.ServeHTTP(w, r)
}

func (p *pathRecorder) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.paths...)
}

// With OPTIN_CONVERSATIONS_SERVICE_SID, a whole chat — start, the customer's yes, the rider's opt-in,
// the end — is made in that Conversation Service: every REST call of the service goes under
// /v1/Services/{IS}/Conversations, and the emulator's webhooks reach the service as before.
func TestChatInConversationsService(t *testing.T) {
	const tmpl2 = "HX0000000000000000000000000000e002"
	service := "IS" + accountSid[2:] // the emulator's one service
	emu, err := emulator.New(emulator.Options{AccountSid: accountSid, AuthToken: authToken,
		Contents: map[string]string{inviteSid: "Hello {{1}}, {{2}} needs help finding your door. Chat?", tmpl2: riderText}})
	if err != nil {
		t.Fatal(err)
	}
	rec := &pathRecorder{next: emu}
	apiSrv := httptest.NewServer(rec)
	t.Cleanup(apiSrv.Close)
	t.Cleanup(func() { _ = emu.Close(context.Background()) })
	s := startListening(t, func(base string) map[string]string {
		return baseEnv(newFake(t), adminEnv(map[string]string{"OPTIN_PUBLIC_URL": base, "OPTIN_TWILIO_API_URL": apiSrv.URL,
			"OPTIN_RIDER_OPTIN_CONTENT_SID": tmpl2, "OPTIN_CONVERSATIONS_SERVICE_SID": service}))
	})
	code, _, body := s.api("POST", "/v1/chats", adminToken1, `{"id":"order-1","customer":{"address":"whatsapp:+15550001111","name":"Ana"},"rider":{"address":"whatsapp:+15550002222","name":"Bruno"}}`)
	if code != 201 {
		t.Fatalf("start: %d %s", code, body)
	}
	conv := chatOf(t, body)["conversation_sid"].(string)
	if _, err := emu.Inbound(customer, business, "Yes"); err != nil {
		t.Fatal(err)
	}
	s.waitChat("order-1", "connected")
	if code, _, body := s.api("DELETE", "/v1/chats/order-1", adminToken1, ""); code != 200 {
		t.Fatalf("end: %d %s", code, body)
	}
	prefix := "/v1/Services/" + service + "/Conversations"
	var created, closed bool
	for _, p := range rec.all() {
		method, path, _ := strings.Cut(p, " ")
		if !strings.HasPrefix(path, prefix) {
			t.Errorf("%s: not in the service", p)
		}
		created = created || (method == "POST" && path == prefix)
		closed = closed || (method == "POST" && path == prefix+"/"+conv)
	}
	if !created || !closed {
		t.Errorf("created %v, closed %v in the service: %q", created, closed, rec.all())
	}
	for _, call := range emu.WebhookCalls() {
		if call.Status != 200 {
			t.Errorf("webhook answered %d: %+v", call.Status, call)
		}
	}
}
