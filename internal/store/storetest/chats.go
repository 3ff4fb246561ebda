package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/chat"
)

func newChat(id string) chat.Chat {
	now := time.UnixMilli(time.Now().UnixMilli()).UTC()
	return chat.Chat{
		ID: id, State: chat.StateStarting, Fingerprint: "fp-" + id,
		Customer: chat.Party{Address: "whatsapp:+15550001111", ProxyAddress: "whatsapp:+15550100000", Name: "Ana"},
		Rider:    chat.Party{Address: "whatsapp:+15550002222", ProxyAddress: "whatsapp:+15550100000"},
		Invite:   chat.Invite{ContentSid: "HX00000000000000000000000000000001", ContentVariables: map[string]string{"1": "Ana"}},
		TTL:      time.Hour, Metadata: []byte(`{"order":1}`), CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour),
		History: []chat.Transition{{State: chat.StateStarting, At: now}}, Steps: map[string]string{},
	}
}

// RunChats checks the chat.Store contract. open returns two handles on one empty store.
func RunChats(t *testing.T, open func(t *testing.T) (chat.Store, chat.Store)) {
	t.Run("create is atomic", func(t *testing.T) {
		a, b := open(t)
		stores := []chat.Store{a, b}
		oneWins(t, 50, func(i int) (bool, error) {
			c := newChat("order-1")
			c.Fingerprint = fmt.Sprint("fp", i)
			_, created, err := stores[i%2].Create(t.Context(), c)
			return created, err
		})
	})

	t.Run("lifecycle", func(t *testing.T) {
		s, other := open(t)
		ctx := t.Context()
		want := newChat("order-2")
		got, created, err := s.Create(ctx, want)
		if err != nil || !created || got.Seq <= 0 {
			t.Fatalf("create: %+v %v %v", got, created, err)
		}
		again, created, err := other.Create(ctx, newChat("order-2"))
		if err != nil || created || again.Fingerprint != want.Fingerprint || again.Seq != got.Seq || !reflect.DeepEqual(again.Customer, want.Customer) ||
			!again.CreatedAt.Equal(want.CreatedAt) || string(again.Metadata) != `{"order":1}` || again.Invite.ContentVariables["1"] != "Ana" {
			t.Fatalf("second create: %+v %v %v", again, created, err)
		}
		if _, err := s.ByConversation(ctx, "CH00000000000000000000000000000002"); !errors.Is(err, chat.ErrNotFound) {
			t.Errorf("by conversation before it is known: %v", err)
		}
		updated, err := other.Update(ctx, "order-2", func(c *chat.Chat) error {
			c.ConversationSid = "CH00000000000000000000000000000002"
			c.Steps["conversation"] = c.ConversationSid
			c.State = chat.StateInvited
			c.History = append(c.History, chat.Transition{State: chat.StateInvited, At: c.CreatedAt})
			return nil
		})
		if err != nil || updated.State != chat.StateInvited || len(updated.History) != 2 {
			t.Fatalf("update: %+v %v", updated, err)
		}
		byConv, err := s.ByConversation(ctx, "CH00000000000000000000000000000002")
		if err != nil || byConv.ID != "order-2" || byConv.Steps["conversation"] == "" || len(byConv.History) != 2 {
			t.Fatalf("by conversation: %+v %v", byConv, err)
		}
		byConv.Steps["x"] = "changed by the caller"
		byConv.History[0].State = "changed"
		if g, _ := s.Get(ctx, "order-2"); len(g.Steps) != 1 || g.History[0].State != chat.StateStarting {
			t.Error("a returned chat aliases the stored one")
		}
		refused := errors.New("refused")
		if _, err := s.Update(ctx, "order-2", func(c *chat.Chat) error { c.State = chat.StateClosed; return refused }); !errors.Is(err, refused) {
			t.Errorf("update error: %v", err)
		}
		if g, _ := s.Get(ctx, "order-2"); g.State != chat.StateInvited {
			t.Errorf("an aborted update was stored: %s", g.State)
		}
		if _, err := s.Update(ctx, "nope", func(*chat.Chat) error { return nil }); !errors.Is(err, chat.ErrNotFound) {
			t.Errorf("update of nothing: %v", err)
		}
		if err := s.Delete(ctx, "order-2"); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Get(ctx, "order-2"); !errors.Is(err, chat.ErrNotFound) {
			t.Errorf("get after delete: %v", err)
		}
		if _, created, _ := s.Create(ctx, newChat("order-2")); !created {
			t.Error("a deleted chat's id cannot be used again")
		}
	})

	t.Run("concurrent updates all land", func(t *testing.T) {
		a, b := open(t)
		if _, _, err := a.Create(t.Context(), newChat("order-3")); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				_, err := []chat.Store{a, b}[i%2].Update(t.Context(), "order-3", func(c *chat.Chat) error {
					c.Steps[fmt.Sprint("s", i)] = "done"
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if c, _ := a.Get(t.Context(), "order-3"); len(c.Steps) != 20 {
			t.Errorf("%d of 20 updates kept", len(c.Steps))
		}
	})

	t.Run("list pages newest first", func(t *testing.T) {
		s, _ := open(t)
		ctx := t.Context()
		for i := range 7 {
			c := newChat(fmt.Sprint("list-", i))
			if i%2 == 1 {
				c.State = chat.StateClosed
			}
			if _, _, err := s.Create(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		var ids []string
		var before int64
		for page := 0; ; page++ {
			chats, next, err := s.List(ctx, "", 3, before)
			if err != nil || page > 5 {
				t.Fatalf("list: %v (page %d)", err, page)
			}
			for _, c := range chats {
				ids = append(ids, c.ID)
			}
			if next == 0 {
				break
			}
			before = next
		}
		if fmt.Sprint(ids) != "[list-6 list-5 list-4 list-3 list-2 list-1 list-0]" {
			t.Errorf("pages: %v", ids)
		}
		closed, next, err := s.List(ctx, chat.StateClosed, 10, 0)
		if err != nil || next != 0 || len(closed) != 3 || closed[0].ID != "list-5" {
			t.Errorf("closed: %d %d %v", len(closed), next, err)
		}
	})

	t.Run("lease", func(t *testing.T) {
		a, b := open(t)
		ctx := t.Context()
		if ok, err := a.Lock(ctx, "order-4", "one", time.Minute); !ok || err != nil {
			t.Fatalf("first lock: %v %v", ok, err)
		}
		if ok, _ := b.Lock(ctx, "order-4", "two", time.Minute); ok {
			t.Error("a held lease was taken")
		}
		if err := b.Unlock(ctx, "order-4", "two"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := b.Lock(ctx, "order-4", "two", time.Minute); ok {
			t.Error("another owner's unlock released the lease")
		}
		_ = a.Unlock(ctx, "order-4", "one")
		if ok, _ := b.Lock(ctx, "order-4", "two", 50*time.Millisecond); !ok {
			t.Error("a released lease could not be taken")
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			if ok, _ := a.Lock(ctx, "order-4", "one", time.Minute); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("a lapsed lease was never free again")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("the owner taking its lease again extends it", func(t *testing.T) {
		a, b := open(t)
		ctx := t.Context()
		if ok, _ := a.Lock(ctx, "~sweep", "one", time.Second); !ok {
			t.Fatal("first lock")
		}
		// Re-taken well before it lapses, for a minute: it must not lapse at its first term.
		if ok, _ := a.Lock(ctx, "~sweep", "one", time.Minute); !ok {
			t.Fatal("the owner could not take its lease again")
		}
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if ok, _ := b.Lock(ctx, "~sweep", "two", time.Minute); ok {
				t.Fatal("a re-taken lease lapsed at its first term")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("open chats by shard", func(t *testing.T) {
		a, b := open(t)
		ctx := t.Context()
		var ids []string
		for i := range 40 {
			id := fmt.Sprintf("order-%d", i)
			if _, _, err := a.Create(ctx, newChat(id)); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		if _, err := a.Update(ctx, "order-7", func(c *chat.Chat) error { c.State = chat.StateClosed; return nil }); err != nil {
			t.Fatal(err)
		}
		want := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == "order-7" })
		slices.Sort(want)
		// 8 and 16 divide a bucketed store's buckets, 3 does not: each shard holds its ids and no other.
		for _, shards := range []int{1, 3, 8, 16} {
			var all []string
			for shard := range shards {
				got, err := b.Open(ctx, shard, shards)
				if err != nil {
					t.Fatal(err)
				}
				for _, id := range got {
					if chat.ShardOf(id, shards) != shard {
						t.Errorf("shard %d of %d lists %s, of shard %d", shard, shards, id, chat.ShardOf(id, shards))
					}
				}
				all = append(all, got...)
			}
			if slices.Sort(all); !slices.Equal(all, want) {
				t.Errorf("the %d shards list %v, want %v", shards, all, want)
			}
		}
	})

	t.Run("open chats and chats with pending events", func(t *testing.T) {
		a, b := open(t)
		ctx := t.Context()
		for _, id := range []string{"open-1", "open-2", "open-3"} {
			if _, _, err := a.Create(ctx, newChat(id)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := b.Update(ctx, "open-2", func(c *chat.Chat) error {
			c.State = chat.StateClosed
			c.Pending = []chat.Event{{ID: "msg_1", Type: "chat.closed", At: c.CreatedAt}}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Update(ctx, "open-3", func(c *chat.Chat) error {
			c.Pending = []chat.Event{{ID: "msg_2", Type: "chat.invited", At: c.CreatedAt}}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := a.Delete(ctx, "open-3"); err != nil {
			t.Fatal(err)
		}
		open, err := b.Open(ctx, 0, 1)
		if slices.Sort(open); err != nil || !slices.Equal(open, []string{"open-1"}) {
			t.Errorf("open: %v %v", open, err)
		}
		pending, err := a.WithPending(ctx)
		if err != nil || !slices.Equal(pending, []string{"open-2"}) {
			t.Errorf("with pending: %v %v", pending, err)
		}
		if _, err := a.Update(ctx, "open-2", func(c *chat.Chat) error { c.Pending = nil; return nil }); err != nil {
			t.Fatal(err)
		}
		if pending, err := b.WithPending(ctx); err != nil || len(pending) != 0 {
			t.Errorf("with pending after delivery: %v %v", pending, err)
		}
		// A message held for a party is work too, and reads back whole without aliasing the store's.
		held := chat.Held{MessageSid: "IM00000000000000000000000000000001", Index: 4, Author: "whatsapp:+15550001111",
			Body: "gate code 4411", Created: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), HeldAt: time.Date(2026, 12, 1, 9, 0, 1, 0, time.UTC),
			Media: []chat.Media{{Sid: "ME00000000000000000000000000000001", ContentType: "image/jpeg", Filename: "door.jpg", Size: 48213}}}
		if _, err := a.Update(ctx, "open-2", func(c *chat.Chat) error {
			c.Rider.Held, c.Handled = []chat.Held{held}, chat.Indexes{}.With(3)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if pending, err := b.WithPending(ctx); err != nil || !slices.Equal(pending, []string{"open-2"}) {
			t.Errorf("with a held message: %v %v", pending, err)
		}
		got, err := b.Get(ctx, "open-2")
		if err != nil || len(got.Rider.Held) != 1 || !reflect.DeepEqual(got.Rider.Held[0], held) {
			t.Fatalf("held read back: %+v %v", got.Rider.Held, err)
		}
		if !got.Handled.Has(3) || got.Handled.Has(2) {
			t.Errorf("handled read back %v", got.Handled)
		}
		got.Rider.Held[0].Body = "changed by the caller"
		got.Rider.Held[0].Media[0].Sid = "changed by the caller"
		got.Handled[0] = 0xff
		if again, _ := b.Get(ctx, "open-2"); again.Rider.Held[0].Body != held.Body || again.Rider.Held[0].Media[0].Sid != held.Media[0].Sid ||
			again.Handled.Has(2) {
			t.Errorf("a returned chat aliases the store's held messages or handled set")
		}
		if _, err := a.Update(ctx, "open-2", func(c *chat.Chat) error { c.Rider.Held = nil; return nil }); err != nil {
			t.Fatal(err)
		}
		if pending, err := b.WithPending(ctx); err != nil || len(pending) != 0 {
			t.Errorf("with pending after the re-send: %v %v", pending, err)
		}
		// So are a failed delivery not acted on yet and a move to SMS under way.
		for name, change := range map[string]func(*chat.Chat){
			"undelivered": func(c *chat.Chat) {
				c.Undelivered = []chat.Undelivered{{MessageSid: "IM00000000000000000000000000000002", Code: 63016}}
			},
			"fallback": func(c *chat.Chat) {
				c.Fallback = &chat.Fallback{Code: 63003, From: "whatsapp:+15550001111", Number: "+15550109999"}
			},
			"numbers to free": func(c *chat.Chat) { c.Release = true },
		} {
			if _, err := a.Update(ctx, "open-2", func(c *chat.Chat) error { change(c); return nil }); err != nil {
				t.Fatal(err)
			}
			if pending, err := b.WithPending(ctx); err != nil || !slices.Equal(pending, []string{"open-2"}) {
				t.Errorf("with %s: %v %v", name, pending, err)
			}
			got, _ := b.Get(ctx, "open-2")
			want := chat.Chat{}
			change(&want)
			if !reflect.DeepEqual(got.Undelivered, want.Undelivered) || !reflect.DeepEqual(got.Fallback, want.Fallback) {
				t.Errorf("%s read back: %+v %+v", name, got.Undelivered, got.Fallback)
			}
			if !reflect.DeepEqual(got.Release, want.Release) {
				t.Errorf("%s read back: release %v", name, got.Release)
			}
			if _, err := a.Update(ctx, "open-2", func(c *chat.Chat) error { c.Undelivered, c.Fallback, c.Release = nil, nil, false; return nil }); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("held messages, failures and the handled set read back through every change", func(t *testing.T) {
		a, b := open(t)
		ctx := t.Context()
		if _, _, err := a.Create(ctx, newChat("parts-1")); err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(24, 1))
		next := 0
		message := func() chat.Held {
			next++
			at := time.Date(2026, 12, 1, 9, 0, next, 0, time.UTC)
			return chat.Held{MessageSid: fmt.Sprintf("IM%032d", next), Index: next, Author: "whatsapp:+15550001111",
				Body: fmt.Sprint("message ", next), Created: at, HeldAt: at.Add(time.Second)}
		}
		// The ways the service changes a list of held messages: hold one (at the end, or before
		// others when its report came late), re-send the first, drop one, mark the first sending,
		// count a failed copy, clear the early marks, drop them all.
		// r is a random number, drawn outside the change (which may run again).
		changes := []func(hs []chat.Held, m chat.Held, r int) []chat.Held{
			func(hs []chat.Held, m chat.Held, _ int) []chat.Held { return append(hs, m) },
			func(hs []chat.Held, m chat.Held, r int) []chat.Held { return slices.Insert(hs, r%(len(hs)+1), m) },
			func(hs []chat.Held, _ chat.Held, _ int) []chat.Held { return hs[min(1, len(hs)):] },
			func(hs []chat.Held, _ chat.Held, r int) []chat.Held {
				if len(hs) == 0 {
					return hs
				}
				return slices.Delete(hs, r%len(hs), r%len(hs)+1)
			},
			func(hs []chat.Held, _ chat.Held, _ int) []chat.Held {
				if len(hs) > 0 {
					hs[0].Sending = true
				}
				return hs
			},
			func(hs []chat.Held, _ chat.Held, r int) []chat.Held {
				if len(hs) > 0 {
					hs[r%len(hs)].Attempts++
				}
				return hs
			},
			func(hs []chat.Held, _ chat.Held, _ int) []chat.Held {
				for i := range hs {
					hs[i].Early = !hs[i].Early
				}
				return hs
			},
			func([]chat.Held, chat.Held, int) []chat.Held { return nil },
		}
		// Stores may answer an empty list for none.
		orNil := func(v any) any {
			if r := reflect.ValueOf(v); r.Len() == 0 {
				return reflect.Zero(r.Type()).Interface()
			}
			return v
		}
		var want chat.Chat
		for step := range 300 {
			stores := []chat.Store{a, b}
			change, list, handled, r, m := rng.IntN(len(changes)), rng.IntN(4), rng.IntN(40), rng.IntN(1000), message()
			got, err := stores[step%2].Update(ctx, "parts-1", func(c *chat.Chat) error {
				if list < 3 {
					hs := []*[]chat.Held{&c.Customer.Held, &c.Rider.Held, &c.Settling}[list]
					*hs = changes[change](slices.Clone(*hs), m, r)
				} else if len(c.Undelivered) < 5 && change%2 == 0 {
					c.Undelivered = append(c.Undelivered, chat.Undelivered{MessageSid: m.MessageSid, Code: 63016, Index: m.Index, Indexed: true})
				} else if len(c.Undelivered) > 0 {
					c.Undelivered = slices.Delete(c.Undelivered, change%len(c.Undelivered), change%len(c.Undelivered)+1)
				}
				if handled < 30 {
					c.Handled = c.Handled.With(handled * step % 200)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			want = got
			read, err := stores[(step+1)%2].Get(ctx, "parts-1")
			if err != nil {
				t.Fatal(err)
			}
			for name, pair := range map[string][2]any{
				"customer's held": {read.Customer.Held, want.Customer.Held}, "rider's held": {read.Rider.Held, want.Rider.Held},
				"settling": {read.Settling, want.Settling}, "undelivered": {read.Undelivered, want.Undelivered},
			} {
				if !reflect.DeepEqual(orNil(pair[0]), orNil(pair[1])) {
					t.Fatalf("step %d (change %d of list %d): %s read back\n%+v\nwant\n%+v", step, change, list, name, pair[0], pair[1])
				}
			}
			for i := range 200 {
				if read.Handled.Has(i) != want.Handled.Has(i) {
					t.Fatalf("step %d: handled %d read back %v", step, i, read.Handled.Has(i))
				}
			}
		}
		listed, _, err := b.List(ctx, "", 10, 0)
		if err != nil || len(listed) != 1 || !reflect.DeepEqual(orNil(listed[0].Rider.Held), orNil(want.Rider.Held)) ||
			!reflect.DeepEqual(orNil(listed[0].Customer.Held), orNil(want.Customer.Held)) {
			t.Errorf("listed: %d %v", len(listed), err)
		}
	})

	t.Run("a finished chat reads back as it was", func(t *testing.T) {
		a, b := open(t)
		ctx := t.Context()
		want := FinishedChat(3)
		open := want
		open.State, open.Reason, open.History = chat.StateStarting, "", want.History[:1]
		created, _, err := a.Create(ctx, open)
		if err != nil {
			t.Fatal(err)
		}
		want.Seq = created.Seq
		if _, err := b.Update(ctx, want.ID, func(c *chat.Chat) error { *c = want; return nil }); err != nil {
			t.Fatal(err)
		}
		for _, get := range []func() (chat.Chat, error){
			func() (chat.Chat, error) { return a.Get(ctx, want.ID) },
			func() (chat.Chat, error) { return b.ByConversation(ctx, want.ConversationSid) },
			func() (chat.Chat, error) {
				list, _, err := a.List(ctx, chat.StateClosed, 10, 0)
				if err != nil || len(list) != 1 {
					return chat.Chat{}, fmt.Errorf("listed %d: %v", len(list), err)
				}
				return list[0], nil
			},
		} {
			got, err := get()
			if err != nil {
				t.Fatal(err)
			}
			g, _ := json.Marshal(got.View())
			w, _ := json.Marshal(want.View())
			if string(g) != string(w) || got.Fingerprint != want.Fingerprint || got.Seq != want.Seq {
				t.Errorf("read back\n%s\nwant\n%s", g, w)
			}
		}
		// Still a chat like any other: updated again, deleted.
		if _, err := a.Update(ctx, want.ID, func(c *chat.Chat) error { c.Reason = chat.ReasonExpired; return nil }); err != nil {
			t.Fatal(err)
		}
		if got, _ := b.Get(ctx, want.ID); got.Reason != chat.ReasonExpired {
			t.Errorf("update of a finished chat: %s", got.Reason)
		}
		if open, _ := b.Open(ctx, 0, 1); len(open) != 0 {
			t.Errorf("open %v", open)
		}
		if err := b.Delete(ctx, want.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := a.ByConversation(ctx, want.ConversationSid); !errors.Is(err, chat.ErrNotFound) {
			t.Errorf("by conversation after delete: %v", err)
		}
	})
}

// FinishedChat is chat i as the service leaves it once it ended: started with an invitation and every
// start step recorded, invited, connecting, connected, closed, its events delivered. Stores keep this
// for the retention; their benchmarks measure what it costs.
func FinishedChat(i int) chat.Chat {
	at := time.UnixMilli(1795408994627 + int64(i)).UTC()
	c := chat.Chat{
		ID: fmt.Sprintf("order-%06d", i), ConversationSid: fmt.Sprintf("CH%032x", i), Mode: chat.ModeOptIn,
		State: chat.StateClosed, Reason: chat.ReasonEnded, Fingerprint: fmt.Sprintf("%064x", i),
		Customer: chat.Party{Address: fmt.Sprintf("whatsapp:+1555%07d", i), ProxyAddress: "whatsapp:+15550100000", Name: "Ana"},
		Rider:    chat.Party{Address: fmt.Sprintf("whatsapp:+1556%07d", i), ProxyAddress: "whatsapp:+15550100000", Name: "Bruno"},
		Invite:   chat.Invite{ContentSid: "HX00000000000000000000000000000001", ContentVariables: map[string]string{"1": "Ana", "2": "Bruno"}},
		TTL:      4 * time.Hour, Metadata: []byte(fmt.Sprintf(`{"order":%d}`, i)),
		CreatedAt: at, UpdatedAt: at.Add(20 * time.Minute), ExpiresAt: at.Add(4 * time.Hour),
		Steps: map[string]string{"numbers": "whatsapp:+15550100000,whatsapp:+15550100000", "conversation": fmt.Sprintf("CH%032x", i),
			"message_webhook": fmt.Sprintf("WH%032x", i), "lifecycle_webhook": fmt.Sprintf("WH%032x", i+1),
			"customer": "added", "rider": "added", "invite": fmt.Sprintf("IM%032x", i)},
	}
	for j, st := range []chat.State{chat.StateStarting, chat.StateInvited, chat.StateConnecting, chat.StateConnected, chat.StateClosed} {
		c.History = append(c.History, chat.Transition{State: st, At: at.Add(time.Duration(j) * time.Minute)})
	}
	return c
}
