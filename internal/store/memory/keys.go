package memory

import (
	"encoding/hex"
	"strconv"
	"strings"
)

// Compact keys: what the stores keep for the retention, per finished chat, is mostly addresses and
// SIDs. Kept as strings they cost a header and an allocation each (a 34-character SID takes 48 bytes
// of heap, plus its 16-byte header); in their canonical forms they fit in a map slot's fixed key — a
// SID's 16 bytes, an address packed in a word. Anything not in a canonical form is kept as given, in
// a map of its own.

// sidKey returns a SID's 16 bytes when it is prefix followed by 32 lowercase hexadecimal digits.
func sidKey(prefix, v string) (k [16]byte, ok bool) {
	if len(v) != 2+32 || !strings.HasPrefix(v, prefix) {
		return k, false
	}
	if _, err := hex.Decode(k[:], []byte(v[2:])); err != nil || hex.EncodeToString(k[:]) != v[2:] {
		return k, false
	}
	return k, true
}

const whatsappPrefix = "whatsapp:"

// addressKey packs whatsapp:+E164 or +E164 in a word: the digits' value, their count, the channel.
func addressKey(v string) (uint64, bool) {
	digits, whatsapp := strings.CutPrefix(v, whatsappPrefix)
	digits, plus := strings.CutPrefix(digits, "+")
	if !plus || len(digits) == 0 || len(digits) > 15 || digits[0] == '0' {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	n |= uint64(len(digits)) << 50
	if whatsapp {
		n |= 1 << 54
	}
	return n, true
}

// addressOf is the address addressKey packed in k.
func addressOf(k uint64) string {
	s := "+" + strconv.FormatUint(k&(1<<50-1), 10)
	if k&(1<<54) != 0 {
		s = whatsappPrefix + s
	}
	return s
}

// pairKey packs a person's address and a business number.
func pairKey(address, proxy string) ([2]uint64, bool) {
	a, ok1 := addressKey(address)
	p, ok2 := addressKey(proxy)
	return [2]uint64{a, p}, ok1 && ok2
}

// packed is a map whose keys are kept in their canonical form K when they have one, else as strings.
type packed[K comparable, V any] struct {
	canon map[K]V
	other map[string]V
}

func newPacked[K comparable, V any]() packed[K, V] {
	return packed[K, V]{canon: map[K]V{}, other: map[string]V{}}
}

// get returns the value of the key whose canonical form is k (when ok) or whose string is s.
func (m packed[K, V]) get(k K, ok bool, s string) (V, bool) {
	if ok {
		v, found := m.canon[k]
		return v, found
	}
	v, found := m.other[s]
	return v, found
}

// set keeps v; a string key is copied, never the caller's (it may be a slice of a request).
func (m packed[K, V]) set(k K, ok bool, s string, v V) {
	if ok {
		m.canon[k] = v
		return
	}
	if _, present := m.other[s]; present {
		m.other[s] = v
		return
	}
	m.other[strings.Clone(s)] = v
}

func (m packed[K, V]) del(k K, ok bool, s string) {
	if ok {
		delete(m.canon, k)
	} else {
		delete(m.other, s)
	}
}

// deleteFunc drops the entries whose value drop reports.
func (m packed[K, V]) deleteFunc(drop func(V) bool) {
	for k, v := range m.canon {
		if drop(v) {
			delete(m.canon, k)
		}
	}
	for k, v := range m.other {
		if drop(v) {
			delete(m.other, k)
		}
	}
}

func (m packed[K, V]) len() int { return len(m.canon) + len(m.other) }
