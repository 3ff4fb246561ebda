package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/redistest"
)

// emulatorReplicas runs n replicas with the chats API (env on top) against one emulator that calls
// each back at its own URL; the invitation template reads "Hello {{1}}, can {{2}} message you?".
func emulatorReplicas(t *testing.T, n int, env map[string]string) ([]*server, *emulator.Emulator) {
	t.Helper()
	emu, err := emulator.New(emulator.Options{AccountSid: accountSid, AuthToken: authToken,
		Contents: map[string]string{inviteSid: "Hello {{1}}, can {{2}} message you?"}})
	if err != nil {
		t.Fatal(err)
	}
	apiSrv := httptest.NewServer(emu)
	t.Cleanup(apiSrv.Close)
	t.Cleanup(func() { _ = emu.Close(context.Background()) })
	var out []*server
	for range n {
		out = append(out, startListening(t, func(base string) map[string]string {
			e := adminEnv(map[string]string{"OPTIN_PUBLIC_URL": base, "OPTIN_TWILIO_API_URL": apiSrv.URL})
			maps.Copy(e, env)
			return baseEnv(newFake(t), e)
		}))
	}
	return out, emu
}

// raceRound is one chat whose DELETE races its POST.
type raceRound struct {
	id               string
	postCode, delete int
	postBody         string
}

// raceStartAndEnd starts rounds chats, each POSTed to one replica and DELETEd on another 0–15 ms later,
// then checks what the issue asks: no chat in a final state has an active conversation with
// participants at Twilio, none holds a number, and no start answered 201 with a chat that was ended.
func raceStartAndEnd(t *testing.T, replicas []*server, emu *emulator.Emulator, rounds int) {
	t.Helper()
	results := make([]raceRound, rounds)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range rounds {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r := &results[i]
			r.id = fmt.Sprintf("race-%03d", i)
			body := fmt.Sprintf(`{"id":%q,"customer":{"address":"whatsapp:+1555100%04d","name":"Ana"},"rider":{"address":"whatsapp:+1555200%04d","name":"Bruno"}}`, r.id, i, i)
			post, del := replicas[i%len(replicas)], replicas[(i+1)%len(replicas)]
			var inner sync.WaitGroup
			inner.Go(func() { r.postCode, _, r.postBody = post.api("POST", "/v1/chats", adminToken1, body) })
			// The end comes 0–15 ms after the start: before the chat exists, during its steps, or after.
			time.Sleep(time.Duration(rand.IntN(15000)) * time.Microsecond)
			inner.Go(func() { r.delete, _, _ = del.api("DELETE", "/v1/chats/"+r.id, adminToken1, "") })
			inner.Wait()
		})
	}
	wg.Wait()

	tally := map[string]int{}
	for _, r := range results {
		tally[fmt.Sprintf("POST %d, DELETE %d", r.postCode, r.delete)]++
		switch r.postCode {
		case 201:
			if c := chatOf(t, r.postBody); c["state"] != "invited" {
				t.Errorf("%s: 201 with a chat %v", r.id, c["state"])
			}
		case 409:
			if !strings.Contains(r.postBody, "problem-ended-during-start") {
				t.Errorf("%s: 409 %s", r.id, r.postBody)
			}
		case 503:
		default:
			t.Errorf("%s: POST answered %d %s", r.id, r.postCode, r.postBody)
		}
		if r.delete != 200 && r.delete != 404 && r.delete != 503 {
			t.Errorf("%s: DELETE answered %d", r.id, r.delete)
		}
	}
	t.Logf("outcomes over %d rounds: %v", rounds, tally)

	// A DELETE that came before the chat existed (404) is repeated, as a platform would.
	for _, r := range results {
		if r.delete == 404 && r.postCode == 201 {
			if code, _, body := replicas[0].api("DELETE", "/v1/chats/"+r.id, adminToken1, ""); code != 200 {
				t.Errorf("%s: second DELETE %d %s", r.id, code, body)
			}
		}
	}
	// Every chat ends closed, the reconciler finishing what a 503 left recorded.
	pending, code, body := 0, 0, "" // the first chat not yet closed, and what it answered
	defer func() {
		if pending < len(results) {
			t.Logf("%s not closed: %d %s", results[pending].id, code, body)
		}
	}()
	poll.Until(t, "every chat to close", func() bool {
		for ; pending < len(results); pending++ {
			code, _, body = replicas[0].api("GET", "/v1/chats/"+results[pending].id, adminToken1, "")
			if code != 404 && (code != 200 || chatOf(t, body)["state"] != "closed") {
				return false
			}
		}
		return true
	})
	for _, v := range emu.Conversations() {
		if v.State != "closed" && len(v.Participants) > 0 {
			t.Errorf("conversation %s of %s is %s with participants %v", v.Sid, v.UniqueName, v.State, v.Participants)
		}
	}
	if _, _, pools := replicas[0].api("GET", "/v1/pools", adminToken1, ""); !strings.Contains(pools, `"pairs_in_use":0`) || strings.Contains(pools, `"pairs_in_use":1`) {
		t.Errorf("numbers still held after every chat ended: %s", pools)
	}
}

// DELETE racing POST on one replica, the emulator slowed on the create, then on a participant.
func TestEndRacesStartOnOneReplica(t *testing.T) {
	for _, route := range []string{"conversations.create", "participants.create"} {
		t.Run(route, func(t *testing.T) {
			replicas, emu := emulatorReplicas(t, 1, map[string]string{"OPTIN_RECONCILE_INTERVAL": "1s", "OPTIN_TWILIO_CREATE_RATE": "1000"})
			if err := emu.SetFaults([]emulator.Fault{{Route: route, Latency: emulator.Duration(5 * time.Millisecond)}}); err != nil {
				t.Fatal(err)
			}
			raceStartAndEnd(t, replicas, emu, 200)
		})
	}
}

// The same across two replicas on one Redis: the POST to one, the DELETE to the other.
func TestEndRacesStartAcrossTwoReplicas(t *testing.T) {
	for _, route := range []string{"conversations.create", "participants.create"} {
		t.Run(route, func(t *testing.T) {
			rs := redistest.Start(t)
			replicas, emu := emulatorReplicas(t, 2, map[string]string{"OPTIN_RECONCILE_INTERVAL": "1s", "OPTIN_TWILIO_CREATE_RATE": "1000", "OPTIN_REDIS_URL": rs.URL()})
			if err := emu.SetFaults([]emulator.Fault{{Route: route, Latency: emulator.Duration(5 * time.Millisecond)}}); err != nil {
				t.Fatal(err)
			}
			raceStartAndEnd(t, replicas, emu, 200)
		})
	}
}

// A declined chat stays declined, a failed one failed, whenever a report of the close arrives and
// however often (Twilio does not report the service's own close, nor does the emulator; a close by
// someone else, or a delayed delivery, is reported — here sent late, twice).
func TestLateCloseReportChangesNothing(t *testing.T) {
	replicas, emu := emulatorReplicas(t, 1, nil)
	s := replicas[0]
	if code, _, p := s.api("POST", "/v1/chats", adminToken1, fmt.Sprintf(`{"id":"o-1","customer":{"address":%q,"name":"Ana"},"rider":{"address":%q,"name":"Bruno"}}`, customer, rider)); code != 201 {
		t.Fatalf("start: %d %s", code, p)
	}
	if _, err := emu.Inbound(customer, business, "No thanks"); err != nil {
		t.Fatal(err)
	}
	c := s.waitChat("o-1", "declined")
	if states(c) != "starting,invited,declined" || c["reason"] != "declined" {
		t.Errorf("declined chat %s %v", states(c), c["reason"])
	}
	conv := c["conversation_sid"].(string)
	if v, _ := emu.Conversation(conv); v.State != "closed" {
		t.Errorf("conversation %s", v.State)
	}
	// Twilio's report again, late, twice: the chat stays declined.
	for range 2 {
		ev := closedReport(conv, "TIMER")
		if code, body := s.send(s.postReq(ev)); code != 200 || body != `{"outcome":"accepted"}` {
			t.Fatalf("report: %d %s", code, body)
		}
	}
	if c := s.waitChat("o-1", "declined"); states(c) != "starting,invited,declined" {
		t.Errorf("after late reports: %s", states(c))
	}

	// A start Twilio refuses at a participant fails, and stays failed.
	if err := emu.SetFaults([]emulator.Fault{{Route: "participants.create", Kind: "400", Count: 1}}); err != nil {
		t.Fatal(err)
	}
	code, _, p := s.api("POST", "/v1/chats", adminToken1, fmt.Sprintf(`{"id":"o-2","customer":{"address":%q},"rider":{"address":%q}}`, customer, rider))
	if code != 409 || !strings.Contains(p, "problem-twilio-refused") {
		t.Fatalf("refused start: %d %s", code, p)
	}
	c = s.waitChat("o-2", "failed")
	if states(c) != "starting,failed" {
		t.Errorf("failed chat %s", states(c))
	}
	if code, _ := s.send(s.postReq(closedReport(c["conversation_sid"].(string), "API"))); code != 200 {
		t.Fatal(code)
	}
	if c := s.waitChat("o-2", "failed"); states(c) != "starting,failed" {
		t.Errorf("after a late report: %s", states(c))
	}
}

// closedReport is Twilio's onConversationStateUpdated for a conversation closed by reason.
func closedReport(conv, reason string) url.Values {
	return url.Values{"EventType": {"onConversationStateUpdated"}, "ConversationSid": {conv},
		"StateFrom": {"active"}, "StateTo": {"closed"}, "Reason": {reason}, "AccountSid": {accountSid}}
}

// A close Twilio never reports (the lifecycle webhook gone, a delivery lost) is found by the
// reconciler within its interval, and the chat's numbers are freed.
func TestLostCloseIsReconciled(t *testing.T) {
	replicas, emu := emulatorReplicas(t, 1, map[string]string{"OPTIN_RECONCILE_INTERVAL": "1s", "OPTIN_TWILIO_CREATE_RATE": "1000"})
	s := replicas[0]
	code, _, p := s.api("POST", "/v1/chats", adminToken1, fmt.Sprintf(`{"id":"o-1","customer":{"address":%q},"rider":{"address":%q}}`, customer, rider))
	if code != 201 {
		t.Fatalf("start: %d %s", code, p)
	}
	conv := chatOf(t, p)["conversation_sid"].(string)
	v, _ := emu.Conversation(conv)
	for _, wh := range v.Webhooks {
		if err := emu.RemoveWebhook(conv, wh); err != nil {
			t.Fatal(err)
		}
	}
	if err := emu.CloseConversation(conv, "TIMER"); err != nil {
		t.Fatal(err)
	}
	c := s.waitChat("o-1", "closed")
	if c["reason"] != "expired" || states(c) != "starting,invited,closed" {
		t.Errorf("reconciled chat %v %s", c["reason"], states(c))
	}
	if _, _, pools := s.api("GET", "/v1/pools", adminToken1, ""); !strings.Contains(pools, `"pairs_in_use":0`) {
		t.Errorf("numbers still held: %s", pools)
	}
	// The count follows the reconcile's end, which may come just after the chat reads closed.
	reconciled := func() float64 { return scrape(t, s.base)["optin_chats_reconciled_total{outcome=closed}"] }
	poll.Until(t, "optin_chats_reconciled_total{outcome=closed} to count the chat", func() bool { return reconciled() >= 1 })
	if n := reconciled(); n != 1 {
		t.Errorf("optin_chats_reconciled_total{outcome=closed} = %v, want 1", n)
	}
}

// An event whose queueing failed after its transition was written still reaches the platform: the
// outbox sweep hands it over again.
func TestEventArrivesAfterItsQueueingFailed(t *testing.T) {
	p := newPlatform(t, "order-8812")
	var failing atomic.Bool
	failing.Store(true)
	fault := func() error {
		if failing.Load() {
			return errors.New("queue unavailable")
		}
		return nil
	}
	fake := newFake(t)
	s := startRunCtx(t, withNotifyFault(context.Background(), fault), baseEnv(fake, adminEnv(map[string]string{
		"OPTIN_CALLBACK_URL": p.srv.URL + "/hooks/optin", "OPTIN_CALLBACK_SECRET": callbackSecret, "OPTIN_RECONCILE_INTERVAL": "1s"})), "optin-server")
	if code, _, body := s.api("POST", "/v1/chats", adminToken1, startBody); code != 201 {
		t.Fatalf("start: %d %s", code, body)
	}
	failing.Store(false)
	if got := p.waitFor(1); got[0].Type != "chat.invited" {
		t.Errorf("event %+v", got[0])
	}
	if logs := s.logs.String(); !strings.Contains(logs, "queueing a chat event; the outbox sweep will") {
		t.Error("the failed queueing was not logged")
	}
	poll.Until(t, "optin_outbox_resent_total to count the resend", func() bool { return scrape(t, s.base)["optin_outbox_resent_total{}"] >= 1 })
}

// The customer's answer, the platform's end, Twilio's timer and the reconciler on two replicas sharing
// Redis, at once: whichever wins, every chat ends final with its conversation closed and its numbers
// free — and a chat declined stays declined.
func TestReplyRacesEndAcrossTwoReplicas(t *testing.T) {
	rs := redistest.Start(t)
	replicas, emu := emulatorReplicas(t, 2, map[string]string{"OPTIN_RECONCILE_INTERVAL": "1s",
		"OPTIN_TWILIO_CREATE_RATE": "1000", "OPTIN_REDIS_URL": rs.URL()})
	const chats = 40
	cust := func(i int) string { return fmt.Sprintf("whatsapp:+1555300%04d", i) }
	convs := make([]string, chats)
	for i := range chats {
		body := fmt.Sprintf(`{"id":"reply-%02d","customer":{"address":%q,"name":"Ana"},"rider":{"address":"whatsapp:+1555400%04d","name":"Bruno"}}`, i, cust(i), i)
		code, _, p := replicas[i%2].api("POST", "/v1/chats", adminToken1, body)
		if code != 201 {
			t.Fatalf("start %d: %d %s", i, code, p)
		}
		convs[i] = chatOf(t, p)["conversation_sid"].(string)
	}
	var wg sync.WaitGroup
	for i := range chats {
		answer := []string{"Yes", "No thanks"}[i%2]
		wg.Go(func() {
			// The conversation may already be closed (the end, or Twilio's timer, came first).
			if _, err := emu.Inbound(cust(i), business, answer); err != nil && !errors.Is(err, emulator.ErrNoBinding) {
				t.Error(err)
			}
		})
		if i%3 == 2 {
			// Twilio's timer closes a third of them at the same time, reported to the service.
			wg.Go(func() {
				time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
				if err := emu.CloseConversation(convs[i], "TIMER"); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Go(func() {
			time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
			if code, _, body := replicas[(i+1)%2].api("DELETE", fmt.Sprintf("/v1/chats/reply-%02d", i), adminToken1, ""); code != 200 && code != 503 {
				t.Errorf("end %d: %d %s", i, code, body)
			}
		})
	}
	wg.Wait()
	tally := map[string]int{}
	i, body := 0, "" // the first chat not yet ended, and its view
	defer func() {
		if i < chats {
			t.Logf("reply-%02d not ended: %s", i, body)
		}
	}()
	poll.Until(t, "every chat to end", func() bool {
		for ; i < chats; i++ {
			_, _, body = replicas[i%2].api("GET", fmt.Sprintf("/v1/chats/reply-%02d", i), adminToken1, "")
			c := chatOf(t, body)
			st := c["state"].(string)
			if st != "closed" && st != "declined" {
				return false
			}
			tally[st+" "+states(c)]++
			if st == "declined" && i%2 == 0 {
				t.Errorf("reply-%02d said yes and was declined", i)
			}
		}
		return true
	})
	t.Logf("outcomes: %v", tally)
	for _, v := range emu.Conversations() {
		if v.State != "closed" {
			t.Errorf("conversation of %s is %s", v.UniqueName, v.State)
		}
	}
	if _, _, pools := replicas[0].api("GET", "/v1/pools", adminToken1, ""); !strings.Contains(pools, `"pairs_in_use":0`) {
		t.Errorf("numbers still held: %s", pools)
	}
}
