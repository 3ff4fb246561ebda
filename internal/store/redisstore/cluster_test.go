package redisstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/numberpool"
	"github.com/optinkit/optin/internal/optin"
	"github.com/optinkit/optin/internal/redistest"
	"github.com/optinkit/optin/internal/store/storetest"
)

// contracts runs every store's contract, each subtest on stores that fresh has emptied and openOn
// opened (two of them: two replicas).
func contracts(t *testing.T, openOn func(t testing.TB, retention time.Duration) *Store, fresh func(t testing.TB)) {
	two := func(t *testing.T, retention time.Duration) (*Store, *Store) {
		fresh(t)
		return openOn(t, retention), openOn(t, retention)
	}
	t.Run("flows", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) (optin.Store, optin.Store) { return two(t, time.Hour) })
	})
	t.Run("chats", func(t *testing.T) {
		storetest.RunChats(t, func(t *testing.T) (chat.Store, chat.Store) {
			a, b := two(t, time.Hour)
			return a.Chats(), b.Chats()
		})
	})
	t.Run("pairs", func(t *testing.T) {
		storetest.RunPairs(t, func(t *testing.T, retention time.Duration) (numberpool.Store, numberpool.Store) {
			a, b := two(t, retention)
			return a.Pairs(), b.Pairs()
		})
	})
	t.Run("pair index", func(t *testing.T) {
		storetest.RunPairIndex(t, func(t *testing.T, retention time.Duration) (numberpool.IndexedStore, numberpool.IndexedStore) {
			a, b := two(t, retention)
			return a.Pairs(), b.Pairs()
		})
	})
	t.Run("revocations", func(t *testing.T) {
		storetest.RunRevocations(t, func(t *testing.T) (storetest.Revocations, storetest.Revocations) {
			a, b := two(t, time.Hour)
			return a.Revocations(), b.Revocations()
		})
	})
	t.Run("windows", func(t *testing.T) {
		storetest.RunWindows(t, func(t *testing.T) (chat.Windows, chat.Windows) {
			a, b := two(t, time.Hour)
			return a.Windows(), b.Windows()
		})
	})
	t.Run("limiter", func(t *testing.T) {
		a, b := two(t, time.Hour)
		limiterShared(t, a.Limiter("test", 10, 2), b.Limiter("test", 10, 2))
	})
	t.Run("migration", func(t *testing.T) {
		fresh(t)
		migration(t, openOn)
	})
}

// limiterShared checks that two replicas share one bucket: together they get no more than its rate.
func limiterShared(t *testing.T, a, b *Limiter) {
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	var passed atomic.Int32
	var wg sync.WaitGroup
	for _, l := range []*Limiter{a, b, a, b} {
		wg.Go(func() {
			for l.Wait(ctx) == nil {
				passed.Add(1)
			}
		})
	}
	wg.Wait()
	// In half a second a bucket of 10/s with a burst of 2 lets through at most 2 + 5 (+1 at the edge).
	if n := passed.Load(); n < 2 || n > 8 {
		t.Errorf("%d calls passed in 0.5 s", n)
	}
}

// Every store keeps its contract on a Redis Cluster of three masters: a script or transaction given
// keys of two slots would fail there (CROSSSLOT, or a key another node serves).
func TestClusterContract(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 0)
	contracts(t, func(t testing.TB, retention time.Duration) *Store {
		s, err := Open(cl.URL(), retention)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}, cl.Flush)
}

// With OPTIN_REDIS_WAIT_REPLICAS on a cluster, a write that guards a side effect returns once the
// replicas of every master acknowledge what came before it, and fails when they do not.
func TestClusterWritesWaitForReplicas(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 1)
	s, err := Open(cl.URL(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	chats, pairs := s.Chats(), s.Pairs()
	s.WaitForReplicas(1, 5*time.Second)
	if _, created, err := chats.Create(ctx, chat.Chat{ID: "order-1", State: chat.StateStarting}); err != nil || !created {
		t.Fatalf("create with each master's replica acknowledging: %v %v", created, err)
	}
	// Acknowledged: the replica of the chat's master holds it (READONLY: a replica answers for its
	// master's slots, and MOVED for the rest).
	holding := 0
	for _, n := range cl.Nodes {
		rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", n.Port)})
		conn := rdb.Conn()
		if role, _ := conn.Do(ctx, "ROLE").Slice(); len(role) > 0 && role[0] == "slave" {
			if err := conn.ReadOnly(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			if n, err := conn.Exists(ctx, chatKey("order-1")).Result(); err == nil && n == 1 {
				holding++
			}
		}
		conn.Close()
		rdb.Close()
	}
	if holding != 1 {
		t.Errorf("%d replicas hold the chat once its create returned, want 1", holding)
	}
	if _, err := chats.Update(ctx, "order-1", func(c *chat.Chat) error { c.Work++; return nil }); err != nil {
		t.Fatalf("update: %v", err)
	}
	s.WaitForReplicas(2, 50*time.Millisecond) // one replica each: the second never acknowledges
	for name, write := range map[string]func() error{
		"create": func() error {
			_, _, err := chats.Create(ctx, chat.Chat{ID: "order-2", State: chat.StateStarting})
			return err
		},
		"update": func() error {
			_, err := chats.Update(ctx, "order-1", func(c *chat.Chat) error { c.Work++; return nil })
			return err
		},
		"lease": func() error { _, err := chats.Lock(ctx, "order-1", "owner", time.Minute); return err },
		"number": func() error {
			_, err := pairs.Take(ctx, "order-1", []numberpool.Pair{{Address: "whatsapp:+15550001111", Number: "whatsapp:+15550100000"}})
			return err
		},
	} {
		if err := write(); err == nil || !strings.Contains(err.Error(), "1 of 2 replicas") {
			t.Errorf("%s not acknowledged by the replicas: %v, want an error", name, err)
		}
	}
}
