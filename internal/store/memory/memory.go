// Package memory is the in-process optin.Store: exactly once within one replica, nothing kept across restarts.
package memory

import (
	"context"
	"fmt"
	"maps"
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
		return clone(existing), false, nil
	}
	f.Steps, f.Runs = map[string]string{}, 0
	s.flows[f.ConversationSid] = f
	return clone(f), true, nil
}

// Begin counts a run and returns the flow.
func (s *Store) Begin(_ context.Context, conversationSid string) (optin.Flow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.flows[conversationSid]
	if !ok {
		return optin.Flow{}, fmt.Errorf("begin %s: no flow claimed", conversationSid)
	}
	f.Runs++
	s.flows[conversationSid] = f
	return clone(f), nil
}

// StepDone records a completed step.
func (s *Store) StepDone(_ context.Context, conversationSid, step, ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.flows[conversationSid]
	if !ok {
		return fmt.Errorf("step %s of %s: no flow claimed", step, conversationSid)
	}
	f.Steps[step] = ref
	return nil
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
	return clone(f), ok
}

func clone(f optin.Flow) optin.Flow {
	f.Steps = maps.Clone(f.Steps)
	return f
}
