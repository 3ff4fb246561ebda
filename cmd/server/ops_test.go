package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/optinkit/optin/internal/signature"
)

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"optin-server", "version"}, envOf(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "optin-server dev (commit ") || !strings.Contains(out.String(), "go1.") {
		t.Errorf("version = %q", out.String())
	}
}

func TestHealthcheck(t *testing.T) {
	s := start(t, newFake(t), nil)
	if err := run(t.Context(), []string{"optin-server", "healthcheck", "-url", s.base + "/healthz"}, envOf(nil), io.Discard, io.Discard); err != nil {
		t.Errorf("healthy server: %v", err)
	}
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }))
	defer down.Close()
	if err := run(t.Context(), []string{"optin-server", "healthcheck", "-url", down.URL}, envOf(nil), io.Discard, io.Discard); err == nil {
		t.Error("503 counted as healthy")
	}
	down.Close()
	if err := run(t.Context(), []string{"optin-server", "healthcheck", "-url", down.URL}, envOf(nil), io.Discard, io.Discard); err == nil {
		t.Error("refused connection counted as healthy")
	}
	for addr, want := range map[string]string{
		"":               "http://127.0.0.1:8080/healthz",
		":8080":          "http://127.0.0.1:8080/healthz",
		"0.0.0.0:9000":   "http://127.0.0.1:9000/healthz",
		"127.0.0.2:7000": "http://127.0.0.2:7000/healthz",
		"[::1]:8081":     "http://[::1]:8081/healthz",
	} {
		if got := defaultHealthURL(addr); got != want {
			t.Errorf("defaultHealthURL(%q) = %q, want %q", addr, got, want)
		}
	}
}

// While Twilio promotes the secondary token, signatures made with either token are accepted.
func TestTokenRotation(t *testing.T) {
	fake := newFake(t)
	const secondary = "secondarytoken000000000000000002"
	s := start(t, fake, map[string]string{"TWILIO_AUTH_TOKEN_SECONDARY": secondary})
	for i, tok := range []string{secondary, authToken, "othertoken"} {
		ev := event(fmt.Sprintf("IM%032d", i+1), customer)
		r := s.postReq(ev)
		r.Header.Set("X-Twilio-Signature", signature.Compute(tok, s.webhookURL(""), ev))
		want := 200
		if tok == "othertoken" {
			want = 403
		}
		if code, _ := s.send(r); code != want {
			t.Errorf("signed with token %d: %d, want %d", i, code, want)
		}
	}
	s.stop()
	if strings.Contains(s.logs.String(), secondary) {
		t.Error("secondary token in logs")
	}
	if !strings.Contains(s.logs.String(), `"TWILIO_AUTH_TOKEN_SECONDARY":"********"`) {
		t.Error("secondary token not logged masked")
	}
}

func TestPprofOnLoopbackOnly(t *testing.T) {
	s := start(t, newFake(t), map[string]string{"OPTIN_DEBUG_ADDR": "127.0.0.1:0"})
	var debugAddr string
	sc := bufio.NewScanner(strings.NewReader(s.logs.String()))
	for sc.Scan() {
		var line struct{ Message, Addr string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "pprof listening" {
			debugAddr = line.Addr
		}
	}
	if debugAddr == "" {
		t.Fatalf("no pprof address logged:\n%s", s.logs)
	}
	for url, want := range map[string]int{"http://" + debugAddr + "/debug/pprof/": 200, s.base + "/debug/pprof/": 404} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", url, resp.StatusCode, want)
		}
	}
	for _, bad := range []string{"0.0.0.0:6060", ":6060", "10.0.0.1:6060"} {
		t.Run(bad, func(t *testing.T) {
			err := run(t.Context(), []string{"optin-server"}, envOf(validEnv(map[string]string{"OPTIN_DEBUG_ADDR": bad})), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "OPTIN_DEBUG_ADDR") {
				t.Errorf("err = %v", err)
			}
		})
	}
}
