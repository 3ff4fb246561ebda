package chat

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"

	"github.com/optinkit/optin/internal/conversation"
)

// StartRequest is what a platform asks for to start a chat.
type StartRequest struct {
	ID string
	// Mode is ModeOptIn (also when empty) or ModeDirect.
	Mode            string
	Customer, Rider PartyRequest
	// Invite is nil for the configured default.
	Invite *Invite
	// TTL is a Go duration; empty for the configured default.
	TTL string
	// Metadata is a JSON object, or nil.
	Metadata json.RawMessage
}

// PartyRequest is one side of a StartRequest.
type PartyRequest struct {
	Address, Name string
}

// Limits of a start request.
const (
	MinTTL         = 10 * time.Minute // Twilio's shortest Timers.Closed
	MaxTTL         = 30 * 24 * time.Hour
	MaxMetadata    = 4 << 10
	maxNameRunes   = 64
	maxBodyRunes   = 1600 // WhatsApp's and SMS's limit on a message body
	maxContentVars = 20
)

var idRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// validate checks r against the service's configuration and returns the chat it asks for.
func (r StartRequest) validate(cfg Config, now time.Time) (Chat, error) {
	var errs []FieldError
	bad := func(field, msg string) { errs = append(errs, FieldError{field, msg}) }
	switch {
	case !idRE.MatchString(r.ID):
		bad("id", "required: 1 to 64 letters, digits and . _ : -")
	case r.ID == "." || r.ID == "..":
		bad("id", "must not be . or .. (a path segment)")
	case conversation.IsSid("CH", r.ID):
		bad("id", "must not look like a conversation SID (CH + 32 hex digits): GET /v1/chats/{id} reads such a key as one")
	}
	checkParty := func(field string, p PartyRequest) {
		if err := checkAddress(p.Address); err != "" {
			bad(field+".address", err)
		} else if channelOf(p.Address) == ChannelSMS && cfg.SMS == nil {
			bad(field+".address", "an SMS address needs an SMS pool (OPTIN_SMS_NUMBERS); use whatsapp:+E164")
		} else if cfg.isBusinessNumber(p.Address) {
			bad(field+".address", "is one of the service's business numbers: a party is a person the business talks to")
		}
		if len([]rune(p.Name)) > maxNameRunes {
			bad(field+".name", "at most 64 characters")
		} else if r, ok := unprintable(p.Name); ok {
			bad(field+".name", fmt.Sprintf("must not contain control or bidirectional-override characters (found U+%04X)", r))
		}
	}
	checkParty("customer", r.Customer)
	checkParty("rider", r.Rider)
	if r.Customer.Address != "" && phoneOf(r.Customer.Address) == phoneOf(r.Rider.Address) {
		bad("rider.address", "must be another person than customer.address (the same number, on any channel)")
	}
	mode := r.Mode
	switch mode {
	case "":
		mode = ModeOptIn
	case ModeOptIn, ModeDirect:
	default:
		bad("mode", "want optin or direct")
	}
	// The default invitation's variables: the names, or what the parties are (WhatsApp refuses an
	// empty parameter); a request may give its own, over these.
	inv := Invite{ContentSid: cfg.InviteContentSid, ContentVariables: map[string]string{
		"1": nameOrThe(r.Customer.Name, noCustomerName), "2": nameOrThe(r.Rider.Name, noRiderName)}}
	if mode == ModeDirect {
		inv = Invite{}
		if r.Invite != nil {
			bad("invite", "a direct chat sends no invitation")
		}
	} else if r.Invite != nil && r.Invite.ContentSid == "" && r.Invite.Body == "" && len(r.Invite.ContentVariables) > 0 {
		// Variables alone: the default template with these over the defaults.
		if cfg.InviteContentSid == "" {
			bad("invite.content_sid", "required: no default invitation template is configured (OPTIN_INVITE_CONTENT_SID)")
		}
		for k, v := range r.Invite.ContentVariables {
			inv.ContentVariables[k] = v
		}
		checkVariables(bad, inv.ContentVariables)
	} else if r.Invite != nil {
		inv = *r.Invite
		switch {
		case inv.ContentSid == "" && inv.Body == "":
			bad("invite", "needs content_sid, body or content_variables")
		case inv.ContentSid != "" && inv.Body != "":
			bad("invite", "content_sid and body exclude each other")
		case inv.ContentSid != "" && !conversation.IsSid("HX", inv.ContentSid):
			bad("invite.content_sid", "must be HX followed by 32 hexadecimal digits")
		case len([]rune(inv.Body)) > maxBodyRunes:
			bad("invite.body", "at most 1600 characters")
		case len(inv.ContentVariables) > maxContentVars:
			bad("invite.content_variables", "at most 20 variables")
		default:
			checkVariables(bad, inv.ContentVariables)
		}
		if inv.Body != "" {
			inv.ContentVariables = nil
		}
	} else if cfg.InviteContentSid == "" {
		bad("invite", "required: no default invitation template is configured (OPTIN_INVITE_CONTENT_SID)")
	}
	ttl := cfg.DefaultTTL
	if r.TTL != "" {
		d, err := time.ParseDuration(r.TTL)
		switch {
		case err != nil:
			bad("ttl", "must be a duration such as 2h or 45m")
		case d < MinTTL || d > MaxTTL:
			bad("ttl", "must be between 10m and 720h")
		default:
			ttl = d
		}
	}
	if len(r.Metadata) > 0 {
		var obj map[string]any
		switch {
		case len(compact(r.Metadata)) > MaxMetadata: // as kept: the client's whitespace does not count
			bad("metadata", "at most 4 KiB")
		case json.Unmarshal(r.Metadata, &obj) != nil || obj == nil:
			bad("metadata", "must be a JSON object")
		}
	}
	if len(errs) > 0 {
		return Chat{}, &ValidationError{Fields: errs}
	}
	c := Chat{
		ID:          r.ID,
		Mode:        mode,
		State:       StateStarting,
		Customer:    Party{Address: r.Customer.Address, Name: r.Customer.Name},
		Rider:       Party{Address: r.Rider.Address, Name: r.Rider.Name},
		Invite:      inv,
		TTL:         ttl,
		Metadata:    compact(r.Metadata),
		CreatedAt:   now,
		UpdatedAt:   now,
		ExpiresAt:   now.Add(ttl),
		History:     []Transition{{State: StateStarting, At: now}},
		Fingerprint: r.fingerprint(),
		Steps:       map[string]string{},
	}
	return c, nil
}

// checkAddress returns what is wrong with a whatsapp:+E164 or (SMS) +E164 address, or "".
func checkAddress(address string) string {
	number, _ := strings.CutPrefix(address, "whatsapp:")
	if address == "" {
		return "required: whatsapp:+E164 (or +E164 for SMS), e.g. whatsapp:+15550001111"
	}
	return checkE164(number)
}

// phoneOf is an address's phone number, whatever its channel.
func phoneOf(address string) string {
	n, _ := strings.CutPrefix(address, "whatsapp:")
	return n
}

// isBusinessNumber reports whether address is one of the pools' numbers, on any channel.
func (cfg Config) isBusinessNumber(address string) bool {
	phone := phoneOf(address)
	for _, p := range []Pool{cfg.WhatsApp, cfg.SMS} {
		if p != nil && (p.Contains(phone) || p.Contains("whatsapp:"+phone)) {
			return true
		}
	}
	return false
}

// checkE164 returns what is wrong with a +E164 number, or "": a number that could exist (the fictional
// +1 555 numbers of tests pass), written in its canonical form, that reaches a person — not a
// premium-rate service, not a short or local-only number.
func checkE164(number string) string {
	if !strings.HasPrefix(number, "+") {
		return "must start with + and the country code (E.164), e.g. +15550001111"
	}
	if i := strings.IndexFunc(number[1:], func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		r, _ := utf8.DecodeRuneInString(number[1+i:])
		return fmt.Sprintf("must be + and digits only: %q is not a digit (write letters of a vanity number as digits, drop spaces and punctuation)", r)
	}
	n, err := phonenumbers.Parse(number, "")
	if err != nil {
		return "not a phone number: the country code is unknown"
	}
	switch phonenumbers.IsPossibleNumberWithReason(n) {
	case phonenumbers.IS_POSSIBLE:
	case phonenumbers.INVALID_COUNTRY_CODE:
		return "not a phone number: the country code is unknown"
	case phonenumbers.TOO_SHORT:
		return "too short for a phone number of its country"
	case phonenumbers.TOO_LONG:
		return "too long for a phone number of its country"
	case phonenumbers.IS_POSSIBLE_LOCAL_ONLY:
		return "a short or local-only number: write the full international number"
	default:
		return "not a possible length for a phone number of its country"
	}
	if phonenumbers.Format(n, phonenumbers.E164) != number {
		return "write the number in E.164 form: " + phonenumbers.Format(n, phonenumbers.E164)
	}
	if phonenumbers.GetNumberType(n) == phonenumbers.PREMIUM_RATE {
		return "a premium-rate number: chats are with people"
	}
	return ""
}

// fingerprint hashes the request as given (defaults not applied), so a repeat matches whatever the
// configuration says by then.
func (r StartRequest) fingerprint() string {
	r.Metadata = compact(r.Metadata)
	b, _ := json.Marshal(r) // maps are written with sorted keys
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func compact(raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return bytes.Clone(raw)
	}
	return b.Bytes()
}

// What the invitation (template 1: "Hello {{1}}, … but {{2}} (your rider) needs help …") calls a party
// without a name: "Hello there", "but someone (your rider)" — not "the rider (your rider)".
const (
	noCustomerName = "there"
	noRiderName    = "someone"
)

// nameOrThe is the name, or what the party is when it has none (nor more than whitespace).
func nameOrThe(name, fallback string) string {
	if strings.TrimSpace(name) == "" {
		return fallback
	}
	return name
}

// unprintable returns the first control or bidirectional-override character of s: a name reaches
// people's phones verbatim, where a NUL, a newline or a right-to-left override would garble or disguise
// the message around it.
func unprintable(s string) (rune, bool) {
	for _, r := range s {
		if unicode.IsControl(r) || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) {
			return r, true
		}
	}
	return 0, false
}

// checkVariables refuses template variables that would render empty (WhatsApp refuses an empty
// parameter) or carry control characters, naming each.
func checkVariables(bad func(field, msg string), vars map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		v := vars[k]
		if strings.TrimSpace(v) == "" {
			bad("invite.content_variables."+k, "must not be empty: WhatsApp refuses a template with an empty parameter")
		} else if r, ok := unprintable(v); ok {
			bad("invite.content_variables."+k, fmt.Sprintf("must not contain control or bidirectional-override characters (found U+%04X)", r))
		}
	}
}
