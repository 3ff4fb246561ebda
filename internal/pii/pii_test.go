package pii

import (
	"errors"
	"fmt"
	"testing"
)

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"whatsapp:+15550100001": "whatsapp:+1555•••0001",
		"+447700900123":         "+4477•••0123",
		"sms:+1234":             "sms:•••34",
		"":                      "•••",
	} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"create participant: permanent: The address whatsapp:+15550001111 is invalid": "create participant: permanent: The address whatsapp:+1555•••1111 is invalid",
		"code 63016 at step invite":    "code 63016 at step invite",
		"+447700900123 and 4477009001": "+4477•••0123 and 44770•••9001",
		"POST /v1/Conversations/CH00000000000000000000000000000001/Participants: 400": "POST /v1/Conversations/CH00000000000000000000000000000001/Participants: 400",
		"order 12345678901234567890": "order 12345678901234567890",
		"":                           "",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedactError(t *testing.T) {
	base := fmt.Errorf("wrapped: %w", errSentinel)
	err := RedactError(fmt.Errorf("address whatsapp:+15550001111: %w", base))
	if err.Error() != "address whatsapp:+1555•••1111: wrapped: sentinel" || !errors.Is(err, errSentinel) {
		t.Errorf("%v", err)
	}
	if RedactError(nil) != nil {
		t.Error("nil became an error")
	}
}

var errSentinel = errors.New("sentinel")

func TestPreview(t *testing.T) {
	for body, want := range map[string]string{
		"gate code 4411":   "gate…",
		"Ça va, à bientôt": "Ça v…",
		"ok?":              "•••",
		"":                 "",
		"four":             "••••",
		"five!":            "five…",
	} {
		if got := Preview(body); got != want {
			t.Errorf("Preview(%q) = %q, want %q", body, got, want)
		}
	}
}
