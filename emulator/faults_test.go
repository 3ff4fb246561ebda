package emulator

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestNthCallFaults(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Faults = []Fault{{Route: "conversations.create", Kind: "503", Nth: 2}}
	})
	var codes []int
	for range 5 {
		code, body := h.do("POST", "/v1/Conversations", nil)
		codes = append(codes, code)
		if code == 503 && (apiCode(body) != 20503 || body["status"] != 503.0) {
			t.Errorf("fault body %v", body)
		}
	}
	if want := []int{201, 503, 201, 503, 201}; !equalInts(codes, want) {
		t.Errorf("codes %v, want %v", codes, want)
	}
	if h.emu.FaultHits() != 2 || h.emu.RESTCalls() != 5 {
		t.Errorf("fault hits %d of %d calls, want 2 of 5", h.emu.FaultHits(), h.emu.RESTCalls())
	}
	// Only the successful creates exist.
	if list := h.must(200, "GET", "/v1/Conversations", nil)["conversations"].([]any); len(list) != 3 {
		t.Errorf("%d conversations, want 3", len(list))
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRateFaultsAreSeeded(t *testing.T) {
	count := func(seed uint64) int {
		h := newHarness(t, func(o *Options) {
			o.Seed = seed
			o.Faults = []Fault{{Route: "*", Kind: "500", Rate: 0.2}}
		})
		n := 0
		for range 200 {
			if code, _ := h.do("GET", "/v1/Conversations", nil); code == 500 {
				n++
			}
		}
		return n
	}
	a, b := count(7), count(7)
	if a != b {
		t.Errorf("same seed, %d and %d failures", a, b)
	}
	if a < 20 || a > 60 {
		t.Errorf("%d of 200 failed at rate 0.2", a)
	}
}

func Test429CountAndRetryAfter(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Faults = []Fault{{Route: "webhooks.list", Kind: "429", Count: 2, RetryAfter: 3}}
	})
	conv := h.story()
	for i := range 3 {
		req, _ := http.NewRequest("GET", h.srv.URL+"/v1/Conversations/"+conv+"/Webhooks", nil)
		req.SetBasicAuth(sid, token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want, ra := 429, "3"
		if i == 2 {
			want, ra = 200, ""
		}
		if resp.StatusCode != want || resp.Header.Get("Retry-After") != ra {
			t.Errorf("call %d: %d Retry-After %q", i, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
}

// A fault answers the Twilio code it names with its status, else 20000 + the status; faults of one route
// with a Count each are met in their order, as a queue.
func TestFaultCodes(t *testing.T) {
	h := newHarness(t)
	conv := h.story()
	if err := h.emu.SetFaults([]Fault{
		{Route: "participants.create", Kind: "409", Code: 50416, Count: 1},
		{Route: "participants.create", Kind: "503", Count: 1},
		{Route: "participants.create", Kind: "400", Code: 63016, Count: 1, Applied: true},
		{Route: "participants.create", Kind: "429", Code: 20429, RetryAfter: 2, Count: 1},
	}); err != nil {
		t.Fatal(err)
	}
	add := vals("MessagingBinding.Address", "whatsapp:+15550003333", "MessagingBinding.ProxyAddress", business)
	// The fifth call finds the participant the applied third added.
	for i, want := range []struct {
		status, code int
		retryAfter   string
	}{{409, 50416, ""}, {503, 20503, ""}, {400, 63016, ""}, {429, 20429, "2"}, {409, 50433, ""}} {
		req, _ := http.NewRequest("POST", h.srv.URL+"/v1/Conversations/"+conv+"/Participants", strings.NewReader(add.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(sid, token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != want.status || apiCode(body) != want.code || body["status"] != float64(want.status) ||
			body["more_info"] != "https://www.twilio.com/docs/errors/"+itoa(want.code) || resp.Header.Get("Retry-After") != want.retryAfter {
			t.Errorf("call %d: %d %v (Retry-After %q), want %+v", i+1, resp.StatusCode, body, resp.Header.Get("Retry-After"), want)
		}
	}
	for _, bad := range []Fault{
		{Route: "*", Kind: "drop", Code: 20500},
		{Route: "*", Code: 20500},
		{Route: "*", Kind: "500", Code: 500},
		{Route: "*", Kind: "500", Code: 100000},
	} {
		if err := h.emu.SetFaults([]Fault{bad}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestDropAndAppliedFaults(t *testing.T) {
	h := newHarness(t)
	conv := h.story()
	if err := h.emu.SetFaults([]Fault{{Route: "messages.create", Kind: "drop", Count: 1}, {Route: "messages.create", Kind: "drop", Applied: true, Count: 1}}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		req, _ := http.NewRequest("POST", h.srv.URL+"/v1/Conversations/"+conv+"/Messages", strings.NewReader("Body=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(sid, token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			t.Errorf("dropped call answered %d", resp.StatusCode)
		}
	}
	// The first drop happened before the create, the second after it.
	if list := h.must(200, "GET", "/v1/Conversations/"+conv+"/Messages", nil)["messages"].([]any); len(list) != 1 {
		t.Errorf("%d messages, want 1", len(list))
	}
}

func TestLatencyFault(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Faults = []Fault{{Route: "conversations.list", Latency: Duration(120 * time.Millisecond)}}
	})
	start := time.Now()
	h.must(200, "GET", "/v1/Conversations", nil)
	// A lower bound only: the call must not have been answered before the injected latency.
	if el := time.Since(start); el < 120*time.Millisecond {
		t.Errorf("answered after %v", el)
	}
}

func TestFaultsEndpoint(t *testing.T) {
	h := newHarness(t)
	body := `{"faults":[{"route":"messages.create","kind":"429","nth":3,"retry_after":1},{"route":"*","latency":"10ms"}]}`
	resp, err := http.Post(h.srv.URL+"/emulator/faults", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("set faults %d", resp.StatusCode)
	}
	got := h.must(200, "GET", "/emulator/faults", nil)["faults"].([]any)
	if len(got) != 2 || got[0].(map[string]any)["kind"] != "429" || got[1].(map[string]any)["latency"] != "10ms" {
		t.Errorf("faults %v", got)
	}
	for _, bad := range []string{`{"faults":[{"kind":"500"}]}`, `{"faults":[{"route":"*","kind":"boom"}]}`, `{"faults":[{"route":"*","rate":2}]}`, `{"faults":[{"route":"*","latency":5}]}`, `{"fault":[]}`, `nope`} {
		resp, _ := http.Post(h.srv.URL+"/emulator/faults", "application/json", bytes.NewBufferString(bad))
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("%s: %d", bad, resp.StatusCode)
		}
	}
	if len(h.emu.Faults()) != 2 {
		t.Error("a rejected update changed the faults")
	}
	req, _ := http.NewRequest("DELETE", h.srv.URL+"/emulator/faults", nil)
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 204 || len(h.emu.Faults()) != 0 {
		t.Errorf("clear %d %v", resp.StatusCode, h.emu.Faults())
	}
}
