package memory

import (
	"encoding/hex"
	"strings"
)

// Compact keys: what the stores keep for the retention, per finished chat, is mostly addresses and
// SIDs. Kept as strings they cost a header and an allocation each (a 34-character SID takes 48 bytes
// of heap, plus its 16-byte header); in their canonical forms they fit in fixed fields of the map's
// own slot. Anything not in a canonical form is kept as given, in s.

// sid is a Twilio SID: its 16 bytes when it is prefix followed by 32 lowercase hexadecimal digits,
// else the string itself.
type sid struct {
	b [16]byte
	s string
}

func sidOf(prefix, v string) sid {
	var k sid
	if len(v) == 2+32 && strings.HasPrefix(v, prefix) {
		if _, err := hex.Decode(k.b[:], []byte(v[2:])); err == nil && hex.EncodeToString(k.b[:]) == v[2:] {
			return k
		}
	}
	return sid{s: strings.Clone(v)}
}

// String returns the SID as it was given.
func (k sid) String(prefix string) string {
	if k.s != "" || k == (sid{}) {
		return k.s
	}
	return prefix + hex.EncodeToString(k.b[:])
}

// address is a person's or a number's address: whatsapp:+E164 or +E164 packed in a word (the digits'
// value, their count, the channel), else the string itself.
type address struct {
	n uint64
	s string
}

const whatsappPrefix = "whatsapp:"

func addressOf(v string) address {
	digits, whatsapp := strings.CutPrefix(v, whatsappPrefix)
	digits, plus := strings.CutPrefix(digits, "+")
	if !plus || len(digits) == 0 || len(digits) > 15 || digits[0] == '0' {
		return address{s: strings.Clone(v)}
	}
	var n uint64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return address{s: strings.Clone(v)}
		}
		n = n*10 + uint64(c-'0')
	}
	n |= uint64(len(digits)) << 50
	if whatsapp {
		n |= 1 << 54
	}
	return address{n: n}
}
