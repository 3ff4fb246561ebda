package emulator

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The account's phone numbers (IncomingPhoneNumbers of the 2010 API): where their calls and the
// messages no conversation takes go. Options.Numbers, SetNumber and the REST update set them.

// number is one of the account's numbers, with its SID.
type number struct {
	PhoneNumber
	Sid              string
	Created, Updated time.Time
}

// normalizeNumber is the Twilio number behind an address: a WhatsApp sender whatsapp:+X is the
// number +X.
func normalizeNumber(address string) string { return strings.TrimPrefix(address, "whatsapp:") }

// SetNumber adds a phone number to the account, or replaces the one with the same Number, and
// returns its SID (PN…). A number with neither capability set takes both SMS and calls.
func (e *Emulator) SetNumber(n PhoneNumber) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.setNumberLocked(n)
}

func (e *Emulator) setNumberLocked(n PhoneNumber) string {
	n.Number = normalizeNumber(n.Number)
	if !n.SMS && !n.Voice {
		n.SMS, n.Voice = true, true
	}
	now := e.now()
	if old := e.numberLocked(n.Number); old != nil {
		old.PhoneNumber, old.Updated = n, now
		return old.Sid
	}
	// Sequential SIDs keep listings stable for tests that read them.
	x := &number{PhoneNumber: n, Sid: fmt.Sprintf("PN%032x", len(e.numbers)+1), Created: now, Updated: now}
	e.numbers = append(e.numbers, x)
	return x.Sid
}

// Numbers returns the account's phone numbers, in the order they were added.
func (e *Emulator) Numbers() []PhoneNumber {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]PhoneNumber, 0, len(e.numbers))
	for _, n := range e.numbers {
		out = append(out, n.PhoneNumber)
	}
	return out
}

// numberLocked finds the account's number behind address (+E164 or whatsapp:+E164). Callers hold e.mu.
func (e *Emulator) numberLocked(address string) *number {
	want := normalizeNumber(address)
	for _, n := range e.numbers {
		if n.Number == want {
			return n
		}
	}
	return nil
}

func (e *Emulator) numberJSON(r *http.Request, n *number) map[string]any {
	uri := "/2010-04-01/Accounts/" + e.opts.AccountSid + "/IncomingPhoneNumbers/" + n.Sid + ".json"
	return map[string]any{
		"sid": n.Sid, "account_sid": e.opts.AccountSid, "phone_number": n.Number, "friendly_name": cmp.Or(n.FriendlyName, n.Number),
		"capabilities": map[string]any{"sms": n.SMS, "mms": n.SMS, "voice": n.Voice, "fax": false},
		"sms_url":      n.SMSURL, "sms_method": cmp.Or(n.SMSMethod, "POST"), "sms_application_sid": "",
		"sms_fallback_url": n.SMSFallbackURL, "sms_fallback_method": "POST",
		"voice_url": nullable(n.VoiceURL), "voice_method": cmp.Or(n.VoiceMethod, "POST"), "voice_application_sid": "",
		"voice_fallback_url": nullable(n.VoiceFallbackURL), "voice_fallback_method": cmp.Or(n.VoiceFallbackMethod, "POST"),
		"voice_caller_id_lookup": false, "status_callback": "", "status_callback_method": "POST", "api_version": "2010-04-01",
		"date_created": n.Created.Format(accountDate), "date_updated": n.Updated.Format(accountDate),
		"trunk_sid": nil, "status": "in-use", "origin": "twilio", "uri": uri,
	}
}

// listNumbers lists the numbers whose digits contain PhoneNumber's, in one page.
func (e *Emulator) listNumbers(r *http.Request, _ string) (int, any, *apiError) {
	if r.PathValue("acc") != e.opts.AccountSid {
		return 0, nil, &errNotFound
	}
	q := r.URL.Query()
	want := digits(q.Get("PhoneNumber"))
	var out []any
	for _, n := range e.numbers {
		if strings.Contains(digits(n.Number), want) {
			out = append(out, e.numberJSON(r, n))
		}
	}
	size, err := strconv.Atoi(q.Get("PageSize"))
	if err != nil || size <= 0 {
		size = 50
	}
	uri := "/2010-04-01/Accounts/" + e.opts.AccountSid + "/IncomingPhoneNumbers"
	first := uri + ".json?" + url.Values{"PhoneNumber": {q.Get("PhoneNumber")}, "PageSize": {strconv.Itoa(size)}, "Page": {"0"}}.Encode()
	return http.StatusOK, map[string]any{
		"incoming_phone_numbers": orEmpty(out), "page": 0, "page_size": size, "start": 0, "end": max(len(out)-1, 0),
		"first_page_uri": first, "uri": first, "next_page_uri": nil, "previous_page_uri": nil,
	}, nil
}

// numberOf finds the number of a request's path (…/IncomingPhoneNumbers/PN….json). Callers hold e.mu.
func (e *Emulator) numberOf(r *http.Request) *number {
	sid, ok := strings.CutSuffix(r.PathValue("file"), ".json")
	if !ok || r.PathValue("acc") != e.opts.AccountSid {
		return nil
	}
	return findBySid(e.numbers, sid, func(n *number) string { return n.Sid })
}

func (e *Emulator) fetchNumber(r *http.Request, _ string) (int, any, *apiError) {
	n := e.numberOf(r)
	if n == nil {
		return 0, nil, &errNotFound
	}
	return http.StatusOK, e.numberJSON(r, n), nil
}

// updateNumber takes the form fields of Twilio's update (VoiceUrl, VoiceMethod, VoiceFallbackUrl,
// VoiceFallbackMethod, SmsUrl, SmsMethod, SmsFallbackUrl, FriendlyName); a bad one changes nothing.
func (e *Emulator) updateNumber(r *http.Request, _ string) (int, any, *apiError) {
	n := e.numberOf(r)
	if n == nil {
		return 0, nil, &errNotFound
	}
	f := r.PostForm
	changed := n.PhoneNumber
	for _, field := range []struct {
		name   string
		dst    *string
		method bool
	}{
		{"VoiceUrl", &changed.VoiceURL, false}, {"VoiceMethod", &changed.VoiceMethod, true},
		{"VoiceFallbackUrl", &changed.VoiceFallbackURL, false}, {"VoiceFallbackMethod", &changed.VoiceFallbackMethod, true},
		{"SmsUrl", &changed.SMSURL, false}, {"SmsMethod", &changed.SMSMethod, true},
		{"SmsFallbackUrl", &changed.SMSFallbackURL, false}, {"FriendlyName", &changed.FriendlyName, false},
	} {
		if !f.Has(field.name) {
			continue
		}
		v := f.Get(field.name)
		switch {
		case field.method:
			v = strings.ToUpper(v)
			if v != http.MethodGet && v != http.MethodPost {
				bad := badParam(field.name + " must be GET or POST")
				return 0, nil, &bad
			}
		case strings.HasSuffix(field.name, "Url") && v != "" && !absoluteHTTP(v):
			bad := badParam(field.name + " must be an absolute http(s) URL")
			return 0, nil, &bad
		}
		*field.dst = v
	}
	n.PhoneNumber, n.Updated = changed, e.now()
	return http.StatusOK, e.numberJSON(r, n), nil
}

func absoluteHTTP(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// callerIDAllowed reports whether a Dial may show id: a number of the account or the number called,
// as Twilio allows (a verified caller id is the third kind; the emulator has none). Callers hold e.mu.
func (e *Emulator) callerIDAllowed(id, called string) bool {
	return id == normalizeNumber(called) || slices.ContainsFunc(e.numbers, func(n *number) bool { return n.Number == id })
}
