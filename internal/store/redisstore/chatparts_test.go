package redisstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/redistest"
	"github.com/optinkit/optin/internal/store/storetest"
)

// heldMessage is the i-th message of 1.5 KB held for a party (the size BenchmarkHoldToClosedWindow
// sends).
func heldMessage(i int) chat.Held {
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	return chat.Held{MessageSid: fmt.Sprintf("IM%032x", i), Index: i, Author: "whatsapp:+15550001111",
		Body: strings.Repeat("gate code 4411, blue building, third floor. ", 36)[:1536], Created: at, HeldAt: at.Add(time.Second)}
}

// netInput is the bytes Redis has read from its clients (INFO stats: total_net_input_bytes).
func netInput(t testing.TB, admin *redis.Client) int64 {
	t.Helper()
	info, err := admin.Info(t.Context(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_net_input_bytes:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no total_net_input_bytes in INFO stats")
	return 0
}

// A hold sends Redis the chat's small document and the one message, however many the party holds:
// the bytes Redis reads for the hold of the 60th message (41 held, the 64 KB cap of 1.5 KB messages)
// are those of the 5th, and a fraction of the held messages' size.
func TestHoldWritesOneEntry(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv).Chats()
	admin := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", srv.Port)})
	defer admin.Close()
	ctx := t.Context()
	c := storetest.FinishedChat(1)
	c.State, c.Reason, c.History = chat.StateConnected, "", c.History[:4]
	if _, _, err := s.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	const holds, limit = 60, 41
	perHold := make([]int64, holds)
	for i := range holds {
		// What Redis reads for one INFO is measured around an INFO alone, and taken off.
		before := netInput(t, admin)
		info := netInput(t, admin) - before
		before = netInput(t, admin)
		if _, err := s.Update(ctx, c.ID, func(c *chat.Chat) error {
			c.Rider.Held = append(c.Rider.Held, heldMessage(i))
			if len(c.Rider.Held) > limit {
				c.Rider.Held = c.Rider.Held[1:] // the cap drops the oldest
			}
			c.Handled = c.Handled.With(i)
			c.Work++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		perHold[i] = netInput(t, admin) - before - info
	}
	got, err := s.Get(ctx, c.ID)
	if err != nil || len(got.Rider.Held) != limit || got.Rider.Held[0].MessageSid != heldMessage(holds-limit).MessageSid ||
		got.Rider.Held[limit-1].Body != heldMessage(holds-1).Body || !got.Handled.Has(holds-1) || got.Work != holds {
		t.Fatalf("read back: %d held, handled %v, work %d, %v", len(got.Rider.Held), got.Handled, got.Work, err)
	}
	entry, _ := json.Marshal(heldMessage(0))
	var value int64
	for _, k := range ChatKeys(c.ID) {
		value += admin.MemoryUsage(ctx, k).Val()
	}
	doc := admin.StrLen(ctx, chatKey(c.ID)).Val()
	t.Logf("bytes Redis read per hold: 1st %d, 5th %d, 60th %d (a held message %d B, the document %d B; the chat's keys %d B)",
		perHold[0], perHold[4], perHold[holds-1], len(entry), doc, value)
	// One message, the document, and the commands' own words: the chat's six keys named by WATCH and
	// by the read, then MULTI, SET, RPUSH, LTRIM, SETRANGE, EXEC.
	if bound := int64(len(entry)) + doc + 1536; perHold[holds-1] > bound {
		t.Errorf("the 60th hold sent %d bytes, more than a message and the document (%d)", perHold[holds-1], bound)
	}
	if perHold[holds-1] > perHold[4]+256 {
		t.Errorf("a hold's bytes grow with what is held: %d at the 5th, %d at the 60th", perHold[4], perHold[holds-1])
	}
}

// entriesOf encodes held messages as a list part.
func entriesOf(t *testing.T, hs ...chat.Held) entries {
	t.Helper()
	e, err := encodeEntries(hs, func(h chat.Held) string { return h.MessageSid })
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Each change of a list is written as the few commands it takes, or whole when it reorders the list or
// the commands would send more.
func TestDiffList(t *testing.T) {
	a, b, c, d, e, f := heldMessage(1), heldMessage(2), heldMessage(3), heldMessage(4), heldMessage(5), heldMessage(6)
	g, h, i := heldMessage(7), heldMessage(8), heldMessage(9)
	sending := a
	sending.Sending = true
	for _, tc := range []struct {
		name string
		old  []chat.Held // a, b, c when nil
		next entries
		want string // the commands, arguments shortened to their message's SID's last digit
		ok   bool
	}{
		{"held at the end", nil, entriesOf(t, a, b, c, d), "rpush k 4", true},
		{"the oldest dropped for the newest", nil, entriesOf(t, b, c, d), "ltrim k 1 -1; rpush k 4", true},
		{"two re-sent", nil, entriesOf(t, c), "ltrim k 2 -1", true},
		{"one from the middle", nil, entriesOf(t, a, c), "lrem k 1 2", true},
		{"the first marked sending", nil, entriesOf(t, sending, b, c), "lset k 0 1", true},
		{"one before the others", nil, entriesOf(t, d, a, b, c), "lpush k 4", true},
		{"one held late, between others", nil, entriesOf(t, a, d, b, c), "linsert k before 2 4", true},
		{"all of it at once", nil, entriesOf(t, sending, d, c, e, f), "", false}, // more than the list whole
		{"all of it at once, in a longer list", []chat.Held{a, b, c, g, h, i}, entriesOf(t, sending, d, c, g, h, i, e, f),
			"lrem k 1 2; lset k 0 1; linsert k before 3 4; rpush k 5 6", true},
		{"two swapped", nil, entriesOf(t, b, a, c), "", false},
		{"all changed", nil, entriesOf(t, d), "", false}, // more than the list whole
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.old == nil {
				tc.old = []chat.Held{a, b, c}
			}
			ops, ok, err := diffList("k", entriesOf(t, tc.old...).vals, tc.next)
			if err != nil || ok != tc.ok {
				t.Fatalf("ok %v %v, want %v", ok, err, tc.ok)
			}
			if !ok {
				return
			}
			var got []string
			for _, op := range ops {
				var words []string
				for _, arg := range op {
					w := fmt.Sprint(arg)
					if strings.HasPrefix(w, "{") {
						var h chat.Held
						if err := json.Unmarshal([]byte(w), &h); err != nil {
							t.Fatal(err)
						}
						w = h.MessageSid[len(h.MessageSid)-1:]
					}
					words = append(words, w)
				}
				got = append(got, strings.Join(words, " "))
			}
			if strings.Join(got, "; ") != tc.want {
				t.Errorf("ops %q, want %q", strings.Join(got, "; "), tc.want)
			}
		})
	}
}

// A chat written before its parts were split out (held messages, failed deliveries and the handled
// set inside its one document) reads back whole, and its next update splits them out: the document
// then carries none, their keys all. Part keys beside such a document (left by a version that split
// them, then a writer that did not) are not its parts.
func TestChatOfOneDocumentIsSplitOnUpdate(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv).Chats()
	ctx := t.Context()
	c := storetest.FinishedChat(2)
	c.State, c.Reason, c.History = chat.StateConnected, "", c.History[:4]
	c.Seq = 7
	c.Customer.Held = []chat.Held{heldMessage(1)}
	c.Rider.Held = []chat.Held{heldMessage(2), heldMessage(3)}
	c.Settling = []chat.Held{heldMessage(4)}
	c.Undelivered = []chat.Undelivered{{MessageSid: heldMessage(5).MessageSid, Code: 63016}}
	c.Handled = chat.Indexes{}.With(2).With(3)
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	keys := partKeys(c.ID)
	if err := s.rdb.Set(ctx, chatKey(c.ID), raw, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.rdb.RPush(ctx, keys[partHeldRider], "stale").Err(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Customer.Held, c.Customer.Held) || !reflect.DeepEqual(got.Rider.Held, c.Rider.Held) ||
		!reflect.DeepEqual(got.Settling, c.Settling) || !reflect.DeepEqual(got.Undelivered, c.Undelivered) ||
		!bytes.Equal(got.Handled, c.Handled) {
		t.Fatalf("read back: %+v", got)
	}
	if _, err := s.Update(ctx, c.ID, func(c *chat.Chat) error {
		c.Rider.Held = append(c.Rider.Held, heldMessage(6))
		c.Handled = c.Handled.With(6)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	doc := s.rdb.Get(ctx, chatKey(c.ID)).Val()
	if !strings.HasPrefix(doc, splitPrefix) || strings.Contains(doc, "Held") || strings.Contains(doc, "Undelivered") ||
		strings.Contains(doc, "Handled") || strings.Contains(doc, "Settling") {
		t.Errorf("the document after the update: %s", doc)
	}
	for i, want := range []int64{1, 3, 1, 1} {
		if n := s.rdb.LLen(ctx, keys[i]).Val(); n != want {
			t.Errorf("%s holds %d entries, want %d", partNames[i], n, want)
		}
	}
	again, err := s.Get(ctx, c.ID)
	want := c
	want.Rider.Held = append(want.Rider.Held, heldMessage(6))
	if err != nil || !reflect.DeepEqual(again.Customer.Held, want.Customer.Held) || !reflect.DeepEqual(again.Rider.Held, want.Rider.Held) ||
		!reflect.DeepEqual(again.Settling, want.Settling) || !reflect.DeepEqual(again.Undelivered, want.Undelivered) ||
		!again.Handled.Has(6) || !again.Handled.Has(3) || again.Handled.Has(4) || again.ConversationSid != c.ConversationSid {
		t.Fatalf("read back after the update: %+v %v", again, err)
	}
}

// A chat that ends keeps its parts as long as itself; once finished (compact) it has none, deleted in
// the write that compacts it; Delete removes them all.
func TestChatPartsEndWithTheChat(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv).Chats()
	ctx := t.Context()
	c := storetest.FinishedChat(3)
	c.State, c.Reason, c.History = chat.StateConnected, "", c.History[:4]
	if _, _, err := s.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	keys := partKeys(c.ID)
	if _, err := s.Update(ctx, c.ID, func(c *chat.Chat) error {
		c.Rider.Held = []chat.Held{heldMessage(1)}
		c.Undelivered = []chat.Undelivered{{MessageSid: heldMessage(2).MessageSid, Code: 63016}}
		c.Handled = c.Handled.With(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{keys[partHeldRider], keys[partUndelivered], keys[partHandled]} {
		if ttl := s.rdb.PTTL(ctx, k).Val(); ttl != -1 {
			t.Errorf("%s of an open chat has TTL %v, want none", k, ttl)
		}
	}
	// Ended with a copy in flight: the message settles, the chat is final but not compact yet.
	if _, err := s.Update(ctx, c.ID, func(c *chat.Chat) error {
		c.State, c.Reason = chat.StateClosed, chat.ReasonEnded
		c.Settling, c.Rider.Held, c.Undelivered, c.Handled = c.Rider.Held, nil, nil, nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	docTTL := s.rdb.PTTL(ctx, chatKey(c.ID)).Val()
	if ttl := s.rdb.PTTL(ctx, keys[partSettling]).Val(); docTTL <= 0 || ttl <= 0 || ttl > docTTL || docTTL-ttl > time.Second {
		t.Errorf("settling expires in %v, the chat in %v", ttl, docTTL)
	}
	for _, k := range []string{keys[partHeldRider], keys[partUndelivered], keys[partHandled]} {
		if n := s.rdb.Exists(ctx, k).Val(); n != 0 {
			t.Errorf("%s still there once empty", k)
		}
	}
	if _, err := s.Update(ctx, c.ID, func(c *chat.Chat) error { c.Settling = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	if doc := s.rdb.Get(ctx, chatKey(c.ID)).Val(); !strings.HasPrefix(doc, chat.FinishedPrefix) {
		t.Errorf("not compact: %s", doc)
	}
	if n := s.rdb.Exists(ctx, keys[:]...).Val(); n != 0 {
		t.Errorf("%d parts of a finished chat left", n)
	}
	// Parts left over (an older version's writer) go with Delete.
	if err := s.rdb.RPush(ctx, keys[partHeldCustomer], "left over").Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if n := s.rdb.Exists(ctx, chatKeys(c.ID)...).Val(); n != 0 {
		t.Errorf("%d keys of a deleted chat left", n)
	}
}

// An entry's SID is read from its start as json.Marshal writes it, and decoded otherwise.
func TestEntrySid(t *testing.T) {
	for raw, want := range map[string]string{
		`{"MessageSid":"IM1","Index":2}`:      "IM1",
		`{"Index":2,"MessageSid":"IM2"}`:      "IM2",
		`{"MessageSid":"I\u004d3","Index":2}`: "IM3",
		`{"MessageSid":"IM\"4\"","Index":2}`:  `IM"4"`,
		`{"MessageSid":"","Code":63016}`:      "",
	} {
		if got, err := entrySid(raw); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", raw, got, err, want)
		}
	}
	if _, err := entrySid(`{"MessageSid":`); err == nil {
		t.Error("a broken entry was read")
	}
}
