package chat

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Compactable reports whether a chat is kept in its finished form: final, nothing left to deliver.
func (c Chat) Compactable() bool { return c.State.Final() && !c.HasWork() && c.Ending == nil }

// finished is a finished chat as stores keep it for the retention, in short JSON: what its View and a
// repeated start need. The invitation, the ttl and the start steps' results are dropped — except a
// failed start's, which the console shows.
type finished struct {
	ID   string `json:"i"`
	Conv string `json:"v,omitempty"`
	// ConvBytes is a conversation SID of the usual form (CH and 32 lowercase hexadecimal digits) as its
	// 16 bytes in base64, in place of Conv: 12 bytes fewer.
	ConvBytes string `json:"w,omitempty"`
	Mode      string `json:"m,omitempty"`
	State     State  `json:"s"`
	Reason    string `json:"r,omitempty"`
	// Customer and Rider are address, proxy address and name, trailing empty ones left out; an address
	// "whatsapp:…" is written "~…", and a rider's proxy address that is the customer's "=". They are
	// written joined by spaces (no address holds one; the name, last, may), in CustomerLine and
	// RiderLine; records of earlier versions have them as arrays.
	Customer     []string `json:"c,omitempty"`
	Rider        []string `json:"d,omitempty"`
	CustomerLine string   `json:"a,omitempty"`
	RiderLine    string   `json:"b,omitempty"`
	// Times are created (Unix ms), then updated and expires as ms after created.
	Times    [3]int64        `json:"t"`
	Metadata json.RawMessage `json:"x,omitempty"`
	Error    *Failure        `json:"e,omitempty"`
	// History is "state index:ms after created", comma-separated; an entry that moved the customer to
	// another channel adds ":" and the channel.
	History string `json:"h"`
	// Nudged is when the customer and the rider were last nudged, in ms after created; absent when never.
	Nudged      []int64 `json:"n,omitempty"`
	Fingerprint string  `json:"f,omitempty"`
	// Digest is a hexadecimal fingerprint (the usual form) in base64: 21 bytes fewer.
	Digest string            `json:"g,omitempty"`
	Seq    int64             `json:"q"`
	Steps  map[string]string `json:"p,omitempty"`
	// Calls are the chat's calls, Guarded its guarded messages' records (GuardedCount in all), as the
	// full form has them: most chats have none.
	Calls        []Call    `json:"k,omitempty"`
	Guarded      []Guarded `json:"z,omitempty"`
	GuardedCount int       `json:"o,omitempty"`
	// AfterEnd is when the customer and the rider were last answered writing after the end, in ms
	// after created; absent when never.
	AfterEnd []int64 `json:"y,omitempty"`
}

// FinishedPrefix starts every encoded finished chat, and no full one: stores tell the two forms apart.
const FinishedPrefix = `{"i":`

// MarshalFinished encodes a compactable chat in its finished form.
func MarshalFinished(c Chat) ([]byte, error) {
	if !c.Compactable() {
		return nil, fmt.Errorf("chat %s is not finished", c.ID)
	}
	party := func(p Party, sameProxy bool) string {
		out := []string{packAddress(p.Address), packAddress(p.ProxyAddress), p.Name}
		if sameProxy {
			out[1] = "="
		}
		for len(out) > 1 && out[len(out)-1] == "" {
			out = out[:len(out)-1]
		}
		return strings.Join(out, " ")
	}
	f := finished{ID: c.ID, State: c.State, Reason: c.Reason,
		CustomerLine: party(c.Customer, false), RiderLine: party(c.Rider, c.Rider.ProxyAddress != "" && c.Rider.ProxyAddress == c.Customer.ProxyAddress),
		Metadata: c.Metadata, Error: c.Error, Seq: c.Seq, Calls: c.Calls,
		Guarded: c.Guarded, GuardedCount: c.GuardedCount}
	if b, ok := sidBytes(c.ConversationSid); ok {
		f.ConvBytes = base64.RawStdEncoding.EncodeToString(b)
	} else {
		f.Conv = c.ConversationSid
	}
	created := c.CreatedAt.UnixMilli()
	f.Times = [3]int64{created, c.UpdatedAt.UnixMilli() - created, c.ExpiresAt.UnixMilli() - created}
	if b, err := hex.DecodeString(c.Fingerprint); err == nil && hex.EncodeToString(b) == c.Fingerprint {
		f.Digest = base64.RawStdEncoding.EncodeToString(b)
	} else {
		f.Fingerprint = c.Fingerprint
	}
	if c.Mode != ModeOptIn {
		f.Mode = c.Mode
	}
	if c.Error != nil && c.Error.Step != "" {
		f.Steps = c.Steps
	}
	var h strings.Builder
	for i, t := range c.History {
		if i > 0 {
			h.WriteByte(',')
		}
		h.WriteString(strconv.Itoa(slices.Index(States, t.State)))
		h.WriteByte(':')
		h.WriteString(strconv.FormatInt(t.At.UnixMilli()-f.Times[0], 10))
		if t.Channel != "" {
			h.WriteByte(':')
			h.WriteString(t.Channel)
		}
	}
	f.History = h.String()
	if !c.Customer.NudgedAt.IsZero() || !c.Rider.NudgedAt.IsZero() {
		f.Nudged = make([]int64, 2)
		for i, p := range []Party{c.Customer, c.Rider} {
			if !p.NudgedAt.IsZero() {
				f.Nudged[i] = p.NudgedAt.UnixMilli() - created
			}
		}
	}
	if !c.Customer.AfterEndAt.IsZero() || !c.Rider.AfterEndAt.IsZero() {
		f.AfterEnd = make([]int64, 2)
		for i, p := range []Party{c.Customer, c.Rider} {
			if !p.AfterEndAt.IsZero() {
				f.AfterEnd[i] = p.AfterEndAt.UnixMilli() - created
			}
		}
	}
	return json.Marshal(f)
}

// UnmarshalFinished decodes a chat kept in its finished form.
func UnmarshalFinished(raw []byte) (Chat, error) {
	var f finished
	if err := json.Unmarshal(raw, &f); err != nil {
		return Chat{}, fmt.Errorf("decoding finished chat: %w", err)
	}
	party := func(p []string, line string) Party {
		if line != "" {
			p = strings.SplitN(line, " ", 3)
		}
		p = append(p, "", "", "")
		return Party{Address: unpackAddress(p[0]), ProxyAddress: unpackAddress(p[1]), Name: p[2]}
	}
	ms := func(v int64) time.Time { return time.UnixMilli(v).UTC() }
	c := Chat{ID: f.ID, ConversationSid: f.Conv, Mode: f.Mode, State: f.State, Reason: f.Reason,
		Customer: party(f.Customer, f.CustomerLine), Rider: party(f.Rider, f.RiderLine),
		CreatedAt: ms(f.Times[0]), UpdatedAt: ms(f.Times[0] + f.Times[1]), ExpiresAt: ms(f.Times[0] + f.Times[2]),
		Metadata: f.Metadata, Error: f.Error, Fingerprint: f.Fingerprint, Seq: f.Seq, Steps: f.Steps, Calls: f.Calls,
		Guarded: f.Guarded, GuardedCount: f.GuardedCount}
	if c.Mode == "" {
		c.Mode = ModeOptIn
	}
	if c.Rider.ProxyAddress == "=" {
		c.Rider.ProxyAddress = c.Customer.ProxyAddress
	}
	if f.ConvBytes != "" {
		b, err := base64.RawStdEncoding.DecodeString(f.ConvBytes)
		if err != nil || len(b) != 16 {
			return Chat{}, fmt.Errorf("decoding finished chat %s: conversation %q", f.ID, f.ConvBytes)
		}
		c.ConversationSid = "CH" + hex.EncodeToString(b)
	}
	if f.Digest != "" {
		b, err := base64.RawStdEncoding.DecodeString(f.Digest)
		if err != nil {
			return Chat{}, fmt.Errorf("decoding finished chat %s: fingerprint: %w", f.ID, err)
		}
		c.Fingerprint = hex.EncodeToString(b)
	}
	if c.Steps == nil {
		c.Steps = map[string]string{}
	}
	if len(c.Metadata) == 0 {
		c.Metadata = nil
	}
	for entry := range strings.SplitSeq(f.History, ",") {
		if entry == "" {
			continue
		}
		idx, at, ok := strings.Cut(entry, ":")
		at, channel, _ := strings.Cut(at, ":")
		i, err1 := strconv.Atoi(idx)
		d, err2 := strconv.ParseInt(at, 10, 64)
		if !ok || err1 != nil || err2 != nil || i < 0 || i >= len(States) {
			return Chat{}, fmt.Errorf("decoding finished chat %s: history entry %q", f.ID, entry)
		}
		c.History = append(c.History, Transition{State: States[i], At: ms(f.Times[0] + d), Channel: channel})
	}
	for i, p := range []*Party{&c.Customer, &c.Rider} {
		if i < len(f.Nudged) && f.Nudged[i] != 0 {
			p.NudgedAt = ms(f.Times[0] + f.Nudged[i])
		}
		if i < len(f.AfterEnd) && f.AfterEnd[i] != 0 {
			p.AfterEndAt = ms(f.Times[0] + f.AfterEnd[i])
		}
	}
	return c, nil
}

// sidBytes returns the 16 bytes of a conversation SID of the usual form.
func sidBytes(sid string) ([]byte, bool) {
	rest, ok := strings.CutPrefix(sid, "CH")
	if !ok || len(rest) != 32 {
		return nil, false
	}
	b, err := hex.DecodeString(rest)
	return b, err == nil && hex.EncodeToString(b) == rest
}

const whatsappPrefix = ChannelWhatsApp + ":"

// packAddress writes a WhatsApp address "~+E164"; no address of either channel starts with "~".
func packAddress(a string) string {
	if rest, ok := strings.CutPrefix(a, whatsappPrefix); ok {
		return "~" + rest
	}
	return a
}

func unpackAddress(a string) string {
	if rest, ok := strings.CutPrefix(a, "~"); ok {
		return whatsappPrefix + rest
	}
	return a
}
