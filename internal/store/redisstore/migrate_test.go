package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/numberpool"
	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/redistest"
	"github.com/optinkit/optin/internal/store/storetest"
)

func TestMigration(t *testing.T) {
	srv := redistest.Start(t)
	migration(t, func(t testing.TB, retention time.Duration) *Store { return openFor(t, srv, retention) })
}

// migration writes chats and pairs under the names an earlier version used — raw, as it wrote them —
// and checks that a read finds a chat before Migrate, and that after Migrate every store finds all of
// it and no old name is left.
func migration(t *testing.T, openOn func(t testing.TB, retention time.Duration) *Store) {
	s := openOn(t, time.Hour)
	ctx := t.Context()
	rdb := s.rdb
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Chats 0 (closed, compact, expiring), 1 (connected, an event pending), 2 (invited), 3 (moved
	// already, and changed since: a migration cut off between its copy and its deletion).
	var stored []chat.Chat
	for i, state := range []chat.State{chat.StateClosed, chat.StateConnected, chat.StateInvited, chat.StateConnected} {
		c := storetest.FinishedChat(i)
		c.State, c.Seq = state, int64(i+1)
		raw, err := json.Marshal(c)
		must(err)
		var ttl time.Duration
		switch state {
		case chat.StateClosed:
			raw, err = chat.MarshalFinished(c)
			must(err)
			ttl = 30 * time.Minute
		case chat.StateConnected:
			if i == 1 {
				c.Pending = []chat.Event{{ID: "msg_1", Type: "chat.connected", At: c.UpdatedAt}}
				raw, _ = json.Marshal(c)
			}
		}
		must(rdb.Set(ctx, oldChatPrefix+c.ID, raw, ttl).Err())
		must(rdb.ZAdd(ctx, oldChatIndex, redis.Z{Score: float64(c.Seq), Member: c.ID}).Err())
		must(rdb.Set(ctx, convPrefix+c.ConversationSid, c.ID, 0).Err())
		stored = append(stored, c)
	}
	must(rdb.SAdd(ctx, oldOpenSet, "order-000001").Err()) // an earlier version's sets, not complete
	must(rdb.Set(ctx, oldSetsMarker, "1", 0).Err())
	// Chat 3: copied, changed since, and its old key still there.
	if moved, err := moveChat(ctx, rdb, stored[3].ID, time.Now()); err != nil || !moved {
		t.Fatalf("moving chat 3: %v %v", moved, err)
	}
	newer, err := s.Chats().Update(ctx, stored[3].ID, func(c *chat.Chat) error { c.Reason = chat.ReasonExpired; return nil })
	must(err)
	raw, _ := json.Marshal(stored[3])
	must(rdb.Set(ctx, oldChatPrefix+stored[3].ID, raw, 0).Err())

	// Pairs: chat-a holds (customer, n1) and (rider, n1); (other, n1) is blocked.
	const n1, customer, rider, other = "whatsapp:+15550100000", "whatsapp:+15550001111", "whatsapp:+15550002222", "whatsapp:+15550003333"
	lease := time.Hour
	expiry := float64(time.Now().Add(lease).UnixMilli())
	for _, a := range []string{customer, rider} {
		must(rdb.Set(ctx, "optin:pair:"+a+"|"+n1, "chat-a", lease).Err())
		must(rdb.SAdd(ctx, "optin:chatpairs:chat-a", a+"|"+n1).Err())
		must(rdb.ZAdd(ctx, "optin:numberpairs:"+n1, redis.Z{Score: expiry, Member: a}).Err())
		must(rdb.Set(ctx, "optin:lastnumber:"+a, n1, lease).Err())
		must(rdb.Set(ctx, "optin:pairchat:"+numberpool.Bare(n1)+"|"+numberpool.Bare(a), "chat-a", lease).Err())
	}
	must(rdb.PExpire(ctx, "optin:chatpairs:chat-a", lease).Err())
	must(rdb.SAdd(ctx, oldNumbers, n1).Err())
	must(rdb.Set(ctx, "optin:pairblock:"+other+"|"+n1, "1", lease).Err())

	// Before the migration a chat is found all the same: the read moves it.
	chats := s.Chats()
	if got, err := chats.Get(ctx, "order-000002"); err != nil || got.State != chat.StateInvited {
		t.Fatalf("chat 2 before the migration: %+v %v", got.State, err)
	}
	if got, err := chats.Update(ctx, "order-000001", func(c *chat.Chat) error { c.Work++; return nil }); err != nil || got.Work != stored[1].Work+1 {
		t.Fatalf("updating chat 1 before the migration: %v", err)
	}

	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// Another replica, started later, finds the migration done; Migrate again changes nothing.
	later := openOn(t, time.Hour)
	if err := later.Migrate(ctx); err != nil || !later.migrated.Load() {
		t.Fatalf("a later replica's migration: %v", err)
	}
	for _, st := range []*Store{s, later} {
		c := st.Chats()
		for i, want := range stored {
			if i == 3 {
				want = newer // the copy this version wrote wins over the old name's
			}
			got, err := c.Get(ctx, want.ID)
			if err != nil || got.State != want.State || got.Reason != want.Reason || got.Seq != want.Seq {
				t.Errorf("chat %d after the migration: %s %s %d %v", i, got.State, got.Reason, got.Seq, err)
			}
			if byConv, err := c.ByConversation(ctx, want.ConversationSid); err != nil || byConv.ID != want.ID {
				t.Errorf("chat %d by its conversation: %v", i, err)
			}
		}
		openIDs, err := c.Open(ctx, 0, 1)
		if slices.Sort(openIDs); err != nil || !slices.Equal(openIDs, []string{"order-000001", "order-000002", "order-000003"}) {
			t.Errorf("open %v %v", openIDs, err)
		}
		if pending, err := c.WithPending(ctx); err != nil || !slices.Equal(pending, []string{"order-000001"}) {
			t.Errorf("pending %v %v", pending, err)
		}
		if list, next, err := c.List(ctx, "", 10, 0); err != nil || next != 0 || !slices.Equal(ids(list), []string{"order-000003", "order-000002", "order-000001", "order-000000"}) {
			t.Errorf("list %v %d %v", ids(list), next, err)
		}
	}
	if ttl := rdb.PTTL(ctx, chatKey("order-000000")).Val(); ttl <= 0 || ttl > 30*time.Minute {
		t.Errorf("the closed chat expires in %v, want within its 30 minutes", ttl)
	}

	p := later.Pairs()
	if last, err := p.Last(ctx, customer); err != nil || last != n1 {
		t.Errorf("last number %q %v", last, err)
	}
	if id, err := p.ChatOf(ctx, n1, rider); err != nil || id != "chat-a" {
		t.Errorf("chat of the rider's pair %q %v", id, err)
	}
	if counts, err := p.InUse(ctx); err != nil || !maps.Equal(counts, map[string]int{n1: 2}) {
		t.Errorf("in use %v %v", counts, err)
	}
	for _, a := range []string{customer, other} {
		if ok, err := p.Take(ctx, "chat-b", []numberpool.Pair{{Address: a, Number: n1}}); err != nil || ok {
			t.Errorf("took %s's pair, leased or blocked before the migration: %v %v", a, ok, err)
		}
	}
	if err := p.Release(ctx, "chat-a"); err != nil {
		t.Fatal(err)
	}
	if ok, err := p.Take(ctx, "chat-b", []numberpool.Pair{{Address: customer, Number: n1}}); err != nil || !ok {
		t.Errorf("the pair released after the migration: %v %v", ok, err)
	}
	if counts, err := p.InUse(ctx); err != nil || !maps.Equal(counts, map[string]int{n1: 1}) {
		t.Errorf("in use after the release %v %v", counts, err)
	}

	// Nothing is left under an old name.
	must(later.scan(ctx, "optin:*", func(key string) error {
		old := strings.HasPrefix(key, oldChatPrefix) || strings.HasPrefix(key, "optin:chats") || key == oldNumbers
		for _, prefix := range oldPoolPrefixes {
			old = old || strings.HasPrefix(key, prefix)
		}
		if old {
			return fmt.Errorf("%s is left", key)
		}
		return nil
	}))
}

// migrationLooks counts, as a client hook, how many times a waiting Migrate has looked whether the
// migration is recorded (EXISTS of migratedKey).
type migrationLooks struct{ n atomic.Int32 }

func (c *migrationLooks) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *migrationLooks) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if args := cmd.Args(); cmd.Name() == "exists" && len(args) == 2 && args[1] == migratedKey {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (c *migrationLooks) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A replica that finds another migrating waits until it has finished.
func TestMigrateWaitsForAnother(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv)
	ctx := t.Context()
	if err := s.rdb.Set(ctx, migrateLease, "another replica", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	looks := &migrationLooks{}
	s.rdb.AddHook(looks)
	done := make(chan error, 1)
	go func() { done <- s.Migrate(ctx) }()
	poll.Until(t, "Migrate to look for the other's migration three times", func() bool {
		select {
		case err := <-done:
			t.Fatalf("returned while another replica migrates: %v", err)
		default:
		}
		return looks.n.Load() >= 3
	})
	if err := s.rdb.Set(ctx, migratedKey, "done", 0).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil || !s.migrated.Load() {
			t.Errorf("after the other's migration: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting after the migration was recorded")
	}
}
