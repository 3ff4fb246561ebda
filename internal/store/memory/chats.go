package memory

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/optinkit/optin/internal/chat"
)

// Chats is the in-process chat.Store. Open chats are kept whole; a finished one (final, its events
// delivered) only in its compact encoded form, as in Redis, for the retention.
type Chats struct {
	mu     sync.Mutex
	live   map[string]chat.Chat
	done   map[string]doneChat
	byConv packed[[16]byte, string]
	locks  map[string]lease
	seq    int64
	now    func() time.Time
	// retention is how long a chat in a final state is kept; swept is when that was last enforced.
	retention time.Duration
	swept     time.Time
}

// doneChat is a finished chat: what listing reads without decoding, and the encoded chat.
type doneChat struct {
	seq     int64
	updated int64 // Unix milliseconds
	raw     string
	state   uint8 // its index in chat.States
}

type lease struct {
	owner string
	until time.Time
}

var _ chat.Store = (*Chats)(nil)

// NewChats returns an empty chat store that forgets chats retention after they ended (0: never).
func NewChats(retention time.Duration) *Chats {
	return &Chats{live: map[string]chat.Chat{}, done: map[string]doneChat{}, byConv: newPacked[[16]byte, string](),
		locks: map[string]lease{}, now: time.Now, retention: retention}
}

// sweep drops chats that ended longer than the retention ago, and lapsed leases, at most once a tenth
// of the retention. Callers hold s.mu.
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
	forget := func(id, conv string) {
		s.unindex(conv)
		delete(s.live, id)
		delete(s.done, id)
		delete(s.locks, id)
	}
	for id, d := range s.done {
		if now.Sub(time.UnixMilli(d.updated)) > s.retention {
			c, _ := chat.UnmarshalFinished([]byte(d.raw))
			forget(id, c.ConversationSid)
		}
	}
	for id, c := range s.live {
		if c.State.Final() && now.Sub(c.UpdatedAt) > s.retention {
			forget(id, c.ConversationSid)
		}
	}
}

// get returns a copy of the chat. Callers hold s.mu.
func (s *Chats) get(id string) (chat.Chat, bool, error) {
	if c, ok := s.live[id]; ok {
		return cloneChat(c), true, nil
	}
	d, ok := s.done[id]
	if !ok {
		return chat.Chat{}, false, nil
	}
	c, err := chat.UnmarshalFinished([]byte(d.raw))
	return c, err == nil, err
}

// put keeps c, compact when it is finished. Callers hold s.mu. The maps keep one copy of the id, not
// the caller's string (it may be a slice of a request), shared by both.
func (s *Chats) put(c chat.Chat) error {
	if !c.Compactable() {
		delete(s.done, c.ID)
		s.live[c.ID] = cloneChat(c)
		s.index(c.ConversationSid, c.ID)
		return nil
	}
	raw, err := chat.MarshalFinished(c)
	if err != nil {
		return err
	}
	delete(s.live, c.ID)
	id := strings.Clone(c.ID)
	s.done[id] = doneChat{seq: c.Seq, updated: c.UpdatedAt.UnixMilli(), state: uint8(slices.Index(chat.States, c.State)), raw: string(raw)}
	s.index(c.ConversationSid, id)
	return nil
}

// index finds the chat id by its conversation. Callers hold s.mu.
func (s *Chats) index(conv, id string) {
	if conv != "" {
		k, ok := sidKey("CH", conv)
		s.byConv.set(k, ok, conv, id)
	}
}

func (s *Chats) unindex(conv string) {
	k, ok := sidKey("CH", conv)
	s.byConv.del(k, ok, conv)
}

// Create records c unless its id is taken.
func (s *Chats) Create(_ context.Context, c chat.Chat) (chat.Chat, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep()
	existing, ok, err := s.get(c.ID)
	if ok || err != nil {
		return existing, false, err
	}
	s.seq++
	c.Seq = s.seq
	if err := s.put(c); err != nil {
		return chat.Chat{}, false, err
	}
	got, _, err := s.get(c.ID)
	return got, true, err
}

// Get returns the chat with this id.
func (s *Chats) Get(_ context.Context, id string) (chat.Chat, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok, err := s.get(id)
	if err == nil && !ok {
		err = fmt.Errorf("chat %s: %w", id, chat.ErrNotFound)
	}
	return c, err
}

// ByConversation returns the chat of a conversation.
func (s *Chats) ByConversation(ctx context.Context, conversationSid string) (chat.Chat, error) {
	s.mu.Lock()
	k, canonical := sidKey("CH", conversationSid)
	id, ok := s.byConv.get(k, canonical, conversationSid)
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
	c, ok, err := s.get(id)
	switch {
	case err != nil:
		return chat.Chat{}, err
	case !ok:
		return chat.Chat{}, fmt.Errorf("chat %s: %w", id, chat.ErrNotFound)
	}
	if err := change(&c); err != nil {
		return chat.Chat{}, err
	}
	c.ID = id
	if err := s.put(c); err != nil {
		return chat.Chat{}, err
	}
	got, _, err := s.get(id)
	return got, err
}

// Delete forgets a chat.
func (s *Chats) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok, _ := s.get(id); ok {
		s.unindex(c.ConversationSid)
	}
	delete(s.live, id)
	delete(s.done, id)
	return nil
}

// listed is what List sorts and filters without decoding a finished chat.
type listed struct {
	id    string
	seq   int64
	state chat.State
}

// List returns chats newest first, decoding only the page's finished ones.
func (s *Chats) List(_ context.Context, state chat.State, limit int, before int64) ([]chat.Chat, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := make([]listed, 0, len(s.live)+len(s.done))
	for id, c := range s.live {
		all = append(all, listed{id, c.Seq, c.State})
	}
	for id, d := range s.done {
		all = append(all, listed{id, d.seq, chat.States[d.state]})
	}
	slices.SortFunc(all, func(a, b listed) int { return cmp.Compare(b.seq, a.seq) })
	var out []chat.Chat
	for _, l := range all {
		if (before > 0 && l.seq >= before) || (state != "" && l.state != state) {
			continue
		}
		if len(out) == limit {
			return out, out[len(out)-1].Seq, nil
		}
		c, _, err := s.get(l.id)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, c)
	}
	return out, 0, nil
}

// Open returns the ids of the chats not in a final state.
func (s *Chats) Open(_ context.Context, shard, shards int) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, c := range s.live {
		if !c.State.Final() && chat.ShardOf(id, shards) == shard%max(shards, 1) {
			out = append(out, id)
		}
	}
	return out, nil
}

// WithPending returns the ids of the chats that have work: undelivered events, held messages.
func (s *Chats) WithPending(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, c := range s.live {
		if c.HasWork() {
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
	for _, p := range []*chat.Party{&c.Customer, &c.Rider} {
		p.Held = slices.Clone(p.Held)
		for i := range p.Held {
			p.Held[i].Media = slices.Clone(p.Held[i].Media)
		}
	}
	c.Undelivered = slices.Clone(c.Undelivered)
	c.Handled = slices.Clone(c.Handled)
	c.Settling = slices.Clone(c.Settling)
	c.Calls = slices.Clone(c.Calls)
	c.Guarded = slices.Clone(c.Guarded)
	for i := range c.Guarded {
		c.Guarded[i].Kinds = slices.Clone(c.Guarded[i].Kinds)
	}
	c.Notices = slices.Clone(c.Notices)
	for i := range c.Settling {
		c.Settling[i].Media = slices.Clone(c.Settling[i].Media)
	}
	if c.Fallback != nil {
		f := *c.Fallback
		c.Fallback = &f
	}
	if c.Error != nil {
		e := *c.Error
		c.Error = &e
	}
	if c.Ending != nil {
		e := *c.Ending
		c.Ending = &e
	}
	if c.Parked != nil {
		p := *c.Parked
		c.Parked = &p
	}
	return c
}
