package console

import (
	"strings"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/chat"
)

// The chat page lists the guarded messages — who, when, what kinds, what was done — and when a party
// wrote after the end; never a body.
func TestChatPageListsGuardedMessages(t *testing.T) {
	c := newChat(1, "order-01", chat.StateClosed)
	c.GuardedCount = 3
	c.Guarded = []chat.Guarded{
		{At: t0.Add(time.Second), From: "rider", Kinds: []string{"number"}, Action: "redact"},
		{At: t0.Add(time.Minute), From: "customer", Kinds: []string{"email", "link"}, Action: "block"},
	}
	c.Customer.AfterEndAt = t0.Add(time.Hour)
	h, _ := newConsole(t, &fakeChats{chats: []chat.Chat{c}}, "token-one")
	body := serve(h, "GET", "/console/chats/order-01", nil, login(t, h, "token-one")).Body.String()
	for _, want := range []string{
		`3 in all, the newest 2 listed`,
		`<tr><th scope="row">Rider</th><td><time>2026-11-22 12:00:01</time></td><td>number</td>
      <td class="guard-redact">hidden</td></tr>`,
		`<tr><th scope="row">Customer</th><td><time>2026-11-22 12:01:00</time></td><td>email, link</td>
      <td class="guard-block">blocked, author told</td></tr>`,
		`<li>Customer, last answered <time>2026-11-22 13:00:00</time></li>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("chat page lacks %q", want)
		}
	}
	if strings.Contains(body, "Rider, last answered") {
		t.Error("the rider never wrote after the end")
	}
	// Nothing guarded, nothing after the end: neither section.
	c.Guarded, c.GuardedCount, c.Customer.AfterEndAt = nil, 0, time.Time{}
	h, _ = newConsole(t, &fakeChats{chats: []chat.Chat{c}}, "token-one")
	if body := serve(h, "GET", "/console/chats/order-01", nil, login(t, h, "token-one")).Body.String(); strings.Contains(body, `id="guarded-list"`) || strings.Contains(body, `id="after-end-list"`) {
		t.Error("empty sections shown")
	}
}
