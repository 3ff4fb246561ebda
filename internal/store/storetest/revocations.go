package storetest

import (
	"context"
	"testing"
	"time"
)

// Revocations is what the console keeps of logouts (console.Revocations), restated here so that this
// package need not import the console.
type Revocations interface {
	Revoke(ctx context.Context, key string, until time.Time) error
	Revoked(ctx context.Context, key string) (bool, error)
}

// RunRevocations checks the contract of a revocation store. open returns two handles on one empty store.
func RunRevocations(t *testing.T, open func(t *testing.T) (Revocations, Revocations)) {
	a, b := open(t)
	ctx := t.Context()
	if err := a.Revoke(ctx, "k1", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke(ctx, "k2", time.Now().Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke(ctx, "k3", time.Now().Add(-time.Second)); err != nil {
		t.Fatalf("revoking what already expired: %v", err)
	}
	for key, want := range map[string]bool{"k1": true, "k2": true, "k3": false, "k4": false} {
		if got, err := b.Revoked(ctx, key); err != nil || got != want {
			t.Errorf("revoked %s = %v %v, want %v", key, got, err, want)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, _ := b.Revoked(ctx, "k2"); !got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a revocation outlived its session")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got, _ := a.Revoked(ctx, "k1"); !got {
		t.Error("k1 lapsed with k2")
	}
}
