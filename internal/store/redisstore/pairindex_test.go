package redisstore

import (
	"testing"
	"time"

	"github.com/optinkit/optin/internal/numberpool"
	"github.com/optinkit/optin/internal/redistest"
	"github.com/optinkit/optin/internal/store/storetest"
)

func TestPairIndexContract(t *testing.T) {
	storetest.RunPairIndex(t, func(t *testing.T, retention time.Duration) (numberpool.IndexedStore, numberpool.IndexedStore) {
		srv := redistest.Start(t)
		return openFor(t, srv, retention).Pairs(), openFor(t, srv, retention).Pairs()
	})
}
