package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// wrongToken is of a token's shape but none of the configured ones: a token rotated out.
const wrongToken = "0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a"

// bearer makes one GET /v1/chats on base with token, sending X-Forwarded-For when xff is not empty,
// and returns the status and Retry-After.
func bearer(t *testing.T, base, token, xff string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/chats", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// A stale script sending a rotated-out token from the operators' address (a NAT, a port-forward) uses
// up that address's failures: its next attempts are 429. The right tokens from the same address still
// pass, on the API and the console alike; every refusal has its access line; the refusal lines name
// the client and no token.
func TestRightTokenPassesWhereAScriptFails(t *testing.T) {
	s, _ := startAPI(t, nil)
	codes := map[int]int{}
	for range 20 {
		code, retry := bearer(t, s.base, wrongToken, "")
		codes[code]++
		if code == http.StatusTooManyRequests && retry == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	if codes[401] != 10 || codes[429] != 10 {
		t.Fatalf("20 wrong tokens: %v, want 10 401s then 10 429s", codes)
	}
	for _, token := range []string{adminToken1, adminToken2} {
		if code, _ := bearer(t, s.base, token, ""); code != http.StatusOK {
			t.Errorf("a right token from the throttled address: %d", code)
		}
	}
	if resp := consoleDo(t, "POST", s.base+"/console/login", "", url.Values{"token": {adminToken1}}); resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Errorf("console login from the throttled address: %d", resp.StatusCode)
	}
	if code, _ := bearer(t, s.base, wrongToken, ""); code != http.StatusTooManyRequests {
		t.Errorf("the wrong token again: %d, want 429", code)
	}
	if resp := consoleDo(t, "POST", s.base+"/console/login", "", url.Values{"token": {wrongToken}}); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a wrong console login from the throttled address: %d, want 429", resp.StatusCode)
	}

	s.stop()
	logs := s.logs.String()
	for status, want := range map[string]int{`"status":401`: 10, `"status":429`: 12} {
		if n := strings.Count(logs, status); n != want {
			t.Errorf("%d access lines with %s, want %d", n, status, want)
		}
	}
	if !regexp.MustCompile(`"client":"127\.0\.0\.1"[^\n]*"message":"admin API authentication refused"`).MatchString(logs) ||
		!regexp.MustCompile(`"client":"127\.0\.0\.1"[^\n]*"message":"console login refused"`).MatchString(logs) {
		t.Error("the refusal lines do not name the client")
	}
	for _, token := range []string{wrongToken, adminToken1, adminToken2} {
		if strings.Contains(logs, token) {
			t.Error("a token is in the log")
		}
	}
}

// OPTIN_TRUST_PROXY_HEADERS is about the webhook's ingress. The admin listener is reached without it,
// so X-Forwarded-For, which its clients set themselves, does not pick their budget: rotating it buys
// no guesses. On the public listener, behind the trusted proxy, it names the client.
func TestForwardedForTrustedOnThePublicListenerOnly(t *testing.T) {
	t.Run("admin listener", func(t *testing.T) {
		s, _ := startAPI(t, map[string]string{"OPTIN_TRUST_PROXY_HEADERS": "true", "OPTIN_ADMIN_ADDR": "127.0.0.1:0"})
		codes := map[int]int{}
		for i := range 20 {
			code, _ := bearer(t, s.admin, wrongToken, fmt.Sprintf("198.51.100.%d", i+1))
			codes[code]++
		}
		if codes[401] != 10 || codes[429] != 10 {
			t.Errorf("20 wrong tokens, each with another X-Forwarded-For: %v, want 10 401s then 10 429s", codes)
		}
		if code, _ := bearer(t, s.admin, adminToken1, "198.51.100.1"); code != http.StatusOK {
			t.Errorf("the right token: %d", code)
		}
	})
	t.Run("public listener", func(t *testing.T) {
		s, _ := startAPI(t, map[string]string{"OPTIN_TRUST_PROXY_HEADERS": "true"})
		for i := range 20 {
			if code, _ := bearer(t, s.base, wrongToken, fmt.Sprintf("203.0.113.7, 198.51.100.%d", i+1)); code != http.StatusUnauthorized {
				t.Fatalf("attempt %d of 20 clients behind the proxy: %d, want 401", i+1, code)
			}
		}
	})
}

// Each console login is a session of its own, even within one second: logging one out leaves the
// others.
func TestEachLoginIsASessionOfItsOwn(t *testing.T) {
	s, _ := startAPI(t, nil)
	var cookies []string
	for range 3 {
		resp := consoleDo(t, "POST", s.base+"/console/login", "", url.Values{"token": {adminToken1}})
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
			t.Fatalf("login: %d", resp.StatusCode)
		}
		c := resp.Cookies()[0].Name + "=" + resp.Cookies()[0].Value
		for _, other := range cookies {
			if c == other {
				t.Fatalf("two logins got the same cookie")
			}
		}
		cookies = append(cookies, c)
	}
	logout(t, s.base, cookies[0])
	for i, c := range cookies {
		want := http.StatusOK
		if i == 0 {
			want = http.StatusUnauthorized
		}
		if resp := consoleDo(t, "GET", s.base+"/console/?partial=1", c, nil); resp.StatusCode != want {
			t.Errorf("session %d after the first logged out: %d, want %d", i+1, resp.StatusCode, want)
		}
	}
}

// logout logs the session of cookie out through base, with the CSRF token of a page of it.
func logout(t *testing.T, base, cookie string) {
	t.Helper()
	page := consoleDo(t, "GET", base+"/console/", cookie, nil)
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
	if page.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("console page: %d", page.StatusCode)
	}
	out := consoleDo(t, "POST", base+"/console/logout", cookie, url.Values{"csrf": {string(m[1])}})
	out.Body.Close()
	if out.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", out.StatusCode)
	}
}

// /metrics on the public listener names no business number: the pairs in use are summed per channel.
// The admin listener's /metrics has them per number.
func TestPublicMetricsNameNoNumber(t *testing.T) {
	for name, extra := range map[string]map[string]string{
		"one listener":   {"OPTIN_WHATSAPP_NUMBERS": poolOf5()},
		"admin listener": {"OPTIN_WHATSAPP_NUMBERS": poolOf5(), "OPTIN_ADMIN_ADDR": "127.0.0.1:0"},
	} {
		t.Run(name, func(t *testing.T) {
			s, _ := startAPI(t, extra)
			admin := *s
			if s.admin != "" {
				admin.base = s.admin
			}
			if code, _, body := admin.api("POST", "/v1/chats", adminToken1, startBody); code != 201 {
				t.Fatalf("start: %d %s", code, body)
			}
			_, _, body := admin.api("GET", "/v1/pools", adminToken1, "")
			var pools struct {
				Pools []struct {
					Numbers []struct {
						Number     string `json:"number"`
						PairsInUse int    `json:"pairs_in_use"`
					} `json:"numbers"`
				} `json:"pools"`
			}
			if err := json.Unmarshal([]byte(body), &pools); err != nil || len(pools.Pools) != 1 {
				t.Fatalf("pools: %s", body)
			}
			inUse := 0
			for _, n := range pools.Pools[0].Numbers {
				inUse += n.PairsInUse
			}
			if inUse == 0 {
				t.Fatalf("no pair in use after a start: %s", body)
			}

			resp, err := http.Get(s.base + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			public, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(public), "+1555") || strings.Contains(string(public), "number=") {
				t.Errorf("the public /metrics names numbers:\n%s", grepLines(string(public), "optin_pool"))
			}
			if got := scrape(t, s.base)["optin_pool_pairs_in_use{channel=whatsapp}"]; got != float64(inUse) {
				t.Errorf("public optin_pool_pairs_in_use{channel=whatsapp} %v, want %d", got, inUse)
			}
			if s.admin == "" {
				return
			}
			full := scrape(t, s.admin)
			for _, n := range pools.Pools[0].Numbers {
				if got := full["optin_pool_pairs_in_use{channel=whatsapp,number="+n.Number+"}"]; got != float64(n.PairsInUse) {
					t.Errorf("admin optin_pool_pairs_in_use of %s: %v, want %d", n.Number, got, n.PairsInUse)
				}
			}
		})
	}
}

// grepLines is the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return strings.Join(out, "\n")
}
