package memory

import (
	"context"
	"sync"
	"time"
)

// Revocations is the in-process console.Revocations: a logout known to this replica only, as every
// session of a single replica is. Entries that lapsed are pruned.
type Revocations struct {
	mu     sync.Mutex
	until  map[string]time.Time
	now    func() time.Time
	pruned time.Time
}

// NewRevocations returns an empty store.
func NewRevocations() *Revocations {
	return &Revocations{until: map[string]time.Time{}, now: time.Now}
}

// Revoke records key until until.
func (s *Revocations) Revoke(_ context.Context, key string, until time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if now.Sub(s.pruned) > time.Minute {
		s.pruned = now
		for k, u := range s.until {
			if !now.Before(u) {
				delete(s.until, k)
			}
		}
	}
	if now.Before(until) {
		s.until[key] = until
	}
	return nil
}

// Revoked reports whether key is revoked.
func (s *Revocations) Revoked(_ context.Context, key string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.until[key]
	return ok && s.now().Before(u), nil
}
