package main

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/poll"
)

// TestDemo runs the README's first command in-process: no Twilio variables, only the demo flag — and
// again in an environment set up for production, which the demo must not be misled by.
func TestDemo(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"clean": {"OPTIN_ADDR": "127.0.0.1:0"},
		"production environment": {
			"OPTIN_ADDR": "127.0.0.1:0", "OPTIN_PUBLIC_URL": "https://hook:secretpw@optin.example.com/prefix",
			"OPTIN_TRUST_PROXY_HEADERS": "true", "TWILIO_ACCOUNT_SID": accountSid, "TWILIO_AUTH_TOKEN": authToken,
			"TWILIO_AUTH_TOKEN_SECONDARY": "secondtoken1", "TWILIO_API_KEY": "SK00000000000000000000000000000001", "TWILIO_API_SECRET": "apisecret1",
			"OPTIN_TWILIO_API_URL": "https://api.example.com", "OPTIN_CONVERSATIONS_SERVICE_SID": "IS0123456789abcdef0123456789abcdef",
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testDemo(t, env)
		})
	}
}

// runDemo runs the service with -demo until the test ends and returns once the story is told.
func runDemo(t *testing.T, env map[string]string) (out, logs *syncBuffer) {
	ctx, cancel := context.WithCancel(context.Background())
	out, logs = &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"optin-server", "-demo"}, envOf(env), out, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("demo did not stop")
		}
	})
	finished := func() bool { return strings.Contains(out.String(), "Still serving until Ctrl-C") }
	defer func() {
		if !finished() {
			t.Logf("demo output:\n%s\nlog:\n%s", out, logs)
		}
	}()
	poll.Until(t, "the demo to finish", func() bool {
		if strings.Contains(out.String(), "demo failed") {
			t.Fatal("demo failed")
		}
		return finished()
	})
	return out, logs
}

func testDemo(t *testing.T, env map[string]string) {
	out, logs := runDemo(t, env)
	story := out.String()
	for _, want := range []string{
		"nothing leaves this machine",
		"Chat order-1042 is invited.",
		"keeps the chat's 2 webhooks",
		"Chat order-1042 is connected: starting → invited → connecting → connected.",
		"5. The rider answers",
		"6. The rider calls +15550100000, the number the chat came from. The customer's phone +15550100001 rings showing +15550100000 —",
		`and hears "A call about your delivery." on answering.`,
		"They talk 35 s. The chat records the call: rider called customer, completed, 35 s",
		"│ ← You have a new message about your delivery",
		"│ ✗ Gate code 4411",
		"│ ← Gate code 4411",
		`7. The rider types "The gate is locked, call me on +44 7911 123456". Twilio asks the service before it`,
		`and the customer reads "The gate is locked, call me on [number hidden]".`,
		`The chat records that the rider typed a number the guard hid ("guarded"), never the number itself;`,
		"Second story: a customer not on WhatsApp.",
		`10. DELETE /v1/chats/order-1042-sms ends Carla's chat.`,
		`and she gets
   "This delivery chat has ended. Please use the app to contact us.". Her "Hello?" right after gets nothing`,
		"Chat order-1042-sms is connected: starting → invited → (moved to sms) → connecting → connected.",
		"✗ Hello Carla, your food delivery is almost",
		"← Hello Carla, your delivery is almost there but │",
		"→ YES  ",
		"-X DELETE http://127.0.0.1:",
		"← Hello Ana, your food delivery is almost there  │ ✗ Yes",
		"← Great! Just a moment while we connect you…     │",
		"│ ← Your customer has agreed to chat",
		"→ Yes",
	} {
		if !strings.Contains(story, want) {
			t.Errorf("story lacks %q:\n%s", want, story)
		}
	}
	if strings.Contains(story, `"level"`) {
		t.Error("log lines mixed into the story")
	}

	// Play further as the README says: the rider answers and the customer receives it.
	emu := regexp.MustCompile(`emulator at (http://127\.0\.0\.1:\d+)`).FindStringSubmatch(story)
	if emu == nil {
		t.Fatalf("no emulator address in:\n%s", story)
	}
	api := emulator.NewClient(emu[1], "", "")
	if _, err := api.Inbound(t.Context(), demoRider, demoBusiness, "I am at the gate"); err != nil {
		t.Fatal(err)
	}
	lines, err := api.Transcript(t.Context(), demoCustomer)
	if err != nil {
		t.Fatal(err)
	}
	if last := lines[len(lines)-1]; last.Text != "I am at the gate" || last.Status != "delivered" || last.Direction != "received" {
		t.Errorf("customer's last line %+v", last)
	}
	if strings.Count(logs.String(), "opt-in finished") != 2 { // one per story
		t.Errorf("the rider's message started another opt-in:\n%s", logs)
	}
	// The chats API answers with the printed token, and ends the chat.
	m := regexp.MustCompile(`-H 'Authorization: Bearer (\w+)' -X DELETE (\S+)`).FindStringSubmatch(story)
	if m == nil {
		t.Fatalf("no end command in:\n%s", story)
	}
	req, _ := http.NewRequest(http.MethodDelete, m[2], nil)
	req.Header.Set("Authorization", "Bearer "+m[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"state":"closed"`) {
		t.Errorf("end: %d %s", resp.StatusCode, body)
	}
}

// The walk-through the demo prints is README's, for the demo's own URL, token and emulator: run as
// printed, by a shell, it starts a chat, the customer's "Yes" connects it, and the end closes it.
func TestDemoWalkthroughRunsAsPrinted(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed: .ci/run installs it")
	}
	out, _ := runDemo(t, map[string]string{"OPTIN_ADDR": "127.0.0.1:0"})
	story := out.String()
	_, walk, ok := strings.Cut(story, "README's whole delivery, for this demo")
	if !ok {
		t.Fatalf("no walk-through:\n%s", story)
	}
	var lines []string
	for _, l := range strings.Split(walk, "\n")[1:] {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) != 6 || !strings.HasPrefix(lines[0], `T="Authorization: Bearer `) {
		t.Fatalf("walk-through %q", lines)
	}
	// Each command after the variables, run in a shell that has them; the answers checked in turn.
	for i, want := range []string{`"state":"invited"`, `"body":"Yes"`, `"id":"order-8812"`, `"id":"order-8812"`, `"state":"closed"`} {
		if i == 2 {
			poll.Until(t, "the customer's Yes to connect the chat", func() bool {
				return strings.Contains(shell(t, lines[0]+"; "+lines[3]), `"state":"connected"`)
			})
		}
		if got := shell(t, lines[0]+"; "+lines[i+1]); !strings.Contains(got, want) {
			t.Errorf("%s\n→ %s\nwant %s", lines[i+1], got, want)
		}
	}
}

func shell(t *testing.T, script string) string {
	t.Helper()
	b, err := exec.Command("sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, b)
	}
	return string(b)
}
