package main

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// The console's demo phones place calls through the emulator: the rider calls the business number,
// the customer's phone rings showing it, and both threads show the call.
func TestDemoConsolePlacesACall(t *testing.T) {
	out, _ := runDemo(t, map[string]string{"OPTIN_ADDR": "127.0.0.1:0"})
	m := regexp.MustCompile(`The service is at (\S+); its chats API takes the token (\w+)\.`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no service address in:\n%s", out)
	}
	base, token := m[1], m[2]
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string, form url.Values, cookie string) (int, string, *http.Response) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(form.Encode()))
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(body), resp
	}
	if status, _, _ := do("POST", "/console/demo/call", url.Values{}, ""); status != http.StatusUnauthorized {
		t.Errorf("a call without a session: %d", status)
	}
	_, _, resp := do("POST", "/console/login", url.Values{"token": {token}}, "")
	cookie := resp.Cookies()[0].Name + "=" + resp.Cookies()[0].Value
	_, page, _ := do("GET", "/console/demo?chat="+demoChat, nil, cookie)
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if csrf == nil || !strings.Contains(page, `id="call-rider"`) {
		t.Fatalf("no call button or CSRF token:\n%s", page)
	}
	if status, _, _ := do("POST", "/console/demo/call", url.Values{"csrf": {csrf[1]}, "chat": {demoChat}, "as": {"rider"}}, cookie); status != http.StatusSeeOther {
		t.Fatalf("call: %d", status)
	}
	_, page, _ = do("GET", "/console/demo?chat="+demoChat+"&partial=1", nil, cookie)
	rider := page[strings.Index(page, `id="rider-phone"`):]
	customer := page[strings.Index(page, `id="customer-phone"`):strings.Index(page, `id="rider-phone"`)]
	// The story's call (35 s) and the console's (hung up after 20 s of ringing and talking).
	if n := strings.Count(rider, "📞 Called &#43;15550100000: talked"); n != 2 {
		t.Errorf("the rider's thread shows %d calls:\n%s", n, rider)
	}
	if n := strings.Count(customer, "📞 Call from &#43;15550100000: talked"); n != 2 {
		t.Errorf("the customer's thread shows %d calls:\n%s", n, customer)
	}
	if strings.Contains(customer, "15550100002") {
		t.Error("the customer's phone shows the rider's number")
	}
}
