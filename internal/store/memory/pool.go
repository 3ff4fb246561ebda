package memory

import (
	"context"
	"sync"
	"time"

	"github.com/optinkit/optin/internal/numberpool"
)

// Pairs is the in-process numberpool.Store.
type Pairs struct {
	mu      sync.Mutex
	leased  map[numberpool.Pair]string // → chat id
	byChat  map[string][]numberpool.Pair
	blocked map[numberpool.Pair]time.Time
	last    map[string]string
	now     func() time.Time
}

var _ numberpool.Store = (*Pairs)(nil)

// NewPairs returns a store with nothing leased.
func NewPairs() *Pairs {
	return &Pairs{leased: map[numberpool.Pair]string{}, byChat: map[string][]numberpool.Pair{},
		blocked: map[numberpool.Pair]time.Time{}, last: map[string]string{}, now: time.Now}
}

// Take leases every pair to chatID unless one is leased or blocked.
func (s *Pairs) Take(_ context.Context, chatID string, pairs []numberpool.Pair) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, p := range pairs {
		if _, ok := s.leased[p]; ok {
			return false, nil
		}
		if until, ok := s.blocked[p]; ok && now.Before(until) {
			return false, nil
		}
	}
	for _, p := range pairs {
		s.leased[p] = chatID
		s.byChat[chatID] = append(s.byChat[chatID], p)
		s.last[p.Address] = p.Number
	}
	return true, nil
}

// Release frees the chat's pairs.
func (s *Pairs) Release(_ context.Context, chatID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.byChat[chatID] {
		if s.leased[p] == chatID {
			delete(s.leased, p)
		}
	}
	delete(s.byChat, chatID)
	return nil
}

// Block keeps a pair out for ttl.
func (s *Pairs) Block(_ context.Context, p numberpool.Pair, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocked[p] = s.now().Add(ttl)
	delete(s.leased, p)
	return nil
}

// Last returns the address's last number.
func (s *Pairs) Last(_ context.Context, address string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[address], nil
}

// InUse counts leased pairs per number.
func (s *Pairs) InUse(context.Context) (map[string]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for p := range s.leased {
		out[p.Number]++
	}
	return out, nil
}
