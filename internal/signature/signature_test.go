package signature

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/twilio/twilio-go/client"
)

const (
	goURL    = "https://mycompany.com/myapp.php?foo=1&bar=2"
	bodyHash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
	jsonBody = `{"property": "value", "boolean": true}`
)

func form(pairs ...string) url.Values {
	v := url.Values{}
	for i := 0; i < len(pairs); i += 2 {
		v.Add(pairs[i], pairs[i+1])
	}
	return v
}

// twilio-go's client/request_validator_test.go vectors.
var goParams = form("Digits", "1234", "CallSid", "CA1234567890ABCDE", "To", "+18005551212",
	"Caller", "+14158675309", "From", "+14158675309", "ReasonConferenceEnded", "test", "Reason", "Participant")

// twilio-python's tests/unit/test_request_validator.py vectors.
var pyParams = form("CallSid", "CA1234567890ABCDE", "Digits", "1234", "From", "+14158675309",
	"To", "+18005551212", "Caller", "+14158675309")

func TestPublishedVectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		token  string
		url    string
		params url.Values
		sig    string
		want   bool
	}{
		{"go: form", "12345", goURL, goParams, "vOEb5UThFn24KEfnOFLQY2AE5FY=", true},
		{"go: wrong signature", "12345", goURL, goParams, "WRONG SIGNATURE", false},
		{"go: https port given, signed without", "12345", strings.Replace(goURL, ".com", ".com:1234", 1), goParams, "vOEb5UThFn24KEfnOFLQY2AE5FY=", true},
		{"go: http", "12345", strings.Replace(goURL, "https", "http", 1), goParams, "n2xBNyzSW7rfYStDtOFiFMv7qNo=", true},
		{"go: http port given, signed without", "12345", strings.Replace(strings.Replace(goURL, ".com", ".com:1234", 1), "https", "http", 1), goParams, "n2xBNyzSW7rfYStDtOFiFMv7qNo=", true},
		{"go: names sorted wrongly", "12345", goURL, goParams, "95+Bu0JVPi0r/SsESZCVf0dWAjw=", false},
		{"go: form body", "12345", goURL, form("property", "value", "boolean", "true"), "NBdBDr/T/lgjI+tlgpXjKZQZs/k=", true},
		{"python: form", "12345", goURL, pyParams, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", true},
		{"python: repeated name", "12345", goURL, form("Sid", "CA123", "SidAccount", "AC123", "Digits", "5678", "Digits", "1234"), "IK+Dwps556ElfBT0I3Rgjkr1wJU=", true},
		{"python: https port removed", "12345", strings.Replace(goURL, ".com", ".com:1234", 1), pyParams, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", true},
		{"python: http signed with port", "12345", strings.Replace(strings.Replace(goURL, ".com", ".com:1234", 1), "https", "http", 1), pyParams, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=", true},
		{"python: https signed with 443", "12345", goURL, pyParams, "kvajT1Ptam85bY51eRf/AJRuM3w=", true},
		{"python: http signed with 80", "12345", strings.Replace(goURL, "https", "http", 1), pyParams, "0ZXoZLH/DfblKGATFgpif+LLRf4=", true},
		{"python: other token", "54321", goURL, pyParams, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", false},
		{"twilio docs: form", "12345", goURL, form("CallSid", "CA1234567890ABCDE", "Caller", "+14158675310", "Digits", "1234", "From", "+14158675310", "To", "+18005551212"), "GvWf1cFY/Q7PnoempGyD5oXAezc=", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := New(tt.token).Validate(tt.url, tt.params, tt.sig); got != tt.want {
				t.Errorf("Validate(%q) = %v, want %v", tt.url, got, tt.want)
			}
		})
	}
}

func TestPublishedBodyVectors(t *testing.T) {
	t.Parallel()
	v := New("12345")
	tests := []struct {
		name string
		url  string
		body string
		sig  string
		want bool
	}{
		{"go and python: json body", goURL + "&bodySHA256=" + bodyHash, jsonBody, "a9nBmqA0ju/hNViExpshrM61xv4=", true},
		{"go: only bodySHA256 in query", "https://mycompany.com/myapp.php?bodySHA256=" + bodyHash, jsonBody, "y77kIzt2vzLz71DgmJGsen2scGs=", true},
		{"go: signature of a url without the hash", goURL, jsonBody, "vOEb5UThFn24KEfnOFLQY2AE5FY=", false},
		{"body changed", goURL + "&bodySHA256=" + bodyHash, jsonBody + " ", "a9nBmqA0ju/hNViExpshrM61xv4=", false},
		{"signature of another url", goURL + "&x=1&bodySHA256=" + bodyHash, jsonBody, "a9nBmqA0ju/hNViExpshrM61xv4=", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := v.ValidateBody(tt.url, []byte(tt.body), tt.sig); got != tt.want {
				t.Errorf("ValidateBody = %v, want %v", got, tt.want)
			}
		})
	}
}

// twilio-node's spec/unit/webhooks/webhooks.spec.js cases: signed from one URL, validated at another.
func TestNodeURLCases(t *testing.T) {
	t.Parallel()
	tests := []struct {
		signed, target string
		want           bool
	}{
		{"https://example.com/path?test=param", "https://example.com/path?test=param2", false},
		{"https://example.com:443/path?test=param", "https://example.com:443/path?test=param", true},
		{"https://example.com:443/path?test=param", "https://example.com/path?test=param", true},
		{"https://example.com/path?test=param", "https://example.com/path?test=param", true},
		{"https://example.com/path?test=param", "https://example.com:443/path?test=param", true},
		{"https://example.com/path?test=param'WithQuote", "https://example.com/path?test=param'WithQuote", true},
		{"https://example.com/path?test=param'WithQuote", "https://example.com/path?test=param%27WithQuote", true},
		{"https://example.com/path?test=param%27WithQuote", "https://example.com/path?test=param'WithQuote", true},
		{"https://example.com/path?test=param%27WithQuote", "https://example.com/path?test=param%27WithQuote", true},
	}
	for _, tt := range tests {
		t.Run(tt.signed+" at "+tt.target, func(t *testing.T) {
			t.Parallel()
			sig := Compute("s3cr3t", tt.signed, nil)
			if got := New("s3cr3t").Validate(tt.target, nil, sig); got != tt.want {
				t.Errorf("Validate = %v, want %v", got, tt.want)
			}
		})
	}
}

// Each case changes one thing of a request signed by us and expects a rejection.
func TestOneChangeRejects(t *testing.T) {
	t.Parallel()
	const token = "abc123"
	base := "https://optin.example.com/webhooks/conversations?x=1"
	params := form("EventType", "onMessageAdded", "ConversationSid", "CH1", "Body", "Yes", "Body", "yes please")
	sig := Compute(token, base, params)
	v := New(token)
	if !v.Validate(base, params, sig) {
		t.Fatal("own signature rejected")
	}
	cases := map[string]func() (string, url.Values, string){
		"other token": func() (string, url.Values, string) { return base, params, Compute("zzz999", base, params) },
		"value changed": func() (string, url.Values, string) {
			p := clone(params)
			p.Set("ConversationSid", "CH2")
			return base, p, sig
		},
		"value dropped": func() (string, url.Values, string) {
			p := clone(params)
			p["Body"] = p["Body"][:1]
			return base, p, sig
		},
		"parameter added": func() (string, url.Values, string) { p := clone(params); p.Set("Extra", ""); return base, p, sig },
		"path changed": func() (string, url.Values, string) {
			return strings.Replace(base, "/webhooks", "/hooks", 1), params, sig
		},
		"query changed":   func() (string, url.Values, string) { return base + "&y=2", params, sig },
		"scheme changed":  func() (string, url.Values, string) { return strings.Replace(base, "https", "http", 1), params, sig },
		"host changed":    func() (string, url.Values, string) { return strings.Replace(base, "optin.", "evil.", 1), params, sig },
		"empty signature": func() (string, url.Values, string) { return base, params, "" },
		"truncated":       func() (string, url.Values, string) { return base, params, sig[:len(sig)-1] },
		"first value only ": func() (string, url.Values, string) {
			p := clone(params)
			p["Body"] = p["Body"][1:]
			return base, p, sig
		},
	}
	for name, build := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			u, p, s := build()
			if v.Validate(u, p, s) {
				t.Error("accepted")
			}
		})
	}
}

func clone(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func TestRotation(t *testing.T) {
	t.Parallel()
	u := "https://optin.example.com/webhooks/conversations"
	v := New("old111", "", "new222")
	for _, tok := range []string{"old111", "new222"} {
		if !v.Validate(u, nil, Compute(tok, u, nil)) {
			t.Errorf("signature with %s rejected", tok)
		}
	}
	if New().Validate(u, nil, Compute("", u, nil)) {
		t.Error("a validator without tokens accepted a signature")
	}
}

// With single-valued names our computation must agree with twilio-go's RequestValidator.
func TestAgreesWithTwilioGo(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	word := func() string {
		const chars = "abcXYZ019+:/ %é'"
		b := make([]rune, 1+r.IntN(8))
		for i := range b {
			b[i] = []rune(chars)[r.IntN(len([]rune(chars)))]
		}
		return string(b)
	}
	for i := range 500 {
		token := fmt.Sprintf("tok%d", i)
		u := "https://h" + fmt.Sprint(i) + ".example.com/p?q=" + url.QueryEscape(word())
		p := url.Values{}
		m := map[string]string{}
		for range r.IntN(6) {
			k, val := word(), word()
			p.Set(k, val)
			m[k] = val
		}
		sig := Compute(token, u, p)
		rv := client.NewRequestValidator(token)
		if !rv.Validate(u, m, sig) {
			t.Fatalf("twilio-go rejects our signature for %q %v", u, m)
		}
		if !New(token).Validate(u, p, sig) {
			t.Fatalf("we reject our own signature for %q %v", u, m)
		}
	}
}

// A repeated name counts every value, sorted; a repeated identical value is also accepted written once,
// as twilio-node and twilio-python sign it.
func TestRepeatedValues(t *testing.T) {
	t.Parallel()
	u := "https://optin.example.com/webhooks/conversations"
	sign := func(s string) string {
		m := hmac.New(sha1.New, []byte("tok"))
		m.Write([]byte(u + s))
		return base64.StdEncoding.EncodeToString(m.Sum(nil))
	}
	p := url.Values{"To": {"b"}, "Digits": {"5", "1", "5"}, "A": {}}
	v := New("tok")
	for s, want := range map[string]bool{
		"Digits1Digits5Digits5Tob": true,  // every value, sorted
		"Digits1Digits5Tob":        true,  // the identical value once
		"Digits5Digits1Digits5Tob": false, // unsorted
		"Digits1Digits5":           false, // a name left out
	} {
		if got := v.Validate(u, p, sign(s)); got != want {
			t.Errorf("signed over %q: %v, want %v", s, got, want)
		}
	}
	if got := p["Digits"]; !slices.Equal(got, []string{"5", "1", "5"}) {
		t.Errorf("the caller's values were reordered: %v", got)
	}
}
