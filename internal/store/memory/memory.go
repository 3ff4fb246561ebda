// Package memory is the in-process optin.Store: exactly once within one replica, nothing kept across restarts.
package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/optinkit/optin/internal/optin"
)

// Store keeps flows in a map guarded by a mutex.
type Store struct {
	mu    sync.Mutex
	flows map[string]optin.Flow
	now   func() time.Time
}

var _ optin.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store {
	return &Store{flows: make(map[string]optin.Flow), now: time.Now}
}

// Claim records f unless its conversation already has a flow.
func (s *Store) Claim(_ context.Context, f optin.Flow) (optin.Flow, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if existing, ok := s.flows[f.ConversationSid]; ok {
		return existing, false, nil
	}
	s.flows[f.ConversationSid] = f
	return f, true, nil
}

// Finish records the final state of a claimed flow.
func (s *Store) Finish(_ context.Context, conversationSid string, state optin.State, detail string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.flows[conversationSid]
	if !ok {
		return fmt.Errorf("finishing %s: no flow claimed", conversationSid)
	}
	f.State, f.Detail, f.FinishedAt = state, detail, s.now()
	s.flows[conversationSid] = f
	return nil
}

// Get returns the conversation's flow, for tests and diagnostics.
func (s *Store) Get(conversationSid string) (optin.Flow, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.flows[conversationSid]
	return f, ok
}
