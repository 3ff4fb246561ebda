package chat

import (
	"context"
	"time"
)

// WindowLength is WhatsApp's customer service window: a business may send a person free-form
// messages for 24 hours after that person's last message to the business number (63016 otherwise).
const WindowLength = 24 * time.Hour

// Window is one (person, business number) pair's customer service window, known from the last
// message the service saw the person send to that number. Its times are Twilio's (the messages'
// DateCreated), never a replica's clock, so replicas whose clocks disagree judge a window alike.
type Window struct {
	// LastInbound is when the person last wrote to the number; zero when the service never saw it.
	LastInbound time.Time
}

// OpenAt reports whether free-form messages reach the person at t: within 24 hours of their last
// message, the 24th hour itself excluded. A t before that message (another clock, a little behind)
// counts as open: the person has written.
func (w Window) OpenAt(t time.Time) bool {
	return !w.LastInbound.IsZero() && t.Sub(w.LastInbound) < WindowLength
}

// ReopenedAfter reports whether the person wrote at t or after: a message that failed at t for a
// closed window may then be sent again at once. Twilio's times are to the second, so a person's
// message in the same second as the failed one cannot be told to come before it; it says the window
// is open all the same (a copy that still fails is held again, for their next message).
func (w Window) ReopenedAfter(t time.Time) bool {
	return !w.LastInbound.IsZero() && !w.LastInbound.Before(t)
}

// Windows keeps, across chats and replicas, when each person last wrote to each business number: a
// window opened in one chat holds in the next chat on the same number.
type Windows interface {
	// Opened records that address wrote to proxy at at; an earlier time never replaces a later one.
	Opened(ctx context.Context, address, proxy string, at time.Time) error
	// Window returns the pair's window: the zero Window when the pair was never seen (or not within
	// WindowMemory).
	Window(ctx context.Context, address, proxy string) (Window, error)
}

// WindowMemory is how long a store keeps a pair's last message: longer than a chat lasts, so that a
// closed window keeps its identity (one nudge per closed window) for as long as a chat may ask.
const WindowMemory = 32 * 24 * time.Hour
