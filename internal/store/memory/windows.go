package memory

import (
	"context"
	"sync"
	"time"

	"github.com/optinkit/optin/internal/chat"
)

// Windows is the in-process chat.Windows: each pair's last message (Unix ms), pruned after
// chat.WindowMemory.
type Windows struct {
	mu     sync.Mutex
	last   packed[[2]uint64, int64]
	now    func() time.Time
	pruned time.Time
}

var _ chat.Windows = (*Windows)(nil)

// NewWindows returns an empty store.
func NewWindows() *Windows {
	return &Windows{last: newPacked[[2]uint64, int64](), now: time.Now}
}

// Opened records that address wrote to proxy at at, unless a later message is recorded.
func (s *Windows) Opened(_ context.Context, address, proxy string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := s.now(); now.Sub(s.pruned) > time.Minute {
		s.pruned = now
		s.last.deleteFunc(func(t int64) bool { return now.Sub(time.UnixMilli(t)) > chat.WindowMemory })
	}
	k, ok, other := windowKey(address, proxy)
	if ms, found := s.last.get(k, ok, other); !found || at.UnixMilli() > ms {
		s.last.set(k, ok, other, at.UnixMilli())
	}
	return nil
}

// Window returns the pair's window.
func (s *Windows) Window(_ context.Context, address, proxy string) (chat.Window, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms, found := s.last.get(windowKey(address, proxy))
	if !found {
		return chat.Window{}, nil
	}
	return chat.Window{LastInbound: time.UnixMilli(ms).UTC()}, nil
}

// windowKey is the pair's key: packed, or as a string when either address has no packed form.
func windowKey(address, proxy string) ([2]uint64, bool, string) {
	if k, ok := pairKey(address, proxy); ok {
		return k, true, ""
	}
	return [2]uint64{}, false, address + "|" + proxy
}
