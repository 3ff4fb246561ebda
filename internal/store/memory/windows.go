package memory

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/optinkit/optin/internal/chat"
)

// Windows is the in-process chat.Windows: each pair's last message (Unix ms), pruned after
// chat.WindowMemory.
type Windows struct {
	mu     sync.Mutex
	last   map[pair]int64
	nudges map[string]nudgeClaim
	now    func() time.Time
	pruned time.Time
}

// nudgeClaim is the chat that claimed a window's nudge, until when it is kept.
type nudgeClaim struct {
	chat  string
	until time.Time
}

// pair is a person's address and the business number they wrote to.
type pair struct{ address, proxy address }

var _ chat.Windows = (*Windows)(nil)

// NewWindows returns an empty store.
func NewWindows() *Windows {
	return &Windows{last: map[pair]int64{}, nudges: map[string]nudgeClaim{}, now: time.Now}
}

// Opened records that address wrote to proxy at at, unless a later message is recorded.
func (s *Windows) Opened(_ context.Context, address, proxy string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := s.now(); now.Sub(s.pruned) > time.Minute {
		s.pruned = now
		for k, t := range s.last {
			if now.Sub(time.UnixMilli(t)) > chat.WindowMemory {
				delete(s.last, k)
			}
		}
		for k, c := range s.nudges {
			if !now.Before(c.until) {
				delete(s.nudges, k)
			}
		}
	}
	key := pair{addressOf(address), addressOf(proxy)}
	if ms, ok := s.last[key]; !ok || at.UnixMilli() > ms {
		s.last[key] = at.UnixMilli()
	}
	return nil
}

// Window returns the pair's window.
func (s *Windows) Window(_ context.Context, address, proxy string) (chat.Window, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms, ok := s.last[pair{addressOf(address), addressOf(proxy)}]
	if !ok {
		return chat.Window{}, nil
	}
	return chat.Window{LastInbound: time.UnixMilli(ms).UTC()}, nil
}

// Nudge claims the nudge of the pair's window for chatID, once per window.
func (s *Windows) Nudge(_ context.Context, address, proxy string, window time.Time, chatID string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := address + "|" + proxy + "|" + strconv.FormatInt(window.UnixMilli(), 10)
	now := s.now()
	if c, ok := s.nudges[key]; ok && now.Before(c.until) {
		return c.chat == chatID, nil
	}
	s.nudges[key] = nudgeClaim{chat: chatID, until: now.Add(chat.WindowMemory)}
	return true, nil
}
