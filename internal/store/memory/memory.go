// Package memory is the in-process optin.Store: exactly once within one replica, nothing kept across
// restarts; finished flows are forgotten after the retention, as in Redis.
package memory

import (
	"context"
	"encoding/hex"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/optinkit/optin/internal/optin"
)

// Store keeps running flows whole and finished ones compact, in maps guarded by a mutex.
type Store struct {
	mu    sync.Mutex
	flows map[string]optin.Flow
	done  packed[[16]byte, doneFlow]
	// doneText is what a finished flow keeps as strings, by the same key, when it has any.
	doneText  packed[[16]byte, doneStrings]
	now       func() time.Time
	retention time.Duration
	swept     time.Time
}

// doneFlow is a finished flow as kept for the retention, keyed by its conversation's SID: what answers
// a later delivery (its customer, its trigger, how it ended). It is one map slot of 56 bytes for each
// conversation: the trigger as its 16 bytes and the customer packed in a word when they have those
// forms (flags say which), else in doneText with a failure's detail.
type doneFlow struct {
	trigger  [16]byte
	customer uint64 // addressKey
	finished int64  // Unix milliseconds
	runs     int32
	flags    uint8
}

// doneFlow's flags.
const (
	doneFailed         = 1 << iota
	donePackedTrigger  // trigger holds it, else doneText
	donePackedCustomer // customer holds it, else doneText
	doneHasText        // doneText has an entry
)

// doneStrings are a finished flow's strings: its trigger and customer when they are not packed, its
// failure's detail.
type doneStrings struct {
	trigger, customer, detail string
}

var _ optin.Store = (*Store)(nil)

// Sync has nothing to do: this process is all there is.
func (s *Store) Sync(context.Context) error { return nil }

// New returns an empty Store that forgets finished flows after retention (0: never).
func New(retention time.Duration) *Store {
	return &Store{flows: map[string]optin.Flow{}, done: newPacked[[16]byte, doneFlow](), doneText: newPacked[[16]byte, doneStrings](), now: time.Now, retention: retention}
}

// get returns the conversation's flow, running or finished. Callers hold s.mu.
func (s *Store) get(conv string) (optin.Flow, bool) {
	if f, ok := s.flows[conv]; ok {
		return clone(f), true
	}
	d, ok := s.finished(conv)
	if !ok {
		return optin.Flow{}, false
	}
	var text doneStrings
	if d.flags&doneHasText != 0 {
		k, canonical := sidKey("CH", conv)
		text, _ = s.doneText.get(k, canonical, conv)
	}
	f := optin.Flow{ConversationSid: conv, Customer: text.customer, Trigger: text.trigger, State: optin.StateDone, Detail: text.detail,
		FinishedAt: time.UnixMilli(d.finished), Runs: int(d.runs)}
	if d.flags&donePackedTrigger != 0 {
		f.Trigger = "IM" + hex.EncodeToString(d.trigger[:])
	}
	if d.flags&donePackedCustomer != 0 {
		f.Customer = addressOf(d.customer)
	}
	if d.flags&doneFailed != 0 {
		f.State = optin.StateFailed
	}
	return f, true
}

// finished returns the conversation's finished flow. Callers hold s.mu.
func (s *Store) finished(conv string) (doneFlow, bool) {
	k, ok := sidKey("CH", conv)
	return s.done.get(k, ok, conv)
}

// Claim records f unless its conversation already has a flow.
func (s *Store) Claim(_ context.Context, f optin.Flow) (optin.Flow, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep()
	if existing, ok := s.get(f.ConversationSid); ok {
		return existing, false, nil
	}
	// The caller's strings may be slices of a whole webhook body: keep copies, or the body stays
	// alive for as long as the flow is remembered.
	f.ConversationSid, f.Customer, f.Trigger, f.Detail = strings.Clone(f.ConversationSid), strings.Clone(f.Customer), strings.Clone(f.Trigger), strings.Clone(f.Detail)
	f.Steps, f.Runs = map[string]string{}, 0
	s.put(f)
	return clone(f), true, nil
}

// Flow returns the conversation's flow.
func (s *Store) Flow(_ context.Context, conversationSid string) (optin.Flow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.get(conversationSid)
	if !ok {
		return optin.Flow{}, fmt.Errorf("flow %s: %w", conversationSid, optin.ErrNoFlow)
	}
	return f, nil
}

// Begin counts a run and returns the flow.
func (s *Store) Begin(_ context.Context, conversationSid string) (optin.Flow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.finished(conversationSid); ok {
		d.runs++
		k, canonical := sidKey("CH", conversationSid)
		s.done.set(k, canonical, conversationSid, d)
		f, _ := s.get(conversationSid)
		return f, nil
	}
	f, ok := s.flows[conversationSid]
	if !ok {
		return optin.Flow{}, fmt.Errorf("begin %s: %w", conversationSid, optin.ErrNoFlow)
	}
	f.Runs++
	s.put(f)
	return clone(f), nil
}

// StepsDone records completed steps of a running flow; those of a finished flow are of no more use.
func (s *Store) StepsDone(_ context.Context, conversationSid string, steps map[string]string) error {
	if len(steps) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.finished(conversationSid); ok {
		return nil
	}
	f, ok := s.flows[conversationSid]
	if !ok {
		return fmt.Errorf("steps of %s: %w", conversationSid, optin.ErrNoFlow)
	}
	for step, ref := range steps {
		f.Steps[strings.Clone(step)] = strings.Clone(ref)
	}
	return nil
}

// Finish records the final state of a claimed flow and keeps it compact from then on; the state of a
// flow finished already stays.
func (s *Store) Finish(_ context.Context, conversationSid string, state optin.State, detail string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.get(conversationSid)
	if !ok {
		return fmt.Errorf("finishing %s: %w", conversationSid, optin.ErrNoFlow)
	}
	running, isRunning := s.flows[conversationSid]
	if !isRunning {
		return nil // finished already: the first outcome stands
	}
	delete(s.flows, conversationSid)
	d := doneFlow{finished: s.now().UnixMilli(), runs: int32(f.Runs)}
	text := doneStrings{detail: strings.Clone(detail)}
	if state == optin.StateFailed {
		d.flags |= doneFailed
	}
	var packed bool
	if d.trigger, packed = sidKey("IM", f.Trigger); packed {
		d.flags |= donePackedTrigger
	} else {
		text.trigger = f.Trigger
	}
	if d.customer, packed = addressKey(f.Customer); packed {
		d.flags |= donePackedCustomer
	} else {
		text.customer = f.Customer
	}
	k, canonical := sidKey("CH", running.ConversationSid)
	if text != (doneStrings{}) {
		d.flags |= doneHasText
		s.doneText.set(k, canonical, running.ConversationSid, text)
	}
	s.done.set(k, canonical, running.ConversationSid, d)
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
	lapsed := func(d doneFlow) bool { return now.Sub(time.UnixMilli(d.finished)) > s.retention }
	for k, d := range s.done.canon {
		if lapsed(d) {
			delete(s.done.canon, k)
			delete(s.doneText.canon, k)
		}
	}
	for k, d := range s.done.other {
		if lapsed(d) {
			delete(s.done.other, k)
			delete(s.doneText.other, k)
		}
	}
}

// put stores a running f under its own key. A map assignment to a string key that is present replaces
// the key too: keyed by the caller's string, the map would keep the caller's memory (a webhook body) alive.
func (s *Store) put(f optin.Flow) { s.flows[f.ConversationSid] = f }

func clone(f optin.Flow) optin.Flow {
	f.Steps = maps.Clone(f.Steps)
	return f
}
