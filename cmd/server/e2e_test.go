package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/signature"
)

// Message SIDs of Twilio's shape (IM + 32 hex digits).
const (
	msg1 = "IM00000000000000000000000000000001"
	msg2 = "IM00000000000000000000000000000002"
	msg9 = "IM00000000000000000000000000000009"
)

const (
	accountSid = "AC00000000000000000000000000000001"
	authToken  = "e2etoken000000000000000000000001"
	conv       = "CH00000000000000000000000000000001"
	customer   = "whatsapp:+15550001111"
	waitText   = "Great! Just a moment while we connect you…"
	riderText  = "Your customer has agreed to chat to get this delivery sorted. You're now connected. Say hello!"
)

// syncBuffer is the server's stdout, read while it is written.
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

type server struct {
	t    testing.TB
	base string
	// admin is the admin listener's base URL when OPTIN_ADMIN_ADDR is set.
	admin  string
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
	// serving has run's addresses once it serves.
	serving chan listening
}

// envOf is a getenv that reads only m: run sees what the test gives it and nothing of the process.
func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// baseEnv is a valid configuration against fake, with extra on top.
func baseEnv(fake *twilio, extra map[string]string) map[string]string {
	env := map[string]string{
		"TWILIO_ACCOUNT_SID":   accountSid,
		"TWILIO_AUTH_TOKEN":    authToken,
		"OPTIN_ADDR":           "127.0.0.1:0",
		"OPTIN_TWILIO_API_URL": fake.URL,
		"OPTIN_LOG_LEVEL":      "debug",
	}
	maps.Copy(env, extra)
	return env
}

// start runs the real server through run on 127.0.0.1:0 against fake, with env on top of the defaults,
// and returns once it serves.
func start(t *testing.T, fake *twilio, env map[string]string) *server {
	t.Helper()
	return startRun(t, baseEnv(fake, env), "optin-server")
}

// startRun runs run with exactly env and args, and waits for its ready signal.
func startRun(t testing.TB, env map[string]string, args ...string) *server {
	t.Helper()
	return startRunCtx(t, context.Background(), env, args...)
}

// startListening runs the server on a loopback port it knows before the start, so that env (built from
// the base URL) can name it — as OPTIN_PUBLIC_URL must for the emulator to call the service.
func startListening(t *testing.T, env func(base string) map[string]string) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startRunCtx(t, withListener(context.Background(), ln), env("http://"+ln.Addr().String()), "optin-server")
}

func startRunCtx(t testing.TB, parent context.Context, env map[string]string, args ...string) *server {
	t.Helper()
	s := launch(t, parent, env, args...)
	s.awaitServing()
	return s
}

// launch runs run with env and args and returns at once: awaitServing waits for its ready signal.
func launch(t testing.TB, parent context.Context, env map[string]string, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(parent)
	s := &server{t: t, logs: &syncBuffer{}, cancel: cancel, done: make(chan error, 1), serving: make(chan listening, 1)}
	ctx = withReady(ctx, func(l listening) { s.serving <- l })
	go func() { s.done <- run(ctx, args, envOf(env), s.logs, io.Discard) }()
	t.Cleanup(func() { s.stop() })
	return s
}

// awaitServing waits until run serves, and learns its addresses.
func (s *server) awaitServing() {
	s.t.Helper()
	select {
	case l := <-s.serving:
		s.base = "http://" + l.addr
		if l.admin != "" {
			s.admin = "http://" + l.admin
		}
	case err := <-s.done:
		s.done = nil
		s.t.Fatalf("run returned early: %v\n%s", err, s.logs)
	case <-time.After(poll.Deadline):
		s.t.Fatalf("server did not start:\n%s", s.logs)
	}
}

// stop cancels run and waits for it: every accepted flow has then finished.
func (s *server) stop() {
	s.cancel()
	if s.done == nil {
		return
	}
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		s.t.Error("run did not return after cancel")
	}
	s.done = nil
}

func (s *server) webhookURL(query string) string {
	u := s.base + "/webhooks/conversations"
	if query != "" {
		u += "?" + query
	}
	return u
}

func (s *server) send(r *http.Request) (int, string) {
	s.t.Helper()
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func event(msgSid, author string) url.Values {
	return url.Values{
		"AccountSid": {accountSid}, "EventType": {"onMessageAdded"}, "ConversationSid": {conv},
		"MessageSid": {msgSid}, "Author": {author}, "Body": {"Yes"}, "ParticipantSid": {"MB00000000000000000000000000000001"},
		"Index": {"1"}, "Source": {"WHATSAPP"}, "Attributes": {"{}"}, "RetryCount": {"0"},
		"WebhookSid": {"WH00000000000000000000000000000001"}, "WebhookType": {"webhook"},
	}
}

func (s *server) getReq(params url.Values) *http.Request {
	u := s.webhookURL(params.Encode())
	r, _ := http.NewRequest(http.MethodGet, u, nil)
	r.Header.Set("X-Twilio-Signature", signature.Compute(authToken, u, nil))
	return r
}

func (s *server) postReq(params url.Values) *http.Request {
	u := s.webhookURL("")
	r, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(params.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("X-Twilio-Signature", signature.Compute(authToken, u, params))
	return r
}

func (s *server) jsonReq(params url.Values) *http.Request {
	obj := map[string]string{}
	for k := range params {
		obj[k] = params.Get(k)
	}
	body, _ := json.Marshal(obj)
	sum := sha256.Sum256(body)
	u := s.webhookURL("bodySHA256=" + hex.EncodeToString(sum[:]))
	r, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Twilio-Signature", signature.Compute(authToken, u, nil))
	return r
}

// call is a REST request reduced to what the tests compare; concurrent steps arrive in any order.
type call struct {
	Method, Path, Params string
}

func calls(reqs []emulator.Request) []call {
	out := make([]call, 0, len(reqs))
	for _, r := range reqs {
		p := r.Query
		if r.Method == http.MethodPost {
			p = r.Form
		}
		if r.WebhookEnabled != "" {
			p.Set("X-Twilio-Webhook-Enabled(header)", r.WebhookEnabled)
		}
		out = append(out, call{r.Method, r.Path, p.Encode()})
	}
	slices.SortFunc(out, func(a, b call) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return out
}

func form(pairs ...string) string {
	v := url.Values{}
	for i := 0; i < len(pairs); i += 2 {
		v.Add(pairs[i], pairs[i+1]) // a repeated name is a list, as Configuration.Filters
	}
	return v.Encode()
}

func waitCall(trigger string) call {
	return call{"POST", "/v1/Conversations/" + conv + "/Messages",
		form("Body", waitText, "Attributes", `{"optin":{"step":"wait","trigger":"`+trigger+`"}}`)}
}

func riderCall(trigger string) call {
	return call{"POST", "/v1/Conversations/" + conv + "/Messages",
		form("Author", customer, "Body", riderText, "Attributes", `{"optin":{"step":"rider","trigger":"`+trigger+`"}}`)}
}

func listCall(query string) call {
	return call{"GET", "/v1/Conversations/" + conv + "/Webhooks", query}
}

func deleteCall(sid string) call {
	return call{"DELETE", "/v1/Conversations/" + conv + "/Webhooks/" + sid, ""}
}

// fail makes Twilio fail as faults say.
func fail(t testing.TB, fake *twilio, faults ...emulator.Fault) {
	t.Helper()
	if err := fake.SetFaults(faults); err != nil {
		t.Fatal(err)
	}
}

// messagesOf are the messages Twilio holds in the conversation sid, oldest first.
func messagesOf(t testing.TB, fake *twilio, sid string) []emulator.MessageView {
	t.Helper()
	v, ok := fake.Conversation(sid)
	if !ok {
		t.Fatalf("no conversation %s at Twilio", sid)
	}
	return v.Messages
}

func sorted(cs ...call) []call {
	slices.SortFunc(cs, func(a, b call) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return cs
}

// waitFor polls until Twilio has seen n requests; if it gives up, it lists those it saw.
func waitFor(t *testing.T, fake *twilio, n int) {
	t.Helper()
	defer func() {
		if got := fake.Requests(); len(got) < n {
			t.Logf("saw %d REST calls: %+v", len(got), calls(got))
		}
	}()
	poll.Until(t, fmt.Sprintf("%d REST calls", n), func() bool { return len(fake.Requests()) >= n })
}

// waitLogged polls until the service has logged text; if it gives up, it prints the logs.
func waitLogged(t testing.TB, logs *syncBuffer, text string) {
	t.Helper()
	defer func() {
		if !strings.Contains(logs.String(), text) {
			t.Logf("logs:\n%s", logs)
		}
	}()
	poll.Until(t, "the service to log "+text, func() bool { return strings.Contains(logs.String(), text) })
}

func assertCalls(t *testing.T, fake *twilio, want []call) {
	t.Helper()
	got := calls(fake.Requests())
	if !slices.Equal(got, want) {
		t.Errorf("REST calls:\n got %d: %+v\nwant %d: %+v", len(got), got, len(want), want)
	}
}

// twilio is the Twilio the service under test calls: the emulator, on a loopback port. Its request log
// (Requests) is what the tests assert the service's exact REST calls against.
type twilio struct {
	*emulator.Emulator
	URL string
}

// newTwilio serves an emulator with opts (the test account's SID and auth token unless they say
// otherwise) until the test ends.
func newTwilio(t testing.TB, opts emulator.Options) *twilio {
	t.Helper()
	opts.AccountSid = cmp.Or(opts.AccountSid, accountSid)
	opts.AuthToken = cmp.Or(opts.AuthToken, authToken)
	emu, err := emulator.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = emu.Close(context.Background()) })
	return &twilio{Emulator: emu, URL: srv.URL}
}

// newFake is Twilio holding conv, a conversation a platform armed by hand with the given scoped webhooks
// (SIDs, see hook) at publicBase, as the guide's platform arms them.
func newFake(t *testing.T, webhooks ...string) *twilio {
	t.Helper()
	fake := newTwilio(t, emulator.Options{})
	armed(t, fake, conv, webhooks...)
	return fake
}

// armed puts the conversation sid in place at Twilio with the given scoped webhooks (SIDs).
func armed(t *testing.T, fake *twilio, sid string, webhooks ...string) {
	t.Helper()
	seed := emulator.Seed{Sid: sid}
	for _, h := range webhooks {
		seed.Webhooks = append(seed.Webhooks, emulator.SeedWebhook{Sid: h, URL: publicBase + "/webhooks/conversations",
			Method: http.MethodGet, Filters: []string{"onMessageAdded"}})
	}
	if _, err := fake.AddConversation(seed); err != nil {
		t.Fatal(err)
	}
}

// hook is the SID of a scoped webhook: WH and n in 32 digits.
func hook(n int) string { return fmt.Sprintf("WH%032d", n) }

func TestEndToEndWebhookKinds(t *testing.T) {
	for name, build := range map[string]func(*server, url.Values) *http.Request{
		"GET":  (*server).getReq,
		"POST": (*server).postReq,
		"JSON": (*server).jsonReq,
	} {
		t.Run(name, func(t *testing.T) {
			fake := newFake(t, hook(1), hook(2))
			s := start(t, fake, nil)
			if code, body := s.send(build(s, event(msg1, customer))); code != 200 || body != `{"outcome":"accepted"}` {
				t.Fatalf("got %d %s", code, body)
			}
			waitFor(t, fake, 5)
			s.stop()
			assertCalls(t, fake, sorted(waitCall(msg1), riderCall(msg1), listCall("PageSize=5"), deleteCall(hook(1)), deleteCall(hook(2))))
			if v, _ := fake.Conversation(conv); len(v.Webhooks) != 0 {
				t.Errorf("webhooks left: %v", v.Webhooks)
			}
		})
	}
}

func TestEndToEndBadSignatures(t *testing.T) {
	fake := newFake(t, hook(1))
	s := start(t, fake, nil)
	ev := event(msg1, customer)
	unsigned := s.postReq(ev)
	unsigned.Header.Del("X-Twilio-Signature")
	otherToken := s.postReq(ev)
	otherToken.Header.Set("X-Twilio-Signature", signature.Compute("othertoken", s.webhookURL(""), ev))
	otherURL := s.getReq(ev)
	otherURL.Header.Set("X-Twilio-Signature", signature.Compute(authToken, "https://elsewhere.example.com/webhooks/conversations?"+ev.Encode(), nil))
	for name, r := range map[string]*http.Request{"unsigned": unsigned, "other token": otherToken, "other url": otherURL} {
		if code, _ := s.send(r); code != 403 {
			t.Errorf("%s: got %d, want 403", name, code)
		}
	}
	s.stop()
	assertCalls(t, fake, []call{})
	if !strings.Contains(s.logs.String(), `"message":"webhook rejected"`) {
		t.Errorf("rejections not logged:\n%s", s.logs)
	}
}

// Twilio holds at most five scoped webhooks; a conversation seeded with twelve makes the service page.
func TestEndToEndPagedWebhooksAnd404(t *testing.T) {
	var hooks []string
	for i := 1; i <= 12; i++ {
		hooks = append(hooks, hook(i))
	}
	fake := newFake(t, hooks...)
	// The first webhook deleted has vanished between the listing and its deletion.
	fail(t, fake, emulator.Fault{Route: "webhooks.delete", Kind: "404", Code: 20404, Count: 1})
	s := start(t, fake, nil)
	if code, _ := s.send(s.postReq(event(msg1, customer))); code != 200 {
		t.Fatal(code)
	}
	waitFor(t, fake, 2+3+12)
	s.stop()
	want := []call{waitCall(msg1), riderCall(msg1), listCall("PageSize=5"),
		listCall("Page=1&PageSize=5&PageToken=PT1"), listCall("Page=2&PageSize=5&PageToken=PT2")}
	for _, h := range hooks {
		want = append(want, deleteCall(h))
	}
	assertCalls(t, fake, sorted(want...))
	if !strings.Contains(s.logs.String(), `"step":"flow","outcome":"done"`) {
		t.Errorf("flow not done:\n%s", s.logs)
	}
}

func TestEndToEnd429ThenSuccess(t *testing.T) {
	fake := newFake(t, hook(1))
	fail(t, fake, emulator.Fault{Route: "messages.create", Kind: "429", Code: 20429, Count: 1},
		emulator.Fault{Route: "webhooks.list", Kind: "429", Code: 20429, Count: 1})
	s := start(t, fake, nil)
	if code, _ := s.send(s.getReq(event(msg1, customer))); code != 200 {
		t.Fatal(code)
	}
	waitFor(t, fake, 6)
	s.stop()
	got := calls(fake.Requests())
	// One of the two creates met the 429 and was sent again with the same form.
	posts := 0
	for _, c := range got {
		if c.Method == "POST" {
			posts++
		}
	}
	if msgs := messagesOf(t, fake, conv); posts != 3 || len(msgs) != 2 {
		t.Errorf("posts = %d, messages = %+v; want 3 posts and 2 messages", posts, msgs)
	}
	want := []call{waitCall(msg1), riderCall(msg1), listCall("PageSize=5"), listCall("PageSize=5"), deleteCall(hook(1))}
	for _, c := range got {
		if c.Method == "POST" && !slices.Contains(want[:2], c) {
			t.Errorf("unexpected create %+v", c)
		}
	}
	rest := slices.DeleteFunc(got, func(c call) bool { return c.Method == "POST" })
	if !slices.Equal(rest, sorted(want[2:]...)) {
		t.Errorf("other calls = %+v", rest)
	}
}

func TestEndToEndUncertainCreateNotRepeated(t *testing.T) {
	fake := newFake(t)
	// The first create is performed, then the connection drops: the service must look before retrying.
	fail(t, fake, emulator.Fault{Route: "messages.create", Kind: "drop", Applied: true, Count: 1})
	s := start(t, fake, nil)
	if code, _ := s.send(s.postReq(event(msg1, customer))); code != 200 {
		t.Fatal(code)
	}
	waitFor(t, fake, 4)
	s.stop()
	msgs := messagesOf(t, fake, conv)
	if len(msgs) != 2 || msgs[0].Attributes == msgs[1].Attributes {
		t.Errorf("messages = %+v, want one wait and one rider", msgs)
	}
	got := calls(fake.Requests())
	lookups := slices.DeleteFunc(slices.Clone(got), func(c call) bool {
		return c != call{"GET", "/v1/Conversations/" + conv + "/Messages", "Order=desc&PageSize=50"}
	})
	if len(lookups) != 1 {
		t.Errorf("calls = %+v, want exactly one marker lookup", got)
	}
}

func TestEndToEndDuplicateAndConcurrentDeliveries(t *testing.T) {
	fake := newFake(t, hook(1))
	s := start(t, fake, nil)
	var wg sync.WaitGroup
	codes := make(chan string, 40)
	for i := range 40 {
		wg.Go(func() {
			sid := msg1
			if i%4 == 3 {
				sid = msg2 // a second customer message a moment later
			}
			code, body := s.send(s.postReq(event(sid, customer)))
			codes <- fmt.Sprintf("%d %s", code, body)
		})
	}
	wg.Wait()
	close(codes)
	accepted := 0
	for c := range codes {
		if !strings.HasPrefix(c, "200 ") {
			t.Errorf("answer %s", c)
		}
		if c == `200 {"outcome":"accepted"}` {
			accepted++
		}
	}
	if accepted != 1 {
		t.Errorf("accepted %d deliveries, want 1", accepted)
	}
	waitFor(t, fake, 4)
	// A late duplicate and the rider writing after completion change nothing.
	if code, body := s.send(s.getReq(event(msg1, customer))); code != 200 || (body != `{"outcome":"duplicate"}` && !strings.Contains(body, "flow_")) {
		t.Errorf("late duplicate: %d %s", code, body)
	}
	if code, body := s.send(s.getReq(event(msg9, "whatsapp:+15550002222"))); code != 200 || body != `{"outcome":"ignored","reason":"not_customer"}` {
		t.Errorf("rider message: %d %s", code, body)
	}
	s.stop()
	// Either IM1 or IM2 won the claim; every message must name the winner.
	var marker struct {
		OptIn struct{ Trigger string } `json:"optin"`
	}
	if err := json.Unmarshal([]byte(messagesOf(t, fake, conv)[0].Attributes), &marker); err != nil {
		t.Fatal(err)
	}
	trigger := marker.OptIn.Trigger
	assertCalls(t, fake, sorted(waitCall(trigger), riderCall(trigger), listCall("PageSize=5"), deleteCall(hook(1))))
}

func TestEndToEndContentTemplate(t *testing.T) {
	fake := newFake(t)
	s := start(t, fake, map[string]string{
		"OPTIN_RIDER_OPTIN_CONTENT_SID":       "HX00000000000000000000000000000001",
		"OPTIN_RIDER_OPTIN_CONTENT_VARIABLES": `{"1":"Ana"}`,
		"OPTIN_WAIT_MESSAGE":                  "One moment",
	})
	if code, _ := s.send(s.postReq(event(msg1, customer))); code != 200 {
		t.Fatal(code)
	}
	waitFor(t, fake, 3)
	s.stop()
	assertCalls(t, fake, sorted(
		call{"POST", "/v1/Conversations/" + conv + "/Messages", form("Body", "One moment", "Attributes", `{"optin":{"step":"wait","trigger":"IM00000000000000000000000000000001"}}`)},
		call{"POST", "/v1/Conversations/" + conv + "/Messages", form("Author", customer, "ContentSid", "HX00000000000000000000000000000001",
			"ContentVariables", `{"1":"Ana"}`, "Attributes", `{"optin":{"step":"rider","trigger":"IM00000000000000000000000000000001"}}`)},
		listCall("PageSize=5"),
	))
}

func TestEndToEndPublicURLAndAPIKey(t *testing.T) {
	// REST calls are accepted with the API key only: the account's auth token is another.
	fake := newTwilio(t, emulator.Options{AuthToken: "othertoken000000000000000000001", APIKey: "SK00000000000000000000000000000001", APISecret: "apisecret1"})
	armed(t, fake, conv)
	s := start(t, fake, map[string]string{
		// Credentials in the URL (a proxy's basic auth): Twilio signs the URL without them.
		"OPTIN_PUBLIC_URL":  "https://hook:pw0secret@optin.example.com/hooks",
		"TWILIO_API_KEY":    "SK00000000000000000000000000000001",
		"TWILIO_API_SECRET": "apisecret1",
	})
	ev := event(msg1, customer)
	local := s.postReq(ev) // signed for the local URL: wrong behind the public one
	if code, _ := s.send(local); code != 403 {
		t.Errorf("locally signed: got %d, want 403", code)
	}
	r := s.postReq(ev)
	r.Header.Set("X-Twilio-Signature", signature.Compute(authToken, "https://optin.example.com/hooks/webhooks/conversations", ev))
	if code, body := s.send(r); code != 200 {
		t.Fatalf("publicly signed: %d %s", code, body)
	}
	waitFor(t, fake, 3)
	s.stop()
	if n := len(messagesOf(t, fake, conv)); n != 2 {
		t.Errorf("messages = %d, want 2 (API key accepted)", n)
	}
	logs := s.logs.String()
	if !strings.Contains(logs, `"message":"webhook rejected"`) || !strings.Contains(logs, `"signed_url":"https://optin.example.com/hooks/webhooks/conversations"`) {
		t.Errorf("rejection not logged with the URL checked:\n%s", logs)
	}
	for _, secret := range []string{authToken, "apisecret1", "pw0secret", "hook:"} {
		if strings.Contains(logs, secret) {
			t.Errorf("secret %q in logs", secret)
		}
	}
	if !strings.Contains(logs, `"TWILIO_AUTH_TOKEN":"********"`) || !strings.Contains(logs, `"OPTIN_PUBLIC_URL":"https://xxxxx@optin.example.com/hooks"`) {
		t.Errorf("effective config not logged masked:\n%s", logs)
	}
}

func TestEndToEndProbesAndShutdown(t *testing.T) {
	fake := newFake(t)
	s := start(t, fake, nil)
	for _, p := range []string{"/healthz", "/readyz"} {
		r, _ := http.NewRequest(http.MethodGet, s.base+p, nil)
		if code, _ := s.send(r); code != 200 {
			t.Errorf("%s: %d", p, code)
		}
	}
	s.stop()
	if !strings.Contains(s.logs.String(), `"message":"stopped"`) {
		t.Errorf("no clean stop:\n%s", s.logs)
	}
}

// blockingAPI holds every REST call until release is closed, then lets fake answer it.
func blockingAPI(t *testing.T, fake *twilio) (url string, release func()) {
	ch := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-ch:
		case <-r.Context().Done():
			return
		}
		fake.ServeHTTP(w, r)
	}))
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(func() { release(); srv.Close() })
	return srv.URL, release
}

// The answer to Twilio does not wait for Twilio's REST API, and shutdown waits for the flow.
func TestEndToEndAnswersWhileRESTHangsAndDrainsOnShutdown(t *testing.T) {
	fake := newFake(t, hook(1))
	api, release := blockingAPI(t, fake)
	s := start(t, fake, map[string]string{"OPTIN_TWILIO_API_URL": api})
	client := &http.Client{Timeout: 5 * time.Second} // Twilio's webhook budget
	resp, err := client.Do(s.postReq(event(msg1, customer)))
	if err != nil {
		t.Fatalf("webhook not answered within Twilio's 5 s: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(fake.Requests()) != 0 {
		t.Fatalf("status %d with %d REST calls done", resp.StatusCode, len(fake.Requests()))
	}
	s.cancel()
	waitLogged(t, s.logs, `"message":"shutting down"`)
	select {
	case err := <-s.done:
		t.Fatalf("run returned (%v) with a flow in flight", err)
	default:
	}
	release()
	s.stop()
	assertCalls(t, fake, sorted(waitCall(msg1), riderCall(msg1), listCall("PageSize=5"), deleteCall(hook(1))))
}

func TestEndToEndShutdownTimeoutAbandons(t *testing.T) {
	fake := newFake(t, hook(1))
	api, _ := blockingAPI(t, fake)
	s := start(t, fake, map[string]string{"OPTIN_TWILIO_API_URL": api, "OPTIN_SHUTDOWN_TIMEOUT": "200ms"})
	if code, _ := s.send(s.postReq(event(msg1, customer))); code != 200 {
		t.Fatal(code)
	}
	s.stop() // returns nil: exit 0 even when work had to be abandoned
	if !strings.Contains(s.logs.String(), "opt-ins abandoned at shutdown timeout") {
		t.Errorf("abandonment not logged:\n%s", s.logs)
	}
}

// breakingListener accepts until broken, then fails every Accept as a dead socket would.
type breakingListener struct {
	net.Listener
	broken chan struct{}
}

func (l breakingListener) Accept() (net.Conn, error) {
	select {
	case <-l.broken:
		return nil, errors.New("listener broke")
	default:
	}
	return l.Listener.Accept()
}

// When serving fails, run shuts down as on SIGTERM — the queue included — before it returns the error.
func TestServeErrorShutsDownTheQueue(t *testing.T) {
	fake := newFake(t, hook(1))
	api, release := blockingAPI(t, fake)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := breakingListener{Listener: inner, broken: make(chan struct{})}
	ctx, cancel := context.WithCancel(withListener(context.Background(), ln))
	defer cancel()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	env := baseEnv(fake, map[string]string{"OPTIN_TWILIO_API_URL": api, "OPTIN_SHUTDOWN_TIMEOUT": "5s"})
	go func() { done <- run(ctx, []string{"optin-server"}, envOf(env), logs, io.Discard) }()
	s := &server{t: t, base: "http://" + inner.Addr().String(), logs: logs}
	waitLogged(t, logs, `"message":"listening"`)
	if code, _ := s.send(s.postReq(event(msg1, customer))); code != 200 {
		t.Fatal(code)
	}
	close(ln.broken)
	inner.Close() // wakes the Accept in progress
	waitLogged(t, logs, `"message":"shutting down"`)
	select {
	case err := <-done:
		t.Fatalf("run returned (%v) with an opt-in in flight: the queue was not drained", err)
	default:
	}
	release()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "serving") {
			t.Errorf("run = %v, want the serve error", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return")
	}
	for _, want := range []string{`"message":"server failed"`, `"message":"shutting down"`, `"message":"stopped"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s", want)
		}
	}
	assertCalls(t, fake, sorted(waitCall(msg1), riderCall(msg1), listCall("PageSize=5"), deleteCall(hook(1))))
}

// When the admin listener fails, the process stops with a clear error, as when the public one does: an
// API that is gone must not sit behind a healthy-looking webhook.
func TestAdminListenerFailureStopsTheProcess(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := breakingListener{Listener: inner, broken: make(chan struct{})}
	logs := &syncBuffer{}
	done := make(chan error, 1)
	env := baseEnv(newFake(t), adminEnv(map[string]string{"OPTIN_ADMIN_ADDR": "127.0.0.1:0", "OPTIN_ADDR": "127.0.0.1:0"}))
	go func() {
		done <- run(withAdminListener(t.Context(), ln), []string{"optin-server"}, envOf(env), logs, io.Discard)
	}()
	waitLogged(t, logs, `"message":"listening"`)
	close(ln.broken)
	inner.Close()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "serving: admin listener: ") {
			t.Errorf("run = %v, want the admin listener's error", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after its admin listener failed")
	}
	if !strings.Contains(logs.String(), `"message":"server failed"`) {
		t.Error("the failure was not logged")
	}
}
