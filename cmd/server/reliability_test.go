package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/redistest"
	"github.com/optinkit/optin/internal/signature"
)

// replica is one service process sharing Redis with the others.
type replica struct {
	t    *testing.T
	env  []string
	cmd  *exec.Cmd
	out  *syncBuffer
	base string
}

func startReplica(t *testing.T, env map[string]string) *replica {
	t.Helper()
	r := &replica{t: t}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OPTIN_") && !strings.HasPrefix(kv, "TWILIO_") {
			r.env = append(r.env, kv)
		}
	}
	r.env = append(r.env, asServer+"=1")
	for k, v := range env {
		r.env = append(r.env, k+"="+v)
	}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *replica) start() {
	r.t.Helper()
	r.out = &syncBuffer{}
	r.cmd = exec.Command(os.Args[0])
	r.cmd.Env, r.cmd.Stdout, r.cmd.Stderr = r.env, r.out, r.out
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.base = ""
	defer func() {
		if r.base == "" {
			r.t.Logf("replica output:\n%s", r.out)
		}
	}()
	poll.Until(r.t, "the replica to listen", func() bool {
		sc := bufio.NewScanner(strings.NewReader(r.out.String()))
		for sc.Scan() {
			var line struct{ Message, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "listening" {
				r.base = "http://" + line.Addr
			}
		}
		return r.base != ""
	})
}

// stop is SIGTERM and a wait for a clean exit.
func (r *replica) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			r.t.Errorf("replica exited with %v:\n%s", err, tail(r.out.String(), 20))
		}
	case <-time.After(60 * time.Second):
		r.t.Error("replica did not stop within 60 s")
		_ = r.cmd.Process.Kill()
	}
	r.cmd = nil
}

// kill is kill -9.
func (r *replica) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// cluster is Redis, the emulated Twilio, and three replicas.
type cluster struct {
	t        *testing.T
	redis    *redistest.Server
	emu      *emulator.Emulator
	api      *httptest.Server
	replicas []*replica
	convs    []convCase
	// setupCalls is the REST calls made by setup, not by the service.
	setupCalls int
}

type convCase struct {
	sid, customer, messageSid, participant string
}

const (
	relBusiness = "whatsapp:+15550100000"
	relTemplate = "HX0000000000000000000000000000f002"
)

func newCluster(t *testing.T, n int) *cluster {
	if testing.Short() {
		t.Skip("slow: three replica processes on Redis (go test without -short runs it, as CI does)")
	}
	srv := redistest.Start(t)
	c := newClusterOn(t, n, srv.URL())
	c.redis = srv
	return c
}

// newClusterOn is newCluster on the Redis at redisURL, with extra settings on top.
func newClusterOn(t *testing.T, n int, redisURL string, extra ...string) *cluster {
	c := &cluster{t: t}
	var err error
	c.emu, err = emulator.New(emulator.Options{AccountSid: accountSid, AuthToken: authToken, Seed: 7,
		Contents: map[string]string{relTemplate: riderText}})
	if err != nil {
		t.Fatal(err)
	}
	c.api = httptest.NewServer(c.emu)
	t.Cleanup(c.api.Close)
	env := map[string]string{
		"TWILIO_ACCOUNT_SID": accountSid, "TWILIO_AUTH_TOKEN": authToken,
		"OPTIN_ADDR": "127.0.0.1:0", "OPTIN_TWILIO_API_URL": c.api.URL, "OPTIN_REDIS_URL": redisURL,
		"OPTIN_REDIS_STARTUP_WAIT": "20s", "OPTIN_TWILIO_TIMEOUT": "2s", "OPTIN_SHUTDOWN_TIMEOUT": "5s",
		"OPTIN_RIDER_OPTIN_CONTENT_SID": relTemplate, "OPTIN_LOG_LEVEL": "info",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	for range 3 {
		c.replicas = append(c.replicas, startReplica(t, env))
	}
	c.setup(n)
	return c
}

// setup creates n conversations, each with a customer who has replied "Yes" and two scoped webhooks
// (filtered so that the emulator itself does not fire them: the test delivers the events).
func (c *cluster) setup(n int) {
	ctx := c.t.Context()
	api := emulator.NewClient(c.api.URL, accountSid, authToken)
	must := func(v string, err error) string {
		c.t.Helper()
		if err != nil {
			c.t.Fatal(err)
		}
		return v
	}
	for i := range n {
		cc := convCase{customer: fmt.Sprintf("whatsapp:+1555040%04d", i)}
		cc.sid = must(api.CreateConversation(ctx, nil))
		cc.participant = must(api.AddParticipant(ctx, cc.sid, cc.customer, relBusiness))
		must(api.AddParticipant(ctx, cc.sid, fmt.Sprintf("whatsapp:+1555050%04d", i), relBusiness))
		for range 2 {
			must(api.AddWebhook(ctx, cc.sid, "https://optin.example.com/webhooks/conversations", "post", "onMessageUpdated"))
		}
		m, err := c.emu.Inbound(cc.customer, relBusiness, "Yes")
		if err != nil {
			c.t.Fatal(err)
		}
		cc.messageSid = m.Sid
		c.convs = append(c.convs, cc)
	}
	c.setupCalls = c.emu.RESTCalls()
}

// tally is what the deliveries saw.
type tally struct {
	sent, acked, refused atomic.Int64
	outcomes             sync.Map // outcome → *atomic.Int64
}

func (tl *tally) outcome(body string) {
	v, _ := tl.outcomes.LoadOrStore(body, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// deliver sends each conversation's event three times at once, to three different replicas, the way
// Twilio (retrying) behind a load balancer would: a delivery that is not answered 2xx goes again to
// the next replica until one acknowledges it. during, when set, runs alongside on the test's goroutine
// (where it may wait with poll).
func (c *cluster) deliver(tl *tally, during func()) {
	type job struct {
		cc    convCase
		first int
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	defer wg.Wait() // also when during gives up: no delivery outlives the test
	for range 24 {
		wg.Go(func() {
			client := &http.Client{Timeout: 5 * time.Second}
			for j := range jobs {
				for attempt := 0; ; attempt++ {
					r := c.replicas[(j.first+attempt)%len(c.replicas)]
					tl.sent.Add(1)
					code, body := c.post(client, r.base, j.cc)
					if code >= 200 && code < 300 {
						tl.acked.Add(1)
						tl.outcome(body)
						break
					}
					tl.refused.Add(1)
					if attempt > 400 {
						c.t.Errorf("delivery for %s never acknowledged", j.cc.sid)
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	go func() {
		defer close(jobs)
		for _, cc := range c.convs {
			for k := range 3 {
				jobs <- job{cc, k}
			}
		}
	}()
	if during != nil {
		during()
	}
}

func (c *cluster) post(client *http.Client, base string, cc convCase) (int, string) {
	params := url.Values{
		"AccountSid": {accountSid}, "EventType": {"onMessageAdded"}, "ConversationSid": {cc.sid},
		"MessageSid": {cc.messageSid}, "Author": {cc.customer}, "Body": {"Yes"}, "ParticipantSid": {cc.participant},
		"Index": {"0"}, "Source": {"WHATSAPP"}, "Attributes": {"{}"}, "RetryCount": {"0"},
	}
	u := base + "/webhooks/conversations"
	req, _ := http.NewRequest("POST", u, strings.NewReader(params.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", signature.Compute(authToken, u, params))
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var out map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out["outcome"]
}

// result counts, per conversation, the wait and rider messages and the webhooks left.
type result struct {
	complete, duplicates, lost, webhooksLeft int
}

func (c *cluster) result() result {
	var r result
	for _, cc := range c.convs {
		v, _ := c.emu.Conversation(cc.sid)
		steps := map[string]int{}
		for _, m := range v.Messages {
			var a struct {
				OptIn struct{ Step, Trigger string } `json:"optin"`
			}
			if json.Unmarshal([]byte(m.Attributes), &a) == nil && a.OptIn.Step != "" {
				steps[a.OptIn.Step]++
				if a.OptIn.Trigger != cc.messageSid {
					c.t.Errorf("%s: marker names trigger %s", cc.sid, a.OptIn.Trigger)
				}
				if a.OptIn.Step == "rider" && (m.Author != cc.customer || m.ContentSid != relTemplate) {
					c.t.Errorf("%s: rider message %+v", cc.sid, m)
				}
			}
		}
		r.duplicates += max(steps["wait"]-1, 0) + max(steps["rider"]-1, 0)
		r.webhooksLeft += len(v.Webhooks)
		if steps["wait"] >= 1 && steps["rider"] >= 1 && len(v.Webhooks) == 0 {
			r.complete++
		} else {
			r.lost++
		}
	}
	return r
}

// waitComplete waits until no conversation is lost, or within has passed, and returns what it found:
// not poll, since check reports a run that never completes with its figures rather than failing here.
func (c *cluster) waitComplete(within time.Duration) result {
	deadline := time.Now().Add(within)
	for {
		r := c.result()
		if r.lost == 0 || time.Now().After(deadline) {
			return r
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// check stops the replicas and asserts exactly one wait and one rider message per conversation and no
// webhook left; it logs the figures RELIABILITY.md quotes.
func (c *cluster) check(name string, tl *tally, within time.Duration) {
	c.t.Helper()
	start := time.Now()
	r := c.waitComplete(within)
	took := time.Since(start)
	for _, rp := range c.replicas {
		rp.stop()
	}
	r = c.result() // after every replica drained
	var outcomes []string
	tl.outcomes.Range(func(k, v any) bool {
		outcomes = append(outcomes, fmt.Sprintf("%s=%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	c.t.Logf("RELIABILITY %s: conversations=%d deliveries=%d acknowledged=%d refused=%d (%s) rest_calls=%d faults_injected=%d complete=%d duplicates=%d lost=%d webhooks_left=%d completed_after_last_delivery=%s",
		name, len(c.convs), tl.sent.Load(), tl.acked.Load(), tl.refused.Load(), strings.Join(outcomes, " "), c.emu.RESTCalls()-c.setupCalls, c.emu.FaultHits(),
		r.complete, r.duplicates, r.lost, r.webhooksLeft, took.Round(time.Second))
	reruns := 0
	for _, rp := range c.replicas {
		reruns += strings.Count(rp.out.String(), `"run":2,`)
	}
	c.t.Logf("%s: flows run a second time: %d", name, reruns)
	if r.complete != len(c.convs) || r.duplicates != 0 || r.lost != 0 || r.webhooksLeft != 0 {
		c.t.Errorf("%s: %+v", name, r)
		for i, rp := range c.replicas {
			c.t.Logf("replica %d log tail:\n%s", i, tail(rp.out.String(), 15))
		}
	}
}

func TestReliabilityThreeReplicas(t *testing.T) {
	c := newCluster(t, 200)
	tl := &tally{}
	c.deliver(tl, nil)
	c.check("three replicas", tl, 2*time.Minute)
}

func TestReliabilityWithFaults(t *testing.T) {
	c := newCluster(t, 200)
	// Each route fails a fifth of its calls — 5xx, 429, dropped connections and timeouts, some after
	// taking effect (the faults on one route are tried in turn).
	if err := c.emu.SetFaults([]emulator.Fault{
		{Route: "messages.create", Kind: "503", Rate: 0.07},
		{Route: "messages.create", Kind: "drop", Applied: true, Rate: 0.06},
		{Route: "messages.create", Kind: "drop", Rate: 0.05},
		{Route: "messages.create", Latency: emulator.Duration(2500 * time.Millisecond), Applied: true, Rate: 0.05},
		{Route: "messages.list", Kind: "500", Rate: 0.2},
		{Route: "webhooks.list", Kind: "429", Rate: 0.1, RetryAfter: 1},
		{Route: "webhooks.list", Kind: "502", Rate: 0.12},
		{Route: "webhooks.delete", Kind: "drop", Rate: 0.1},
		{Route: "webhooks.delete", Kind: "500", Applied: true, Rate: 0.12},
	}); err != nil {
		t.Fatal(err)
	}
	tl := &tally{}
	c.deliver(tl, nil)
	c.check("20% REST faults", tl, 3*time.Minute)
	// About 21 % by construction; far below would mean the faults were not applied.
	if share := float64(c.emu.FaultHits()) / float64(c.emu.RESTCalls()-c.setupCalls); share < 0.15 {
		t.Errorf("only %.1f%% of the service's REST calls met a fault", 100*share)
	}
}

func TestReliabilityKill9(t *testing.T) {
	c := newCluster(t, 200)
	// Slow Twilio down so that flows are in flight when the replica dies.
	if err := c.emu.SetFaults([]emulator.Fault{{Route: "messages.create", Latency: emulator.Duration(300 * time.Millisecond)}}); err != nil {
		t.Fatal(err)
	}
	tl := &tally{}
	victim := c.replicas[2]
	c.deliver(tl, func() {
		// Kill the replica in the middle of its work: some steps done, flows still running.
		poll.Until(t, "replica 2 to finish 10 steps", func() bool { return strings.Count(victim.out.String(), `"message":"step finished"`) >= 10 })
		log := victim.out.String()
		victim.kill()
		t.Logf("killed replica 2 with SIGKILL after %d steps and %d finished flows", strings.Count(log, `"message":"step finished"`), strings.Count(log, "opt-in finished"))
	})
	victim.start()
	t.Logf("restarted replica 2")
	// asynq hands a dead worker's tasks on once their 30 s lease has expired, checking every minute.
	c.check("kill -9 of a replica", tl, 4*time.Minute)
}

func TestReliabilityRedisRestart(t *testing.T) {
	c := newCluster(t, 200)
	if err := c.emu.SetFaults([]emulator.Fault{{Route: "messages.create", Latency: emulator.Duration(100 * time.Millisecond)}}); err != nil {
		t.Fatal(err)
	}
	tl := &tally{}
	c.deliver(tl, func() {
		// Mid-run: deliveries still arriving, flows in flight.
		poll.Until(t, "200 acknowledged deliveries", func() bool { return tl.acked.Load() >= 200 })
		c.redis.Restart(2 * time.Second)
		t.Logf("restarted Redis (SIGKILL, 2 s down, then start on the same append-only file) after %d acknowledged deliveries and %d complete opt-ins", tl.acked.Load(), c.result().complete)
	})
	c.check("Redis restart", tl, 4*time.Minute)
}

// The Redis master is killed with SIGKILL mid-load and Sentinel promotes a replica: the replicas
// follow the new master, every flow completes, none twice, none lost; /readyz answers 503 while there
// is no master and 200 after.
func TestReliabilitySentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a Redis failover under three replica processes")
	}
	sc := redistest.StartSentinel(t, 2, 3)
	c := newClusterOn(t, 60, sc.URL(), "OPTIN_REDIS_WAIT_REPLICAS", "1")
	if err := c.emu.SetFaults([]emulator.Fault{{Route: "messages.create", Latency: emulator.Duration(100 * time.Millisecond)}}); err != nil {
		t.Fatal(err)
	}
	tl := &tally{}
	var saw503, saw200 bool
	var gap time.Duration
	c.deliver(tl, func() {
		steps := func() (n int) {
			for _, r := range c.replicas {
				n += strings.Count(r.out.String(), `"message":"step finished"`)
			}
			return n
		}
		poll.Until(t, "20 steps finished", func() bool { return steps() >= 20 })
		sc.Master.Kill()
		killed := time.Now()
		t.Logf("killed the Redis master with SIGKILL after %d steps", steps())
		// A measurement, paced at 50 ms so as not to load the replica: the 503s without a master, then
		// how long until 200.
		client := &http.Client{Timeout: 2 * time.Second}
		for time.Since(killed) < time.Minute {
			resp, err := client.Get(c.replicas[0].base + "/readyz")
			if err == nil {
				resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusServiceUnavailable:
					saw503 = true
				case resp.StatusCode == http.StatusOK && saw503:
					saw200, gap = true, time.Since(killed)
					return
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	t.Logf("readyz: 503 seen %v, 200 again %v after the kill", saw503, gap.Round(100*time.Millisecond))
	if !saw503 || !saw200 {
		t.Errorf("readyz during the failover: 503 seen %v, 200 after %v", saw503, saw200)
	}
	c.check("Sentinel failover", tl, 3*time.Minute)
}
