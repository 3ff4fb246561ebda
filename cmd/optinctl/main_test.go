package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/authlimit"
	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/handlers"
	"github.com/optinkit/optin/internal/numberpool"
	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/store/memory"
	"github.com/optinkit/optin/internal/twilioapi"
)

const (
	accountSid = "AC00000000000000000000000000000001"
	authToken  = "token0000000000000000000000000001"
	adminToken = "5d2b8e4f1a7c3e9b6d0f2a4c8e1b3d5f"
)

// apiServer is the real admin API on a real chat service, against the emulator. The webhooks a chat
// arms point at a loopback stand-in for the service's webhook, which answers 200 to what the emulator
// reports (the invitation's delivery).
func apiServer(t *testing.T) (*httptest.Server, *emulator.Emulator) {
	hook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(hook.Close)
	emu, err := emulator.New(emulator.Options{AccountSid: accountSid, AuthToken: authToken})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(emu)
	t.Cleanup(api.Close)
	t.Cleanup(func() { _ = emu.Close(context.Background()) })
	conv, err := twilioapi.New(twilioapi.Options{AccountSid: accountSid, Username: accountSid, Password: authToken, BaseURL: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := numberpool.New("WhatsApp", []string{"whatsapp:+15550100000"}, memory.NewPairs(0))
	if err != nil {
		t.Fatal(err)
	}
	chats, err := chat.NewService(conv, memory.NewChats(time.Hour), chat.Config{WhatsApp: pool,
		WebhookURL: hook.URL + "/webhooks/conversations", InviteContentSid: "HX0000000000000000000000000000a001", DefaultTTL: 4 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h, err := handlers.NewAdminRouter(chats, pool, []string{adminToken}, authlimit.New(authlimit.DefaultBurst, authlimit.DefaultEvery, false), handlers.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, emu
}

func ctl(t *testing.T, env map[string]string, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(t.Context(), append([]string{"optinctl"}, args...), func(k string) string { return env[k] }, strings.NewReader(stdin), &out, io.Discard)
	return out.String(), err
}

func TestStartGetListEnd(t *testing.T) {
	srv, emu := apiServer(t)
	env := map[string]string{"OPTIN_URL": srv.URL, "OPTIN_ADMIN_TOKEN": adminToken}
	out, err := ctl(t, env, "", "start", "-id", "order-1", "-customer", "whatsapp:+15550001111", "-customer-name", "Ana",
		"-rider", "whatsapp:+15550002222", "-ttl", "2h", "-metadata", `{"order":1}`)
	if err != nil {
		t.Fatal(err)
	}
	convs := emu.Conversations()
	if len(convs) != 1 || convs[0].UniqueName != "order-1" {
		t.Fatalf("conversations at Twilio: %+v", convs)
	}
	conv := convs[0].Sid
	for _, want := range []string{"id            order-1", "state         invited", "conversation  " + conv,
		"customer      Ana whatsapp:+15550001111 via whatsapp:+15550100000", "rider         whatsapp:+15550002222 via whatsapp:+15550100000",
		"history       starting ", " → invited ", `metadata      {"order":1}`} {
		if !strings.Contains(out, want) {
			t.Errorf("start output lacks %q:\n%s", want, out)
		}
	}
	if n := len(emu.Requests()); n != 6 {
		t.Errorf("%d REST calls, want the 6 of a start", n)
	}
	// The same start from a file, as JSON for a script: the same chat.
	body := `{"id":"order-1","customer":{"address":"whatsapp:+15550001111","name":"Ana"},"rider":{"address":"whatsapp:+15550002222"},"ttl":"2h","metadata":{"order":1}}`
	out, err = ctl(t, env, body, "-json", "start", "-f", "-")
	if err != nil || !strings.HasPrefix(out, `{"id":"order-1","mode":"optin","conversation_sid":"`+conv+`","state":"invited"`) {
		t.Errorf("start -f -: %v %s", err, out)
	}
	out, err = ctl(t, env, "", "-url", srv.URL, "list", "-state", "invited")
	if err != nil || !strings.Contains(out, "ID       STATE    CONVERSATION") || !strings.Contains(out, "order-1  invited  "+conv) {
		t.Errorf("list: %v\n%s", err, out)
	}
	if out, err = ctl(t, env, "", "get", conv); err != nil || !strings.Contains(out, "order-1") {
		t.Errorf("get by conversation: %v %s", err, out)
	}
	if out, err = ctl(t, env, "", "end", "order-1"); err != nil || !strings.Contains(out, "state         closed (ended)") {
		t.Errorf("end: %v\n%s", err, out)
	}
}

func TestErrorsSayWhatIsWrong(t *testing.T) {
	srv, _ := apiServer(t)
	env := map[string]string{"OPTIN_URL": srv.URL, "OPTIN_ADMIN_TOKEN": adminToken}
	for name, tt := range map[string]struct {
		env  map[string]string
		args []string
		want []string
	}{
		"no token":      {map[string]string{"OPTIN_URL": srv.URL}, []string{"list"}, []string{"OPTIN_ADMIN_TOKEN"}},
		"wrong token":   {env, []string{"-token", "wrong-token-0000000", "list"}, []string{"401 missing or invalid bearer token"}},
		"unknown chat":  {env, []string{"get", "order-9"}, []string{"404 no such chat"}},
		"invalid start": {env, []string{"start", "-id", "bad id", "-customer", "+15550001111", "-rider", "whatsapp:+15550002222"}, []string{"422 invalid request", "id: required", "customer.address: an SMS address needs an SMS pool"}},
		"no command":    {env, nil, []string{"no command"}},
		"bad command":   {env, []string{"fly"}, []string{`unknown command "fly"`}},
	} {
		_, err := ctl(t, tt.env, "", tt.args...)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", name, err, w)
			}
		}
		if strings.Contains(err.Error(), adminToken) {
			t.Errorf("%s: the token is in the error", name)
		}
	}
}

// Help needs nothing configured and succeeds; a command's -h too.
func TestHelpNeedsNothing(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-h"}, "Usage: optinctl"},
		{[]string{"help"}, "Usage: optinctl"},
		{[]string{"start", "-h"}, "-customer"},
		{[]string{"start", "-h"}, "the customer's address: whatsapp:+E164 for WhatsApp, or +E164 for SMS (the service needs OPTIN_SMS_NUMBERS)"},
		{[]string{"start", "-h"}, "the rider's address: whatsapp:+E164 for WhatsApp, or +E164 for SMS (the service needs OPTIN_SMS_NUMBERS)"},
		{[]string{"help"}, "an ADDRESS is whatsapp:+E164 for WhatsApp, or +E164 for SMS"},
		{[]string{"get", "-h"}, "-o"},
		{[]string{"watch", "-h"}, "-every"},
	} {
		var out, errOut bytes.Buffer
		err := run(t.Context(), append([]string{"optinctl"}, tt.args...), func(string) string { return "" }, strings.NewReader(""), &out, &errOut)
		if err != nil {
			t.Errorf("%v: %v", tt.args, err)
		}
		if text := out.String() + errOut.String(); !strings.Contains(text, tt.want) {
			t.Errorf("%v printed %q, want it to name %q", tt.args, text, tt.want)
		}
	}
}

// The server's own OPTIN_ADMIN_TOKENS serves (its first token); -o json prints the API's JSON; a direct
// chat starts with -mode.
func TestServerTokensOutputAndMode(t *testing.T) {
	srv, _ := apiServer(t)
	env := map[string]string{"OPTIN_URL": srv.URL, "OPTIN_ADMIN_TOKENS": " " + adminToken + ",other-token-that-is-not-used-at-all"}
	out, err := ctl(t, env, "", "-o", "json", "start", "-id", "d-1", "-mode", "direct", "-customer", "whatsapp:+15550001111", "-rider", "whatsapp:+15550002222")
	if err != nil || !strings.HasPrefix(out, `{"id":"d-1","mode":"direct"`) || !strings.Contains(out, `"state":"connected"`) {
		t.Errorf("start -mode direct: %v %s", err, out)
	}
	if _, err := ctl(t, env, "", "-o", "yaml", "list"); err == nil || !strings.Contains(err.Error(), "table or json") {
		t.Errorf("-o yaml: %v", err)
	}
}

// Without OPTIN_URL the client talks to where a service with the defaults listens.
func TestDefaultURL(t *testing.T) {
	_, err := ctl(t, map[string]string{"OPTIN_ADMIN_TOKEN": adminToken}, "", "list")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:8080") {
		t.Errorf("no URL: %v", err)
	}
}

// watch prints the state changes that happen while it watches, and only those: a chat's past is not
// replayed as new, and a chat started while watching is printed from its start.
func TestWatch(t *testing.T) {
	srv, _ := apiServer(t)
	var looks atomic.Int32 // lists answered
	counted := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv.Config.Handler.ServeHTTP(w, r)
		if r.Method == http.MethodGet && r.URL.Path == "/v1/chats" {
			looks.Add(1)
		}
	}))
	t.Cleanup(counted.Close)
	env := map[string]string{"OPTIN_URL": counted.URL, "OPTIN_ADMIN_TOKEN": adminToken}
	if _, err := ctl(t, env, "", "start", "-id", "order-1", "-customer", "whatsapp:+15550001111", "-rider", "whatsapp:+15550002222"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"optinctl", "watch", "-every", "100ms"}, func(k string) string { return env[k] }, strings.NewReader(""), out, io.Discard)
	}()
	poll.Until(t, "watch to look", func() bool { return looks.Load() > 0 })
	if _, err := ctl(t, env, "", "end", "order-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl(t, env, "", "start", "-id", "order-2", "-customer", "whatsapp:+15550003333", "-rider", "whatsapp:+15550004444"); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, out, "  order-1  invited → closed (ended)")
	waitOutput(t, out, "  order-2  starting → invited")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("watch: %v", err)
	}
	var got []string
	for line := range strings.Lines(out.String()) {
		_, rest, _ := strings.Cut(strings.TrimSpace(line), "  ") // the time
		got = append(got, rest)
	}
	want := []string{"order-1  invited → closed (ended)", "order-2  starting", "order-2  starting → invited"}
	if !slices.Equal(got, want) {
		t.Errorf("watch printed %q, want %q", got, want)
	}
}

// waitOutput polls until out holds want; if it gives up, it prints out.
func waitOutput(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	defer func() {
		if !strings.Contains(out.String(), want) {
			t.Logf("output:\n%s", out.String())
		}
	}()
	poll.Until(t, fmt.Sprintf("the output to show %q", want), func() bool { return strings.Contains(out.String(), want) })
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// -url, -token, -o and -json are taken after the command and after its id too.
func TestFlagsAfterTheID(t *testing.T) {
	srv, _ := apiServer(t)
	env := map[string]string{"OPTIN_URL": "http://127.0.0.1:1", "OPTIN_ADMIN_TOKEN": "wrong"}
	if _, err := ctl(t, map[string]string{"OPTIN_URL": srv.URL, "OPTIN_ADMIN_TOKEN": adminToken}, "", "start", "-id", "order-1042",
		"-customer", "whatsapp:+15550001111", "-rider", "whatsapp:+15550002222"); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"get", "order-1042", "-o", "json", "-url", srv.URL, "-token", adminToken},
		{"-url", srv.URL, "get", "-json", "order-1042", "-token", adminToken},
		{"list", "-state", "invited", "-o", "json", "-url", srv.URL, "-token", adminToken},
		{"-o", "json", "-url", srv.URL, "-token", adminToken, "get", "--", "order-1042"},
	} {
		out, err := ctl(t, env, "", args...)
		if err != nil || !strings.Contains(out, `{"id":"order-1042","mode":"optin"`) {
			t.Errorf("%v: %v %s", args, err, out)
		}
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "-url", srv.URL}, "get needs a chat id: optinctl get ID"},
		{[]string{"end", "order-1", "order-2", "-url", srv.URL}, "end takes one chat id, not 2: order-1 order-2"},
		{[]string{"list", "invited"}, `list takes flags only, not "invited" (optinctl list -h lists them)`},
		{[]string{"get", "order-1042", "-o", "yaml"}, "-o yaml: want table or json"},
	} {
		if _, err := ctl(t, env, "", tt.args...); err == nil || err.Error() != tt.want {
			t.Errorf("%v: %v, want %q", tt.args, err, tt.want)
		}
	}
	if out, err := ctl(t, map[string]string{"OPTIN_URL": srv.URL, "OPTIN_ADMIN_TOKEN": adminToken}, "", "end", "order-1042", "-json"); err != nil || !strings.Contains(out, `"state":"closed"`) {
		t.Errorf("end ID -json: %v %s", err, out)
	}
}

// A service that cannot be reached is said to be so, at its URL, in plain words; so is a URL that is
// not one.
func TestUnreachableSaysWhere(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	for _, tt := range []struct {
		url, want string
	}{
		{gone.URL, "could not reach the service at " + gone.URL + ": nothing is listening there (connection refused); is it running, and is -url (OPTIN_URL) right?"},
		{"localhost:8080", `-url (or OPTIN_URL) "localhost:8080" is not a URL such as http://127.0.0.1:8080`},
	} {
		_, err := ctl(t, map[string]string{"OPTIN_URL": tt.url, "OPTIN_ADMIN_TOKEN": adminToken}, "", "get", "order-1")
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: %v\nwant %s", tt.url, err, tt.want)
		}
	}
}

// get shows each party's held messages and last nudge, as the API gives them (docs/API.md's example).
func TestGetShowsHeldAndNudged(t *testing.T) {
	const chatJSON = `{"id":"order-8812","mode":"optin","conversation_sid":"CH0123456789abcdef0123456789abcdef","state":"connected","reason":null,
	"customer":{"address":"whatsapp:+15550001111","proxy_address":"whatsapp:+15550100000","name":"Ana","channel":"whatsapp","held":0,"nudged_at":null},
	"rider":{"address":"whatsapp:+15550002222","proxy_address":"whatsapp:+15550100000","name":"Bruno","channel":"whatsapp","held":2,"nudged_at":"2026-11-22T04:24:09.310Z"},
	"created_at":"2026-11-22T04:23:14.627Z","updated_at":"2026-11-22T04:24:02.101Z","expires_at":"2026-11-22T06:23:14.627Z","metadata":{"order":8812},"error":null,
	"history":[{"state":"starting","at":"2026-11-22T04:23:14.627Z"},{"state":"invited","at":"2026-11-22T04:23:15.001Z"},{"state":"connecting","at":"2026-11-22T04:24:01.000Z"},{"state":"connected","at":"2026-11-22T04:24:02.101Z"}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/chats/order-8812" || r.Header.Get("Authorization") != "Bearer "+adminToken {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, chatJSON)
	}))
	t.Cleanup(srv.Close)
	out, err := ctl(t, map[string]string{"OPTIN_URL": srv.URL, "OPTIN_ADMIN_TOKEN": adminToken}, "", "get", "order-8812")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"customer      Ana whatsapp:+15550001111 via whatsapp:+15550100000, 0 held, not nudged\n",
		"rider         Bruno whatsapp:+15550002222 via whatsapp:+15550100000, 2 held, nudged 2026-11-22T04:24:09Z\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("get lacks %q:\n%s", want, out)
		}
	}
}

// A malformed start read from a file is told as the API says it: the field at fault and what is wrong.
func TestMalformedStartNamesTheField(t *testing.T) {
	srv, _ := apiServer(t)
	env := map[string]string{"OPTIN_URL": srv.URL, "OPTIN_ADMIN_TOKEN": adminToken}
	_, err := ctl(t, env, `{"id":"order-1","customer":"whatsapp:+15550001111","rider":{"address":"whatsapp:+15550002222"}}`, "start", "-f", "-")
	if want := "400 malformed request\n  customer: must be an object, not a string"; err == nil || err.Error() != want {
		t.Errorf("%v, want %q", err, want)
	}
}
