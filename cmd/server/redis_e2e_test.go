package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/redistest"
)

func TestUnreachableRedisFailsStart(t *testing.T) {
	srv := redistest.Start(t)
	url := srv.URL()
	srv.Kill()
	env := validEnv(map[string]string{"OPTIN_REDIS_URL": strings.Replace(url, "redis://", "redis://:hunter2@", 1)})
	var out strings.Builder
	start := time.Now()
	err := run(t.Context(), []string{"optin-server"}, envOf(env), &out, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "OPTIN_REDIS_URL") || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error()+out.String(), "hunter2") {
		t.Error("redis password leaked")
	}
	if !strings.Contains(out.String(), `"OPTIN_REDIS_URL":"redis://xxxxx@127.0.0.1`) {
		t.Errorf("redis url not logged masked:\n%s", out.String())
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("without OPTIN_REDIS_STARTUP_WAIT it should fail at once, took %v", time.Since(start))
	}
}

// With a startup wait the service waits for Redis to come up, then serves; readiness follows Redis.
func TestRedisStartupWaitAndReadiness(t *testing.T) {
	srv := redistest.Start(t)
	srv.Kill()
	fake := newFake(t)
	s := launch(t, context.Background(), baseEnv(fake, map[string]string{"OPTIN_REDIS_URL": srv.URL(), "OPTIN_REDIS_STARTUP_WAIT": "30s"}), "optin-server")
	// Redis comes up once the service says it waits for it: then it serves.
	waitLogged(t, s.logs, "waiting for Redis")
	srv.Restart(0)
	s.awaitServing()
	ready := func() int {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", s.base+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := ready(); got != 200 {
		t.Errorf("readyz with Redis up = %d", got)
	}
	srv.Kill()
	if got := ready(); got != 503 {
		t.Errorf("readyz with Redis down = %d", got)
	}
	if code, body := s.send(s.postReq(event(msg1, customer))); code != 503 || body != `{"error":"temporarily unavailable"}` {
		t.Errorf("webhook with Redis down = %d %s", code, body)
	}
	srv.Restart(0)
	poll.Until(t, "readyz to recover with Redis", func() bool { return ready() == 200 })
	if code, _ := s.send(s.postReq(event(msg1, customer))); code != 200 {
		t.Errorf("webhook after Redis came back = %d", code)
	}
	waitFor(t, fake, 3)
	s.stop()
	assertCalls(t, fake, sorted(waitCall(msg1), riderCall(msg1), listCall("PageSize=5")))
}

// A Redis that stalls (SIGSTOP, not a crash) costs a webhook its state budget, not Twilio's 5 s: the
// answer is a 503 in time, and Twilio delivers the event again.
func TestStalledRedisAnswers503InTime(t *testing.T) {
	srv := redistest.Start(t)
	fake := newFake(t)
	s := start(t, fake, map[string]string{"OPTIN_REDIS_URL": srv.URL()})
	client := &http.Client{Timeout: 5 * time.Second} // Twilio's webhook budget
	srv.Pause()
	resp, err := client.Do(s.postReq(event(msg1, customer)))
	srv.Resume()
	if err != nil {
		t.Fatalf("webhook not answered within Twilio's 5 s while Redis stalled: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("status %d while Redis stalled, want 503", resp.StatusCode)
	}
	// Once Redis answers again, Twilio's next delivery is accepted and the opt-in runs.
	var code int
	var body string
	defer func() {
		if code != 200 {
			t.Logf("last answer: %d %s", code, body)
		}
	}()
	poll.Until(t, "the webhook to be accepted after Redis resumed", func() bool {
		code, body = s.send(s.postReq(event(msg1, customer)))
		return code == 200
	})
	if body != `{"outcome":"accepted"}` && body != `{"outcome":"duplicate"}` {
		t.Errorf("after the stall: %s", body)
	}
	waitFor(t, fake, 3)
	s.stop()
	assertCalls(t, fake, sorted(waitCall(msg1), riderCall(msg1), listCall("PageSize=5")))
}
