package emulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/optinkit/optin/emulator"
)

// sdkDir holds the conformance script and its npm dependencies (Twilio's node SDK), installed by
// `npm ci --prefix emulator/testdata/node` (.ci/run does it).
const sdkDir = "testdata/node"

// wire is one REST request as it arrived: method, path, query and form.
type wire struct {
	Method, Path string
	Query, Form  url.Values
}

type wireRecorder struct {
	next http.Handler
	mu   sync.Mutex
	reqs []wire
}

func (rc *wireRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, wire{r.Method, r.URL.Path, r.URL.Query(), form})
	rc.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	rc.next.ServeHTTP(w, r)
}

// needNodeSDK finds node and the installed SDK. Outside CI their absence skips the test, saying what
// to install; in CI (CI=true) it fails it.
func needNodeSDK(t *testing.T) string {
	t.Helper()
	missing := func(what string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s; CI runs Twilio's node SDK against the emulator", what)
		}
		t.Skipf("%s: the conformance test with Twilio's node SDK needs it (CI runs it)", what)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed (Node 20 or later)")
	}
	if _, err := os.Stat(filepath.Join(sdkDir, "node_modules", "twilio", "package.json")); err != nil {
		missing("Twilio's node SDK is not installed: run npm ci --prefix emulator/testdata/node")
	}
	return node
}

// sdkResult is what conformance.js prints: the resources as the SDK read them.
type sdkResult struct {
	Conversation struct {
		Sid, UniqueName, FriendlyName, State, ChatServiceSid string
	}
	Participants []struct {
		Sid              string
		Identity         *string
		MessagingBinding map[string]any
	}
	Message struct {
		Sid, Author, Body, Attributes, ParticipantSid string
		Index                                         int
	}
	Messages []struct {
		Sid, Author, Body string
	}
	ParticipantConversations []struct {
		ConversationSid, ParticipantSid, ConversationUniqueName, ConversationState string
		ParticipantMessagingBinding                                                map[string]any
	}
	Scoped struct {
		Sid, URL string
	}
}

// TestOfficialNodeSDK runs Twilio's node SDK against the emulator: every request it makes must be in
// Twilio's spec (checked as TestAgainstTwilioSpec checks), arrive exactly as listed, and every answer
// must read back as what the emulator holds.
func TestOfficialNodeSDK(t *testing.T) {
	node := needNodeSDK(t)
	emu, err := emulator.New(emulator.Options{AccountSid: sid, AuthToken: token})
	if err != nil {
		t.Fatal(err)
	}
	sc := &specChecker{next: emu, checked: map[string]int{}}
	rec := &wireRecorder{next: sc}
	// Requests come from another process, which the race detector cannot see ordered after this
	// setup: the checker is complete before the server starts.
	srv := httptest.NewUnstartedServer(rec)
	sc.base = "http://" + srv.Listener.Addr().String()
	sc.router = loadSpec(t, sc.base)
	srv.Start()
	defer srv.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "conformance.js")
	cmd.Dir = sdkDir
	cmd.Env = append(os.Environ(), "EMULATOR_URL="+srv.URL, "ACCOUNT_SID="+sid, "AUTH_TOKEN="+token)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node conformance.js: %v\n%s", err, stderr.String())
	}
	var got sdkResult
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %s: %v", out, err)
	}
	sc.mu.Lock()
	for _, p := range sc.problems {
		t.Error(p)
	}
	sc.mu.Unlock()

	conv := got.Conversation.Sid
	view, ok := emu.Conversation(conv)
	if !ok {
		t.Fatalf("the SDK's conversation %q is not in the emulator", conv)
	}
	service := "IS" + sid[2:]
	if got.Conversation.UniqueName != "order-1042" || got.Conversation.FriendlyName != "Order 1042" || got.Conversation.State != "active" ||
		got.Conversation.ChatServiceSid != service {
		t.Errorf("conversation as the SDK read it: %+v", got.Conversation)
	}
	if !reflect.DeepEqual(view.Participants, []string{"whatsapp:+15550001111", "whatsapp:+15550002222", ""}) {
		t.Errorf("participants held: %q", view.Participants)
	}
	wantBindings := []map[string]any{
		{"type": "whatsapp", "address": "whatsapp:+15550001111", "proxy_address": "whatsapp:+15550000000"},
		{"type": "whatsapp", "address": "whatsapp:+15550002222", "proxy_address": "whatsapp:+15550000000"},
		{"type": "sms", "projected_address": "+15550009999"},
	}
	if len(got.Participants) != 3 {
		t.Fatalf("participants as the SDK read them: %+v", got.Participants)
	}
	for i, p := range got.Participants {
		if !reflect.DeepEqual(p.MessagingBinding, wantBindings[i]) {
			t.Errorf("participant %d binding %v, want %v", i, p.MessagingBinding, wantBindings[i])
		}
	}
	if len(view.Messages) != 1 || view.Messages[0].Sid != got.Message.Sid || view.Messages[0].Body != "On my way" ||
		got.Message.Author != "whatsapp:+15550002222" || got.Message.Attributes != `{"order":1042}` ||
		got.Message.ParticipantSid != got.Participants[1].Sid || got.Message.Index != 0 {
		t.Errorf("message: SDK %+v, emulator %+v", got.Message, view.Messages)
	}
	if len(got.Messages) != 1 || got.Messages[0].Sid != got.Message.Sid {
		t.Errorf("message list %+v", got.Messages)
	}
	if len(got.ParticipantConversations) != 1 {
		t.Fatalf("lookup %+v", got.ParticipantConversations)
	}
	if pc := got.ParticipantConversations[0]; pc.ConversationSid != conv || pc.ParticipantSid != got.Participants[0].Sid ||
		pc.ConversationUniqueName != "order-1042" || pc.ConversationState != "active" || !reflect.DeepEqual(pc.ParticipantMessagingBinding, wantBindings[0]) {
		t.Errorf("lookup %+v", pc)
	}
	if got.Scoped.Sid != conv || got.Scoped.URL != srv.URL+"/v1/Services/"+service+"/Conversations/"+conv {
		t.Errorf("service-scoped fetch %+v", got.Scoped)
	}

	p := "/v1/Conversations/" + conv
	want := []wire{
		{"POST", "/v1/Conversations", url.Values{}, url.Values{"FriendlyName": {"Order 1042"}, "UniqueName": {"order-1042"}}},
		{"POST", p + "/Participants", url.Values{}, url.Values{"MessagingBinding.Address": {"whatsapp:+15550001111"}, "MessagingBinding.ProxyAddress": {"whatsapp:+15550000000"}}},
		{"POST", p + "/Participants", url.Values{}, url.Values{"MessagingBinding.Address": {"whatsapp:+15550002222"}, "MessagingBinding.ProxyAddress": {"whatsapp:+15550000000"}}},
		{"POST", p + "/Participants", url.Values{}, url.Values{"Identity": {"dispatcher"}, "MessagingBinding.ProjectedAddress": {"+15550009999"}}},
		{"POST", p + "/Messages", url.Values{}, url.Values{"Author": {"whatsapp:+15550002222"}, "Body": {"On my way"}, "Attributes": {`{"order":1042}`}}},
		{"GET", p + "/Messages", url.Values{"Order": {"asc"}, "PageSize": {"20"}}, url.Values{}},
		{"GET", "/v1/ParticipantConversations", url.Values{"Address": {"whatsapp:+15550001111"}}, url.Values{}},
		{"GET", "/v1/Services/" + service + "/Conversations/" + conv, url.Values{}, url.Values{}},
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !reflect.DeepEqual(rec.reqs, want) {
		t.Errorf("requests:\n got %+v\nwant %+v", rec.reqs, want)
	}
}
