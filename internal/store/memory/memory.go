// Package memory is the in-process optin.Store: exactly once within one replica, nothing kept across
// restarts; finished flows are forgotten after the retention, as in Redis.
package memory

import (
	"context"
	"fmt"
	"maps"
	"strings"
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
	// The caller's strings may be slices of a whole webhook body: keep copies, or the body stays
	// alive for as long as the flow is remembered.
	f.ConversationSid, f.Customer, f.Trigger, f.Detail = strings.Clone(f.ConversationSid), strings.Clone(f.Customer), strings.Clone(f.Trigger), strings.Clone(f.Detail)
	f.Steps, f.Runs = map[string]string{}, 0
	s.flows[f.ConversationSid] = f
	return clone(f), true, nil
}

// Flow returns the conversation's flow.
func (s *Store) Flow(_ context.Context, conversationSid string) (optin.Flow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.flows[conversationSid]
	if !ok {
		return optin.Flow{}, fmt.Errorf("flow %s: %w", conversationSid, optin.ErrNoFlow)
	}
	return clone(f), nil
}

// Begin counts a run and returns the flow.
func (s *Store) Begin(_ context.Context, conversationSid string) (optin.Flow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.flows[conversationSid]
	if !ok {
		return optin.Flow{}, fmt.Errorf("begin %s: %w", conversationSid, optin.ErrNoFlow)
	}
	f.Runs++
	s.put(f)
	return clone(f), nil
}

// StepDone records a completed step.
func (s *Store) StepDone(_ context.Context, conversationSid, step, ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.flows[conversationSid]
	if !ok {
		return fmt.Errorf("step %s of %s: %w", step, conversationSid, optin.ErrNoFlow)
	}
	f.Steps[strings.Clone(step)] = strings.Clone(ref)
	return nil
}

// Finish records the final state of a claimed flow.
func (s *Store) Finish(_ context.Context, conversationSid string, state optin.State, detail string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.flows[conversationSid]
	if !ok {
		return fmt.Errorf("finishing %s: %w", conversationSid, optin.ErrNoFlow)
	}
	f.State, f.Detail, f.FinishedAt = state, strings.Clone(detail), s.now()
	s.put(f)
	return nil
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

// put stores f under its own key. A map assignment to a string key that is present replaces the key
// too: keyed by the caller's string, the map would keep the caller's memory (a webhook body) alive.
func (s *Store) put(f optin.Flow) { s.flows[f.ConversationSid] = f }
