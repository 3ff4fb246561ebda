package signature

import "testing"

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
