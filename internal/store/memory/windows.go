package memory

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/optinkit/optin/internal/chat"
)

// Windows is the in-process chat.Windows: each pair's last message, pruned after chat.WindowMemory.
type Windows struct {
	mu     sync.Mutex
	last   map[string]time.Time
	nudges map[string]nudgeClaim
	now    func() time.Time
	pruned time.Time
}

// nudgeClaim is the chat that claimed a window's nudge, until when it is kept.
type nudgeClaim struct {
	chat  string
	until time.Time
}

var _ chat.Windows = (*Windows)(nil)

// NewWindows returns an empty store.
func NewWindows() *Windows {
	return &Windows{last: map[string]time.Time{}, nudges: map[string]nudgeClaim{}, now: time.Now}
}

// Opened records that address wrote to proxy at at, unless a later message is recorded.
func (s *Windows) Opened(_ context.Context, address, proxy string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := s.now(); now.Sub(s.pruned) > time.Minute {
		s.pruned = now
		for k, t := range s.last {
			if now.Sub(t) > chat.WindowMemory {
				delete(s.last, k)
			}
		}
		for k, c := range s.nudges {
			if !now.Before(c.until) {
				delete(s.nudges, k)
			}
		}
	}
	key := address + "|" + proxy
	if at.After(s.last[key]) {
		s.last[key] = at.UTC()
	}
	return nil
}

// Window returns the pair's window.
func (s *Windows) Window(_ context.Context, address, proxy string) (chat.Window, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return chat.Window{LastInbound: s.last[address+"|"+proxy]}, nil
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
