package main

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/signature"
)

const token = "loadtoken000000000000000000000001"

// TestMain lets this test binary be the bare handler's process, as the loadgen binary is.
func TestMain(m *testing.M) {
	if os.Getenv(bareServerEnv) != "" {
		if err := serveBare(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The bare handler answers from a process of its own, or with -bare-in-process from this one.
func TestBareHandlerProcess(t *testing.T) {
	var seen atomic.Int64
	srv := verifier(t, &seen)
	for _, inProcess := range []bool{false, true} {
		var out bytes.Buffer
		err := run(t.Context(), []string{"loadgen", "-target", srv.URL, "-mode", "forged", "-n", "200", "-c", "4",
			"-bare-in-process=" + strconv.FormatBool(inProcess)}, &out, io.Discard)
		if err != nil || !strings.Contains(out.String(), "bare handler: 200 requests") || !strings.Contains(out.String(), "× the bare handler") ||
			strings.Count(out.String(), "errors 0") != 2 {
			t.Errorf("in process %v: %v\n%s", inProcess, err, out.String())
		}
	}
	if n := seen.Load(); n != 400 {
		t.Errorf("the service saw %d requests, want 400", n)
	}
}

// verifier answers like the service's signature check: 200 when signed with token, 403 otherwise.
func verifier(t *testing.T, seen *atomic.Int64) *httptest.Server {
	v := signature.New(token)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		seen.Add(1)
		if !v.Validate("http://"+r.Host+r.URL.RequestURI(), r.PostForm, r.Header.Get("X-Twilio-Signature")) {
			w.WriteHeader(403)
			return
		}
		w.WriteHeader(200)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestLoadSignedAndForged(t *testing.T) {
	var seen atomic.Int64
	srv := verifier(t, &seen)
	for _, mode := range []string{"accept", "duplicate", "forged"} {
		var out bytes.Buffer
		err := run(t.Context(), []string{"loadgen", "-target", srv.URL + "/webhooks/conversations", "-token", token, "-mode", mode,
			"-n", "300", "-c", "4"}, &out, io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if !strings.Contains(out.String(), "bare handler: 300 requests") || !strings.Contains(out.String(), "service ("+mode+", closed loop, 4 connections): 300 requests") ||
			!strings.Contains(out.String(), "errors 0") || strings.Contains(out.String(), "errors 300") {
			t.Errorf("%s:\n%s", mode, out.String())
		}
	}
	if n := seen.Load(); n != 900 {
		t.Errorf("the service saw %d requests, want 900", n)
	}
}

func TestOpenLoopIsBoundedAndPaced(t *testing.T) {
	var seen atomic.Int64
	srv := verifier(t, &seen)
	var out bytes.Buffer
	err := run(t.Context(), []string{"loadgen", "-target", srv.URL, "-token", token, "-rate", "200", "-n", "100000", "-duration", "500ms", "-bare=false"}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// Half a second at 200/s: about 100 requests, never the 100,000 asked for.
	if n := seen.Load(); n < 20 || n > 150 {
		t.Errorf("%d requests in 0.5 s at 200/s:\n%s", n, out.String())
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, bad := range []string{"http://10.0.0.1:8080/webhooks/conversations", "https://optin.example.com/webhooks/conversations", "not a url"} {
		if err := run(t.Context(), []string{"loadgen", "-target", bad, "-token", token}, io.Discard, io.Discard); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if err := run(t.Context(), []string{"loadgen", "-target", "http://127.0.0.1:1/x", "-twilio", "10.0.0.1:9", "-token", token}, io.Discard, io.Discard); err == nil {
		t.Error("a stand-in off loopback accepted")
	}
}

func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 1000; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	p := percentiles(ds, 0.5, 0.99, 0.999)
	if p[0] != 501*time.Millisecond || p[1] != 991*time.Millisecond || p[2] != 1000*time.Millisecond {
		t.Errorf("percentiles %v", p)
	}
}

// The stand-in answers the opt-in's three calls and counts an opt-in complete when its webhook goes.
func TestStandInCountsCompletions(t *testing.T) {
	s, err := startStandIn("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	const conv = "CH00000000000000000000000000000007"
	s.expect(conv)
	base := "http://" + s.addr + "/v1/Conversations/" + conv
	for _, c := range []struct{ method, path string }{{"POST", "/Messages"}, {"GET", "/Webhooks"}, {"DELETE", "/Webhooks/WH1"}} {
		req, _ := http.NewRequest(c.method, base+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Errorf("%s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
	if n, p50, _ := s.completions(); n != 1 || p50 <= 0 {
		t.Errorf("completions %d %v", n, p50)
	}
}

func TestCSVRows(t *testing.T) {
	var seen atomic.Int64
	srv := verifier(t, &seen)
	path := t.TempDir() + "/runs.csv"
	for range 2 {
		err := run(t.Context(), []string{"loadgen", "-target", srv.URL, "-token", token, "-mode", "forged", "-n", "50", "-c", "2",
			"-bare=false", "-csv", path, "-label", "memory"}, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 3 || lines[0] != strings.Join(csvHeader, ",") {
		t.Fatalf("csv:\n%s", raw)
	}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if len(f) != len(csvHeader) || f[0] != "memory" || f[1] != "forged" || f[3] != "2" || f[5] != "50" || f[7] != "0" {
			t.Errorf("row %q", l)
		}
	}
}

func TestOpenLoopSendsExactlyN(t *testing.T) {
	var seen atomic.Int64
	srv := verifier(t, &seen)
	var out bytes.Buffer
	profile := t.TempDir() + "/loadgen.prof"
	err := run(t.Context(), []string{"loadgen", "-target", srv.URL, "-token", token, "-rate", "2000", "-n", "300", "-bare=false",
		"-pid", strconv.Itoa(os.Getpid()), "-cpuprofile", profile}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if n := seen.Load(); n != 300 || !strings.Contains(out.String(), "300 requests") {
		t.Errorf("the service saw %d requests, want 300:\n%s", n, out.String())
	}
	if fi, err := os.Stat(profile); err != nil || fi.Size() == 0 {
		t.Errorf("no CPU profile written: %v", err)
	}
	// Here the "service" is this process: its CPU is reported per request.
	if !strings.Contains(out.String(), "µs per request; load generator CPU: ") {
		t.Errorf("no CPU line:\n%s", out.String())
	}
}

func TestCPUTime(t *testing.T) {
	for x := 0; ownCPU() < 50*time.Millisecond; x++ {
		_ = strconv.Itoa(x)
	}
	own, proc := ownCPU(), cpuTime(os.Getpid())
	if d := own - proc; proc <= 0 || d < -30*time.Millisecond || d > 30*time.Millisecond {
		t.Errorf("/proc says %s, getrusage %s", proc, own)
	}
	if cpuTime(0) != -1 || cpuTime(1<<30) != -1 {
		t.Error("no process: want -1")
	}
}

// A forged request is well formed — the service must check it in full to refuse it — and wrong.
func TestForgeryIsWellFormed(t *testing.T) {
	o := options{mode: "forged", signURL: "http://127.0.0.1:8080/webhooks/conversations"}
	req, _ := buildRequest(o, o.signURL, 1, 1)
	sig := req.Header.Get("X-Twilio-Signature")
	if raw, err := base64.StdEncoding.DecodeString(sig); err != nil || len(raw) != sha1.Size {
		t.Errorf("forged signature %q is not an HMAC-SHA1: %v", sig, err)
	}
	if err := req.ParseForm(); err != nil || signature.New(token).Validate(o.signURL, req.PostForm, sig) {
		t.Errorf("the forgery passes for the token (%v)", err)
	}
}
