package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/redistest"
	"github.com/optinkit/optin/internal/signature"
)

// BenchmarkVoiceBesideMessageWebhook is one signed webhook of a connected chat through the real server
// over loopback HTTP, in memory and on Redis: Twilio's incoming call of a party (the pair index's one
// read, the chat's update recording the call, the <Dial> answer) beside the message webhook of the
// same party writing in the chat (what the message webhook costs for every message relayed).
func BenchmarkVoiceBesideMessageWebhook(b *testing.B) {
	for _, backend := range []string{"memory", "redis"} {
		b.Run(backend, func(b *testing.B) {
			env := map[string]string{"OPTIN_LOG_LEVEL": "warn"}
			if backend == "redis" {
				env["OPTIN_REDIS_URL"] = redistest.Start(b).URL()
			}
			srv, conv := connectedForBench(b, env)
			client := &http.Client{}
			send := func(path string, params url.Values) {
				u := srv.base + path
				r, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(params.Encode()))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				r.Header.Set("X-Twilio-Signature", signature.Compute(authToken, u, params))
				resp, err := client.Do(r)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("%s: %d %s", path, resp.StatusCode, body)
				}
			}
			b.Run("voice", func(b *testing.B) {
				i := 0
				b.ReportAllocs()
				for b.Loop() {
					i++
					send("/webhooks/voice", url.Values{"CallSid": {fmt.Sprintf("CA%032x", i)}, "AccountSid": {accountSid},
						"From": {"+15550002222"}, "To": {"+15550100000"}, "CallStatus": {"ringing"}, "Direction": {"inbound"}})
				}
			})
			b.Run("message", func(b *testing.B) {
				i := 0
				b.ReportAllocs()
				for b.Loop() {
					i++
					send("/webhooks/conversations", url.Values{"EventType": {"onMessageAdded"}, "ConversationSid": {conv},
						"MessageSid": {fmt.Sprintf("IM%032x", i)}, "Author": {rider}, "Body": {"At your gate"},
						"ParticipantSid": {"MB00000000000000000000000000000002"}, "Index": {fmt.Sprint(i)}, "Source": {"WHATSAPP"},
						"RetryCount": {"0"}, "DateCreated": {time.Now().UTC().Format(time.RFC3339)}})
				}
			})
		})
	}
}

// connectedForBench runs one replica (env on top) on an emulator with a connected chat order-1 and
// returns it with the chat's conversation.
func connectedForBench(b *testing.B, env map[string]string) (*server, string) {
	b.Helper()
	emu, err := emulator.New(emulator.Options{AccountSid: accountSid, AuthToken: authToken,
		Contents: map[string]string{inviteSid: "Hello {{1}}, can {{2}} message you?"}})
	if err != nil {
		b.Fatal(err)
	}
	api := httptest.NewServer(emu)
	b.Cleanup(api.Close)
	b.Cleanup(func() { _ = emu.Close(context.Background()) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	e := adminEnv(map[string]string{"OPTIN_PUBLIC_URL": base, "OPTIN_TWILIO_API_URL": api.URL, "TWILIO_ACCOUNT_SID": accountSid,
		"TWILIO_AUTH_TOKEN": authToken, "OPTIN_ADDR": "127.0.0.1:0"})
	maps.Copy(e, env)
	srv := startRunCtx(b, withListener(context.Background(), ln), e, "optin-server")
	if code, _, body := srv.api("POST", "/v1/chats", adminToken1, startBody); code != 201 {
		b.Fatalf("start: %d %s", code, body)
	}
	if _, err := emu.Inbound(customer, business, "Yes"); err != nil {
		b.Fatal(err)
	}
	c := srv.waitChat("order-8812", "connected")
	// The bench's chat is order-8812; the voice requests call as its rider.
	conv, _ := c["conversation_sid"].(string)
	return srv, conv
}
