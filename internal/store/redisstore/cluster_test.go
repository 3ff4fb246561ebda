package redisstore

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	cl := redistest.StartCluster(t, 3)
	contracts(t, func(t testing.TB, retention time.Duration) *Store {
		s, err := Open(cl.URL(), retention)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}, cl.Flush)
}
