package console

import (
	"strings"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/chat"
)

// The chat page lists the parties' calls by role — who called whom, the outcome, how long — and no
// number of theirs.
func TestChatPageListsCalls(t *testing.T) {
	c := newChat(1, "order-01", chat.StateConnected)
	c.Calls = []chat.Call{
		{Sid: "CA1", From: "rider", At: t0.Add(time.Second), Status: "completed", Seconds: 42, EndedAt: t0.Add(43 * time.Second)},
		{Sid: "CA2", From: "customer", At: t0.Add(time.Minute)},
	}
	h, _ := newConsole(t, &fakeChats{chats: []chat.Chat{c}}, "token-one")
	body := serve(h, "GET", "/console/chats/order-01", nil, login(t, h, "token-one")).Body.String()
	for _, want := range []string{
		`<tr><th scope="row">Rider</th><td>Customer</td><td><time>2026-11-22 12:00:01</time></td>
      <td class="call-status">completed</td><td>42 s</td></tr>`,
		`<tr><th scope="row">Customer</th><td>Rider</td><td><time>2026-11-22 12:01:00</time></td>
      <td class="call-status">ringing or talking</td><td>—</td></tr>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("chat page lacks %q", want)
		}
	}
	i := strings.Index(body, `id="call-list"`)
	if i < 0 {
		t.Fatal("no call list")
	}
	if list := body[i : i+strings.Index(body[i:], "</table>")]; strings.Contains(list, "+1555") || strings.Contains(list, "CA1") {
		t.Errorf("the call list names a number or a SID:\n%s", list)
	}
	// A chat without calls has no call list.
	c.Calls = nil
	h, _ = newConsole(t, &fakeChats{chats: []chat.Chat{c}}, "token-one")
	if body := serve(h, "GET", "/console/chats/order-01", nil, login(t, h, "token-one")).Body.String(); strings.Contains(body, `id="call-list"`) {
		t.Error("a call list without calls")
	}
}
