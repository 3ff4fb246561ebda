package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/redistest"
)

// BenchmarkStartBurst starts 200 chats at once on three replicas sharing Redis, against an emulator
// that refuses conversation creates above 30 per second (429, as Twilio does), with the service's
// create rate at its default of 25/s. It reports the 429s Twilio would have answered after the first
// second, and the seconds the burst took (≈ 200 / 25 when the rate holds).
func BenchmarkStartBurst(b *testing.B) {
	for b.Loop() {
		rs := redistest.Start(b)
		emu, err := emulator.New(emulator.Options{AccountSid: accountSid, AuthToken: authToken, CreateRate: 30,
			Contents: map[string]string{inviteSid: "Hello {{1}}"}})
		if err != nil {
			b.Fatal(err)
		}
		api := httptest.NewServer(emu)
		env := adminEnv(map[string]string{"OPTIN_REDIS_URL": rs.URL(), "OPTIN_TWILIO_API_URL": api.URL,
			"OPTIN_CHAT_START_TIMEOUT": "60s", "OPTIN_LOG_LEVEL": "warn", "TWILIO_ACCOUNT_SID": accountSid, "TWILIO_AUTH_TOKEN": authToken,
			"OPTIN_ADDR": "127.0.0.1:0"})
		var replicas []*server
		for range 3 {
			replicas = append(replicas, startRun(b, env, "optin-server"))
		}
		began := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		failed := 0
		for i := range 200 {
			wg.Go(func() {
				body := fmt.Sprintf(`{"id":"burst-%d","customer":{"address":"whatsapp:+15550%06d"},"rider":{"address":"whatsapp:+15551%06d"}}`, i, i, i)
				if code, _, _ := replicas[i%3].api("POST", "/v1/chats", adminToken1, body); code != 201 {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			})
		}
		// 429s in the first second are the burst's edge; count those after it.
		time.Sleep(time.Second)
		edge := emu.RateLimited()
		wg.Wait()
		took := time.Since(began)
		if failed > 0 {
			b.Errorf("%d of 200 starts failed", failed)
		}
		b.ReportMetric(float64(emu.RateLimited()-edge), "429s-after-1s")
		b.ReportMetric(float64(emu.RateLimited()), "429s")
		b.ReportMetric(took.Seconds(), "s/200-starts")
		for _, r := range replicas {
			r.stop()
		}
		api.Close()
		_ = emu.Close(context.Background())
	}
}
