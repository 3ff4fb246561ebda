package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/optinkit/optin/internal/poll"
)

// chromiumPath finds a Chromium to drive. Without one the test is skipped — except in CI, where
// .ci/run installs Debian's and the test must run.
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium on the PATH; .ci/run installs Debian's chromium")
	}
	t.Skip("no Chromium on this machine (apt-get install chromium); CI runs this test")
	return ""
}

// browser starts a headless Chromium for the test, with nothing that reaches beyond the machine.
func browser(t *testing.T) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitJS polls expr in the page until it is true, or fails the test naming what it waited for and
// showing the page. A navigation under way (a form posted) fails an evaluation: it is tried again.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	var ok bool
	var err error
	defer func() {
		if !ok {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
			t.Logf("%s: %v (error %v)\npage:\n%s", expr, ok, err, html)
		}
	}()
	poll.Until(t, what, func() bool {
		ectx, cancel := context.WithTimeout(ctx, time.Second) // one evaluation, not the wait
		defer cancel()
		ok, err = chromedp.Run(ectx, chromedp.Evaluate[bool](expr))
		return err == nil && ok
	})
}

// screenshot saves the page as name: under OPTIN_SCREENSHOTS when set (how docs/img is made),
// otherwise in the test's temporary directory, so that taking one is always exercised.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("OPTIN_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConsole drives the console of the README's first command in a real browser: log in, watch a new
// chat appear, answer "Yes" on the customer's phone, see the rider's template arrive, end the chat.
func TestConsole(t *testing.T) {
	ctx := browser(t)
	out, _ := runDemo(t, map[string]string{"OPTIN_ADDR": "127.0.0.1:0"})
	story := out.String()
	m := regexp.MustCompile(`its chats API takes the token (\w+)\.`).FindStringSubmatch(story)
	b := regexp.MustCompile(`Watch it in a browser: (http://127\.0\.0\.1:\d+)/console/ `).FindStringSubmatch(story)
	if m == nil || b == nil {
		t.Fatalf("no token or console address in:\n%s", story)
	}
	token, base := m[1], b[1]

	t.Run("refused without a session", func(t *testing.T) { consoleRefusals(t, base, token) })

	// Logging in: the console sends the browser to the form first.
	run := func(actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatal(err)
		}
	}
	run(chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.ID("token")))
	location, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(location, base+"/console/login?next=") {
		t.Errorf("without a session the console is at %s", location)
	}
	run(chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Submit(chromedp.ID("token")))
	waitJS(t, ctx, "the demo's chat, connected", `document.querySelector('tr[data-chat="order-1042"] .badge')?.textContent === "connected"`)
	// The inlined stylesheet applies: its hash in the Content-Security-Policy matches.
	waitJS(t, ctx, "the stylesheet", `getComputedStyle(document.querySelector('header')).backgroundColor === "rgb(16, 42, 67)"`)

	// A platform starts a chat: the open list shows it, invited, without a reload.
	run(chromedp.Evaluate[chromedp.Void](`window.stillHere = true`))
	apiCall(t, http.MethodPost, base+"/v1/chats", token,
		`{"id":"order-2001","customer":{"address":"whatsapp:+15550100201","name":"Lea"},"rider":{"address":"`+demoRider+`","name":"Bruno"}}`, http.StatusCreated)
	waitJS(t, ctx, "the new chat, invited", `document.querySelector('tr[data-chat="order-2001"] .badge')?.textContent === "invited"`)
	waitJS(t, ctx, "the counts", `document.querySelector('.n[data-state="invited"]')?.textContent === "1"`)
	waitJS(t, ctx, "the same page", `window.stillHere === true`)
	screenshot(t, ctx, "console-chats.png")

	// The two phones: "Yes" typed on the customer's connects the chat and brings the rider template 2.
	run(chromedp.Navigate(base+"/console/demo?chat=order-2001"), chromedp.WaitVisible(chromedp.ID("customer-phone")),
		chromedp.Evaluate[chromedp.Void](`window.stillHere = true`))
	waitJS(t, ctx, "the invitation on the customer's phone", `document.querySelector('#customer-phone .thread').textContent.includes("Hello Lea, your food delivery is almost there")`)
	run(chromedp.SendKeys(chromedp.ID("say-customer"), "Yes"), chromedp.Click(chromedp.ID("send-customer")))
	waitJS(t, ctx, "the chat, connected", `document.querySelector('#chat-state')?.textContent === "connected"`)
	waitJS(t, ctx, "template 2 on the rider's phone", `document.querySelector('#rider-phone .thread').textContent.includes("Your customer has agreed to chat to get this")`)
	waitJS(t, ctx, "the customer's Yes, sent", `[...document.querySelectorAll('#customer-phone .thread li.sent')].some(li => li.textContent.startsWith("Yes"))`)
	waitJS(t, ctx, "the same page", `window.stillHere === true && document.querySelector('#say-customer').value === ""`)
	run(chromedp.SendKeys(chromedp.ID("say-rider"), "Hi Lea, I am at the gate"), chromedp.Click(chromedp.ID("send-rider")))
	waitJS(t, ctx, "the rider's message on the customer's phone", `[...document.querySelectorAll('#customer-phone .thread li.received')].some(li => li.textContent.startsWith("Hi Lea, I am at the gate"))`)
	screenshot(t, ctx, "console-demo.png")

	// The chat's page, then "End chat".
	run(chromedp.Navigate(base+"/console/chats/order-2001"), chromedp.WaitVisible(chromedp.ID("chat-state")))
	page, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"whatsapp:+1555•••0201", "whatsapp:+1555•••0002", "connected", "invite", "lifecycle_webhook",
		"done · whatsapp:+15550100091, whatsapp:+15550100091"} { // the rider holds …0000 in the demo's first story; …0091, his last, was freed when the second ended
		if !strings.Contains(page, want) {
			t.Errorf("the chat's page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "+15550100201") {
		t.Error("the chat's page shows the customer's whole number")
	}
	screenshot(t, ctx, "console-chat.png")
	// Readable on a phone: at 390 px nothing but a table cell's long SID scrolls sideways.
	for _, path := range []string{"/console/", "/console/chats/order-2001", "/console/demo?chat=order-2001"} {
		run(chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+path), chromedp.WaitVisible(chromedp.ID("live")))
		waitJS(t, ctx, path+" no wider than the phone", `document.documentElement.scrollWidth <= window.innerWidth`)
	}
	run(chromedp.EmulateReset(), chromedp.Navigate(base+"/console/chats/order-2001"), chromedp.WaitVisible(chromedp.ID("chat-state")))
	run(chromedp.Click(chromedp.CSS("button.danger")))
	waitJS(t, ctx, "the chat, closed", `document.querySelector('#chat-state')?.textContent === "closed"`)
	if body := apiCall(t, http.MethodGet, base+"/v1/chats/order-2001", token, "", http.StatusOK); !strings.Contains(body, `"reason":"ended"`) {
		t.Errorf("after End chat the API says %s", body)
	}

	// "Start another delivery": the same rider, a new customer, invited.
	run(chromedp.Navigate(base+"/console/demo"), chromedp.Click(chromedp.ID("start-delivery")))
	waitJS(t, ctx, "the new delivery's phones", `location.search === "?chat=order-1043" && document.querySelector('#chat-state')?.textContent === "invited"`)
	waitJS(t, ctx, "its invitation", `document.querySelector('#customer-phone .thread').textContent.includes("Hello Carla, your food delivery is almost there but Bruno")`)
}

// consoleRefusals checks that nothing of the console answers without a session, and that a post
// without the session's CSRF token, or from another origin, changes nothing.
func consoleRefusals(t *testing.T, base, token string) {
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string, form url.Values, header map[string]string) (int, string, *http.Response) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(form.Encode()))
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(body), resp
	}
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/console/", http.StatusSeeOther},
		{"GET", "/console/chats/order-1042", http.StatusSeeOther},
		{"GET", "/console/pools", http.StatusSeeOther},
		{"GET", "/console/demo", http.StatusSeeOther},
		{"GET", "/console/?partial=1", http.StatusUnauthorized},
		{"GET", "/console/chats/order-1042?partial=1", http.StatusUnauthorized},
		{"POST", "/console/chats/order-1042/end", http.StatusUnauthorized},
		{"POST", "/console/demo/start", http.StatusUnauthorized},
		{"POST", "/console/demo/say", http.StatusUnauthorized},
	} {
		status, body, resp := do(c.method, c.path, url.Values{}, nil)
		if status != c.status || strings.Contains(body, "order-1042</") || strings.Contains(body, "0001") {
			t.Errorf("%s %s without a session: %d %s", c.method, c.path, status, body)
		}
		if status == http.StatusSeeOther && !strings.HasPrefix(resp.Header.Get("Location"), "/console/login?next=") {
			t.Errorf("%s %s redirects to %s", c.method, c.path, resp.Header.Get("Location"))
		}
	}
	// A forged cookie and a wrong token open nothing.
	if status, _, _ := do("GET", "/console/?partial=1", nil, map[string]string{"Cookie": "optin_console=9999999999.AAAA"}); status != http.StatusUnauthorized {
		t.Errorf("forged cookie: %d", status)
	}
	if status, body, resp := do("POST", "/console/login", url.Values{"token": {"not-" + token}}, nil); status != http.StatusUnauthorized || resp.Header.Get("Set-Cookie") != "" || strings.Contains(body, token) {
		t.Errorf("wrong token: %d %v", status, resp.Header)
	}
	// With a session: a post without the CSRF token, or from another site, is refused.
	status, _, resp := do("POST", "/console/login", url.Values{"token": {token}, "next": {"//evil.example/"}}, nil)
	if status != http.StatusSeeOther || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("login: %d, to %s", status, resp.Header.Get("Location"))
	}
	cookie := resp.Cookies()[0]
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/console/" {
		t.Errorf("session cookie %+v", cookie)
	}
	session := map[string]string{"Cookie": cookie.Name + "=" + cookie.Value}
	_, page, _ := do("GET", "/console/chats/order-1042", nil, session)
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if csrf == nil {
		t.Fatalf("no CSRF token on the chat's page:\n%s", page)
	}
	if status, _, _ := do("POST", "/console/chats/order-1042/end", url.Values{}, session); status != http.StatusForbidden {
		t.Errorf("post without the CSRF token: %d", status)
	}
	if status, _, _ := do("POST", "/console/chats/order-1042/end", url.Values{"csrf": {"x" + csrf[1]}}, session); status != http.StatusForbidden {
		t.Errorf("post with a wrong CSRF token: %d", status)
	}
	crossSite := map[string]string{"Cookie": session["Cookie"], "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
	if status, _, _ := do("POST", "/console/chats/order-1042/end", url.Values{"csrf": {csrf[1]}}, crossSite); status != http.StatusForbidden {
		t.Errorf("cross-site post: %d", status)
	}
	if body := apiCall(t, http.MethodGet, base+"/v1/chats/order-1042", token, "", http.StatusOK); !strings.Contains(body, `"state":"connected"`) {
		t.Errorf("a refused post changed the chat: %s", body)
	}
}

// apiCall calls the chats API with the admin token and checks the status.
func apiCall(t *testing.T, method, url, token, body string, status int) string {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, raw)
	}
	return string(raw)
}
