package signature

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"testing"
)

// BenchmarkValidateForm is one POST webhook's check: about a dozen parameters, one token.
func BenchmarkValidateForm(b *testing.B) {
	u := "https://optin.example.com/webhooks/conversations"
	params := form("AccountSid", "AC00000000000000000000000000000001", "EventType", "onMessageAdded",
		"ConversationSid", "CH00000000000000000000000000000001", "MessageSid", "IM00000000000000000000000000000001",
		"Author", "whatsapp:+15550001111", "Body", "Yes, please", "ParticipantSid", "MB00000000000000000000000000000001",
		"Index", "1", "Source", "WHATSAPP", "Attributes", "{}", "RetryCount", "0", "WebhookSid", "WH00000000000000000000000000000001")
	v := New("0123456789abcdef0123456789abcdef")
	sig := Compute("0123456789abcdef0123456789abcdef", u, params)
	b.ReportAllocs()
	for b.Loop() {
		if !v.Validate(u, params, sig) {
			b.Fatal("rejected")
		}
	}
}

// BenchmarkValidateForgedLargeForm is the worst a forger can send within the webhook's body limit
// (64 KiB): thousands of short pairs, a well-formed but wrong signature, two tokens.
func BenchmarkValidateForgedLargeForm(b *testing.B) {
	u := "https://optin.example.com:443/webhooks/conversations?a='1'"
	params := url.Values{}
	for i := range 64 << 10 / 12 {
		params.Add(fmt.Sprintf("p%05d", i%4000), "v1")
	}
	v := New("0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210")
	sig := Compute("other", u, params)
	b.ReportAllocs()
	for b.Loop() {
		if v.Validate(u, params, sig) {
			b.Fatal("accepted")
		}
	}
}

// BenchmarkValidateGET is a GET webhook's check: the parameters are in the signed URL's query.
func BenchmarkValidateGET(b *testing.B) {
	params := form("AccountSid", "AC00000000000000000000000000000001", "EventType", "onMessageAdded",
		"ConversationSid", "CH00000000000000000000000000000001", "MessageSid", "IM00000000000000000000000000000001",
		"Author", "whatsapp:+15550001111", "Body", "Yes, please", "Index", "1", "Source", "WHATSAPP", "RetryCount", "0")
	u := "https://optin.example.com/webhooks/conversations?" + params.Encode()
	v := New("0123456789abcdef0123456789abcdef")
	sig := Compute("0123456789abcdef0123456789abcdef", u, nil)
	b.ReportAllocs()
	for b.Loop() {
		if !v.Validate(u, nil, sig) {
			b.Fatal("rejected")
		}
	}
}

// BenchmarkValidateJSON is a JSON webhook's check: the URL with bodySHA256, and the body's hash.
func BenchmarkValidateJSON(b *testing.B) {
	body := []byte(`{"EventType":"onMessageAdded","ConversationSid":"CH00000000000000000000000000000001","MessageSid":"IM00000000000000000000000000000001","Author":"whatsapp:+15550001111","Body":"Yes, please","Index":1}`)
	sum := sha256.Sum256(body)
	u := "https://optin.example.com/webhooks/conversations?bodySHA256=" + hex.EncodeToString(sum[:])
	v := New("0123456789abcdef0123456789abcdef")
	sig := Compute("0123456789abcdef0123456789abcdef", u, nil)
	b.ReportAllocs()
	for b.Loop() {
		if !v.ValidateBody(u, body, sig) {
			b.Fatal("rejected")
		}
	}
}
