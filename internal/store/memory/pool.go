package memory

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/optinkit/optin/internal/numberpool"
)

// Pairs is the in-process numberpool.Store. As in Redis, a lease lapses after the retention (a release
// lost with a crashed start does not hold a pair for ever), so do blocks and each address's last
// number; what lapsed is pruned, so the maps hold only what is live.
type Pairs struct {
	mu      sync.Mutex
	leased  map[numberpool.Pair]pairLease
	byChat  map[string][]numberpool.Pair
	blocked map[numberpool.Pair]time.Time
	last    packed[uint64, lastNumber]
	// chatOf is the index by pair (bare number, bare address, see pairIndexKey) of the take that last
	// took it, kept beyond the release for the retention.
	chatOf packed[uint64, uint32]
	// takes are the records of the takes last and chatOf name (see takes.go).
	takes takes
	// numbers are the numbers seen, which lastNumber and chatOf's keys name by index: a pool's few
	// numbers (chatOf's bare).
	numbers   []string
	numberAt  map[string]uint32
	now       func() time.Time
	retention time.Duration
	pruned    time.Time
}

// pairLease is a lease's chat and until when it counts (Unix ms: a time.Time would take 24 bytes
// where 8 do).
type pairLease struct {
	chat  string
	until int64
}

// live reports whether the lease still counts at now.
func (l pairLease) live(now time.Time) bool { return now.UnixMilli() < l.until }

// lastNumber is an address's last number (an index into Pairs.numbers) and the take that leased
// it, which says until when it counts (an index into Pairs.takes).
type lastNumber struct {
	number, take uint32
}

var _ numberpool.IndexedStore = (*Pairs)(nil)

// NewPairs returns a store with nothing leased, whose leases lapse after retention (0: 30 days).
func NewPairs(retention time.Duration) *Pairs {
	if retention <= 0 {
		retention = 30 * 24 * time.Hour
	}
	return &Pairs{leased: map[numberpool.Pair]pairLease{}, byChat: map[string][]numberpool.Pair{},
		blocked: map[numberpool.Pair]time.Time{}, last: newPacked[uint64, lastNumber](), chatOf: newPacked[uint64, uint32](), numberAt: map[string]uint32{}, now: time.Now, retention: retention}
}

// prune drops what lapsed, at most once a minute. Callers hold s.mu.
func (s *Pairs) prune(now time.Time) {
	if now.Sub(s.pruned) < time.Minute {
		return
	}
	s.pruned = now
	for p, l := range s.leased {
		if !l.live(now) {
			delete(s.leased, p)
		}
	}
	for chat, pairs := range s.byChat {
		live := pairs[:0]
		for _, p := range pairs {
			if s.leased[p].chat == chat {
				live = append(live, p)
			}
		}
		if len(live) == 0 {
			delete(s.byChat, chat)
		} else {
			s.byChat[chat] = live
		}
	}
	for p, until := range s.blocked {
		if !now.Before(until) {
			delete(s.blocked, p)
		}
	}
	ms := now.UnixMilli()
	s.last.deleteFunc(func(l lastNumber) bool { return !s.takes.live(l.take, ms) })
	s.chatOf.deleteFunc(func(t uint32) bool { return !s.takes.live(t, ms) })
	s.takes.freeLapsed(ms)
}

// indexKey is a pair's key in the index: its number and address, bare; false when the number was
// never taken (so no pair of it is indexed). Callers hold s.mu.
func (s *Pairs) indexKey(number, address string) (k uint64, packed bool, str string, known bool) {
	n, known := s.numberAt[numberpool.Bare(number)]
	if !known {
		return 0, false, "", false
	}
	k, packed, str = pairIndexKey(n, numberpool.Bare(address))
	return k, packed, str, true
}

// held reports whether a live lease holds p. Callers hold s.mu.
func (s *Pairs) held(p numberpool.Pair, now time.Time) bool {
	l, ok := s.leased[p]
	return ok && l.live(now)
}

// Take leases every pair to chatID unless one is leased or blocked.
func (s *Pairs) Take(_ context.Context, chatID string, pairs []numberpool.Pair) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.prune(now)
	for _, p := range pairs {
		if s.held(p, now) {
			return false, nil
		}
		if until, ok := s.blocked[p]; ok && now.Before(until) {
			return false, nil
		}
	}
	until := now.Add(s.retention).UnixMilli()
	// The take's pairs share one record of the chat and its until.
	t := s.takes.add(chatID, until)
	for _, p := range pairs {
		s.leased[p] = pairLease{chat: chatID, until: until}
		s.byChat[chatID] = append(s.byChat[chatID], p)
		k, ok := addressKey(p.Address)
		s.last.set(k, ok, p.Address, lastNumber{number: s.number(p.Number), take: t})
		ik, iok, is := pairIndexKey(s.number(numberpool.Bare(p.Number)), numberpool.Bare(p.Address))
		s.chatOf.set(ik, iok, is, t)
	}
	return true, nil
}

// Release frees the chat's pairs.
func (s *Pairs) Release(_ context.Context, chatID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.byChat[chatID] {
		if s.leased[p].chat == chatID {
			delete(s.leased, p)
		}
	}
	delete(s.byChat, chatID)
	return nil
}

// ReleaseAddress frees the address's pairs leased to chatID.
func (s *Pairs) ReleaseAddress(_ context.Context, chatID, address string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byChat[chatID] = slices.DeleteFunc(s.byChat[chatID], func(p numberpool.Pair) bool {
		if p.Address != address {
			return false
		}
		if s.leased[p].chat == chatID {
			delete(s.leased, p)
		}
		return true
	})
	return nil
}

// Renew starts the term of the chat's live leases again, with their takes: the last numbers and
// index entries that still name those takes count for the term too.
func (s *Pairs) Renew(_ context.Context, chatID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	until := now.Add(s.retention)
	for _, p := range s.byChat[chatID] {
		if l, ok := s.leased[p]; ok && l.chat == chatID && l.live(now) {
			s.leased[p] = pairLease{chat: chatID, until: until.UnixMilli()}
			k, ok := addressKey(p.Address)
			if last, found := s.last.get(k, ok, p.Address); found && s.numbers[last.number] == p.Number {
				s.renew(last.take, chatID, until)
			}
			if ik, iok, is, known := s.indexKey(p.Number, p.Address); known {
				if t, found := s.chatOf.get(ik, iok, is); found {
					s.renew(t, chatID, until)
				}
			}
		}
	}
	return nil
}

// renew starts the term of the take at i again if it is chatID's. Callers hold s.mu.
func (s *Pairs) renew(i uint32, chatID string, until time.Time) {
	if t := s.takes.at(i); t.chat == chatID {
		t.until = until.UnixMilli()
	}
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
	k, ok := addressKey(address)
	if l, found := s.last.get(k, ok, address); found && s.takes.live(l.take, s.now().UnixMilli()) {
		return s.numbers[l.number], nil
	}
	return "", nil
}

// ChatOf returns the chat that last took the pair (number, address), read bare.
func (s *Pairs) ChatOf(_ context.Context, number, address string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok, str, known := s.indexKey(number, address)
	if !known {
		return "", nil
	}
	if t, found := s.chatOf.get(k, ok, str); found && s.takes.live(t, s.now().UnixMilli()) {
		return s.takes.at(t).chat, nil
	}
	return "", nil
}

// InUse counts the live leases per number: derived from the leases, it cannot drift from them.
func (s *Pairs) InUse(context.Context) (map[string]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := map[string]int{}
	for p := range s.leased {
		if s.held(p, now) {
			out[p.Number]++
		}
	}
	return out, nil
}

// size counts the entries the store keeps, for the pruning test.
func (s *Pairs) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.leased) + len(s.byChat) + len(s.blocked) + s.last.len()
}

// number returns n's index in s.numbers, adding it. Callers hold s.mu.
func (s *Pairs) number(n string) uint32 {
	i, ok := s.numberAt[n]
	if !ok {
		n = strings.Clone(n)
		i = uint32(len(s.numbers))
		s.numbers = append(s.numbers, n)
		s.numberAt[n] = i
	}
	return i
}
