package memory

import (
	"strconv"
	"strings"
)

// What the pool keeps per finished chat for the retention — each party's last number and the pair
// index's entries — is kept small: an entry is a map slot of 16 bytes (its key packed in a word, its
// value two 4-byte indexes), and the chat id and until when the entries count are kept once per
// Take, in a record the take's pairs (a chat's customer and rider) share. Renewing a record renews
// all the entries that name it: the last numbers and index entries still naming a take are those no
// later take replaced, so they still say what was last taken.

// take is a Take's chat and until when what names it counts (Unix ms); chat is "" when free.
type take struct {
	chat  string
	until int64
}

// takes are the records of the takes that entries name, by index. One is freed once it lapsed, in
// the step that prunes the entries naming it; one no entry names any more waits for its lapse too.
type takes struct {
	chunks [][]take
	free   []uint32
}

// takesPerChunk records are allocated at a time: records never move, and the slack is at most a
// chunk.
const takesPerChunk = 256

// at returns the record at i.
func (t *takes) at(i uint32) *take { return &t.chunks[i/takesPerChunk][i%takesPerChunk] }

// live reports whether the record at i still counts at now (Unix ms).
func (t *takes) live(i uint32, now int64) bool { return now < t.at(i).until }

// add keeps a record of chat until (Unix ms) and returns its index; chat is copied, never the
// caller's string (it may be a slice of a request).
func (t *takes) add(chat string, until int64) uint32 {
	r := take{chat: strings.Clone(chat), until: until}
	if n := len(t.free); n > 0 {
		i := t.free[n-1]
		t.free = t.free[:n-1]
		*t.at(i) = r
		return i
	}
	last := len(t.chunks) - 1
	if last < 0 || len(t.chunks[last]) == takesPerChunk {
		t.chunks = append(t.chunks, make([]take, 0, takesPerChunk))
		last++
	}
	t.chunks[last] = append(t.chunks[last], r)
	return uint32(last*takesPerChunk + len(t.chunks[last]) - 1)
}

// freeLapsed frees the records that lapsed at now (Unix ms). Callers first drop the entries naming
// them.
func (t *takes) freeLapsed(now int64) {
	for c := range t.chunks {
		for j := range t.chunks[c] {
			if r := &t.chunks[c][j]; r.chat != "" && now >= r.until {
				*r = take{}
				t.free = append(t.free, uint32(c*takesPerChunk+j))
			}
		}
	}
}

// indexNumberBits is how many bits of a pair index key the number's index takes: the address's
// digits (at most 15, never a leading 0) take the other 50.
const indexNumberBits = 64 - 50

// pairIndexKey is a pair's key in the index, given its bare number's index in the pool's numbers
// and its bare address: packed in a word when the address is +E.164 and the index small enough,
// else as a string.
func pairIndexKey(number uint32, address string) (uint64, bool, string) {
	if a, ok := addressKey(address); ok && number < 1<<indexNumberBits && !strings.HasPrefix(address, whatsappPrefix) {
		return uint64(number)<<50 | a&(1<<50-1), true, ""
	}
	return 0, false, strconv.FormatUint(uint64(number), 10) + " " + address
}
