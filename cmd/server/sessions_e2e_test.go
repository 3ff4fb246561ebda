package main

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/redistest"
)

// consoleDo makes one console request with a session cookie, following no redirect.
func consoleDo(t *testing.T, method, target, cookie string, form url.Values) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, target, strings.NewReader(form.Encode()))
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// A console session logged out on one replica is refused by every other, whatever a saved copy of the
// cookie says; another session of the same token, opened on the other replica, lives on.
func TestLogoutEndsTheSessionOnEveryReplica(t *testing.T) {
	rs := redistest.Start(t)
	fake := newTwilio(t, emulator.Options{})
	env := adminEnv(map[string]string{"OPTIN_REDIS_URL": rs.URL()})
	a, b := start(t, fake, env), start(t, fake, env)

	resp := consoleDo(t, "POST", a.base+"/console/login", "", url.Values{"token": {adminToken1}, "next": {"/console/"}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Fatalf("login: %d %v", resp.StatusCode, resp.Cookies())
	}
	cookie := resp.Cookies()[0].Name + "=" + resp.Cookies()[0].Value
	page := consoleDo(t, "GET", b.base+"/console/", cookie, nil)
	var body strings.Builder
	_, _ = io.Copy(&body, page.Body)
	page.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body.String())
	if page.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("the other replica did not take the session: %d", page.StatusCode)
	}
	second := consoleDo(t, "POST", b.base+"/console/login", "", url.Values{"token": {adminToken1}, "next": {"/console/"}})
	second.Body.Close()
	if second.StatusCode != http.StatusSeeOther || len(second.Cookies()) != 1 {
		t.Fatalf("second login: %d", second.StatusCode)
	}
	other := second.Cookies()[0].Name + "=" + second.Cookies()[0].Value
	out := consoleDo(t, "POST", a.base+"/console/logout", cookie, url.Values{"csrf": {m[1]}})
	out.Body.Close()
	if out.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", out.StatusCode)
	}
	for _, s := range []*server{a, b} {
		again := consoleDo(t, "GET", s.base+"/console/?partial=1", cookie, nil)
		again.Body.Close()
		if again.StatusCode != http.StatusUnauthorized {
			t.Errorf("the saved cookie after logout: %d", again.StatusCode)
		}
		still := consoleDo(t, "GET", s.base+"/console/?partial=1", other, nil)
		still.Body.Close()
		if still.StatusCode != http.StatusOK {
			t.Errorf("the other session after the logout: %d", still.StatusCode)
		}
	}
}
