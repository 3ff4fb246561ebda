package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/poll"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunServesWithFaults(t *testing.T) {
	t.Setenv("EMULATOR_ADDR", "127.0.0.1:0")
	t.Setenv("EMULATOR_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef")
	t.Setenv("EMULATOR_AUTH_TOKEN", "")
	t.Setenv("EMULATOR_FAULTS", `[{"route":"conversations.list","kind":"503","count":1}]`)
	t.Setenv("EMULATOR_NUMBERS", `[{"number":"+15550000000","sms_url":"http://127.0.0.1:1/webhooks/messaging"}]`)
	t.Setenv("EMULATOR_PHONES", `{"+15550001111":{"answer":"busy"}}`)
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"emulator"}, out, io.Discard) }()
	re := regexp.MustCompile(`listening on (http://\S+)`)
	poll.Until(t, "the emulator to say where it listens", func() bool { return re.FindStringSubmatch(out.String()) != nil })
	base := re.FindStringSubmatch(out.String())[1]
	token := regexp.MustCompile(`auth token:\s+(\w+) \(generated\)`).FindStringSubmatch(out.String())
	if token == nil {
		t.Fatalf("generated token not printed:\n%s", out)
	}
	api := emulator.NewClient(base, "AC0123456789abcdef0123456789abcdef", token[1])
	var apiErr *emulator.APIError
	if err := api.Do(ctx, "GET", "/v1/Conversations", nil, nil); !errors.As(err, &apiErr) || apiErr.Status != 503 {
		t.Errorf("first list: %v, want the injected 503", err)
	}
	if err := api.Do(ctx, "GET", "/v1/Conversations", nil, nil); err != nil {
		t.Errorf("second list: %v", err)
	}
	// The numbers of EMULATOR_NUMBERS are the account's, and take calls (this one has no voice URL).
	var numbers struct {
		Numbers []struct {
			PhoneNumber string `json:"phone_number"`
			SMSURL      string `json:"sms_url"`
		} `json:"incoming_phone_numbers"`
	}
	if err := api.Do(ctx, "GET", "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/IncomingPhoneNumbers.json", nil, &numbers); err != nil ||
		len(numbers.Numbers) != 1 || numbers.Numbers[0].PhoneNumber != "+15550000000" || numbers.Numbers[0].SMSURL != "http://127.0.0.1:1/webhooks/messaging" {
		t.Errorf("numbers: %v %+v", err, numbers)
	}
	if c, err := api.Call(ctx, "+15550001111", "+15550000000"); err != nil || c.Status != "failed" || c.Error != "the number has no voice URL" {
		t.Errorf("call: %v %+v", err, c)
	}
	// The Media Content Service is served beside the API, where the banner says.
	media := regexp.MustCompile(`media \(mcs.us1.twilio.com at Twilio\) is under (/v1/Services/IS\w+/Media)`).FindStringSubmatch(out.String())
	if media == nil || media[1] != "/v1/Services/IS0123456789abcdef0123456789abcdef/Media" {
		t.Fatalf("media path not printed:\n%s", out)
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", base+media[1], strings.NewReader("GIF89a"))
	req.Header.Set("Content-Type", "image/gif")
	req.SetBasicAuth("AC0123456789abcdef0123456789abcdef", token[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var up struct {
		Sid   string `json:"sid"`
		Links struct {
			Content string `json:"content_direct_temporary"`
		} `json:"links"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	if resp.StatusCode != 201 || !strings.HasPrefix(up.Sid, "ME") {
		t.Fatalf("upload: %d %+v", resp.StatusCode, up)
	}
	if resp, err = http.Get(up.Links.Content); err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "GIF89a" || resp.Header.Get("Content-Type") != "image/gif" {
		t.Errorf("content: %q %q", body, resp.Header.Get("Content-Type"))
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	for key, value := range map[string]string{
		"EMULATOR_FAULTS":   `[{"route":"*","kind":"teapot"}]`,
		"EMULATOR_CONTENTS": `not json`,
		"EMULATOR_NUMBERS":  `{"number":"+15550000000"}`,
		"EMULATOR_PHONES":   `{"+15550001111":{"answer":"maybe"}}`,
		"EMULATOR_ADDR":     "127.0.0.1:notaport",
	} {
		t.Run(key, func(t *testing.T) {
			t.Setenv("EMULATOR_ADDR", "127.0.0.1:0")
			t.Setenv(key, value)
			err := run(t.Context(), []string{"emulator"}, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), key) {
				t.Errorf("err = %v, want it to name %s", err, key)
			}
		})
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"emulator", "-h"}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "EMULATOR_FAULTS") {
		t.Errorf("help: %v\n%s", err, out.String())
	}
}
