package pii

import "testing"

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
		"":                             "",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
