package memory

import "testing"

// Canonical SIDs and addresses pack into fixed keys; no two different values share one, and the rest
// are kept as strings.
func TestCompactKeys(t *testing.T) {
	m := newPacked[[16]byte, string]()
	sids := []string{"CH0123456789abcdef0123456789abcdef", "CH0123456789ABCDEF0123456789abcdef", "CHdone",
		"IM0123456789abcdef0123456789abcdef", "CH0123456789abcdef0123456789abcdee", ""}
	for _, v := range sids {
		k, ok := sidKey("CH", v)
		if _, dup := m.get(k, ok, v); dup {
			t.Errorf("%q shares a key", v)
		}
		m.set(k, ok, v, v)
	}
	if len(m.canon) != 2 || len(m.other) != 4 {
		t.Errorf("%d canonical, %d other", len(m.canon), len(m.other))
	}
	for _, v := range sids {
		k, ok := sidKey("CH", v)
		if got, _ := m.get(k, ok, v); got != v {
			t.Errorf("%q reads %q", v, got)
		}
	}
	a := newPacked[uint64, string]()
	addrs := []string{"whatsapp:+15550001111", "+15550001111", "whatsapp:+155500011110", "whatsapp:+015550001111",
		"whatsapp:+1555000111a", "messenger:123", "+", "whatsapp:+123456789012345", "whatsapp:+1234567890123456", "", "whatsapp:+1"}
	for _, v := range addrs {
		k, ok := addressKey(v)
		if _, dup := a.get(k, ok, v); dup {
			t.Errorf("%q shares a key", v)
		}
		a.set(k, ok, v, v)
	}
	if _, ok := addressKey("whatsapp:+15550001111"); !ok {
		t.Error("a WhatsApp address is not packed")
	}
	for _, v := range addrs {
		if k, ok := addressKey(v); ok && addressOf(k) != v {
			t.Errorf("%q unpacks as %q", v, addressOf(k))
		}
	}
	a.deleteFunc(func(v string) bool { return v != "+15550001111" })
	if a.len() != 1 {
		t.Errorf("%d left after deleting all but one", a.len())
	}
}
