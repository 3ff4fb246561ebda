package console

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/authlimit"
	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/numberpool"
)

// fakeChats holds chats newest first; Get takes an id or a conversation SID.
type fakeChats struct{ chats []chat.Chat }

func (f *fakeChats) Get(_ context.Context, key string) (chat.Chat, error) {
	for _, c := range f.chats {
		if c.ID == key || c.ConversationSid == key {
			return c, nil
		}
	}
	return chat.Chat{}, chat.ErrNotFound
}

func (f *fakeChats) List(_ context.Context, state chat.State, limit int, before int64) ([]chat.Chat, int64, error) {
	var out []chat.Chat
	for _, c := range f.chats {
		if (before == 0 || c.Seq < before) && (state == "" || c.State == state) {
			if len(out) == limit {
				return out, out[len(out)-1].Seq, nil
			}
			out = append(out, c)
		}
	}
	return out, 0, nil
}

func (f *fakeChats) End(ctx context.Context, key string) (chat.Chat, error) { return f.Get(ctx, key) }

type fakePools []numberpool.Usage

func (p fakePools) Usage(context.Context) ([]numberpool.Usage, error) { return p, nil }

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func newChat(seq int64, id string, state chat.State, history ...chat.Transition) chat.Chat {
	return chat.Chat{
		ID: id, Seq: seq, State: state, Mode: chat.ModeOptIn, ConversationSid: "CH" + strings.Repeat("0", 30) + id[len(id)-2:],
		Customer: chat.Party{Address: "whatsapp:+15550100001", ProxyAddress: "whatsapp:+15550100000"},
		Rider:    chat.Party{Address: "+15550100002", ProxyAddress: "+15550100009"},
		History:  history, UpdatedAt: t0,
	}
}

func newConsole(t *testing.T, chats Chats, tokens ...string) (http.Handler, *time.Time) {
	t.Helper()
	now := t0
	h, err := New(Options{Chats: chats, Pools: fakePools{
		{Number: "whatsapp:+15550100000", Channel: "whatsapp", InUse: 3},
		{Number: "whatsapp:+15550100091", Channel: "whatsapp"},
	}, Tokens: tokens, Now: func() time.Time { return now }, Revocations: &revocations{}})
	if err != nil {
		t.Fatal(err)
	}
	return h, &now
}

func serve(h http.Handler, method, target string, form url.Values, cookie string) *httptest.ResponseRecorder {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, target, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func login(t *testing.T, h http.Handler, token string) string {
	t.Helper()
	w := serve(h, "POST", "/console/login", url.Values{"token": {token}, "next": {"/console/pools"}}, "")
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/console/pools" {
		t.Fatalf("login: %d %s", w.Code, w.Header())
	}
	c := w.Result().Cookies()[0]
	return c.Name + "=" + c.Value
}

func TestSummary(t *testing.T) {
	at := func(ago time.Duration) time.Time { return t0.Add(-ago) }
	direct := newChat(1, "order-01", chat.StateConnected, chat.Transition{State: chat.StateConnected, At: at(time.Minute)})
	direct.Mode = chat.ModeDirect
	sum := summarize([]chat.Chat{
		newChat(6, "order-06", chat.StateInvited, chat.Transition{State: chat.StateInvited, At: at(time.Minute)}),
		newChat(5, "order-05", chat.StateConnected, chat.Transition{State: chat.StateConnecting, At: at(10 * time.Minute)}, chat.Transition{State: chat.StateConnected, At: at(9 * time.Minute)}),
		newChat(4, "order-04", chat.StateDeclined, chat.Transition{State: chat.StateDeclined, At: at(30 * time.Minute)}),
		newChat(3, "order-03", chat.StateClosed, chat.Transition{State: chat.StateConnected, At: at(5 * time.Hour)}, chat.Transition{State: chat.StateClosed, At: at(time.Minute)}),
		newChat(2, "order-02", chat.StateDeclined, chat.Transition{State: chat.StateDeclined, At: at(30 * time.Hour)}),
		direct,
	}, t0)
	want := map[chat.State]int{chat.StateInvited: 1, chat.StateConnected: 2, chat.StateDeclined: 2, chat.StateClosed: 1}
	for _, c := range sum.Counts {
		if c.N != want[c.State] {
			t.Errorf("%s: %d, want %d", c.State, c.N, want[c.State])
		}
	}
	if h, d := sum.Rates[0], sum.Rates[1]; h.Agreed != 1 || h.Answered != 2 || h.Percent() != 50 || d.Agreed != 2 || d.Answered != 3 || d.Percent() != 66 {
		t.Errorf("rates %+v", sum.Rates)
	}
}

func TestSessions(t *testing.T) {
	chats := &fakeChats{chats: []chat.Chat{newChat(1, "order-01", chat.StateConnected)}}
	h, now := newConsole(t, chats, "token-one", "token-two")
	cookie := login(t, h, "token-two")
	if w := serve(h, "GET", "/console/pools", nil, cookie); w.Code != 200 || !strings.Contains(w.Body.String(), "2 numbers · 3 pairs in use · 1 numbers free of any pair") {
		t.Fatalf("pools: %d %s", w.Code, w.Body)
	}
	// Tampered, expired, or opened with a token no longer configured: refused.
	tampered := cookie[:len(cookie)-2] + "AA"
	if w := serve(h, "GET", "/console/?partial=1", nil, tampered); w.Code != http.StatusUnauthorized {
		t.Errorf("tampered cookie: %d", w.Code)
	}
	other, _ := newConsole(t, chats, "token-one")
	if w := serve(other, "GET", "/console/?partial=1", nil, cookie); w.Code != http.StatusUnauthorized {
		t.Errorf("cookie of a removed token: %d", w.Code)
	}
	*now = now.Add(sessionTTL)
	if w := serve(h, "GET", "/console/?partial=1", nil, cookie); w.Code != http.StatusUnauthorized {
		t.Errorf("expired cookie: %d", w.Code)
	}
	// A wrong token sets no cookie; logging out clears it.
	if w := serve(h, "POST", "/console/login", url.Values{"token": {"token-three"}}, ""); w.Code != http.StatusUnauthorized || len(w.Result().Cookies()) != 0 {
		t.Errorf("wrong token: %d %v", w.Code, w.Result().Cookies())
	}
	*now = t0
	page := serve(h, "GET", "/console/", nil, cookie).Body.String()
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)[1]
	if w := serve(h, "POST", "/console/logout", url.Values{"csrf": {csrf}}, cookie); w.Code != http.StatusSeeOther || w.Result().Cookies()[0].MaxAge != -1 {
		t.Errorf("logout: %d %v", w.Code, w.Result().Cookies())
	}
	// A saved copy of the cookie no longer works after the logout.
	if w := serve(h, "GET", "/console/?partial=1", nil, cookie); w.Code != http.StatusUnauthorized {
		t.Errorf("cookie after logout: %d", w.Code)
	}
}

// Two logins in the same second, with the same token, are two sessions: logging one out leaves the
// other; a cookie whose id is changed is refused.
func TestEachLoginIsASessionOfItsOwn(t *testing.T) {
	h, _ := newConsole(t, &fakeChats{}, "token-one")
	a, b := login(t, h, "token-one"), login(t, h, "token-one")
	if a == b {
		t.Fatalf("two logins got one cookie: %s", a)
	}
	// "optin_console=expiry.id.mac": b's id under a's mac.
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	if len(pa) != 3 || len(pb) != 3 {
		t.Fatalf("cookies %s, %s", a, b)
	}
	if w := serve(h, "GET", "/console/?partial=1", nil, pa[0]+"."+pb[1]+"."+pa[2]); w.Code != http.StatusUnauthorized {
		t.Errorf("a cookie with another id: %d", w.Code)
	}
	page := serve(h, "GET", "/console/", nil, a).Body.String()
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)[1]
	if w := serve(h, "POST", "/console/logout", url.Values{"csrf": {csrf}}, a); w.Code != http.StatusSeeOther {
		t.Fatalf("logout: %d", w.Code)
	}
	if w := serve(h, "GET", "/console/?partial=1", nil, a); w.Code != http.StatusUnauthorized {
		t.Errorf("the session logged out: %d", w.Code)
	}
	if w := serve(h, "GET", "/console/?partial=1", nil, b); w.Code != http.StatusOK {
		t.Errorf("the other session after the logout: %d", w.Code)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/console/chats/a": "/console/chats/a", "": Prefix, "//evil.example/console/": Prefix,
		"https://evil.example/": Prefix, "/console/\\evil": Prefix, "/v1/chats": Prefix,
		"/console/../../evil": Prefix, "/console/chats/../../v1/chats": Prefix, "/console/chats/../pools": "/console/pools",
		"/console/./chats/a?x=1": "/console/chats/a?x=1", "/console/%2e%2e/evil": Prefix,
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestListSearchAndBadInput(t *testing.T) {
	var chats fakeChats
	for i := 60; i >= 1; i-- {
		state := chat.StateConnected
		if i%2 == 0 {
			state = chat.StateInvited
		}
		chats.chats = append(chats.chats, newChat(int64(i), "order-"+string(rune('A'+i/10))+string(rune('0'+i%10)), state))
	}
	h, _ := newConsole(t, &chats, "token-one")
	cookie := login(t, h, "token-one")
	rows := func(body string) []string {
		var ids []string
		for _, m := range regexp.MustCompile(`data-chat="([^"]+)"`).FindAllStringSubmatch(body, -1) {
			ids = append(ids, m[1])
		}
		return ids
	}
	w := serve(h, "GET", "/console/", nil, cookie)
	if ids := rows(w.Body.String()); len(ids) != listSize || ids[0] != "order-G0" || !strings.Contains(w.Body.String(), "cursor=11") {
		t.Errorf("first page: %v", ids)
	}
	if ids := rows(serve(h, "GET", "/console/?state=connected&cursor=11", nil, cookie).Body.String()); strings.Join(ids, ",") != "order-A9,order-A7,order-A5,order-A3,order-A1" {
		t.Errorf("connected, older: %v", ids)
	}
	sid := chats.chats[3].ConversationSid
	if ids := rows(serve(h, "GET", "/console/?q="+sid, nil, cookie).Body.String()); strings.Join(ids, ",") != chats.chats[3].ID {
		t.Errorf("search by SID: %v", ids)
	}
	if ids := rows(serve(h, "GET", "/console/?q=b&state=invited", nil, cookie).Body.String()); strings.Join(ids, ",") != "order-B8,order-B6,order-B4,order-B2,order-B0" {
		t.Errorf("search by part of an id: %v", ids)
	}
	for _, target := range []string{"/console/?state=happy", "/console/?cursor=-1"} {
		if w := serve(h, "GET", target, nil, cookie); w.Code != http.StatusBadRequest {
			t.Errorf("%s: %d", target, w.Code)
		}
	}
	if w := serve(h, "GET", "/console/chats/nope", nil, cookie); w.Code != http.StatusNotFound {
		t.Errorf("unknown chat: %d", w.Code)
	}
	// Without a Demo the demo's routes do not exist.
	if w := serve(h, "GET", "/console/demo", nil, cookie); w.Code != http.StatusNotFound {
		t.Errorf("demo without a demo: %d", w.Code)
	}
}

// A guessing client is slowed: ten refused logins, then 429 with Retry-After; a right token logs in from
// anywhere, the guesser's address included (a colleague behind the same NAT is not locked out); the
// refusals are logged paced, naming the client, never the guess.
func TestRefusedLoginsAreThrottledAndLoggedPaced(t *testing.T) {
	h, _ := newConsole(t, &fakeChats{}, "token-one")
	var logs strings.Builder
	log := zerolog.New(&logs)
	login := func(from, token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/console/login", strings.NewReader("token="+token))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.RemoteAddr = from + ":40000"
		r = r.WithContext(log.WithContext(r.Context()))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	codes := map[int]int{}
	for range 50 {
		w := login("192.0.2.1", "guess")
		codes[w.Code]++
		if w.Code == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
		if strings.Contains(logs.String(), "guess") {
			t.Fatalf("the guess is in the log: %s", logs.String())
		}
	}
	if codes[http.StatusUnauthorized] != authlimit.DefaultBurst || codes[http.StatusTooManyRequests] != 50-authlimit.DefaultBurst {
		t.Errorf("answers %v, want %d refusals then 429s", codes, authlimit.DefaultBurst)
	}
	for _, from := range []string{"192.0.2.1", "198.51.100.7"} {
		if w := login(from, "token-one"); w.Code != http.StatusSeeOther || len(w.Result().Cookies()) != 1 {
			t.Errorf("right token from %s: %d", from, w.Code)
		}
	}
	if w := login("192.0.2.1", "guess"); w.Code != http.StatusTooManyRequests {
		t.Errorf("a wrong token after the right one: %d, want 429 still", w.Code)
	}
	if n := strings.Count(logs.String(), "console login refused"); n < 1 || n > 6 {
		t.Errorf("%d log lines for 10 refused logins", n)
	}
	if !strings.Contains(logs.String(), `"client":"192.0.2.1"`) {
		t.Errorf("the refusal lines do not name the client: %s", logs.String())
	}
}

// A form over 16 KiB is answered 413, saying so; pages may not be framed, even by old browsers.
func TestOversizedFormAndFraming(t *testing.T) {
	h, _ := newConsole(t, &fakeChats{}, "token-one")
	w := serve(h, "POST", "/console/login", url.Values{"token": {strings.Repeat("x", 20<<10)}}, "")
	if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), "larger than 16 KiB") {
		t.Errorf("oversized login: %d %s", w.Code, w.Body.String())
	}
	if w := serve(h, "GET", "/console/login", nil, ""); w.Header().Get("X-Frame-Options") != "DENY" {
		t.Errorf("X-Frame-Options %q", w.Header().Get("X-Frame-Options"))
	}
}

// revocations is a Revocations in a map.
type revocations struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func (r *revocations) Revoke(_ context.Context, key string, until time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]time.Time{}
	}
	r.m[key] = until
	return nil
}

func (r *revocations) Revoked(_ context.Context, key string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.m[key]
	return ok, nil
}

// A method a console path does not take is 405 naming those it does.
func TestMethodNotAllowedSaysAllow(t *testing.T) {
	h, _ := newConsole(t, &fakeChats{}, "token-one")
	w := serve(h, "PUT", "/console/login", nil, "")
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, POST" {
		t.Errorf("PUT /console/login: %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
}

// A chat page lists what is held for each party, masked to its first characters, and when each was
// nudged; the history says when the customer moved to SMS; parked work is shown.
func TestChatPageShowsHeldMessagesMasked(t *testing.T) {
	c := newChat(1, "order-01", chat.StateConnected, chat.Transition{State: chat.StateInvited, At: t0},
		chat.Transition{State: chat.StateInvited, At: t0.Add(time.Second), Channel: chat.ChannelSMS},
		chat.Transition{State: chat.StateConnected, At: t0.Add(2 * time.Second)})
	c.Rider.Held = []chat.Held{{MessageSid: "IM1", Body: "gate code 4411", HeldAt: t0.Add(3 * time.Second)},
		{MessageSid: "IM2", Body: "I'm in the blue building", HeldAt: t0.Add(4 * time.Second), Sending: true}}
	c.Rider.NudgedAt = t0.Add(5 * time.Second)
	c.Parked = &chat.Parked{At: t0.Add(6 * time.Second), Reason: "fetching a failed message: twilio 503"}
	h, _ := newConsole(t, &fakeChats{chats: []chat.Chat{c}}, "token-one")
	body := serve(h, "GET", "/console/chats/order-01", nil, login(t, h, "token-one")).Body.String()
	for _, want := range []string{
		`id="parked">Work parked since <time>2026-11-22 12:00:06</time>: fetching a failed message: twilio 503 — the upkeep keeps trying.`,
		`<td class="held" id="held-rider">2</td><td><time>2026-11-22 12:00:05</time></td>`,
		`<td class="held" id="held-customer">0</td><td>—</td>`,
		`<th scope="row">Rider</th><td><code>gate…</code></td><td><time>2026-11-22 12:00:03</time></td>`,
		`<code>I&#39;m …</code> · sending`,
		`customer moved to sms <time>2026-11-22 12:00:01</time>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("chat page lacks %q", want)
		}
	}
	for _, secret := range []string{"4411", "blue building"} {
		if strings.Contains(body, secret) {
			t.Errorf("chat page shows %q", secret)
		}
	}
}
