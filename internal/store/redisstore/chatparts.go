package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/optinkit/optin/internal/chat"
)

// A chat's parts that grow — each party's held messages, the messages settling, the failed deliveries
// not acted on, the handled set — live under keys of their own beside its document, in its slot, so
// that holding a message writes that message and the small document, not every message held before.
//
// The lists hold one JSON entry each, in the chat's order; the handled set is the bitset's bytes. The
// document says that its parts are split out by starting with splitPrefix; a document without it
// (written before, or by an older version) carries its parts inside, and the part keys beside it are
// not read: its next Update writes them whole.
const splitPrefix = `{"~parts":1,`

// Indexes of a chat's parts in partKeys and in stored.lists.
const (
	partHeldCustomer = iota
	partHeldRider
	partSettling
	partUndelivered
	partHandled // a string, not a list
	partCount
)

// partNames name the part keys: each a prefix to the chat's id (not a suffix), so that no chat id — ids
// may hold ':' — names another chat's part or document.
var partNames = [partCount]string{"held:customer:", "held:rider:", "settling:", "undelivered:", "handled:"}

// partKeys are the keys of a chat's parts, in its bucket's slot.
func partKeys(id string) [partCount]string {
	var keys [partCount]string
	tag := bucketTag(chatBucket(id))
	for i, name := range partNames {
		keys[i] = tag + name + id
	}
	return keys
}

// chatKeys are a chat's document and then its parts.
func chatKeys(id string) []string {
	parts := partKeys(id)
	return append([]string{chatKey(id)}, parts[:]...)
}

// ChatKeys are the Redis keys that hold a chat, its document first: for measuring it (MEMORY USAGE)
// from outside.
func ChatKeys(id string) []string { return chatKeys(id) }

// readChat answers a chat's document and, when its parts are split out (it starts with ARGV[1]), the
// four lists and the handled set; false when there is no chat. KEYS: chatKeys.
var readChat = redis.NewScript(`
local doc = redis.call('GET', KEYS[1])
if not doc then
  return false
end
if string.sub(doc, 1, #ARGV[1]) ~= ARGV[1] then
  return {doc}
end
return {doc, redis.call('LRANGE', KEYS[2], 0, -1), redis.call('LRANGE', KEYS[3], 0, -1),
  redis.call('LRANGE', KEYS[4], 0, -1), redis.call('LRANGE', KEYS[5], 0, -1), redis.call('GET', KEYS[6]) or ''}
`)

// stored is a chat as Redis holds it.
type stored struct {
	doc string
	// split: the parts are under their keys, as lists and handled say; else inside doc, and what the
	// keys hold is not known.
	split   bool
	lists   [partHandled][]string
	handled string
}

// parseStored reads readChat's answer (nil: no chat).
func parseStored(v any) (stored, error) {
	arr, ok := v.([]any)
	if !ok || len(arr) == 0 {
		return stored{}, fmt.Errorf("reading chat: unexpected answer %T", v)
	}
	var st stored
	if st.doc, ok = arr[0].(string); !ok {
		return stored{}, fmt.Errorf("reading chat: unexpected document %T", arr[0])
	}
	if len(arr) == 1 {
		return st, nil
	}
	if len(arr) != 2+partHandled {
		return stored{}, fmt.Errorf("reading chat: %d parts", len(arr)-1)
	}
	st.split = true
	for i := range partHandled {
		entries, ok := arr[1+i].([]any)
		if !ok {
			return stored{}, fmt.Errorf("reading chat: unexpected part %T", arr[1+i])
		}
		for _, e := range entries {
			s, _ := e.(string)
			st.lists[i] = append(st.lists[i], s)
		}
	}
	st.handled, _ = arr[1+partHandled].(string)
	return st, nil
}

// chat joins the document and its parts.
func (st stored) chat() (chat.Chat, error) {
	c, err := decodeChat(st.doc)
	if err != nil || !st.split {
		return c, err
	}
	for i, held := range []*[]chat.Held{&c.Customer.Held, &c.Rider.Held, &c.Settling} {
		if *held, err = decodeEntries[chat.Held](st.lists[i]); err != nil {
			return chat.Chat{}, err
		}
	}
	if c.Undelivered, err = decodeEntries[chat.Undelivered](st.lists[partUndelivered]); err != nil {
		return chat.Chat{}, err
	}
	if st.handled != "" {
		c.Handled = chat.Indexes(st.handled)
	}
	return c, nil
}

func decodeEntries[T any](raw []string) ([]T, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	out := make([]T, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal([]byte(r), &out[i]); err != nil {
			return nil, fmt.Errorf("decoding chat part: %w", err)
		}
	}
	return out, nil
}

// entries are a part list's encoded entries and each one's identity (its message's SID).
type entries struct{ vals, ids []string }

func encodeEntries[T any](xs []T, id func(T) string) (entries, error) {
	var e entries
	for _, x := range xs {
		raw, err := json.Marshal(x)
		if err != nil {
			return entries{}, err
		}
		e.vals, e.ids = append(e.vals, string(raw)), append(e.ids, id(x))
	}
	return e, nil
}

// split is a chat as it is to be written: its document and its parts.
type split struct {
	doc     []byte
	lists   [partHandled]entries
	handled []byte
}

// splitChat encodes c: a finished chat (compact, no parts) whole; else the document without its parts,
// marked, and the parts.
func splitChat(c chat.Chat) (split, error) {
	if c.Compactable() {
		doc, err := chat.MarshalFinished(c)
		return split{doc: doc}, err
	}
	var out split
	var err error
	heldSid := func(h chat.Held) string { return h.MessageSid }
	for i, held := range [][]chat.Held{c.Customer.Held, c.Rider.Held, c.Settling} {
		if out.lists[i], err = encodeEntries(held, heldSid); err != nil {
			return split{}, err
		}
	}
	if out.lists[partUndelivered], err = encodeEntries(c.Undelivered, func(u chat.Undelivered) string { return u.MessageSid }); err != nil {
		return split{}, err
	}
	out.handled = c.Handled
	c.Customer.Held, c.Rider.Held, c.Settling, c.Undelivered, c.Handled = nil, nil, nil, nil, nil
	raw, err := json.Marshal(c)
	if err != nil {
		return split{}, err
	}
	out.doc = append([]byte(splitPrefix), raw[1:]...)
	return out, nil
}

// sizes are the lengths of the parts (entries, or the handled set's bytes), in partKeys' order.
func (sp split) sizes() [partCount]int {
	var n [partCount]int
	for i, l := range sp.lists {
		n[i] = len(l.vals)
	}
	n[partHandled] = len(sp.handled)
	return n
}

// createDoc is a new chat's document: split (its parts, empty, need no keys) unless it comes with parts,
// which it then carries inside until its first Update splits them out.
func createDoc(c chat.Chat) ([]byte, error) {
	raw, err := json.Marshal(c)
	if err != nil || len(c.Customer.Held)+len(c.Rider.Held)+len(c.Settling)+len(c.Undelivered)+len(c.Handled) > 0 {
		return raw, err
	}
	return append([]byte(splitPrefix), raw[1:]...), nil
}

// writeParts queues on p what turns the parts as stored (st) into those of next: nothing for a part
// unchanged; for a list, the entries appended at its end (RPUSH), taken from its head (LTRIM) or from
// elsewhere (LREM), changed in place (LSET) — unless that sends more than the list whole, which is
// then written anew (DEL, RPUSH); for the handled set, its bytes from the first that changed
// (SETRANGE). Parts whose stored state is not known (a document that carries them) are written whole.
func writeParts(ctx context.Context, p redis.Pipeliner, st stored, next split, keys [partCount]string) error {
	for i := range partHandled {
		if err := writeList(ctx, p, keys[i], st.lists[i], st.split, next.lists[i]); err != nil {
			return err
		}
	}
	old, key := st.handled, keys[partHandled]
	switch {
	case st.split && old == string(next.handled):
	case len(next.handled) == 0:
		p.Del(ctx, key)
	case st.split && len(next.handled) >= len(old):
		d := 0
		for d < len(old) && old[d] == next.handled[d] {
			d++
		}
		p.SetRange(ctx, key, int64(d), string(next.handled[d:]))
	default:
		p.Set(ctx, key, next.handled, 0)
	}
	return nil
}

// writeList queues what turns the list at key from old (known or not) into next.
func writeList(ctx context.Context, p redis.Pipeliner, key string, old []string, known bool, next entries) error {
	if known && slices.Equal(old, next.vals) {
		return nil
	}
	if known && len(next.vals) > 0 {
		ops, ok, err := diffList(key, old, next)
		if err != nil {
			return err
		}
		if ok {
			for _, op := range ops {
				p.Do(ctx, op...)
			}
			return nil
		}
	}
	if !known || len(old) > 0 {
		p.Del(ctx, key)
	}
	if len(next.vals) > 0 {
		p.RPush(ctx, key, anys(next.vals)...)
	}
	return nil
}

// diffList returns the commands that turn the list at key from old into next when next keeps the
// entries of old that it keeps in their order: those it lost taken from the head (LTRIM) or from
// elsewhere (LREM), those changed set in place (LSET), the new ones pushed at either end or inserted
// before the entry they precede (LINSERT: a message held after a later one, its failure reported
// late). ok is false when next reorders old, or when the commands would send more than next whole.
// Entries are told apart by their message's SID.
func diffList(key string, old []string, next entries) (ops [][]any, ok bool, err error) {
	pos := make(map[string]int, len(next.ids))
	for j, id := range next.ids {
		pos[id] = j
	}
	if len(pos) != len(next.ids) {
		return nil, false, nil // an entry twice: not told apart
	}
	var removed, kept, keptAt []int // indexes in old; keptAt: where each kept one is in next
	seen := make(map[string]bool, len(old))
	for i, raw := range old {
		sid, err := entrySid(raw)
		if err != nil {
			return nil, false, err
		}
		if seen[sid] {
			return nil, false, nil
		}
		seen[sid] = true
		j, in := pos[sid]
		switch {
		case !in:
			removed = append(removed, i)
		case len(keptAt) > 0 && j < keptAt[len(keptAt)-1]:
			return nil, false, nil // reordered
		default:
			kept, keptAt = append(kept, i), append(keptAt, j)
		}
	}
	sent, whole := 0, 0
	for _, v := range next.vals {
		whole += len(v)
	}
	// First what goes, so that the entries kept are at 0, 1, …; then the changed; then the new.
	head := 0
	for head < len(removed) && removed[head] == head {
		head++
	}
	if head > 0 {
		ops = append(ops, []any{"ltrim", key, head, -1})
	}
	for _, i := range removed[head:] {
		ops, sent = append(ops, []any{"lrem", key, 1, old[i]}), sent+len(old[i])
	}
	for k, i := range kept {
		if v := next.vals[keptAt[k]]; old[i] != v {
			ops, sent = append(ops, []any{"lset", key, k, v}), sent+len(v)
		}
	}
	push := func(cmd string, vals []string) {
		if len(vals) > 0 {
			ops = append(ops, append([]any{cmd, key}, anys(vals)...))
			for _, v := range vals {
				sent += len(v)
			}
		}
	}
	if len(kept) == 0 {
		push("rpush", next.vals)
		return ops, sent < whole, nil
	}
	before := slices.Clone(next.vals[:keptAt[0]])
	slices.Reverse(before) // LPUSH puts each argument at the head in turn
	push("lpush", before)
	for k := 1; k < len(kept); k++ {
		pivot := next.vals[keptAt[k]]
		for j := keptAt[k-1] + 1; j < keptAt[k]; j++ {
			ops, sent = append(ops, []any{"linsert", key, "before", pivot, next.vals[j]}), sent+len(pivot)+len(next.vals[j])
		}
	}
	push("rpush", next.vals[keptAt[len(kept)-1]+1:])
	return ops, sent < whole, nil
}

// entrySid is the message SID of an encoded entry: read from its start, where json.Marshal writes it
// (MessageSid is the first field of Held and Undelivered), else decoded.
func entrySid(raw string) (string, error) {
	if rest, ok := strings.CutPrefix(raw, `{"MessageSid":"`); ok {
		if sid, _, ok := strings.Cut(rest, `"`); ok && !strings.Contains(sid, `\`) {
			return sid, nil
		}
	}
	var e struct{ MessageSid string }
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		return "", fmt.Errorf("decoding chat part: %w", err)
	}
	return e.MessageSid, nil
}
