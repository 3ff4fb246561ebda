package memory

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/optinkit/optin/internal/chat"
)

// Chats is the in-process chat.Store.
type Chats struct {
	mu     sync.Mutex
	byID   map[string]chat.Chat
	byConv map[string]string
	locks  map[string]lease
	seq    int64
	now    func() time.Time
	// retention is how long a chat in a final state is kept; swept is when that was last enforced.
	retention time.Duration
	swept     time.Time
}

type lease struct {
	owner string
	until time.Time
}

var _ chat.Store = (*Chats)(nil)

// NewChats returns an empty chat store that forgets chats retention after they ended (0: never).
func NewChats(retention time.Duration) *Chats {
	return &Chats{byID: map[string]chat.Chat{}, byConv: map[string]string{}, locks: map[string]lease{}, now: time.Now, retention: retention}
}

// sweep drops chats that ended longer than the retention ago, at most once a tenth of the retention.
// Callers hold s.mu.
func (s *Chats) sweep() {
	now := s.now()
	if s.retention <= 0 || now.Sub(s.swept) < s.retention/10 {
		return
	}
	s.swept = now
	for id, l := range s.locks {
		if !now.Before(l.until) {
			delete(s.locks, id)
		}
	}
	for id, c := range s.byID {
		if c.State.Final() && now.Sub(c.UpdatedAt) > s.retention {
			delete(s.byConv, c.ConversationSid)
			delete(s.byID, id)
			delete(s.locks, id)
		}
	}
}

// Create records c unless its id is taken.
func (s *Chats) Create(_ context.Context, c chat.Chat) (chat.Chat, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep()
	if existing, ok := s.byID[c.ID]; ok {
		return cloneChat(existing), false, nil
	}
	s.seq++
	c = cloneChat(c)
	c.Seq = s.seq
	s.byID[c.ID] = c
	if c.ConversationSid != "" {
		s.byConv[c.ConversationSid] = c.ID
	}
	return cloneChat(c), true, nil
}

// Get returns the chat with this id.
func (s *Chats) Get(_ context.Context, id string) (chat.Chat, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.byID[id]
	if !ok {
		return chat.Chat{}, fmt.Errorf("chat %s: %w", id, chat.ErrNotFound)
	}
	return cloneChat(c), nil
}

// ByConversation returns the chat of a conversation.
func (s *Chats) ByConversation(ctx context.Context, conversationSid string) (chat.Chat, error) {
	s.mu.Lock()
	id, ok := s.byConv[conversationSid]
	s.mu.Unlock()
	if !ok {
		return chat.Chat{}, fmt.Errorf("chat of %s: %w", conversationSid, chat.ErrNotFound)
	}
	return s.Get(ctx, id)
}

// Update applies change to the stored chat.
func (s *Chats) Update(_ context.Context, id string, change func(*chat.Chat) error) (chat.Chat, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.byID[id]
	if !ok {
		return chat.Chat{}, fmt.Errorf("chat %s: %w", id, chat.ErrNotFound)
	}
	c = cloneChat(c)
	if err := change(&c); err != nil {
		return chat.Chat{}, err
	}
	c.ID = id
	s.byID[id] = c
	if c.ConversationSid != "" {
		s.byConv[c.ConversationSid] = id
	}
	return cloneChat(c), nil
}

// Delete forgets a chat.
func (s *Chats) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.byID[id]; ok {
		delete(s.byConv, c.ConversationSid)
		delete(s.byID, id)
	}
	return nil
}

// List returns chats newest first.
func (s *Chats) List(_ context.Context, state chat.State, limit int, before int64) ([]chat.Chat, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := slices.SortedFunc(maps.Values(s.byID), func(a, b chat.Chat) int { return int(b.Seq - a.Seq) })
	var out []chat.Chat
	for _, c := range all {
		if (before > 0 && c.Seq >= before) || (state != "" && c.State != state) {
			continue
		}
		if len(out) == limit {
			return out, out[len(out)-1].Seq, nil
		}
		out = append(out, cloneChat(c))
	}
	return out, 0, nil
}

// Open returns the ids of the chats not in a final state.
func (s *Chats) Open(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, c := range s.byID {
		if !c.State.Final() {
			out = append(out, id)
		}
	}
	return out, nil
}

// WithPending returns the ids of the chats holding undelivered events.
func (s *Chats) WithPending(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, c := range s.byID {
		if len(c.Pending) > 0 {
			out = append(out, id)
		}
	}
	return out, nil
}

// Lock takes the chat's lease unless another owner holds one that has not lapsed.
func (s *Chats) Lock(_ context.Context, id, owner string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if l, ok := s.locks[id]; ok && l.owner != owner && now.Before(l.until) {
		return false, nil
	}
	s.locks[id] = lease{owner: owner, until: now.Add(ttl)}
	return true, nil
}

// Unlock gives the lease back if owner holds it.
func (s *Chats) Unlock(_ context.Context, id, owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.locks[id]; ok && l.owner == owner {
		delete(s.locks, id)
	}
	return nil
}

func cloneChat(c chat.Chat) chat.Chat {
	c.Steps = maps.Clone(c.Steps)
	if c.Steps == nil {
		c.Steps = map[string]string{}
	}
	c.History = slices.Clone(c.History)
	c.Metadata = slices.Clone(c.Metadata)
	c.Invite.ContentVariables = maps.Clone(c.Invite.ContentVariables)
	c.Pending = slices.Clone(c.Pending)
	if c.Error != nil {
		e := *c.Error
		c.Error = &e
	}
	return c
}
