// Package memory is the in-process optin.Store: exactly once within one replica, nothing kept across
// restarts; finished flows are forgotten after the retention, as in Redis.
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
	mu        sync.Mutex
	flows     map[string]optin.Flow
	now       func() time.Time
	retention time.Duration
	swept     time.Time
}

var _ optin.Store = (*Store)(nil)

// New returns an empty Store that forgets finished flows after retention (0: never).
func New(retention time.Duration) *Store {
	return &Store{flows: make(map[string]optin.Flow), now: time.Now, retention: retention}
}

// Claim records f unless its conversation already has a flow.
func (s *Store) Claim(_ context.Context, f optin.Flow) (optin.Flow, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep()
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

// sweep drops flows finished longer than the retention ago, at most once a tenth of the retention,
// so that the map does not grow with every conversation ever seen. Callers hold s.mu.
func (s *Store) sweep() {
	now := s.now()
	if s.retention <= 0 || now.Sub(s.swept) < s.retention/10 {
		return
	}
	s.swept = now
	for conv, f := range s.flows {
		if f.State != optin.StateRunning && !f.FinishedAt.IsZero() && now.Sub(f.FinishedAt) > s.retention {
			delete(s.flows, conv)
		}
	}
}

func clone(f optin.Flow) optin.Flow {
	f.Steps = maps.Clone(f.Steps)
	return f
}
