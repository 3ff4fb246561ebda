package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func setValid(t *testing.T) {
	t.Setenv("TWILIO_ACCOUNT_SID", accountSid)
	t.Setenv("TWILIO_AUTH_TOKEN", authToken)
}

// Each case breaks one variable; run must fail naming it, and never echo a secret.
func TestBadConfigNamesTheVariable(t *testing.T) {
	tests := []struct {
		name, key, value string
	}{
		{"missing sid", "TWILIO_ACCOUNT_SID", ""},
		{"sid not AC", "TWILIO_ACCOUNT_SID", "XX00000000000000000000000000000001"},
		{"missing token", "TWILIO_AUTH_TOKEN", ""},
		{"token not alphanumeric", "TWILIO_AUTH_TOKEN", "secret-with-dash"},
		{"key without secret", "TWILIO_API_KEY", "SK00000000000000000000000000000001"},
		{"secret without key", "TWILIO_API_SECRET", "apisecret1"},
		{"public url", "OPTIN_PUBLIC_URL", "optin.example.com"},
		{"public url query", "OPTIN_PUBLIC_URL", "https://optin.example.com/?a=1"},
		{"trust proxy", "OPTIN_TRUST_PROXY_HEADERS", "maybe"},
		{"api url", "OPTIN_TWILIO_API_URL", "localhost:1234"},
		{"empty wait", "OPTIN_WAIT_MESSAGE", ""},
		{"content sid", "OPTIN_RIDER_OPTIN_CONTENT_SID", "MG123"},
		{"content variables", "OPTIN_RIDER_OPTIN_CONTENT_VARIABLES", "not json"},
		{"log level", "OPTIN_LOG_LEVEL", "loud"},
		{"log format", "OPTIN_LOG_FORMAT", "xml"},
		{"shutdown timeout", "OPTIN_SHUTDOWN_TIMEOUT", "soon"},
		{"shutdown timeout zero", "OPTIN_SHUTDOWN_TIMEOUT", "0s"},
		{"addr", "OPTIN_ADDR", "127.0.0.1:http-alt-nope"},
		{"twilio timeout", "OPTIN_TWILIO_TIMEOUT", "0s"},
		{"redis url scheme", "OPTIN_REDIS_URL", "http://127.0.0.1:6379"},
		{"redis url host", "OPTIN_REDIS_URL", "redis://"},
		{"redis wait", "OPTIN_REDIS_STARTUP_WAIT", "-1s"},
		{"workers", "OPTIN_WORKERS", "0"},
		{"retention", "OPTIN_FLOW_RETENTION", "0h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setValid(t)
			t.Setenv("OPTIN_ADDR", "127.0.0.1:0")
			t.Setenv(tt.key, tt.value)
			var out bytes.Buffer
			err := run(t.Context(), []string{"optin-server"}, &out, io.Discard)
			if err == nil {
				t.Fatal("run accepted the configuration")
			}
			if !strings.Contains(err.Error(), tt.key) {
				t.Errorf("error %q does not name %s", err, tt.key)
			}
			if strings.Contains(err.Error()+out.String(), authToken) {
				t.Error("auth token leaked")
			}
		})
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"optin-server", "-h"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_KEY", "TWILIO_API_SECRET",
		"OPTIN_ADDR", ":8080", "OPTIN_PUBLIC_URL", "OPTIN_TRUST_PROXY_HEADERS", "OPTIN_TWILIO_API_URL",
		"OPTIN_WAIT_MESSAGE", "Great! Just a moment while we connect you…",
		"OPTIN_RIDER_OPTIN_MESSAGE", "You're now connected. Say hello!",
		"OPTIN_RIDER_OPTIN_CONTENT_SID", "OPTIN_RIDER_OPTIN_CONTENT_VARIABLES",
		"OPTIN_LOG_LEVEL", "OPTIN_LOG_FORMAT", "OPTIN_SHUTDOWN_TIMEOUT", "10s", "OPTIN_TWILIO_TIMEOUT",
		"OPTIN_REDIS_URL", "OPTIN_REDIS_STARTUP_WAIT", "OPTIN_WORKERS", "OPTIN_FLOW_RETENTION", "720h", "OPTIN_DEMO", "-demo",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestUnknownFlagFails(t *testing.T) {
	if err := run(t.Context(), []string{"optin-server", "-nope"}, io.Discard, io.Discard); err == nil {
		t.Error("unknown flag accepted")
	}
}
