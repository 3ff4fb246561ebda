package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/signature"
)

// BenchmarkFinishedChatProcessHeap measures what a finished chat leaves in the whole service for the
// retention, in memory mode: the service runs in a process of its own (this test binary, re-executed
// as the server), so that its live heap is the service's alone — the emulator, the HTTP clients and
// this benchmark's bookkeeping stay in this process and need no subtracting. Each chat goes through
// the real API and the emulator's webhooks: started, answered yes by its customer (the opt-in runs
// and leaves its finished flow), then ended; once every chat is closed, the server is collected twice
// and its HeapAlloc read (pprof's heap page, gc=1), against the same after a hundred chats. It reports the live heap grown per finished chat,
// with a new customer and a new rider per chat (the worst case: each address leaves its last number)
// and with riders shared by 50 chats each (b/shared-riders). Every chat still answers GET
// /v1/chats/{id}, a repeated start and a later webhook of its conversation from what is kept.
func BenchmarkFinishedChatProcessHeap(b *testing.B) {
	const chats, warmup = 2_000, 100
	for _, riders := range []int{chats, chats / 50} {
		name := "new-riders"
		if riders < chats {
			name = "shared-riders"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				p := startHeapServer(b, nil)
				// A first hundred chats warm up what is made once (connections, caches, regexps).
				p.finishChats(chats, chats+warmup, riders)
				before := p.liveHeap()
				p.profile("before")
				p.finishChats(0, chats, riders)
				after := p.liveHeap()
				p.profile("after")
				b.ReportMetric(float64(after-before)/chats, "B/finished-chat")
				p.checkFinished(chats, riders)
				p.stop()
			}
		})
	}
}

// heapServer is the service in a process of its own against an emulator in this one.
type heapServer struct {
	b     testing.TB
	emu   *emulator.Emulator
	api   *httptest.Server
	cmd   *exec.Cmd
	out   *syncBuffer
	base  string
	debug string
}

func freeLoopback(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startHeapServer runs the server with extra on top of its configuration.
func startHeapServer(b testing.TB, extra map[string]string) *heapServer {
	b.Helper()
	emu, err := emulator.New(emulator.Options{AccountSid: accountSid, AuthToken: authToken,
		Contents: map[string]string{inviteSid: "Hello {{1}}, can {{2}} message you?", riderOptInSid: "Your customer agreed to chat. Say hello!",
			nudgeSid: nudgeText}})
	if err != nil {
		b.Fatal(err)
	}
	p := &heapServer{b: b, emu: emu, api: httptest.NewServer(emu), out: &syncBuffer{}}
	addr, debug := freeLoopback(b), freeLoopback(b)
	p.base, p.debug = "http://"+addr, "http://"+debug
	env := adminEnv(map[string]string{"OPTIN_PUBLIC_URL": p.base, "OPTIN_TWILIO_API_URL": p.api.URL,
		"OPTIN_RIDER_OPTIN_CONTENT_SID": riderOptInSid,
		"OPTIN_WHATSAPP_NUMBERS":        "whatsapp:+15550100001,whatsapp:+15550100002,whatsapp:+15550100003", "OPTIN_TWILIO_CREATE_RATE": "1000",
		"TWILIO_ACCOUNT_SID": accountSid, "TWILIO_AUTH_TOKEN": authToken, "OPTIN_ADDR": addr,
		"OPTIN_DEBUG_ADDR": debug, "OPTIN_LOG_LEVEL": "warn"})
	maps.Copy(env, extra)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OPTIN_") && !strings.HasPrefix(kv, "TWILIO_") {
			p.cmdEnv(kv)
		}
	}
	for k, v := range env {
		p.cmdEnv(k + "=" + v)
	}
	p.cmdEnv(asServer + "=1")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.stop)
	ready := false
	defer func() {
		if !ready {
			b.Logf("server output:\n%s", p.out)
		}
	}()
	poll.Until(b, "the server to be ready", func() bool {
		if resp, err := http.Get(p.base + "/readyz"); err == nil {
			resp.Body.Close()
			ready = resp.StatusCode == 200
		}
		return ready
	})
	return p
}

func (p *heapServer) cmdEnv(kv string) {
	if p.cmd == nil {
		p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	}
	p.cmd.Env = append(p.cmd.Env, kv)
}

func (p *heapServer) stop() {
	if p.cmd != nil && p.cmd.Process != nil && p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		_ = p.cmd.Wait()
	}
	p.api.Close()
	_ = p.emu.Close(context.Background())
}

// liveHeap collects the server's heap twice and returns its HeapAlloc.
func (p *heapServer) liveHeap() int64 {
	p.b.Helper()
	var heap int64
	for range 2 {
		resp, err := http.Get(p.debug + "/debug/pprof/heap?gc=1&debug=1")
		if err != nil {
			p.b.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "# HeapAlloc = "); ok {
				heap, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		resp.Body.Close()
	}
	if heap == 0 {
		p.b.Fatal("no HeapAlloc in the heap profile")
	}
	return heap
}

// profile saves the server's heap profile as name.pb.gz in $BENCH_HEAP_DIR, when set: run with
// GODEBUG=memprofilerate=1 and compare with go tool pprof -base before.pb.gz after.pb.gz.
func (p *heapServer) profile(name string) {
	dir := os.Getenv("BENCH_HEAP_DIR")
	if dir == "" {
		return
	}
	resp, err := http.Get(p.debug + "/debug/pprof/heap?gc=1")
	if err != nil {
		p.b.Fatal(err)
	}
	defer resp.Body.Close()
	f, _ := os.Create(dir + "/" + name + ".pb.gz")
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}

func (p *heapServer) call(method, path, body string) (int, string) {
	p.b.Helper()
	req, _ := http.NewRequest(method, p.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken1)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.b.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func heapChatBody(i, riders int) string {
	return fmt.Sprintf(`{"id":"order-%06d","customer":{"address":"whatsapp:+1555%07d","name":"Ana"},"rider":{"address":"whatsapp:+1556%07d","name":"Bruno"},"metadata":{"order":%d}}`,
		i, i, i%riders, i)
}

// finishChats takes chats [from, to) through start, the customer's yes and the end, 16 at a time.
func (p *heapServer) finishChats(from, to, riders int) {
	p.b.Helper()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				p.finishChat(i, riders)
			}
		})
	}
	for i := from; i < to; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
}

func (p *heapServer) finishChat(i, riders int) {
	id := fmt.Sprintf("order-%06d", i)
	code, body := p.call("POST", "/v1/chats", heapChatBody(i, riders))
	var started struct {
		Customer struct {
			ProxyAddress string `json:"proxy_address"`
		}
	}
	if err := json.Unmarshal([]byte(body), &started); code != 201 || err != nil {
		p.b.Errorf("start %s: %d %s", id, code, body)
		return
	}
	// The customer answers on the number leased to them: with a shared rider busy on one, another.
	if _, err := p.emu.Inbound(fmt.Sprintf("whatsapp:+1555%07d", i), started.Customer.ProxyAddress, "Yes"); err != nil {
		p.b.Error(err)
		return
	}
	if !p.await(id, `"state":"connected"`) {
		return
	}
	if code, body := p.call("DELETE", "/v1/chats/"+id, ""); code != 200 {
		p.b.Errorf("end %s: %d %s", id, code, body)
		return
	}
	p.await(id, `"state":"closed"`)
}

// await polls the chat until its JSON holds want. The load's goroutines call it: it reports with
// Errorf and returns false, where poll's Fatal may only be called from the benchmark's own goroutine.
func (p *heapServer) await(id, want string) bool {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := p.call("GET", "/v1/chats/"+id, "")
		if strings.Contains(body, want) {
			return true
		}
		if time.Now().After(deadline) {
			p.b.Errorf("chat %s never %s: %s", id, want, body)
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkFinished asks of a sample of the finished chats what they must still answer: their view, a
// repeated start (the same chat, 200), and a later message in their conversation, signed as Twilio
// signs it (answered, and no opt-in again: the emulator is asked for no new message).
func (p *heapServer) checkFinished(chats, riders int) {
	p.b.Helper()
	calls := p.emu.RESTCalls()
	for i := 0; i < chats; i += chats / 10 {
		id := fmt.Sprintf("order-%06d", i)
		code, body := p.call("GET", "/v1/chats/"+id, "")
		var view struct {
			State           string
			ConversationSid string `json:"conversation_sid"`
			Metadata        map[string]int
		}
		if err := json.Unmarshal([]byte(body), &view); err != nil || code != 200 || view.State != "closed" || view.Metadata["order"] != i {
			p.b.Errorf("finished %s: %d %s", id, code, body)
		}
		if code, again := p.call("POST", "/v1/chats", heapChatBody(i, riders)); code != 200 || !strings.Contains(again, `"id":"`+id+`"`) {
			p.b.Errorf("repeated start of %s: %d %s", id, code, again)
		}
		hook := url.Values{"AccountSid": {accountSid}, "EventType": {"onMessageAdded"}, "ConversationSid": {view.ConversationSid},
			"MessageSid": {fmt.Sprintf("IM%032d", i)}, "Author": {fmt.Sprintf("whatsapp:+1555%07d", i)}, "Body": {"Yes"},
			"ParticipantSid": {"MB00000000000000000000000000000001"}, "Index": {"9"}, "Source": {"WHATSAPP"}, "Attributes": {"{}"},
			"RetryCount": {"0"}, "WebhookSid": {"WH00000000000000000000000000000001"}, "WebhookType": {"webhook"}}
		req, _ := http.NewRequest(http.MethodPost, p.base+"/webhooks/conversations", strings.NewReader(hook.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", signature.Compute(authToken, p.base+"/webhooks/conversations", hook))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			p.b.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			p.b.Errorf("later webhook of %s: %d %s", id, resp.StatusCode, answer)
		}
	}
	if n := p.emu.RESTCalls() - calls; n != 0 {
		p.b.Errorf("finished chats made %d calls to Twilio", n)
	}
}
