package console

import (
	"context"
	"sync"
	"time"

	"github.com/optinkit/optin/internal/chat"
)

// The summary reads the newest chats, at most summaryScan of them, and keeps what it read for
// summaryFresh, so that many open consoles cost one read of the store per second.
const (
	summaryScan  = 2000
	summaryPage  = 200
	summaryFresh = time.Second
)

// summary is the list page's counts.
type summary struct {
	Counts []stateCount
	// Scanned is how many chats the counts cover; Capped is set when older ones were left out.
	Scanned int
	Capped  bool
	Rates   []consentRate
	recent  []chat.Chat
}

type stateCount struct {
	State chat.State
	N     int
}

// consentRate is, of the customers who answered an invitation within Window, how many agreed.
type consentRate struct {
	Window   string
	Agreed   int
	Answered int
}

// Percent is the rate in whole percent.
func (r consentRate) Percent() int { return r.Agreed * 100 / max(r.Answered, 1) }

type summaryCache struct {
	chats Chats
	now   func() time.Time

	mu   sync.Mutex
	at   time.Time
	last summary
}

func (s *summaryCache) invalidate() {
	s.mu.Lock()
	s.at = time.Time{}
	s.mu.Unlock()
}

func (s *summaryCache) get(ctx context.Context) (summary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if !s.at.IsZero() && now.Sub(s.at) < summaryFresh {
		return s.last, nil
	}
	var recent []chat.Chat
	var before int64
	for len(recent) < summaryScan {
		page, next, err := s.chats.List(ctx, "", summaryPage, before)
		if err != nil {
			return summary{}, err
		}
		recent = append(recent, page...)
		if next == 0 {
			break
		}
		before = next
	}
	s.last, s.at = summarize(recent, now), now
	s.last.Capped = len(recent) >= summaryScan
	return s.last, nil
}

// summarize counts chats per state and the consent rates of the last hour and day.
func summarize(recent []chat.Chat, now time.Time) summary {
	sum := summary{Scanned: len(recent), recent: recent}
	counts := map[chat.State]int{}
	windows := []struct {
		name string
		d    time.Duration
	}{{"last hour", time.Hour}, {"last 24 hours", 24 * time.Hour}}
	sum.Rates = make([]consentRate, len(windows))
	for i, w := range windows {
		sum.Rates[i].Window = w.name
	}
	for _, c := range recent {
		counts[c.State]++
		at, agreed, ok := answer(c)
		if !ok {
			continue
		}
		for i, w := range windows {
			if now.Sub(at) <= w.d {
				sum.Rates[i].Answered++
				if agreed {
					sum.Rates[i].Agreed++
				}
			}
		}
	}
	for _, st := range chat.States {
		sum.Counts = append(sum.Counts, stateCount{State: st, N: counts[st]})
	}
	return sum
}

// answer is when the customer of an invited chat answered, and whether they agreed: the first move to
// connecting or connected (yes) or to declined (no, or stop).
func answer(c chat.Chat) (time.Time, bool, bool) {
	if c.Mode == chat.ModeDirect {
		return time.Time{}, false, false
	}
	for _, t := range c.History {
		switch t.State {
		case chat.StateConnecting, chat.StateConnected:
			return t.At, true, true
		case chat.StateDeclined:
			return t.At, false, true
		}
	}
	return time.Time{}, false, false
}
