package chat

import (
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"
)

var testCfg = Config{WebhookURL: "https://optin.example.com/webhooks/conversations",
	InviteContentSid: "HX0000000000000000000000000000a001", DefaultTTL: 4 * time.Hour}

func TestStartRequestDefaultsAndFingerprint(t *testing.T) {
	now := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	r := StartRequest{ID: "order-1", Customer: PartyRequest{"whatsapp:+15550001111", "Ana"}, Rider: PartyRequest{"whatsapp:+15550002222", "Bruno"},
		Metadata: json.RawMessage(`{ "order" : 1 }`)}
	c, err := r.validate(testCfg, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != StateStarting || c.TTL != 4*time.Hour || !c.ExpiresAt.Equal(now.Add(4*time.Hour)) || c.Customer.ProxyAddress != "" ||
		c.Invite.ContentSid != testCfg.InviteContentSid || c.Invite.ContentVariables["1"] != "Ana" || c.Invite.ContentVariables["2"] != "Bruno" ||
		string(c.Metadata) != `{"order":1}` || len(c.History) != 1 {
		t.Errorf("chat %+v", c)
	}
	// The same request written differently has the same fingerprint; another request another one.
	same := r
	same.Metadata = json.RawMessage(`{"order":1}`)
	other := r
	other.TTL = "2h"
	if r.fingerprint() != same.fingerprint() || r.fingerprint() == other.fingerprint() {
		t.Error("fingerprints do not tell requests apart")
	}
}

func TestStartRequestValidation(t *testing.T) {
	ok := StartRequest{ID: "a", Customer: PartyRequest{Address: "whatsapp:+15550001111"}, Rider: PartyRequest{Address: "whatsapp:+15550002222"}}
	for name, tt := range map[string]struct {
		change func(*StartRequest)
		field  string
	}{
		"long id":        {func(r *StartRequest) { r.ID = strings.Repeat("a", 65) }, "id"},
		"slash in id":    {func(r *StartRequest) { r.ID = "a/b" }, "id"},
		"sms customer":   {func(r *StartRequest) { r.Customer.Address = "+15550001111" }, "customer.address"},
		"impossible":     {func(r *StartRequest) { r.Rider.Address = "whatsapp:+1555" }, "rider.address"},
		"spaces":         {func(r *StartRequest) { r.Rider.Address = "whatsapp:+1 555 000 2222" }, "rider.address"},
		"long name":      {func(r *StartRequest) { r.Customer.Name = strings.Repeat("é", 65) }, "customer.name"},
		"ttl short":      {func(r *StartRequest) { r.TTL = "9m" }, "ttl"},
		"ttl long":       {func(r *StartRequest) { r.TTL = "721h" }, "ttl"},
		"ttl garbage":    {func(r *StartRequest) { r.TTL = "soon" }, "ttl"},
		"big metadata":   {func(r *StartRequest) { r.Metadata = json.RawMessage(`{"a":"` + strings.Repeat("x", 4096) + `"}`) }, "metadata"},
		"array metadata": {func(r *StartRequest) { r.Metadata = json.RawMessage(`[]`) }, "metadata"},
		"bad content":    {func(r *StartRequest) { r.Invite = &Invite{ContentSid: "HX1"} }, "invite.content_sid"},
		"long body":      {func(r *StartRequest) { r.Invite = &Invite{Body: strings.Repeat("a", 1601)} }, "invite.body"},
		"empty invite":   {func(r *StartRequest) { r.Invite = &Invite{} }, "invite"},
		"unknown mode":   {func(r *StartRequest) { r.Mode = "sideways" }, "mode"},
		"direct invite": {func(r *StartRequest) {
			r.Mode, r.Invite = ModeDirect, &Invite{Body: "hi"}
		}, "invite"},
		"sms without pool": {func(r *StartRequest) { r.Rider.Address = "+15550002222" }, "rider.address"},
	} {
		r := ok
		tt.change(&r)
		_, err := r.validate(testCfg, time.Now())
		ve, isVE := err.(*ValidationError)
		if !isVE || len(ve.Fields) != 1 || ve.Fields[0].Field != tt.field {
			t.Errorf("%s: %v, want one error on %s", name, err, tt.field)
		}
	}
	if _, err := ok.validate(testCfg, time.Now()); err != nil {
		t.Errorf("valid request refused: %v", err)
	}
}

func TestStartSteps(t *testing.T) {
	c := Chat{Mode: ModeOptIn, Steps: map[string]string{stepNumbers: "whatsapp:+15550100000,whatsapp:+15550100091", stepConversation: "CH1"},
		Error: &Failure{TwilioCode: 50416, Step: stepMessageWebhook}}
	got := ""
	for _, s := range c.StartSteps() {
		got += s.Name + "=" + s.Status + ":" + s.Result + ";"
	}
	want := "numbers=done:whatsapp:+15550100000,whatsapp:+15550100091;conversation=done:CH1;message_webhook=failed:;" +
		"lifecycle_webhook=pending:;customer=pending:;rider=pending:;invite=pending:;"
	if got != want {
		t.Errorf("steps\n got %s\nwant %s", got, want)
	}
	c = Chat{Mode: ModeDirect, Steps: map[string]string{}}
	// A direct chat invites nobody, but arms its message webhook: what the parties write is relayed.
	if s := c.StartSteps(); s[2].Status != "pending" || s[6].Status != "skipped" || s[4].Status != "pending" {
		t.Errorf("direct chat's steps %+v", s)
	}
}

// What Twilio would refuse later, or what reaches no person, is refused up front, naming the field and
// saying what is wrong.
func TestStartRequestRefusesWhatCannotBeAChat(t *testing.T) {
	cfg := testCfg
	cfg.WhatsApp, cfg.SMS = newFakePool(), &smsPool{}
	ok := StartRequest{ID: "a", Customer: PartyRequest{Address: "whatsapp:+15550001111"}, Rider: PartyRequest{Address: "whatsapp:+15550002222"}}
	for name, tt := range map[string]struct {
		change      func(*StartRequest)
		field, says string
	}{
		"dot id":              {func(r *StartRequest) { r.ID = "." }, "id", "path segment"},
		"dot dot id":          {func(r *StartRequest) { r.ID = ".." }, "id", "path segment"},
		"sid id":              {func(r *StartRequest) { r.ID = "CH0123456789abcdef0123456789abcdef" }, "id", "conversation SID"},
		"business customer":   {func(r *StartRequest) { r.Customer.Address = "whatsapp:+15550100000" }, "customer.address", "business numbers"},
		"business rider, sms": {func(r *StartRequest) { r.Rider.Address = "+15550100000" }, "rider.address", "business numbers"},
		"sms business number": {func(r *StartRequest) { r.Rider.Address = "whatsapp:+15550190000" }, "rider.address", "business numbers"},
		"same person":         {func(r *StartRequest) { r.Rider.Address = "+15550001111" }, "rider.address", "another person"},
		"letters":             {func(r *StartRequest) { r.Rider.Address = "whatsapp:+1555ABC2222" }, "rider.address", "'A' is not a digit"},
		"no plus":             {func(r *StartRequest) { r.Rider.Address = "whatsapp:15550002222" }, "rider.address", "must start with +"},
		"premium rate":        {func(r *StartRequest) { r.Rider.Address = "whatsapp:+19005551234" }, "rider.address", "premium-rate"},
		"premium rate uk":     {func(r *StartRequest) { r.Rider.Address = "whatsapp:+449091234567" }, "rider.address", "premium-rate"},
		"short number":        {func(r *StartRequest) { r.Rider.Address = "whatsapp:+44116123" }, "rider.address", "short or local-only"},
		"too short":           {func(r *StartRequest) { r.Rider.Address = "whatsapp:+12345" }, "rider.address", "too short"},
		"unknown country":     {func(r *StartRequest) { r.Rider.Address = "whatsapp:+8091234567" }, "rider.address", "country code"},
	} {
		r := ok
		tt.change(&r)
		_, err := r.validate(cfg, time.Now())
		ve, isVE := err.(*ValidationError)
		if !isVE || len(ve.Fields) != 1 || ve.Fields[0].Field != tt.field || !strings.Contains(ve.Fields[0].Message, tt.says) {
			t.Errorf("%s: %v, want one error on %s saying %q", name, err, tt.field, tt.says)
		}
	}
	// The client's whitespace does not count toward the metadata's 4 KiB.
	r := ok
	r.Metadata = json.RawMessage(`{"a":` + strings.Repeat(" ", 5000) + `"b"}`)
	if c, err := r.validate(cfg, time.Now()); err != nil || string(c.Metadata) != `{"a":"b"}` {
		t.Errorf("spaced metadata: %v %s", err, c.Metadata)
	}
}

// smsPool holds one SMS number.
type smsPool struct{ fakePool }

func (*smsPool) Contains(number string) bool { return number == "+15550190000" }

// Names reach phones verbatim: control and bidirectional-override characters are refused, naming the
// field; template variables that would render empty are refused; the default invitation's variables
// fall back to what the parties are (issue 27).
func TestWhatPeopleReceiveIsChecked(t *testing.T) {
	cfg := Config{InviteContentSid: "HX00000000000000000000000000000001", DefaultTTL: time.Hour}
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	base := func() StartRequest {
		return StartRequest{ID: "order-1", Customer: PartyRequest{Address: "whatsapp:+15550001111"},
			Rider: PartyRequest{Address: "whatsapp:+15550002222"}}
	}
	for name, tt := range map[string]struct {
		change func(*StartRequest)
		field  string
	}{
		"NUL in a name":     {func(r *StartRequest) { r.Customer.Name = "Ana\x00" }, "customer.name"},
		"newline in a name": {func(r *StartRequest) { r.Rider.Name = "Bruno\nCall +1 555" }, "rider.name"},
		"RLO in a name":     {func(r *StartRequest) { r.Rider.Name = "Bruno\u202Egnp.exe" }, "rider.name"},
		"isolate in a name": {func(r *StartRequest) { r.Customer.Name = "\u2067Ana" }, "customer.name"},
		"empty variable":    {func(r *StartRequest) { r.Invite = &Invite{ContentVariables: map[string]string{"2": " "}} }, "invite.content_variables.2"},
		"empty template var": {func(r *StartRequest) {
			r.Invite = &Invite{ContentSid: cfg.InviteContentSid, ContentVariables: map[string]string{"1": ""}}
		}, "invite.content_variables.1"},
		"control in variable": {func(r *StartRequest) { r.Invite = &Invite{ContentVariables: map[string]string{"1": "a\tb"}} }, "invite.content_variables.1"},
	} {
		r := base()
		tt.change(&r)
		_, err := r.validate(cfg, now)
		var ve *ValidationError
		if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != tt.field {
			t.Errorf("%s: %v, want one error naming %s", name, err, tt.field)
		}
	}
	c, err := base().validate(cfg, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"1": "there", "2": "someone"}; !maps.Equal(c.Invite.ContentVariables, want) {
		t.Errorf("default variables without names %v, want %v", c.Invite.ContentVariables, want)
	}
	r := base()
	r.Customer.Name = "Ana"
	r.Invite = &Invite{ContentVariables: map[string]string{"2": "Bruno from Acme"}}
	if c, err = r.validate(cfg, now); err != nil || c.Invite.ContentSid != cfg.InviteContentSid ||
		!maps.Equal(c.Invite.ContentVariables, map[string]string{"1": "Ana", "2": "Bruno from Acme"}) {
		t.Errorf("variables alone: %+v %v, want the default template with them over the defaults", c.Invite, err)
	}
}
