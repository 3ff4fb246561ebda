package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/redistest"
)

// balancer stands where Twilio calls the service: it hands each request to the next replica, and to
// the one after when a replica does not answer (killed).
type balancer struct {
	mu       sync.Mutex
	replicas []*replica
	next     atomic.Int64
}

func (lb *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	lb.mu.Lock()
	replicas := append([]*replica(nil), lb.replicas...)
	lb.mu.Unlock()
	first := int(lb.next.Add(1))
	for i := range replicas {
		target := replicas[(first+i)%len(replicas)]
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, target.base+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue // dead: the next one
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		resp.Body.Close()
		return
	}
	http.Error(w, "no replica answered", http.StatusBadGateway)
}

// (d) of the issue: two replicas on Redis; held messages are being sent again when one of them is
// killed with SIGKILL. The other finishes: every rider receives each of the customer's messages once,
// in order — none twice, none lost.
func TestReliabilityKill9DuringResend(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: two replica processes on Redis (go test without -short runs it, as CI does)")
	}
	rs := redistest.Start(t)
	emu, err := emulator.New(emulator.Options{AccountSid: accountSid, AuthToken: authToken, Contents: map[string]string{
		inviteSid: "Hello {{1}}, can {{2}} message you?", nudgeSid: nudgeText, riderOptInSid: "Your customer agreed to chat. Say hello!"}})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(emu)
	t.Cleanup(api.Close)
	lb := &balancer{}
	front := httptest.NewServer(lb)
	t.Cleanup(front.Close)
	env := map[string]string{
		"TWILIO_ACCOUNT_SID": accountSid, "TWILIO_AUTH_TOKEN": authToken, "OPTIN_ADDR": "127.0.0.1:0",
		"OPTIN_TWILIO_API_URL": api.URL, "OPTIN_REDIS_URL": rs.URL(), "OPTIN_PUBLIC_URL": front.URL,
		"OPTIN_ADMIN_TOKENS": adminToken1, "OPTIN_WHATSAPP_NUMBER": business, "OPTIN_INVITE_CONTENT_SID": inviteSid,
		"OPTIN_RIDER_OPTIN_CONTENT_SID": riderOptInSid, "OPTIN_NUDGE_CONTENT_SID": nudgeSid,
		"OPTIN_RECONCILE_INTERVAL": "1s", "OPTIN_CHAT_START_TIMEOUT": "2s", "OPTIN_TWILIO_TIMEOUT": "2s", "OPTIN_LOG_LEVEL": "info",
	}
	a, b := startReplica(t, env), startReplica(t, env)
	lb.replicas = []*replica{a, b}
	call := func(r *replica, method, path, body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, r.base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminToken1)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
		return chatOf(t, string(raw))
	}
	const chats = 20
	cust := func(i int) string { return fmt.Sprintf("whatsapp:+1555061%04d", i) }
	rid := func(i int) string { return fmt.Sprintf("whatsapp:+1555062%04d", i) }
	awaitAll := func(what string, ok func(map[string]any) bool) {
		t.Helper()
		i := 0 // the first chat not yet there
		defer func() {
			if i < chats {
				t.Logf("kill-%02d not there yet", i)
			}
		}()
		poll.Within(t, 2*time.Minute, "every chat "+what, func() bool {
			for i < chats && ok(call(b, "GET", fmt.Sprintf("/v1/chats/kill-%02d", i), "")) {
				i++
			}
			return i == chats
		})
	}
	inbound := func(from, body string) {
		t.Helper()
		if _, err := emu.Inbound(from, business, body); err != nil {
			t.Fatal(err)
		}
	}
	for i := range chats {
		call(a, "POST", "/v1/chats", fmt.Sprintf(`{"id":"kill-%02d","customer":{"address":%q,"name":"Ana"},"rider":{"address":%q,"name":"Bruno"}}`, i, cust(i), rid(i)))
		inbound(cust(i), "Yes")
	}
	awaitAll("connected", func(c map[string]any) bool { return c["state"] == "connected" })
	for i := range chats {
		for k := 1; k <= 3; k++ {
			inbound(cust(i), fmt.Sprintf("chat %d message %d", i, k))
		}
	}
	awaitAll("three held", func(c map[string]any) bool { return held(c, "rider") == 3 })

	// Slow Twilio's message creates so that the re-sends are in flight when a replica dies.
	if err := emu.SetFaults([]emulator.Fault{{Route: "messages.create", Latency: emulator.Duration(150 * time.Millisecond)}}); err != nil {
		t.Fatal(err)
	}
	delivered := func() int {
		n := 0
		for i := range chats {
			for _, e := range emu.Transcript(rid(i)) {
				if e.Direction == "received" && e.Status == "delivered" && strings.HasPrefix(e.Text, "chat ") {
					n++
				}
			}
		}
		return n
	}
	var wg sync.WaitGroup
	for i := range chats {
		wg.Go(func() { inbound(rid(i), "here") })
	}
	defer func() {
		if delivered() < 5 {
			t.Logf("replica a:\n%s", tail(a.out.String(), 20))
		}
	}()
	poll.Within(t, time.Minute, "five re-sends to arrive", func() bool { return delivered() >= 5 })
	a.kill()
	lb.mu.Lock()
	lb.replicas = []*replica{b}
	lb.mu.Unlock()
	t.Logf("killed a replica with SIGKILL after %d of %d re-sends had arrived", delivered(), 3*chats)
	wg.Wait()
	awaitAll("all sent again", func(c map[string]any) bool { return held(c, "rider") == 0 })
	for i := range chats {
		var got []string
		for _, e := range emu.Transcript(rid(i)) {
			if e.Direction == "received" && e.Status == "delivered" && strings.HasPrefix(e.Text, "chat ") {
				got = append(got, e.Text)
			}
		}
		want := []string{fmt.Sprintf("chat %d message 1", i), fmt.Sprintf("chat %d message 2", i), fmt.Sprintf("chat %d message 3", i)}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("rider %d received %q, want each once, in order: %q", i, got, want)
		}
	}
}
