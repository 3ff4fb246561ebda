package memory

import "testing"

// Canonical SIDs and addresses pack into fixed fields and read back; the rest is kept as given, and
// no two different values share a key.
func TestCompactKeys(t *testing.T) {
	sids := []string{"CH0123456789abcdef0123456789abcdef", "CH0123456789ABCDEF0123456789abcdef", "CHdone", "IM0123456789abcdef0123456789abcdef", ""}
	seen := map[sid]string{}
	for _, v := range sids {
		k := sidOf("CH", v)
		if got := k.String("CH"); got != v {
			t.Errorf("sid %q reads back as %q", v, got)
		}
		if other, dup := seen[k]; dup {
			t.Errorf("%q and %q share a key", v, other)
		}
		seen[k] = v
	}
	if k := sidOf("CH", sids[0]); k.s != "" {
		t.Errorf("canonical SID kept as a string: %+v", k)
	}
	addrs := []string{"whatsapp:+15550001111", "+15550001111", "whatsapp:+155500011110", "whatsapp:+015550001111",
		"whatsapp:+1555000111a", "messenger:123", "+", "whatsapp:+123456789012345", "whatsapp:+1234567890123456", ""}
	seenA := map[address]string{}
	for _, v := range addrs {
		k := addressOf(v)
		if other, dup := seenA[k]; dup {
			t.Errorf("%q and %q share a key", v, other)
		}
		seenA[k] = v
	}
	if k := addressOf("whatsapp:+15550001111"); k.s != "" {
		t.Errorf("canonical address kept as a string: %+v", k)
	}
}
