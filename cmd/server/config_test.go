package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rs/zerolog"
)

// validEnv is the least configuration run accepts, with extra on top.
func validEnv(extra map[string]string) map[string]string {
	env := map[string]string{"TWILIO_ACCOUNT_SID": accountSid, "TWILIO_AUTH_TOKEN": authToken, "OPTIN_ADDR": "127.0.0.1:0"}
	maps.Copy(env, extra)
	return env
}

// Each case breaks one variable; run must fail naming it, and never echo a secret.
func TestBadConfigNamesTheVariable(t *testing.T) {
	tests := []struct {
		name, key, value string
	}{
		{"missing sid", "TWILIO_ACCOUNT_SID", ""},
		{"sid not AC", "TWILIO_ACCOUNT_SID", "XX00000000000000000000000000000001"},
		{"sid too short", "TWILIO_ACCOUNT_SID", "AC"},
		{"sid not hex", "TWILIO_ACCOUNT_SID", "AC0000000000000000000000000000000z"},
		{"api key not hex", "TWILIO_API_KEY", "SKnothexnothexnothexnothexnothexno"},
		{"missing token", "TWILIO_AUTH_TOKEN", ""},
		{"token not alphanumeric", "TWILIO_AUTH_TOKEN", "secret-with-dash"},
		{"key without secret", "TWILIO_API_KEY", "SK00000000000000000000000000000001"},
		{"secret without key", "TWILIO_API_SECRET", "apisecret1"},
		{"public url", "OPTIN_PUBLIC_URL", "optin.example.com"},
		{"public url query", "OPTIN_PUBLIC_URL", "https://optin.example.com/?a=1"},
		{"trust proxy", "OPTIN_TRUST_PROXY_HEADERS", "maybe"},
		{"api url", "OPTIN_TWILIO_API_URL", "localhost:1234"},
		{"api url path would be dropped", "OPTIN_TWILIO_API_URL", "http://127.0.0.1:9000/twilio"},
		{"api url query", "OPTIN_TWILIO_API_URL", "http://127.0.0.1:9000?x=1"},
		{"content sid", "OPTIN_RIDER_OPTIN_CONTENT_SID", "MG123"},
		{"content sid short", "OPTIN_RIDER_OPTIN_CONTENT_SID", "HX123"},
		{"content variables", "OPTIN_RIDER_OPTIN_CONTENT_VARIABLES", "not json"},
		{"log level", "OPTIN_LOG_LEVEL", "loud"},
		{"log format", "OPTIN_LOG_FORMAT", "xml"},
		{"shutdown timeout", "OPTIN_SHUTDOWN_TIMEOUT", "soon"},
		{"shutdown timeout zero", "OPTIN_SHUTDOWN_TIMEOUT", "0s"},
		{"addr", "OPTIN_ADDR", "127.0.0.1:http-alt-nope"},
		{"twilio timeout", "OPTIN_TWILIO_TIMEOUT", "0s"},
		{"twilio timeout 1ns", "OPTIN_TWILIO_TIMEOUT", "1ns"},
		{"twilio timeout an hour", "OPTIN_TWILIO_TIMEOUT", "1h"},
		{"twilio timeout not a duration", "OPTIN_TWILIO_TIMEOUT", "10"},
		{"redis url scheme", "OPTIN_REDIS_URL", "http://127.0.0.1:6379"},
		{"redis url host", "OPTIN_REDIS_URL", "redis://"},
		{"redis wait", "OPTIN_REDIS_STARTUP_WAIT", "-1s"},
		{"workers", "OPTIN_WORKERS", "0"},
		{"workers absurd", "OPTIN_WORKERS", "100000000"},
		{"workers not a number", "OPTIN_WORKERS", "ten"},
		{"retention", "OPTIN_FLOW_RETENTION", "0h"},
		{"retention 1ns", "OPTIN_FLOW_RETENTION", "1ns"},
		{"shutdown timeout a day", "OPTIN_SHUTDOWN_TIMEOUT", "24h"},
		{"admin token short", "OPTIN_ADMIN_TOKENS", "short"},
		{"admin token of 31", "OPTIN_ADMIN_TOKENS", "7f3c9a1e5b2d4f6081a9c3e5b7d9f1a"},
		{"admin token repeated", "OPTIN_ADMIN_TOKENS", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
		{"admin token word and digits", "OPTIN_ADMIN_TOKENS", "password12345678password12345678"},
		{"admin token sequence", "OPTIN_ADMIN_TOKENS", "0123456789abcdef0123456789abcdef"},
		{"second admin token weak", "OPTIN_ADMIN_TOKENS", "7f3c9a1e5b2d4f6081a9c3e5b7d9f1a2,passwordpasswordpassword12345678"},
		{"admin token empty list", "OPTIN_ADMIN_TOKENS", " , "},
		{"admin addr without tokens", "OPTIN_ADMIN_ADDR", "127.0.0.1:0"},
		{"whatsapp number", "OPTIN_WHATSAPP_NUMBER", "+15550100000"},
		{"whatsapp numbers", "OPTIN_WHATSAPP_NUMBERS", "whatsapp:+15550100000,15550100001"},
		{"sms numbers", "OPTIN_SMS_NUMBERS", "whatsapp:+15550100000"},
		{"invite content sid", "OPTIN_INVITE_CONTENT_SID", "HX12"},
		{"chat ttl", "OPTIN_CHAT_TTL", "5m"},
		{"chat start timeout", "OPTIN_CHAT_START_TIMEOUT", "2h"},
		{"create rate", "OPTIN_TWILIO_CREATE_RATE", "0"},
		{"reconcile interval short", "OPTIN_RECONCILE_INTERVAL", "500ms"},
		{"reconcile interval long", "OPTIN_RECONCILE_INTERVAL", "48h"},
		{"reconcile interval not a duration", "OPTIN_RECONCILE_INTERVAL", "5"},
		{"reconcile rate", "OPTIN_RECONCILE_RATE", "0"},
		{"reconcile rate absurd", "OPTIN_RECONCILE_RATE", "5000"},
		{"callback url without the API", "OPTIN_CALLBACK_URL", "https://platform.example.com/hooks"},
		{"callback secret without url", "OPTIN_CALLBACK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		{"hold max short", "OPTIN_HOLD_MAX", "30s"},
		{"hold max long", "OPTIN_HOLD_MAX", "721h"},
		{"hold limit zero", "OPTIN_HOLD_LIMIT", "0"},
		{"hold limit huge", "OPTIN_HOLD_LIMIT", "100000"},
		{"hold limit bytes small", "OPTIN_HOLD_LIMIT_BYTES", "100"},
		{"nudge content sid", "OPTIN_NUDGE_CONTENT_SID", "HX123"},
		{"conversations service sid", "OPTIN_CONVERSATIONS_SERVICE_SID", "MG00000000000000000000000000000001"},
		{"conversations service sid short", "OPTIN_CONVERSATIONS_SERVICE_SID", "IS123"},
		{"sms invitation empty", "OPTIN_INVITE_SMS_BODY", "  "},
		{"sms invitation too long", "OPTIN_INVITE_SMS_BODY", strings.Repeat("x", 1500)},
		{"call time limit zero", "OPTIN_CALL_TIME_LIMIT", "0s"},
		{"call time limit over twilio's", "OPTIN_CALL_TIME_LIMIT", "4h1s"},
		{"call time limit fraction", "OPTIN_CALL_TIME_LIMIT", "90500ms"},
		{"call time limit not a duration", "OPTIN_CALL_TIME_LIMIT", "10"},
		{"call unavailable text empty", "OPTIN_CALL_UNAVAILABLE_TEXT", " "},
		{"call whisper too long", "OPTIN_CALL_WHISPER_TEXT", strings.Repeat("x", 5000)},
		{"guard mode", "OPTIN_GUARD", "mask"},
		{"guard mode blank", "OPTIN_GUARD", " "},
		{"guard allow-list national", "OPTIN_GUARD_ALLOW", "+44 20 3123 4567, 020 3123 4567"},
		{"guard allow-list word", "OPTIN_GUARD_ALLOW", "support"},
		{"after-end text blank", "OPTIN_AFTER_END_TEXT", "  "},
		{"after-end text too long", "OPTIN_AFTER_END_TEXT", strings.Repeat("x", 1601)},
		{"after-end every too short", "OPTIN_AFTER_END_EVERY", "30s"},
		{"after-end every not a duration", "OPTIN_AFTER_END_EVERY", "hourly"},
		{"never-chatted text too long", "OPTIN_NEVER_CHATTED_TEXT", strings.Repeat("x", 1601)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := run(t.Context(), []string{"optin-server"}, envOf(validEnv(map[string]string{tt.key: tt.value})), &out, io.Discard)
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

// The help names every variable with its default, in lines of at most 100 columns.
func TestHelpListsEveryVariable(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"optin-server", "-h"}, envOf(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(out.String(), "\n") {
		if n := utf8.RuneCountInString(line); n > helpWidth {
			t.Errorf("line %d is %d columns: %s", i+1, n, line)
		}
	}
	// Each variable's block: its line and the indented lines below it, the wrapping undone.
	blocks := map[string]string{}
	var name string
	variable := regexp.MustCompile(`^(OPTIN|TWILIO)_[A-Z_]+( \(\w[\w ]*\))?\n$`)
	for line := range strings.Lines(out.String()) {
		switch {
		case variable.MatchString(line):
			name = strings.Fields(line)[0]
			blocks[name] = ""
		case strings.HasPrefix(line, "    ") && name != "":
			blocks[name] = strings.Join(strings.Fields(blocks[name]+" "+line), " ")
		}
	}
	typ := reflect.TypeFor[config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		block, ok := blocks[f.Tag.Get("envconfig")]
		switch def := f.Tag.Get("default"); {
		case !ok || !strings.HasPrefix(block, strings.Join(strings.Fields(f.Tag.Get("desc")), " ")):
			t.Errorf("help lacks %s or its description: %q", f.Tag.Get("envconfig"), block)
		case def != "" && !strings.HasSuffix(block, "default: "+strings.Join(strings.Fields(def), " ")):
			t.Errorf("help lacks the default of %s: %q", f.Tag.Get("envconfig"), block)
		}
	}
	help := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{"-demo", "Great! Just a moment while we connect you…", "You're now connected. Say hello!"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestUnknownFlagFails(t *testing.T) {
	if err := run(t.Context(), []string{"optin-server", "-nope"}, envOf(nil), io.Discard, io.Discard); err == nil {
		t.Error("unknown flag accepted")
	}
}

// Every variable is logged, and every secret is masked because its field is tagged so — including the
// ones added later: a field whose variable names a token, secret or password must carry the tag.
func TestConfigLogMasksByTag(t *testing.T) {
	c, err := readConfig(envOf(map[string]string{
		"TWILIO_AUTH_TOKEN": "tok1", "TWILIO_AUTH_TOKEN_SECONDARY": "tok2", "TWILIO_API_SECRET": "sec3",
		"OPTIN_PUBLIC_URL": "https://user4:pass5@optin.example.com", "OPTIN_REDIS_URL": "redis://:pass6@redis:6379/0",
		"OPTIN_TWILIO_API_URL": "http://user7:pass8@127.0.0.1:9", "OPTIN_WORKERS": "7",
	}))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	log.Info().Object("config", c).Send()
	var logged struct{ Config map[string]string }
	if err := json.Unmarshal(buf.Bytes(), &logged); err != nil {
		t.Fatal(err)
	}
	v := reflect.TypeOf(c)
	for i := range v.NumField() {
		f := v.Field(i)
		name := f.Tag.Get("envconfig")
		if _, ok := logged.Config[name]; !ok {
			t.Errorf("%s is not logged", name)
		}
		if strings.ContainsAny(name, "abcdefghijklmnopqrstuvwxyz") || name == "" {
			t.Errorf("field %s: envconfig name %q", f.Name, name)
		}
		for _, word := range []string{"TOKEN", "SECRET", "PASSWORD"} {
			if strings.Contains(name, word) && f.Tag.Get("mask") != "secret" {
				t.Errorf("%s holds a secret but is not tagged mask:\"secret\"", name)
			}
		}
		if strings.HasSuffix(name, "_URL") && f.Tag.Get("mask") != "url" {
			t.Errorf("%s is a URL but is not tagged mask:\"url\"", name)
		}
	}
	for _, secret := range []string{"tok1", "tok2", "sec3", "user4", "pass5", "pass6", "user7", "pass8"} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("%s logged:\n%s", secret, buf.String())
		}
	}
	for name, want := range map[string]string{
		"TWILIO_AUTH_TOKEN": "********", "OPTIN_PUBLIC_URL": "https://xxxxx@optin.example.com",
		"OPTIN_REDIS_URL": "redis://xxxxx@redis:6379/0", "OPTIN_WORKERS": "7", "OPTIN_ADDR": ":8080", "OPTIN_DEMO": "false",
	} {
		if logged.Config[name] != want {
			t.Errorf("%s logged as %q, want %q", name, logged.Config[name], want)
		}
	}
}

// Validation reads the config and writes nothing back into it.
func TestValidateIsPure(t *testing.T) {
	c, err := readConfig(envOf(validEnv(map[string]string{"OPTIN_PUBLIC_URL": "https://u:p@optin.example.com/x"})))
	if err != nil {
		t.Fatal(err)
	}
	before := c
	s, err := c.validate()
	if err != nil {
		t.Fatal(err)
	}
	if c != before || s.config != before {
		t.Error("validate changed the config")
	}
	if s.publicURL.String() != "https://optin.example.com/x" {
		t.Errorf("signed against %s: Twilio drops user and password before signing", s.publicURL)
	}
}

// Closing the backend shuts its queue down: nothing more is taken, whichever way run returns.
func TestBackendCloseShutsTheQueue(t *testing.T) {
	c, _ := readConfig(envOf(validEnv(nil)))
	be, err := openBackend(t.Context(), c, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := be.queue.Start(noWork{}); err != nil {
		t.Fatal(err)
	}
	if err := be.queue.Enqueue(t.Context(), "CH1"); err != nil {
		t.Fatal(err)
	}
	if err := be.close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := be.queue.Enqueue(t.Context(), "CH2"); err == nil {
		t.Error("the queue takes work after the backend closed")
	}
}

type noWork struct{}

func (noWork) Work(context.Context, string) error          { return nil }
func (noWork) GiveUp(context.Context, string, error) error { return nil }

// With the API on, its own settings are checked together.
func TestBadAPIConfig(t *testing.T) {
	on := map[string]string{"OPTIN_ADMIN_TOKENS": "7f3c9a1e5b2d4f6081a9c3e5b7d9f1a2", "OPTIN_PUBLIC_URL": "https://optin.example.com",
		"OPTIN_WHATSAPP_NUMBER": "whatsapp:+15550100000"}
	for name, tt := range map[string]struct{ key, value string }{
		"no number":       {"OPTIN_WHATSAPP_NUMBER", ""},
		"no public url":   {"OPTIN_PUBLIC_URL", ""},
		"callback https":  {"OPTIN_CALLBACK_URL", "ftp://platform.example.com"},
		"callback secret": {"OPTIN_CALLBACK_SECRET", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
	} {
		env := validEnv(on)
		env[tt.key] = tt.value
		if tt.key == "OPTIN_CALLBACK_SECRET" {
			env["OPTIN_CALLBACK_URL"] = "https://platform.example.com/hooks"
		}
		if tt.key == "OPTIN_CALLBACK_URL" {
			env["OPTIN_CALLBACK_SECRET"] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		}
		err := run(t.Context(), []string{"optin-server"}, envOf(env), io.Discard, io.Discard)
		want := tt.key
		if tt.key == "OPTIN_WHATSAPP_NUMBER" {
			want = "OPTIN_WHATSAPP_NUMBERS"
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want it to name %s", name, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") {
			t.Errorf("%s: the callback secret is in the error", name)
		}
	}
}

// An exporter the OpenTelemetry SDK does not know stops the start, naming its variable. (The SDK reads
// its variables from the process environment itself.)
func TestBadTracesExporterNamesTheVariable(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "carrier-pigeon")
	err := run(t.Context(), []string{"optin-server"}, envOf(validEnv(map[string]string{"OTEL_TRACES_EXPORTER": "carrier-pigeon"})), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "OTEL_TRACES_EXPORTER") {
		t.Fatalf("run: %v, want an error naming OTEL_TRACES_EXPORTER", err)
	}
}
